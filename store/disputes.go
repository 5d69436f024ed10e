package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/veza/backend"
)

// Dispute is a chargeback of an order's payment, as Hyperswitch reports it.
type Dispute struct {
	ID                  uuid.UUID          `json:"id"`
	DisputeID           string             `json:"dispute_id"`
	OrderID             uuid.UUID          `json:"order_id"`
	Amount              int64              `json:"amount"`
	Currency            string             `json:"currency"`
	Stage               *string            `json:"stage"`
	Status              veza.DisputeStatus `json:"status"`
	Reason              *string            `json:"reason"`
	ConnectorDisputeID  *string            `json:"connector_dispute_id"`
	ChallengeRequiredBy *time.Time         `json:"challenge_required_by"`
	OpenedAt            time.Time          `json:"opened_at"`
	ClosedAt            *time.Time         `json:"closed_at"`
	UpdatedAt           time.Time          `json:"updated_at"`
}

const disputeColumns = `id, dispute_id, order_id, amount, currency, stage, status, reason, connector_dispute_id,
	challenge_required_by, opened_at, closed_at, updated_at`

func scanDispute(row pgx.Row) (*Dispute, error) {
	var d Dispute
	return one(&d, row.Scan(&d.ID, &d.DisputeID, &d.OrderID, &d.Amount, &d.Currency, &d.Stage, &d.Status, &d.Reason,
		&d.ConnectorDisputeID, &d.ChallengeRequiredBy, &d.OpenedAt, &d.ClosedAt, &d.UpdatedAt))
}

