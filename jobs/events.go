package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/veza/backend"
	"github.com/veza/backend/config"
	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/mail"
	"github.com/veza/backend/store"
)

// ProcessEventArgs is one Hyperswitch event to apply: from a webhook (LogID
// names its log row) or synthesised by reconciliation. Args hold the few
// object fields the dispatcher reads, never the raw payload.
type ProcessEventArgs struct {
	EventID   string                  `json:"event_id" river:"unique"`
	EventType string                  `json:"event_type"`
	LogID     *uuid.UUID              `json:"log_id,omitempty"`
	Object    hyperswitch.EventObject `json:"object"`
}

func (ProcessEventArgs) Kind() string { return "hyperswitch_event" }

// InsertOpts: the job is unique per event id through the hyperswitch_events
// table, written in the same transaction as the job (webhooks and synthetic
// reconcile events alike), which also outlives River's job retention. River's
// own unique insert would do the same work twice: profiling webhook ingest
// showed its key building at 12% of serve's CPU.
func (ProcessEventArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: config.QueuePayments, MaxAttempts: 15}
}

// EnqueueSyntheticEvent records a synthetic event's id and enqueues its job
// in one transaction; a second call with the same id enqueues nothing.
func EnqueueSyntheticEvent(ctx context.Context, db *store.DB, client *Client, args ProcessEventArgs) (bool, error) {
	var first bool
	err := db.InTx(ctx, func(tx pgx.Tx) error {
		var err error
		if first, err = store.RecordEvent(ctx, tx, args.EventID, args.EventType); err != nil || !first {
			return err
		}
		_, err = client.InsertTx(ctx, tx, args, nil)
		return err
	})
	return first, err
}

// ProcessEventWorker applies events through the one dispatcher and writes
// the result on the event's log row, in the same transaction.
type ProcessEventWorker struct {
	river.WorkerDefaults[ProcessEventArgs]
	DB         *store.DB
	Dispatcher *Dispatcher
}

func (w *ProcessEventWorker) Work(ctx context.Context, job *river.Job[ProcessEventArgs]) error {
	err := w.DB.InTx(ctx, func(tx pgx.Tx) error {
		result, err := w.Dispatcher.Dispatch(ctx, tx, job.Args)
		if err != nil {
			return err
		}
		if job.Args.LogID != nil {
			return store.SetWebhookResult(ctx, tx, *job.Args.LogID, result)
		}
		return nil
	})
	if err != nil && job.Args.LogID != nil {
		// Best effort: the attempt's error is visible on the log row too;
		// River retries and a later success overwrites it.
		_ = store.SetWebhookResult(context.WithoutCancel(ctx), w.DB.Primary(), *job.Args.LogID, store.ResultError(err.Error()))
	}
	return err
}

// Dispatcher applies payment_*, refund_* and dispute_* events to our rows.
// Every state change goes through the status machines, so a late, repeated
// or out-of-order event finds its row already moved and is skipped: replaying
// is always safe.
type Dispatcher struct {
	Logger zerolog.Logger
	// Payouts creates the seller transfers of a paid order and their jobs,
	// inside the transaction that completes it.
	Payouts *Payouts
	// Reversals takes back the transfers of a refunded order.
	Reversals *Reversals
}

// Dispatch returns the result for the log row: store.ResultOK when it
// changed something, store.ResultSkipped when there was nothing to do, or
// an error result for events it refuses (not retried). A returned error is
// retried by River.
func (d *Dispatcher) Dispatch(ctx context.Context, tx pgx.Tx, args ProcessEventArgs) (string, error) {
	switch {
	case strings.HasPrefix(args.EventType, "payment_"):
		return d.payment(ctx, tx, args)
	case strings.HasPrefix(args.EventType, "refund_"):
		return d.refund(ctx, tx, args)
	case strings.HasPrefix(args.EventType, "dispute_"):
		// Disputes need a human: surface them loudly, change nothing.
		d.Logger.Error().Str("event_id", args.EventID).Str("event_type", args.EventType).
			Str("payment_id", args.Object.PaymentID).Str("dispute_id", args.Object.DisputeID).
			Msg("dispute event received: needs attention")
		return store.ResultOK, nil
	default:
		return store.ResultSkipped, nil
	}
}

var paymentTargets = map[string]veza.OrderStatus{
	"payment_succeeded": veza.OrderCompleted,
	"payment_failed":    veza.OrderFailed,
	"payment_cancelled": veza.OrderCancelled,
}

