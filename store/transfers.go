package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
	// Destination is the seller's Stripe account when the transfer was
	// planned; a payout is sent there, whatever the seller's account now.
	Destination *string `json:"destination"`
	// The rounds of idempotency keys (see PayoutKey, ReversalKey) and when
	// the current round's key was first sent to Stripe.
	PayoutRound       int        `json:"payout_round"`
	PayoutKeySentAt   *time.Time `json:"payout_key_sent_at"`
	ReversalRound     int        `json:"reversal_round"`
	ReversalKeySentAt *time.Time `json:"reversal_key_sent_at"`
	// ReversalAmount is how much the reversal takes back (a dispute's
	// share); nil is the whole transfer.
	ReversalAmount *int64 `json:"reversal_amount"`
	// ReadAt is the database's clock when the row was read
	// (statement_timestamp()). The key marks above are written on that
	// clock (now()), so a key's age is ReadAt minus its mark: never read on
	// the app's clock, which may be minutes off the database's, enough to
	// send a key Stripe may have forgotten or a second reversal beside one
	// still executing.
	ReadAt time.Time `json:"-"`
}

// KeyAge is how old a key marked at sentAt was when the row was read, on
// the database's clock. known is false for a Transfer not read from the
// database (no ReadAt): each caller then takes its own safe side.
func (t *Transfer) KeyAge(sentAt time.Time) (age time.Duration, known bool) {
	if t.ReadAt.IsZero() {
		return 0, false
	}
	return t.ReadAt.Sub(sentAt), true
}

// PayoutKey is the Stripe idempotency key of the transfer's current payout
// round: the row id in the first round (keys sent before rounds existed),
// then "<row id>:<round>".
func (t *Transfer) PayoutKey() string { return roundKey(t.ID.String(), t.PayoutRound) }

// ReversalKey is the key of the current reversal round.
func (t *Transfer) ReversalKey() string { return roundKey("reversal-"+t.ID.String(), t.ReversalRound) }

func roundKey(base string, round int) string {
	if round == 0 {
		return base
	}
	return fmt.Sprintf("%s:%d", base, round)
}

const transferColumns = `id, order_id, seller_id, amount, platform_fee, currency, status, stripe_transfer_id, stripe_reversal_id,
	retry_count, next_retry_at, error_message, created_at, updated_at, destination, payout_round, payout_key_sent_at,
	reversal_round, reversal_key_sent_at, reversal_amount, statement_timestamp()`

func transferFields(t *Transfer) []any {
	return []any{&t.ID, &t.OrderID, &t.SellerID, &t.Amount, &t.PlatformFee, &t.Currency, &t.Status, &t.StripeTransferID,
		&t.StripeReversalID, &t.RetryCount, &t.NextRetryAt, &t.ErrorMessage, &t.CreatedAt, &t.UpdatedAt, &t.Destination,
		&t.PayoutRound, &t.PayoutKeySentAt, &t.ReversalRound, &t.ReversalKeySentAt, &t.ReversalAmount, &t.ReadAt}
}

