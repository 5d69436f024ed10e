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

// Refund is a buyer's refund of an order.
type Refund struct {
	ID                  uuid.UUID         `json:"id"`
	OrderID             uuid.UUID         `json:"order_id"`
	Status              veza.RefundStatus `json:"status"`
	Amount              int64             `json:"amount"`
	Currency            string            `json:"currency"`
	Reason              *string           `json:"reason"`
	HyperswitchRefundID *string           `json:"-"`
	ErrorMessage        *string           `json:"error_message"`
	// Automatic: the service started it (money taken for an order that was
	// not paid in full or was closed), not the buyer.
	Automatic bool      `json:"automatic"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// RefundIDFor is the Hyperswitch refund_id we choose for a refund row, so a
// retried create names the same refund and cannot refund twice.
func RefundIDFor(id uuid.UUID) string { return "veza_ref_" + id.String() }

// RefundRowID inverts RefundIDFor.
func RefundRowID(pspRefundID string) (uuid.UUID, bool) {
	const prefix = "veza_ref_"
	if len(pspRefundID) <= len(prefix) || pspRefundID[:len(prefix)] != prefix {
		return uuid.Nil, false
	}
	id, err := uuid.Parse(pspRefundID[len(prefix):])
	return id, err == nil
}

const refundColumns = `id, order_id, status, amount, currency, reason, hyperswitch_refund_id, error_message, automatic, created_at, updated_at`

func scanRefund(row pgx.Row) (*Refund, error) {
	var r Refund
	return one(&r, row.Scan(&r.ID, &r.OrderID, &r.Status, &r.Amount, &r.Currency, &r.Reason, &r.HyperswitchRefundID, &r.ErrorMessage, &r.Automatic, &r.CreatedAt, &r.UpdatedAt))
}

// CreateRefund inserts a pending refund without a PSP id.
func CreateRefund(ctx context.Context, tx pgx.Tx, orderID uuid.UUID, amount int64, currency string, reason *string) (*Refund, error) {
	r, err := scanRefund(tx.QueryRow(ctx, `INSERT INTO refunds (order_id, amount, currency, reason) VALUES ($1, $2, $3, $4) RETURNING `+refundColumns,
		orderID, amount, currency, reason))
	if err != nil {
		return nil, fmt.Errorf("error inserting refund: %w", err)
	}
	return r, nil
}

// CreateAutomaticRefund inserts a pending refund the service starts by
// itself, for amount of the order's payment.
func CreateAutomaticRefund(ctx context.Context, tx pgx.Tx, orderID uuid.UUID, amount int64, currency, reason string) (*Refund, error) {
	r, err := scanRefund(tx.QueryRow(ctx, `INSERT INTO refunds (order_id, amount, currency, reason, automatic) VALUES ($1, $2, $3, $4, true) RETURNING `+refundColumns,
		orderID, amount, currency, reason))
	if err != nil {
		return nil, fmt.Errorf("error inserting automatic refund: %w", err)
	}
	return r, nil
}

// RecordOutsideRefund records a refund made outside Veza that succeeded
// (Hyperswitch's dashboard or API, under Hyperswitch's id), as an
// automatic refund: money the order does not account for, already back
// with the buyer. false: a row has that Hyperswitch id already.
func RecordOutsideRefund(ctx context.Context, tx pgx.Tx, orderID uuid.UUID, amount int64, currency, pspRefundID, reason string) (bool, error) {
	tag, err := tx.Exec(ctx, `INSERT INTO refunds (order_id, amount, currency, reason, automatic, status, hyperswitch_refund_id)
		VALUES ($1, $2, $3, $4, true, 'succeeded', $5)
		ON CONFLICT (hyperswitch_refund_id) WHERE hyperswitch_refund_id IS NOT NULL DO NOTHING`,
		orderID, amount, currency, reason, pspRefundID)
	if err != nil {
		return false, fmt.Errorf("error recording the refund made outside Veza: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// GetRefund reads a refund.
func GetRefund(ctx context.Context, q Querier, id uuid.UUID) (*Refund, error) {
	return scanRefund(q.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds WHERE id = $1`, id))
}

