package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/veza/backend"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/settle"
	"github.com/veza/backend/store"
	"github.com/veza/backend/stripeconnect"
)

// PayoutWorker pays one transfer: it reads the transfer, lets settle decide
// whether to send it, calls Stripe Connect outside any transaction with the
// transfer row id as idempotency key, and has settle record the result.
type PayoutWorker struct {
	river.WorkerDefaults[jobargs.PayoutArgs]
	DB       *store.DB
	Stripe   *stripeconnect.Client // nil when Stripe Connect is disabled
	Settle   *settle.Settler
	Inserter settle.Inserter
}

func (w *PayoutWorker) NextRetry(job *river.Job[jobargs.PayoutArgs]) time.Time {
	return w.Settle.Jobs.Payout.NextRetry(job.Attempt)
}

func (w *PayoutWorker) Work(ctx context.Context, job *river.Job[jobargs.PayoutArgs]) error {
	view, err := store.GetPayoutView(ctx, w.DB.Primary(), job.Args.TransferID)
	if errors.Is(err, store.ErrNotFound) {
		return river.JobCancel(fmt.Errorf("transfer %s does not exist", job.Args.TransferID))
	}
	if err != nil {
		return err
	}
	t := view.Transfer
	switch step, reason := settle.NextPayoutStep(view, w.Stripe != nil); step {
	case settle.PayoutDone:
		return nil
	case settle.PayoutWait:
		return river.JobSnooze(time.Minute)
	case settle.PayoutCloseUnpaid:
		return w.DB.InTx(ctx, func(tx pgx.Tx) error { return w.Settle.CloseUnpaid(ctx, tx, t.ID, reason) })
	case settle.PayoutHold:
		return w.fail(ctx, t.ID, reason)
	}

	stripeID, err := w.Stripe.CreateTransfer(ctx, stripeconnect.TransferParams{
		Amount:         t.Amount,
		Currency:       t.Currency,
		Destination:    *view.StripeAccountID,
		TransferGroup:  t.OrderID.String(),
		IdempotencyKey: t.ID.String(),
		Metadata:       map[string]string{"order_id": t.OrderID.String(), "transfer_id": t.ID.String()},
	})
	if err != nil {
		return w.stripeFailed(ctx, job, t.ID, err)
	}
	return w.Settle.RecordPayout(ctx, w.DB, w.Inserter, t, stripeID)
}

// stripeFailed mirrors a transient error's retry on the row; a permanent
// error, or the last attempt, leaves the row failed for an operator.
func (w *PayoutWorker) stripeFailed(ctx context.Context, job *river.Job[jobargs.PayoutArgs], id uuid.UUID, err error) error {
	msg := stripeconnect.Describe(err)
	transient := stripeconnect.IsTransient(err)
	if transient && job.Attempt < job.MaxAttempts {
		if rerr := store.RecordTransferRetry(ctx, w.DB.Primary(), id, job.Attempt, w.NextRetry(job), msg); rerr != nil {
			return rerr
		}
		return err
	}
	if ferr := w.fail(ctx, id, msg); ferr != nil {
		return ferr
	}
	if !transient {
		return river.JobCancel(err)
	}
	return err // exhausted: River discards the job, the row waits in failed
}

func (w *PayoutWorker) fail(ctx context.Context, id uuid.UUID, reason string) error {
	return w.DB.InTx(ctx, func(tx pgx.Tx) error { return w.Settle.FailPayout(ctx, tx, id, reason) })
}

// ReversalWorker reverses one transfer in full at Stripe (SPEC §4).
type ReversalWorker struct {
	river.WorkerDefaults[jobargs.ReversalArgs]
	DB      *store.DB
	Stripe  *stripeconnect.Client // nil when Stripe Connect is disabled
	Settle  *settle.Settler
	Enabled bool // REVERSAL_WORKER_ENABLED
	Logger  zerolog.Logger
}

// NextRetry is base·2^retry capped at max; the row mirrors it.
func (w *ReversalWorker) NextRetry(job *river.Job[jobargs.ReversalArgs]) time.Time {
	return w.Settle.Jobs.Reversal.NextRetry(job.Attempt)
}

func (w *ReversalWorker) Work(ctx context.Context, job *river.Job[jobargs.ReversalArgs]) error {
	if !w.Enabled {
		w.Logger.Warn().Str("transfer_id", job.Args.TransferID.String()).Msg("reversal worker disabled (REVERSAL_WORKER_ENABLED=false): job snoozed")
		return river.JobSnooze(15 * time.Minute)
	}
	t, err := store.GetTransfer(ctx, w.DB.Primary(), job.Args.TransferID)
	if errors.Is(err, store.ErrNotFound) {
		return river.JobCancel(fmt.Errorf("transfer %s does not exist", job.Args.TransferID))
	}
	if err != nil {
		return err
	}
	if t.Status != veza.TransferReversalPending {
		return nil // only reversal_pending rows are touched
	}
	if t.NextRetryAt != nil && t.NextRetryAt.After(time.Now()) {
		// The row's schedule wins over an early run (a manual retry, the
		// safety-net sweep): wait for it.
		return river.JobSnooze(time.Until(*t.NextRetryAt))
	}
	log := w.Logger.With().Str("transfer_id", t.ID.String()).Str("order_id", t.OrderID.String()).Logger()

	if t.StripeTransferID == nil || *t.StripeTransferID == "" {
		log.Error().Msg("reversal impossible: the transfer has no stripe_transfer_id (legacy row); reverse it by hand in Stripe")
		return w.finish(ctx, t.ID, veza.TransferPermanentlyFailed, nil, "no stripe_transfer_id (legacy row): reverse manually in Stripe")
	}
	if w.Stripe == nil {
		log.Warn().Msg("reversal waits: Stripe Connect is not enabled")
		return river.JobSnooze(15 * time.Minute)
	}

	revID, err := w.Stripe.ReverseTransfer(ctx, *t.StripeTransferID, "reversal-"+t.ID.String(), nil)
	switch {
	case err == nil:
		return w.finish(ctx, t.ID, veza.TransferReversed, &revID, "")
	case errors.Is(err, stripeconnect.ErrTransferAlreadyReversed):
		log.Info().Str("stripe_transfer_id", *t.StripeTransferID).Msg("transfer was already reversed at Stripe: marking reversed")
		return w.finish(ctx, t.ID, veza.TransferReversed, nil, "")
	case errors.Is(err, stripeconnect.ErrTransferNotFound):
		log.Error().Str("stripe_transfer_id", *t.StripeTransferID).Msg("Stripe does not know this transfer (resource_missing): permanently failed")
		return w.finish(ctx, t.ID, veza.TransferPermanentlyFailed, nil, "Stripe: transfer not found (resource_missing)")
	}

	msg := stripeconnect.Describe(err)
	if job.Attempt >= job.MaxAttempts {
		if ferr := w.finish(ctx, t.ID, veza.TransferPermanentlyFailed, nil, "retries exhausted: "+msg); ferr != nil {
			return ferr
		}
		return err // River discards the job: visible to ops with the row
	}
	next := time.Now().Add(w.Settle.Jobs.Reversal.Delay(t.RetryCount))
	if rerr := store.RecordTransferRetry(ctx, w.DB.Primary(), t.ID, t.RetryCount+1, next, msg); rerr != nil {
		return rerr
	}
	return err
}

func (w *ReversalWorker) finish(ctx context.Context, id uuid.UUID, to veza.TransferStatus, reversalID *string, msg string) error {
	return w.DB.InTx(ctx, func(tx pgx.Tx) error { return w.Settle.FinishReversal(ctx, tx, id, to, reversalID, msg) })
}
