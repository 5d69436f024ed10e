package settle

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/veza/backend"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/mail"
	"github.com/veza/backend/store"
)

// Errors a refund request is refused with.
var (
	// ErrOrderNotFound: no such order, or not the caller's (an order's
	// existence is not disclosed to others).
	ErrOrderNotFound = veza.Errorf(veza.KindNotFound, "not_found", "order not found")
	// ErrNotRefundable: only a completed order can be refunded.
	ErrNotRefundable = veza.Errorf(veza.KindConflict, "order_not_refundable", "only a completed order can be refunded")
)

// RefundRequest is a buyer asking for their money back.
type RefundRequest struct {
	OrderID, BuyerID uuid.UUID
	Reason           *string
}

// RequestRefund is phase 1 of a refund: the refund row (pending, no PSP id),
// the order completed → refund_pending, and the job that submits it to
// Hyperswitch, in tx. A second request finds the order no longer completed:
// the status machine makes the call idempotent.
func (s *Settler) RequestRefund(ctx context.Context, tx pgx.Tx, ins Inserter, req RefundRequest) (*store.Refund, error) {
	order, err := store.GetOrderSummaryForUpdate(ctx, tx, req.OrderID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && order.BuyerID != req.BuyerID) {
		return nil, ErrOrderNotFound
	}
	if err != nil {
		return nil, err
	}
	if order.Status != veza.OrderCompleted {
		return nil, ErrNotRefundable
	}
	refund, err := store.CreateRefund(ctx, tx, order.ID, order.Amount, order.Currency, req.Reason)
	if err != nil {
		return nil, err
	}
	if err := store.TransitionOrder(ctx, tx, order.ID, veza.OrderCompleted, veza.OrderRefundPending); err != nil {
		return nil, err
	}
	if _, err := ins.InsertTx(ctx, tx, jobargs.SubmitRefundArgs{RefundID: refund.ID}, nil); err != nil {
		return nil, err
	}
	return refund, nil
}

// SettleRefund applies a refund's success, in tx: refund succeeded, order
// refunded, every paid transfer on its way back (reversal_pending and a
// reversal job), every failed one closed unpaid, and the confirmation email.
// The buyer's refund completes whatever Stripe's health: reversals are jobs
// of their own. A pending transfer is left to its payout job, which finds
// the order refunded and never pays.
func (s *Settler) SettleRefund(ctx context.Context, tx pgx.Tx, ins Inserter, refund *store.Refund) error {
	order, err := store.GetOrderSummaryForUpdate(ctx, tx, refund.OrderID)
	if err != nil {
		return err
	}
	if err := store.TransitionRefund(ctx, tx, refund.ID, veza.RefundPending, veza.RefundSucceeded, nil); err != nil {
		return err
	}
	if err := store.TransitionOrder(ctx, tx, order.ID, veza.OrderRefundPending, veza.OrderRefunded); err != nil {
		return err
	}
	transfers, err := store.OrderTransfersForUpdate(ctx, tx, order.ID)
	if err != nil {
		return err
	}
	for _, t := range transfers {
		switch t.Status {
		case veza.TransferCompleted:
			err = s.StartReversal(ctx, tx, ins, t.ID)
		case veza.TransferFailed:
			err = s.CloseUnpaid(ctx, tx, t.ID, ReasonRefundedBeforePayout)
		}
		if err != nil {
			return err
		}
	}
	_, err = ins.InsertTx(ctx, tx, jobargs.EmailArgs{Template: mail.TemplateRefundConfirmation, UserID: order.BuyerID, OrderID: &order.ID, RefundID: &refund.ID}, nil)
	return err
}

// FailRefund marks a pending refund failed (msg kept for ops) and rolls its
// order back to completed, in tx.
func (s *Settler) FailRefund(ctx context.Context, tx pgx.Tx, refundID, orderID uuid.UUID, msg string) error {
	if err := store.TransitionRefund(ctx, tx, refundID, veza.RefundPending, veza.RefundFailed, &msg); err != nil {
		return err
	}
	return store.TransitionOrder(ctx, tx, orderID, veza.OrderRefundPending, veza.OrderCompleted)
}

// applyRefund applies a refund_* event to the refund row our refund_id
// names.
func (s *Settler) applyRefund(ctx context.Context, tx pgx.Tx, ins Inserter, ev jobargs.ProcessEventArgs) (string, error) {
	obj := ev.Object
	id, ok := store.RefundRowID(obj.RefundID)
	if !ok {
		s.Logger.Warn().Str("event_id", ev.EventID).Str("psp_refund_id", obj.RefundID).Msg("refund event for a refund we did not create")
		return store.ResultSkipped, nil
	}
	refund, err := store.GetRefundForUpdate(ctx, tx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.ResultSkipped, nil
	}
	if err != nil {
		return "", err
	}
	if refund.HyperswitchRefundID == nil {
		// The webhook beat the submit job's bookkeeping: record the id.
		if err := store.SetRefundPSPID(ctx, tx, refund.ID, obj.RefundID); err != nil {
			return "", err
		}
	}
	if refund.Status != veza.RefundPending {
		return store.ResultSkipped, nil // terminal: a late or repeated event
	}
	switch ev.EventType {
	case "refund_succeeded":
		return store.ResultOK, s.SettleRefund(ctx, tx, ins, refund)
	case "refund_failed":
		msg := "refund failed at the payment provider (no message)"
		if obj.ErrorMessage != nil {
			msg = *obj.ErrorMessage
		}
		return store.ResultOK, s.FailRefund(ctx, tx, refund.ID, refund.OrderID, msg)
	default:
		return store.ResultSkipped, nil
	}
}
