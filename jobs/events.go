package jobs

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/settle"
	"github.com/veza/backend/store"
)

// ProcessEventWorker applies an event through settle and writes the result
// on the event's log row, in the same transaction.
type ProcessEventWorker struct {
	river.WorkerDefaults[jobargs.ProcessEventArgs]
	DB       *store.DB
	Settle   *settle.Settler
	Inserter settle.Inserter
}

func (w *ProcessEventWorker) Work(ctx context.Context, job *river.Job[jobargs.ProcessEventArgs]) error {
	err := w.DB.InTx(ctx, func(tx pgx.Tx) error {
		result, err := w.Settle.ApplyEvent(ctx, tx, w.Inserter, job.Args)
		if err != nil {
			return err
		}
		if job.Args.LogID != nil {
			return store.SetWebhookResult(ctx, tx, *job.Args.LogID, job.Args.LogReceivedAt, result)
		}
		return nil
	})
	if err != nil && job.Args.LogID != nil {
		// Best effort: the attempt's error is visible on the log row too;
		// River retries and a later success overwrites it.
		_ = store.SetWebhookResult(context.WithoutCancel(ctx), w.DB.Primary(), *job.Args.LogID, job.Args.LogReceivedAt, store.ResultError(err.Error()))
	}
	return err
}