func scanTransfer(row pgx.Row) (*Transfer, error) {
	var t Transfer
	return one(&t, row.Scan(transferFields(&t)...))
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
	// The destination is frozen here: the seller's account when the order
	// was paid. The first round's key window starts now, before its first
	// send (a little early is safe: a new round only looks up first), which
	// spares the payout a statement.
	rows, err := tx.Query(ctx, `INSERT INTO seller_transfers (order_id, seller_id, amount, platform_fee, currency, destination, payout_key_sent_at)
		SELECT $1, s, a, f, $2, u.stripe_account_id, now() FROM unnest($3::uuid[], $4::bigint[], $5::bigint[]) AS x(s, a, f)
		JOIN users u ON u.id = x.s
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
// trip: the transfer and its order's status.
type PayoutView struct {
	Transfer    *Transfer
	OrderStatus veza.OrderStatus
	// PayoutsDisabled: Stripe says the seller's account (the transfer's
	// destination) cannot receive payouts yet (account.updated).
	PayoutsDisabled bool
}

// GetPayoutView reads a transfer with its order's status.
func GetPayoutView(ctx context.Context, q Querier, id uuid.UUID) (*PayoutView, error) {
	var v PayoutView
	var t Transfer
	err := q.QueryRow(ctx, `SELECT `+prefixed("t.", transferColumns)+`, o.status,
		EXISTS (SELECT 1 FROM users u WHERE u.id = t.seller_id AND u.stripe_account_id = t.destination AND u.payouts_enabled = false)
		FROM seller_transfers t JOIN orders o ON o.id = t.order_id WHERE t.id = $1`, id).
		Scan(append(transferFields(&t), &v.OrderStatus, &v.PayoutsDisabled)...)
	v.Transfer = &t
	return one(&v, err)
}

// prefixed qualifies a column list with a table alias (a function call,
// statement_timestamp(), is no column and stays as it is).
func prefixed(alias, columns string) string {
	parts := strings.Split(columns, ",")
	for i, p := range parts {
		if p = strings.TrimSpace(p); !strings.Contains(p, "(") {
			p = alias + p
		}
		parts[i] = p
	}
	return strings.Join(parts, ", ")
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
	// NextPayoutRound and NextReversalRound start a new round of
	// idempotency keys: the next attempt looks up at Stripe what earlier
	// rounds did, then sends a new key. A reversal round keeps the time its
	// last key was sent: the new key still waits for the last request's
	// settle time (jobargs.Policy.ReversalSettleTime).
	NextPayoutRound, NextReversalRound bool
	// UnlessOrderIn, when set, makes the move depend on the transfer's
	// order: the statement share-locks the order row first (the order the
	// refund path locks in, so the two cannot deadlock) and moves nothing
	// while the order is in one of these statuses, which reports
	// veza.ErrStaleState.
	// It lets a payout record its transfer in one statement, with no
	// transaction around it, and leave the rare refunded order to a
	// transaction that can act on it.
	UnlessOrderIn []veza.OrderStatus
}

// transferMoveSet is TransitionTransfer's SET list ($3 to $10).
const transferMoveSet = `status = $3::text,
	stripe_transfer_id = COALESCE($4, t.stripe_transfer_id),
	stripe_reversal_id = COALESCE($5, t.stripe_reversal_id),
	error_message = CASE WHEN $6 THEN $7 ELSE t.error_message END,
	retry_count = CASE WHEN $8 THEN 0 ELSE t.retry_count END,
	next_retry_at = CASE WHEN $8 OR $3::text IN ('completed', 'reversed', 'permanently_failed') THEN NULL ELSE t.next_retry_at END,
	payout_round = t.payout_round + CASE WHEN $9 THEN 1 ELSE 0 END,
	payout_key_sent_at = CASE WHEN $9 THEN NULL ELSE t.payout_key_sent_at END,
	reversal_round = t.reversal_round + CASE WHEN $10 THEN 1 ELSE 0 END,
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
	args := []any{id, string(from), string(to), u.StripeTransferID, u.StripeReversalID, setErr, errMsg, u.ResetRetries,
		u.NextPayoutRound, u.NextReversalRound}
	if len(u.UnlessOrderIn) > 0 {
		// The order's share lock is taken while the join produces the row,
		// before the UPDATE locks the transfer. The order id comes from a
		// plain read of the transfer: order_id never changes.
		sql = `UPDATE seller_transfers t SET ` + transferMoveSet + `
			FROM (SELECT id, status FROM orders WHERE id = (SELECT order_id FROM seller_transfers WHERE id = $1) FOR SHARE) o
			WHERE t.id = $1 AND t.status = $2::text AND o.id = t.order_id AND o.status <> ALL($11::text[])`
		not := make([]string, len(u.UnlessOrderIn))
		for i, s := range u.UnlessOrderIn {
			not[i] = string(s)
		}
		args = append(args, not)
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

// StartPayoutRound starts a new round of payout keys on a transfer that
// stays in its status (balance_insufficient, a key near Stripe's 24 h, an
// error saved under the old key): the next attempt looks up, then sends a
// new key. It never changes status.
// It moves from round only (compare and set): false when another job moved
// the round meanwhile, and the caller reads the row again.
func StartPayoutRound(ctx context.Context, q Querier, id uuid.UUID, round int) (bool, error) {
	tag, err := q.Exec(ctx, `UPDATE seller_transfers SET payout_round = payout_round + 1, payout_key_sent_at = NULL, updated_at = now()
		WHERE id = $1 AND payout_round = $2`, id, round)
	return tag.RowsAffected() == 1, err
}

// StartReversalRound is StartPayoutRound for reversal keys: it moves from
// round only, false when another job moved it meanwhile.
func StartReversalRound(ctx context.Context, q Querier, id uuid.UUID, round int) (bool, error) {
	tag, err := q.Exec(ctx, `UPDATE seller_transfers SET reversal_round = reversal_round + 1, reversal_key_sent_at = NULL, updated_at = now()
		WHERE id = $1 AND reversal_round = $2`, id, round)
	return tag.RowsAffected() == 1, err
}

// MarkPayoutKeySent records when round's payout key is first sent (before
// sending: a crash after it still leaves the key's age known). False when
// the row is in another round now (the caller reads it again).
func MarkPayoutKeySent(ctx context.Context, q Querier, id uuid.UUID, round int) (bool, error) {
	tag, err := q.Exec(ctx, `UPDATE seller_transfers SET payout_key_sent_at = COALESCE(payout_key_sent_at, now())
		WHERE id = $1 AND payout_round = $2`, id, round)
	return tag.RowsAffected() == 1, err
}

// MarkReversalKeySent records, before sending, when round's reversal key
// goes out. It marks an unmarked key of round only: false when another
// job marked it or moved the round meanwhile (the caller reads the row
// again, and that key's request gets its settle time).
func MarkReversalKeySent(ctx context.Context, q Querier, id uuid.UUID, round int) (time.Time, bool, error) {
	var at time.Time
	err := q.QueryRow(ctx, `UPDATE seller_transfers SET reversal_key_sent_at = now()
		WHERE id = $1 AND reversal_round = $2 AND reversal_key_sent_at IS NULL RETURNING reversal_key_sent_at`, id, round).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	return at, err == nil, err
}

// UnmarkReversalKeySent takes back MarkReversalKeySent's mark at (of
// round) when the request was not made after all (paced: our bucket, or a
// 429 Stripe did not execute): the key is still unused, so the next
// attempt sends it without a new round. A mark that moved is left alone.
func UnmarkReversalKeySent(ctx context.Context, q Querier, id uuid.UUID, round int, at time.Time) error {
	_, err := q.Exec(ctx, `UPDATE seller_transfers SET reversal_key_sent_at = NULL
		WHERE id = $1 AND reversal_round = $2 AND reversal_key_sent_at = $3`, id, round, at)
	return err
}

// SetTransferDestination gives a transfer planned without one the seller's
// current account: an operator's retry of a transfer whose seller had no
// account when it was planned.
func SetTransferDestination(ctx context.Context, tx pgx.Tx, id uuid.UUID) error {
	_, err := tx.Exec(ctx, `UPDATE seller_transfers t SET destination = u.stripe_account_id FROM users u
		WHERE t.id = $1 AND u.id = t.seller_id AND t.destination IS NULL`, id)
	return err
}

// TransferIDsInStatus lists up to limit transfers in an open status, oldest
// change first, locked (others skipped) for an operator's bulk retry.
func TransferIDsInStatus(ctx context.Context, tx pgx.Tx, status veza.TransferStatus, limit int) ([]uuid.UUID, error) {
	return collectIDs(tx.Query(ctx, `SELECT id FROM seller_transfers WHERE status = $1 AND status IN `+openTransferStatuses+`
		ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED`, string(status), limit))
}