// GetRefundForUpdate reads and locks a refund.
func GetRefundForUpdate(ctx context.Context, tx pgx.Tx, id uuid.UUID) (*Refund, error) {
	return scanRefund(tx.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds WHERE id = $1 FOR UPDATE`, id))
}

// RefundIDByPSPID finds the refund row that recorded Hyperswitch's refund
// id (a row whose id is not our veza_ref_ form), or ErrNotFound.
func RefundIDByPSPID(ctx context.Context, q Querier, pspRefundID string) (uuid.UUID, error) {
	var id uuid.UUID
	err := q.QueryRow(ctx, `SELECT id FROM refunds WHERE hyperswitch_refund_id = $1`, pspRefundID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return uuid.Nil, ErrNotFound
	}
	return id, err
}

// OrderRefunds lists an order's refunds, oldest first.
func OrderRefunds(ctx context.Context, q Querier, orderID uuid.UUID) ([]Refund, error) {
	return all(scanRefund)(q.Query(ctx, `SELECT `+refundColumns+` FROM refunds WHERE order_id = $1 ORDER BY created_at, id`, orderID))
}

// RefundSummary is what settling a payment reads of an order's refunds.
type RefundSummary struct {
	Back          int64 // succeeded, in the order's currency
	Automatic     bool  // an automatic refund, whatever its outcome
	AutomaticLive bool  // an automatic refund pending or succeeded
}

// OrderRefundSummary sums the order's refunds (one read).
func OrderRefundSummary(ctx context.Context, q Querier, order *Order) (RefundSummary, error) {
	refunds, err := OrderRefunds(ctx, q, order.ID)
	if err != nil {
		return RefundSummary{}, err
	}
	var sum RefundSummary
	for _, r := range refunds {
		if r.Status == veza.RefundSucceeded && strings.EqualFold(r.Currency, order.Currency) {
			sum.Back += r.Amount
		}
		if r.Automatic {
			sum.Automatic = true
			sum.AutomaticLive = sum.AutomaticLive || r.Status != veza.RefundFailed
		}
	}
	return sum, nil
}

// SetRefundPSPID records the id Hyperswitch accepted the refund under.
func SetRefundPSPID(ctx context.Context, q Querier, id uuid.UUID, pspID string) error {
	_, err := q.Exec(ctx, `UPDATE refunds SET hyperswitch_refund_id = $2, updated_at = now() WHERE id = $1`, id, pspID)
	return err
}

// TransitionRefund moves a refund through its status machine with a guarded
// UPDATE; errMsg (may be nil) is kept for failures.
func TransitionRefund(ctx context.Context, tx pgx.Tx, id uuid.UUID, from, to veza.RefundStatus, errMsg *string) error {
	if err := veza.CheckRefundMove(from, to); err != nil {
		return err
	}
	tag, err := tx.Exec(ctx, `UPDATE refunds SET status = $3::text, error_message = COALESCE($4, error_message), updated_at = now()
		WHERE id = $1 AND status = $2::text`, id, string(from), string(to), errMsg)
	if err != nil {
		return fmt.Errorf("error moving refund %s %s → %s: %w", id, from, to, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("refund %s %s → %s: %w", id, from, to, veza.ErrStaleState)
	}
	return nil
}

// GetOrderSummaryForShare reads an order without its items and holds it
// against change (FOR SHARE) until the transaction ends: every status change
// (FOR UPDATE, or an UPDATE) waits for it, and it waits for them, while
// readers holding it do not wait for each other. A payout records its
// transfer under it, so the order's other payouts are not serialised behind
// it but a refund still is.
func GetOrderSummaryForShare(ctx context.Context, tx pgx.Tx, id uuid.UUID) (*Order, error) {
	return scanOrder(tx.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = $1 FOR SHARE`, id))
}

// GetOrderForUpdate reads and locks an order with its items.
func GetOrderForUpdate(ctx context.Context, tx pgx.Tx, id uuid.UUID) (*Order, error) {
	return scanOrderWithItems(tx.QueryRow(ctx, orderWithItems+` WHERE id = $1 FOR UPDATE OF orders`, id))
}