// NewDispute is a dispute's first report.
type NewDispute struct {
	DisputeID           string
	OrderID             uuid.UUID
	Amount              int64
	Currency            string
	Stage, Reason       string
	ConnectorDisputeID  string
	ChallengeRequiredBy *time.Time
	Status              veza.DisputeStatus
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// InsertDispute records a dispute in the status of the first event seen
// for it (events come out of order: the first may be its outcome), or
// returns the row that exists, locked, with created false.
func InsertDispute(ctx context.Context, tx pgx.Tx, d NewDispute) (dispute *Dispute, created bool, err error) {
	closed := "NULL"
	if !d.Status.Open() {
		closed = "now()"
	}
	dispute, err = scanDispute(tx.QueryRow(ctx, `INSERT INTO disputes (dispute_id, order_id, amount, currency, stage, status, reason,
			connector_dispute_id, challenge_required_by, closed_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, `+closed+`)
		ON CONFLICT (dispute_id) DO NOTHING RETURNING `+disputeColumns,
		d.DisputeID, d.OrderID, d.Amount, d.Currency, nullable(d.Stage), string(d.Status), nullable(d.Reason),
		nullable(d.ConnectorDisputeID), d.ChallengeRequiredBy))
	if err == nil {
		return dispute, true, nil
	}
	if err != ErrNotFound {
		return nil, false, fmt.Errorf("error inserting dispute: %w", err)
	}
	dispute, err = scanDispute(tx.QueryRow(ctx, `SELECT `+disputeColumns+` FROM disputes WHERE dispute_id = $1 FOR UPDATE`, d.DisputeID))
	return dispute, false, err
}

// TransitionDispute moves a dispute through its status machine (with
// stages: veza.CheckDisputeMoveAt) with a guarded UPDATE on its status and
// stage, recording the stage and deadline its event carries.
func TransitionDispute(ctx context.Context, tx pgx.Tx, id uuid.UUID, fromStage string, from, to veza.DisputeStatus, stage string, deadline *time.Time) error {
	if err := veza.CheckDisputeMoveAt(fromStage, from, stage, to); err != nil {
		return err
	}
	tag, err := tx.Exec(ctx, `UPDATE disputes SET status = $3::text, stage = COALESCE($4, stage),
		challenge_required_by = COALESCE($5, challenge_required_by),
		closed_at = CASE WHEN $3::text IN ('opened', 'challenged') THEN NULL ELSE now() END, updated_at = now()
		WHERE id = $1 AND status = $2::text AND COALESCE(stage, '') = $6`, id, string(from), string(to), nullable(stage), deadline, fromStage)
	if err != nil {
		return fmt.Errorf("error moving dispute %s %s → %s: %w", id, from, to, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("dispute %s %s → %s: %w", id, from, to, veza.ErrStaleState)
	}
	return nil
}

// OrderHasOpenDispute reports whether another dispute of the order than
// except is still open.
func OrderHasOpenDispute(ctx context.Context, q Querier, orderID, except uuid.UUID) (bool, error) {
	var open bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM disputes WHERE order_id = $1 AND id <> $2 AND status IN ('opened', 'challenged'))`,
		orderID, except).Scan(&open)
	return open, err
}

// DisputeLine is a dispute as ops see it: with its order's payment id (to
// find it in Hyperswitch's dashboard) and status.
type DisputeLine struct {
	Dispute
	PaymentID   string           `json:"payment_id"`
	OrderStatus veza.OrderStatus `json:"order_status"`
}

// ListDisputes returns disputes, optionally of one status: open ones first,
// the nearest challenge deadline first, then the newest.
func ListDisputes(ctx context.Context, q Querier, status *veza.DisputeStatus, limit int) ([]DisputeLine, error) {
	rows, err := q.Query(ctx, `SELECT d.id, d.dispute_id, d.order_id, d.amount, d.currency, d.stage, d.status, d.reason,
		d.connector_dispute_id, d.challenge_required_by, d.opened_at, d.closed_at, d.updated_at, COALESCE(o.payment_id, ''), o.status
		FROM disputes d JOIN orders o ON o.id = d.order_id
		WHERE ($1::text IS NULL OR d.status = $1::text)
		ORDER BY d.status IN ('opened', 'challenged') DESC, d.challenge_required_by NULLS LAST, d.opened_at DESC, d.id LIMIT $2`, status, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (DisputeLine, error) {
		var l DisputeLine
		d := &l.Dispute
		err := row.Scan(&d.ID, &d.DisputeID, &d.OrderID, &d.Amount, &d.Currency, &d.Stage, &d.Status, &d.Reason,
			&d.ConnectorDisputeID, &d.ChallengeRequiredBy, &d.OpenedAt, &d.ClosedAt, &d.UpdatedAt, &l.PaymentID, &l.OrderStatus)
		return l, err
	})
}

// StuckDisputes returns open disputes opened before olderThan, those
// reconciled longest ago (or never) first.
func StuckDisputes(ctx context.Context, q Querier, olderThan time.Duration, limit int) ([]uuid.UUID, error) {
	return collectIDs(q.Query(ctx, `SELECT id FROM disputes
		WHERE status IN ('opened', 'challenged') AND opened_at < now() - make_interval(secs => $1)
		ORDER BY reconciled_at NULLS FIRST, opened_at LIMIT $2`, olderThan.Seconds(), limit))
}

// GetDispute reads a dispute.
func GetDispute(ctx context.Context, q Querier, id uuid.UUID) (*Dispute, error) {
	return scanDispute(q.QueryRow(ctx, `SELECT `+disputeColumns+` FROM disputes WHERE id = $1`, id))
}

// MarkDisputeReconciled records that a dispute was just looked at.
func MarkDisputeReconciled(ctx context.Context, q Querier, id uuid.UUID) error {
	_, err := q.Exec(ctx, `UPDATE disputes SET reconciled_at = now() WHERE id = $1`, id)
	return err
}

// SetReversalAmount records how much of a completed transfer its reversal
// takes back (a share of a dispute); nil is the whole transfer, 0 a share
// that rounded to nothing (paid in full, never reversed).
func SetReversalAmount(ctx context.Context, tx pgx.Tx, transferID uuid.UUID, amount int64) error {
	_, err := tx.Exec(ctx, `UPDATE seller_transfers SET reversal_amount = $2 WHERE id = $1`, transferID, amount)
	return err
}

// SellerChargeback is what a charged-back order takes back from a seller:
// the shares recorded on their transfers (paid ones are reversed for it,
// unpaid ones are paid less or not at all).
func SellerChargeback(ctx context.Context, q Querier, orderID, sellerID uuid.UUID) (int64, string, error) {
	var amount int64
	var currency string
	err := q.QueryRow(ctx, `SELECT COALESCE(sum(reversal_amount), 0), COALESCE(min(currency), '') FROM seller_transfers
		WHERE order_id = $1 AND seller_id = $2 AND reversal_amount IS NOT NULL`, orderID, sellerID).Scan(&amount, &currency)
	return amount, currency, err
}

// HeldMessage is a held payout's error_message, for ops.
const HeldMessage = "held: the order's payment is disputed; paid when the dispute is won, taken back when it is lost"

// HoldPayout marks a pending transfer held by its order's open dispute. It
// share-locks the order first (the order the dispute path locks in), so a
// dispute's outcome committing meanwhile is seen: false when the order is no
// longer disputed or the transfer moved, and the payout job decides again.
func HoldPayout(ctx context.Context, q Querier, transferID uuid.UUID) (bool, error) {
	tag, err := q.Exec(ctx, `UPDATE seller_transfers t SET held_at = now(), error_message = $2, updated_at = now()
		FROM (SELECT id, status FROM orders WHERE id = (SELECT order_id FROM seller_transfers WHERE id = $1) FOR SHARE) o
		WHERE t.id = $1 AND t.status = 'pending' AND o.id = t.order_id AND o.status = 'disputed'`, transferID, HeldMessage)
	if err != nil {
		return false, fmt.Errorf("error holding payout %s: %w", transferID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// AccountHeldMessage is the error_message of a payout held for its
// seller's Stripe account.
const AccountHeldMessage = "held: the seller's Stripe account cannot receive payouts yet (payouts_enabled false); paid when Stripe enables them"

// HoldPayoutForAccount marks a pending transfer held while Stripe says its
// seller's account (its destination) has payouts disabled. It share-locks
// the seller's row first, so an account.updated committing meanwhile is
// seen (false: the payout job decides again) or waits for this hold and
// then releases it.
func HoldPayoutForAccount(ctx context.Context, q Querier, transferID uuid.UUID) (bool, error) {
	tag, err := q.Exec(ctx, `UPDATE seller_transfers t SET held_at = now(), error_message = $2, updated_at = now()
		FROM (SELECT id, stripe_account_id, payouts_enabled FROM users
			WHERE id = (SELECT seller_id FROM seller_transfers WHERE id = $1) FOR SHARE) u
		WHERE t.id = $1 AND t.status = 'pending' AND u.id = t.seller_id AND u.stripe_account_id = t.destination
			AND u.payouts_enabled = false`, transferID, AccountHeldMessage)
	if err != nil {
		return false, fmt.Errorf("error holding payout %s: %w", transferID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// RepointAccountHeldPayouts moves a seller's payouts held because their
// old account could not receive payouts (nothing was paid there) to their
// new account, in a new round of keys (the next attempt looks up first),
// and returns them: the caller enqueues their jobs.
func RepointAccountHeldPayouts(ctx context.Context, tx pgx.Tx, sellerID uuid.UUID, accountID string) ([]uuid.UUID, error) {
	return collectIDs(tx.Query(ctx, `UPDATE seller_transfers SET destination = $2, held_at = NULL, error_message = NULL,
			payout_round = payout_round + 1, payout_key_sent_at = NULL, updated_at = now()
		WHERE seller_id = $1 AND status = 'pending' AND held_at IS NOT NULL AND error_message = $3 RETURNING id`,
		sellerID, accountID, AccountHeldMessage))
}

// ReleaseAccountPayouts clears the holds on payouts to a Stripe account,
// in the caller's transaction, and returns them: the caller enqueues their
// payout jobs.
func ReleaseAccountPayouts(ctx context.Context, tx pgx.Tx, accountID string) ([]uuid.UUID, error) {
	return collectIDs(tx.Query(ctx, `UPDATE seller_transfers SET held_at = NULL,
			error_message = CASE WHEN error_message = $2 THEN NULL ELSE error_message END, updated_at = now()
		WHERE destination = $1 AND held_at IS NOT NULL AND status = 'pending' RETURNING id`, accountID, AccountHeldMessage))
}

// ReleaseHeldPayouts clears the holds on an order's transfers, in the
// caller's transaction (which holds the order's lock), and returns them:
// the caller enqueues their payout jobs.
func ReleaseHeldPayouts(ctx context.Context, tx pgx.Tx, orderID uuid.UUID) ([]uuid.UUID, error) {
	return collectIDs(tx.Query(ctx, `UPDATE seller_transfers SET held_at = NULL,
			error_message = CASE WHEN error_message = $2 THEN NULL ELSE error_message END, updated_at = now()
		WHERE order_id = $1 AND held_at IS NOT NULL RETURNING id`, orderID, HeldMessage))
}

// OrderDisputes returns an order's disputes, the first opened first.
func OrderDisputes(ctx context.Context, q Querier, orderID uuid.UUID) ([]Dispute, error) {
	return all(scanDispute)(q.Query(ctx, `SELECT `+disputeColumns+` FROM disputes WHERE order_id = $1 ORDER BY opened_at, id`, orderID))
}