func (d *Dispatcher) payment(ctx context.Context, tx pgx.Tx, args ProcessEventArgs) (string, error) {
	obj := args.Object
	if args.EventType == "payment_succeeded" {
		// The common case in one statement: a pending order paid in full
		// completes. Anything else takes the general path below.
		order, err := store.CompletePaidOrder(ctx, tx, obj.PaymentID, obj.Amount, obj.Currency, obj.Status)
		if err == nil {
			if err := d.onOrderPaid(ctx, tx, order); err != nil {
				return "", err
			}
			return store.ResultOK, nil
		}
		if !errors.Is(err, veza.ErrStaleState) {
			return "", err
		}
	}
	order, err := store.GetOrderByPaymentIDForUpdate(ctx, tx, obj.PaymentID)
	if errors.Is(err, store.ErrNotFound) {
		d.Logger.Warn().Str("event_id", args.EventID).Str("payment_id", obj.PaymentID).Msg("event for an unknown payment")
		return store.ResultSkipped, nil
	}
	if err != nil {
		return "", err
	}
	to, ok := paymentTargets[args.EventType]
	mismatch := ok && order.Status == veza.OrderPending && to == veza.OrderCompleted && (obj.Amount != order.Amount || !strings.EqualFold(obj.Currency, order.Currency))
	if !ok || order.Status != veza.OrderPending || mismatch {
		// Intermediate statuses, the order already moved on (terminal
		// states never move again), or a payment that is not this order's
		// amount: only the PSP's status is recorded.
		if obj.Status != "" {
			if err := store.SetOrderPaymentStatus(ctx, tx, order.ID, obj.Status); err != nil {
				return "", err
			}
		}
		if !mismatch {
			return store.ResultSkipped, nil
		}
		d.Logger.Error().Str("order_id", order.ID.String()).Int64("paid", obj.Amount).Str("paid_currency", obj.Currency).
			Int64("expected", order.Amount).Str("currency", order.Currency).Msg("payment amount does not match the order: not completing it")
		return store.ResultError(fmt.Sprintf("amount mismatch: paid %d %s, order is %d %s", obj.Amount, obj.Currency, order.Amount, order.Currency)), nil
	}
	if err := store.TransitionOrderWithPayment(ctx, tx, order.ID, veza.OrderPending, to, obj.Status); err != nil {
		if errors.Is(err, veza.ErrStaleState) {
			return store.ResultSkipped, nil
		}
		return "", err
	}
	if to == veza.OrderCompleted {
		if err := d.onOrderPaid(ctx, tx, order); err != nil {
			return "", err
		}
	}
	return store.ResultOK, nil
}

// onOrderPaid is everything a paid order implies, committed with the order's
// move to completed: the receipt email and the sellers' payouts.
// The jobs go in one batch (one round trip, found by profiling `make bench`).
func (d *Dispatcher) onOrderPaid(ctx context.Context, tx pgx.Tx, order *store.Order) error {
	payouts, err := d.Payouts.PlanPayouts(ctx, tx, order)
	if err != nil {
		return err
	}
	batch := append([]river.InsertManyParams{{Args: EmailArgs{Template: mail.TemplatePurchaseReceipt, UserID: order.BuyerID, OrderID: &order.ID}}}, payouts...)
	if _, err := river.ClientFromContext[pgx.Tx](ctx).InsertManyTx(ctx, tx, batch); err != nil {
		return fmt.Errorf("error enqueueing the receipt and payouts: %w", err)
	}
	return nil
}

func (d *Dispatcher) refund(ctx context.Context, tx pgx.Tx, args ProcessEventArgs) (string, error) {
	obj := args.Object
	id, ok := store.RefundRowID(obj.RefundID)
	if !ok {
		d.Logger.Warn().Str("event_id", args.EventID).Str("psp_refund_id", obj.RefundID).Msg("refund event for a refund we did not create")
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
	switch args.EventType {
	case "refund_succeeded":
		return store.ResultOK, d.refundSucceeded(ctx, tx, refund)
	case "refund_failed":
		msg := obj.ErrorMessage
		if msg == nil {
			unknown := "refund failed at the payment provider (no message)"
			msg = &unknown
		}
		return store.ResultOK, failRefund(ctx, tx, refund.ID, refund.OrderID, msg)
	default:
		return store.ResultSkipped, nil
	}
}

// refundSucceeded settles a refund in one transaction: refund succeeded,
// order refunded, every paid transfer on its way back, the confirmation
// email. The buyer's refund completes whatever Stripe's health: reversals
// are jobs of their own.
func (d *Dispatcher) refundSucceeded(ctx context.Context, tx pgx.Tx, refund *store.Refund) error {
	order, err := store.GetOrderForUpdate(ctx, tx, refund.OrderID)
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
			if err := d.Reversals.Start(ctx, tx, t.ID); err != nil {
				return err
			}
		case veza.TransferFailed:
			if err := neverPay(ctx, tx, t.ID, "order refunded before payout; not paid"); err != nil {
				return err
			}
			// pending: its payout job sees the refunded order and never pays.
		}
	}
	_, err = river.ClientFromContext[pgx.Tx](ctx).InsertTx(ctx, tx,
		EmailArgs{Template: mail.TemplateRefundConfirmation, UserID: order.BuyerID, OrderID: &order.ID, RefundID: &refund.ID}, nil)
	return err
}
