package jobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	veza "github.com/veza/backend"
	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/ingest"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/settle"
	"github.com/veza/backend/store"
)

// SubmitRefundWorker creates the refund at Hyperswitch with refund_id
// derived from our row, so a retried call cannot refund twice, and stores
// the PSP id. An unknown outcome (a network error, a 5xx, an answer that
// is not Hyperswitch's JSON) is retried, never taken as a failure: when the
// attempts run out the refund stays pending and the reconcile sweep reads
// it by our refund_id. Only Hyperswitch's own refusal fails it, and only
// once a read-back by our refund_id finds no refund (the client's
// CreateRefund: a refused repeat of a refund that went through, or a
// connector timeout, is read back as the refund it is). The terminal
// state arrives by webhook, or from the create's answer when it is final
// already (Hyperswitch sends no event for some outcomes).
type SubmitRefundWorker struct {
	river.WorkerDefaults[jobargs.SubmitRefundArgs]
	DB          *store.DB
	Hyperswitch *hyperswitch.Client
	Settle      *settle.Settler
	Inserter    settle.Inserter
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
	// The buyer's words stay in our row: connectors take only a few
	// reasons (Stripe: duplicate, fraudulent, requested_by_customer).
	reason := "requested_by_customer"
	if r.Automatic {
		reason = ""
	}
	psp, err := w.Hyperswitch.CreateRefund(ctx, hyperswitch.CreateRefundParams{
		RefundID: store.RefundIDFor(r.ID), PaymentID: order.PaymentID, Amount: r.Amount, Reason: reason, RefundType: "instant",
	})
	if err != nil {
		if d, ok := Paced(err); ok {
			return river.JobSnooze(d)
		}
		if hyperswitch.IsTransient(err) {
			return err
		}
		// Hyperswitch refused for good: the refund failed, the order is
		// completed again.
		w.Logger.Error().Ctx(ctx).Err(err).Str("refund_id", r.ID.String()).Str("order_id", order.ID.String()).Msg("hyperswitch refused the refund")
		return w.DB.InTx(ctx, func(tx pgx.Tx) error { return w.Settle.FailRefund(ctx, tx, w.Inserter, r, err.Error()) })
	}
	return w.DB.InTx(ctx, func(tx pgx.Tx) error {
		if err := store.SetRefundPSPID(ctx, tx, r.ID, psp.RefundID); err != nil {
			return err
		}
		return feedRefund(ctx, tx, w.Inserter, "submit", psp)
	})
}

// feedRefund feeds a refund's final status, read from Hyperswitch, to the
// same path as its webhook (a synthetic event, once per status). A status
// that is not final (pending, review) feeds nothing.
func feedRefund(ctx context.Context, tx pgx.Tx, ins settle.Inserter, source string, psp *hyperswitch.Refund) error {
	eventType, final := refundEvents[psp.Status]
	if !final {
		return nil
	}
	_, err := ingest.EnqueueEvent(ctx, tx, ins, jobargs.ProcessEventArgs{
		EventID:   source + ":" + psp.RefundID + ":" + psp.Status,
		EventType: eventType,
		Object: hyperswitch.EventObject{RefundID: psp.RefundID, PaymentID: psp.PaymentID, Status: psp.Status,
			Amount: psp.Amount, Currency: psp.Currency, ErrorMessage: psp.ErrorMessage},
	})
	return err
}
