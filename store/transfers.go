package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	veza "github.com/veza/backend"
)

// Transfer is a payout to one seller for one order.
type Transfer struct {
	ID               uuid.UUID           `json:"id"`
	OrderID          uuid.UUID           `json:"order_id"`
	SellerID         uuid.UUID           `json:"seller_id"`
	Amount           int64               `json:"amount"`
	PlatformFee      int64               `json:"platform_fee"`
	Currency         string              `json:"currency"`
	Status           veza.TransferStatus `json:"status"`
	StripeTransferID *string             `json:"stripe_transfer_id"`
	StripeReversalID *string             `json:"stripe_reversal_id"`
	RetryCount       int                 `json:"retry_count"`
	NextRetryAt      *time.Time          `json:"next_retry_at"`
	ErrorMessage     *string             `json:"error_message"`
	CreatedAt        time.Time           `json:"created_at"`
	UpdatedAt        time.Time           `json:"updated_at"`
}

const transferColumns = `id, order_id, seller_id, amount, platform_fee, currency, status, stripe_transfer_id, stripe_reversal_id,
	retry_count, next_retry_at, error_message, created_at, updated_at`

func scanTransfer(row pgx.Row) (*Transfer, error) {
	var t Transfer
	return one(&t, row.Scan(&t.ID, &t.OrderID, &t.SellerID, &t.Amount, &t.PlatformFee, &t.Currency, &t.Status, &t.StripeTransferID,
		&t.StripeReversalID, &t.RetryCount, &t.NextRetryAt, &t.ErrorMessage, &t.CreatedAt, &t.UpdatedAt))
}

// NewTransfer is one seller's payout of an order.
type NewTransfer struct {
	SellerID    uuid.UUID
	Amount, Fee int64
}

// InsertTransfers creates the pending transfers of an order in one
// statement and returns those it created: a pair (order, seller) that has
// one already is skipped, so replays create nothing.
func InsertTransfers(ctx context.Context, tx pgx.Tx, orderID uuid.UUID, currency string, ts []NewTransfer) ([]Transfer, error) {
	sellers := make([]uuid.UUID, len(ts))
	amounts := make([]int64, len(ts))
	fees := make([]int64, len(ts))
	for i, t := range ts {
		sellers[i], amounts[i], fees[i] = t.SellerID, t.Amount, t.Fee
	}
	rows, err := tx.Query(ctx, `INSERT INTO seller_transfers (order_id, seller_id, amount, platform_fee, currency)
		SELECT $1, s, a, f, $2 FROM unnest($3::uuid[], $4::bigint[], $5::bigint[]) AS x(s, a, f)
		ON CONFLICT (order_id, seller_id) DO NOTHING RETURNING `+transferColumns, orderID, currency, sellers, amounts, fees)
	if err != nil {
		return nil, fmt.Errorf("error inserting transfers: %w", err)
	}
	return collectTransfers(rows, nil)
}

// GetTransfer reads a transfer.
func GetTransfer(ctx context.Context, q Querier, id uuid.UUID) (*Transfer, error) {
	return scanTransfer(q.QueryRow(ctx, `SELECT `+transferColumns+` FROM seller_transfers WHERE id = $1`, id))
}

// PayoutView is what a payout job reads before calling Stripe, in one round
// trip: the transfer, its order's status and the seller's account.
type PayoutView struct {
	Transfer        *Transfer
	OrderStatus     veza.OrderStatus
	StripeAccountID *string
}

// GetPayoutView reads a transfer with its order's status and its seller's
// Stripe account.
func GetPayoutView(ctx context.Context, q Querier, id uuid.UUID) (*PayoutView, error) {
	var v PayoutView
	var t Transfer
	err := q.QueryRow(ctx, `SELECT t.id, t.order_id, t.seller_id, t.amount, t.platform_fee, t.currency, t.status, t.stripe_transfer_id,
			t.stripe_reversal_id, t.retry_count, t.next_retry_at, t.error_message, t.created_at, t.updated_at, o.status, u.stripe_account_id
		FROM seller_transfers t JOIN orders o ON o.id = t.order_id JOIN users u ON u.id = t.seller_id WHERE t.id = $1`, id).
		Scan(&t.ID, &t.OrderID, &t.SellerID, &t.Amount, &t.PlatformFee, &t.Currency, &t.Status, &t.StripeTransferID,
			&t.StripeReversalID, &t.RetryCount, &t.NextRetryAt, &t.ErrorMessage, &t.CreatedAt, &t.UpdatedAt, &v.OrderStatus, &v.StripeAccountID)
	v.Transfer = &t
	return one(&v, err)
}

