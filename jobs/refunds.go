package jobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/veza/backend"
	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/settle"
	"github.com/veza/backend/store"
)

// SubmitRefundWorker creates the refund at Hyperswitch with refund_id
// derived from our row, so a retried call cannot refund twice, and stores
// the PSP id. The terminal state arrives by webhook.
type SubmitRefundWorker struct {
	river.WorkerDefaults[jobargs.SubmitRefundArgs]
	DB          *store.DB
	Hyperswitch *hyperswitch.Client
	Settle      *settle.Settler
	Logger      zerolog.Logger
}

func (w *SubmitRefundWorker) Work(ctx context.Context, job *river.Job[jobargs.SubmitRefundArgs]) error {
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
	order, err := store.GetOrderSummary(ctx, pool, r.OrderID)
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
		w.Logger.Error().Err(err).Str("refund_id", r.ID.String()).Str("order_id", order.ID.String()).Msg("hyperswitch refused the refund")
		return w.DB.InTx(ctx, func(tx pgx.Tx) error { return w.Settle.FailRefund(ctx, tx, r.ID, r.OrderID, err.Error()) })
	}
	return store.SetRefundPSPID(ctx, pool, r.ID, psp.RefundID)
}
