package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

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
