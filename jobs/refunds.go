package jobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/veza/backend"
	"github.com/veza/backend/config"
	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/store"
)

// SubmitRefundArgs is phase 2 of a refund: create it at Hyperswitch.
type SubmitRefundArgs struct {
	RefundID uuid.UUID `json:"refund_id" river:"unique"`
}

func (SubmitRefundArgs) Kind() string { return "submit_refund" }

func (SubmitRefundArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: config.QueuePayments, MaxAttempts: 12, UniqueOpts: oneLiveJob}
}

// SubmitRefundWorker creates the refund at Hyperswitch with refund_id
// derived from our row, so a retried call cannot refund twice, and stores
// the PSP id. The terminal state arrives by webhook.
type SubmitRefundWorker struct {
	river.WorkerDefaults[SubmitRefundArgs]
	DB          *store.DB
	Hyperswitch *hyperswitch.Client
	Logger      zerolog.Logger
}

func (w *SubmitRefundWorker) Work(ctx context.Context, job *river.Job[SubmitRefundArgs]) error {
	pool := w.DB.Primary()
	r, err := store.GetRefund(ctx, pool, job.Args.RefundID)
	if errors.Is(err, store.ErrNotFound) {
		return river.JobCancel(fmt.Errorf("refund %s does not exist", job.Args.RefundID))
	}
	if err != nil {
		return err
	}
	if r.Status != veza.RefundPending || r.HyperswitchRefundID != nil {
		return nil // already submitted, or settled meanwhile
	}
	if w.Hyperswitch == nil {
		return errors.New("hyperswitch is not enabled: cannot submit the refund")
	}
	order, err := store.GetOrder(ctx, pool, r.OrderID)
	if err != nil {
		return err
	}
	reason := ""
	if r.Reason != nil {
		reason = *r.Reason
	}
	psp, err := w.Hyperswitch.CreateRefund(ctx, hyperswitch.CreateRefundParams{
		RefundID: store.RefundIDFor(r.ID), PaymentID: order.PaymentID, Amount: r.Amount, Reason: reason, RefundType: "instant",
	})
	if err != nil {
		if hyperswitch.IsTransient(err) {
			return err
		}
		// Hyperswitch refused for good: the refund failed, the order is
		// completed again.
		msg := err.Error()
		w.Logger.Error().Err(err).Str("refund_id", r.ID.String()).Str("order_id", order.ID.String()).Msg("hyperswitch refused the refund")
		return w.DB.InTx(ctx, func(tx pgx.Tx) error { return failRefund(ctx, tx, r.ID, r.OrderID, &msg) })
	}
	return store.SetRefundPSPID(ctx, pool, r.ID, psp.RefundID)
}

// failRefund marks a pending refund failed and rolls its order back to
// completed, in the caller's transaction.
func failRefund(ctx context.Context, tx pgx.Tx, refundID, orderID uuid.UUID, msg *string) error {
	if err := store.TransitionRefund(ctx, tx, refundID, veza.RefundPending, veza.RefundFailed, msg); err != nil {
		return err
	}
	return store.TransitionOrder(ctx, tx, orderID, veza.OrderRefundPending, veza.OrderCompleted)
}