// GetTransferForUpdate reads and locks a transfer.
func GetTransferForUpdate(ctx context.Context, tx pgx.Tx, id uuid.UUID) (*Transfer, error) {
	return scanTransfer(tx.QueryRow(ctx, `SELECT `+transferColumns+` FROM seller_transfers WHERE id = $1 FOR UPDATE`, id))
}

// OrderTransfersForUpdate reads and locks every transfer of an order.
func OrderTransfersForUpdate(ctx context.Context, tx pgx.Tx, orderID uuid.UUID) ([]Transfer, error) {
	return collectTransfers(tx.Query(ctx, `SELECT `+transferColumns+` FROM seller_transfers WHERE order_id = $1 ORDER BY id FOR UPDATE`, orderID))
}

// ListTransfers returns transfers, newest first, optionally of one status.
func ListTransfers(ctx context.Context, q Querier, status *veza.TransferStatus, limit int) ([]Transfer, error) {
	return collectTransfers(q.Query(ctx, `SELECT `+transferColumns+` FROM seller_transfers
		WHERE ($1::text IS NULL OR status = $1::text) ORDER BY created_at DESC, id LIMIT $2`, status, limit))
}

var collectTransfers = all(scanTransfer)

// TransferUpdate is what a transition records besides the status.
type TransferUpdate struct {
	StripeTransferID *string
	StripeReversalID *string
	// ErrorMessage replaces the row's message when set; "" clears it.
	ErrorMessage *string
	// ResetRetries zeroes retry_count and next_retry_at (a new round).
	ResetRetries bool
	// UnlessOrderIs, when set, makes the move depend on the transfer's
	// order: the statement share-locks the order row first (the order the
	// refund path locks in, so the two cannot deadlock) and moves nothing
	// while the order is in this status, which reports veza.ErrStaleState.
	// It lets a payout record its transfer in one statement, with no
	// transaction around it, and leave the rare refunded order to a
	// transaction that can act on it.
	UnlessOrderIs veza.OrderStatus
}

// transferMoveSet is TransitionTransfer's SET list ($3 to $8).
const transferMoveSet = `status = $3::text,
	stripe_transfer_id = COALESCE($4, t.stripe_transfer_id),
	stripe_reversal_id = COALESCE($5, t.stripe_reversal_id),
	error_message = CASE WHEN $6 THEN $7 ELSE t.error_message END,
	retry_count = CASE WHEN $8 THEN 0 ELSE t.retry_count END,
	next_retry_at = CASE WHEN $8 OR $3::text IN ('completed', 'reversed', 'permanently_failed') THEN NULL ELSE t.next_retry_at END,
	updated_at = now()`

// TransitionTransfer is the only code that writes a transfer's status: one
// UPDATE ... WHERE id = $1 AND status = $from, checked against the status
// machine first. Zero rows is veza.ErrStaleState (a concurrent winner or a
// stale read). A test scans the tree for any other status write.
func TransitionTransfer(ctx context.Context, q Querier, id uuid.UUID, from, to veza.TransferStatus, u TransferUpdate) error {
	if err := veza.CheckTransferMove(from, to); err != nil {
		return err
	}
	var errMsg *string
	setErr := u.ErrorMessage != nil
	if setErr && *u.ErrorMessage != "" {
		errMsg = u.ErrorMessage
	}
	sql := `UPDATE seller_transfers t SET ` + transferMoveSet + ` WHERE t.id = $1 AND t.status = $2::text`
	args := []any{id, string(from), string(to), u.StripeTransferID, u.StripeReversalID, setErr, errMsg, u.ResetRetries}
	if u.UnlessOrderIs != "" {
		// The order's share lock is taken while the join produces the row,
		// before the UPDATE locks the transfer. The order id comes from a
		// plain read of the transfer: order_id never changes.
		sql = `UPDATE seller_transfers t SET ` + transferMoveSet + `
			FROM (SELECT id, status FROM orders WHERE id = (SELECT order_id FROM seller_transfers WHERE id = $1) FOR SHARE) o
			WHERE t.id = $1 AND t.status = $2::text AND o.id = t.order_id AND o.status <> $9::text`
		args = append(args, string(u.UnlessOrderIs))
	}
	tag, err := q.Exec(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("error moving transfer %s %s → %s: %w", id, from, to, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("transfer %s %s → %s: %w", id, from, to, veza.ErrStaleState)
	}
	return nil
}

// RecordTransferRetry mirrors River's retry schedule on the row for humans:
// retry_count, next_retry_at and the last error. It never changes status.
func RecordTransferRetry(ctx context.Context, q Querier, id uuid.UUID, retryCount int, nextRetryAt time.Time, errMsg string) error {
	_, err := q.Exec(ctx, `UPDATE seller_transfers SET retry_count = $2, next_retry_at = $3, error_message = $4, updated_at = now() WHERE id = $1`,
		id, retryCount, nextRetryAt, errMsg)
	return err
}
