package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/veza/backend"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/settle"
	"github.com/veza/backend/store"
)

// WebhookLogCleanupWorker deletes in batches with a pause between them, so a
// backlog of millions never holds long locks or starves webhook ingest, and
// it stops between batches when its context ends (shutdown, timeout). The
// pause is at least as long as the batch took: on a busy database batches
// slow down and the cleanup backs off with them, using at most about half
// of one backend's time (the retention bench measures what it costs ingest).
type WebhookLogCleanupWorker struct {
	river.WorkerDefaults[jobargs.WebhookLogCleanupArgs]
	DB            *store.DB
	RetentionDays int // 0 or less means 90
	BatchSize     int // default 2,000
	Pause         time.Duration
	Logger        zerolog.Logger
}

// DefaultRetentionDays applies when the setting is 0 or negative.
const DefaultRetentionDays = 90

func (w *WebhookLogCleanupWorker) Timeout(*river.Job[jobargs.WebhookLogCleanupArgs]) time.Duration {
	return time.Hour // a large backlog takes a while; it resumes tomorrow anyway
}

func (w *WebhookLogCleanupWorker) Work(ctx context.Context, job *river.Job[jobargs.WebhookLogCleanupArgs]) error {
	days := w.RetentionDays
	if days <= 0 {
		days = DefaultRetentionDays
	}
	batch := w.BatchSize
	if batch <= 0 {
		batch = 2_000
	}
	cutoff := time.Now().AddDate(0, 0, -days)
	var total int64
	for {
		started := time.Now()
		n, err := store.DeleteWebhookLogsBefore(ctx, w.DB.Primary(), cutoff, batch)
		total += n
		if err != nil {
			return fmt.Errorf("error deleting webhook logs after %d rows: %w", total, err)
		}
		if n < int64(batch) {
			break
		}
		select {
		case <-ctx.Done():
			w.Logger.Info().Ctx(ctx).Int64("deleted", total).Msg("webhook log cleanup interrupted; the next run continues")
			return ctx.Err()
		case <-time.After(max(w.Pause, time.Since(started))):
		}
	}
	w.Logger.Info().Ctx(ctx).Int64("deleted", total).Int("retention_days", days).Time("cutoff", cutoff).Msg("webhook log cleanup done")
	return nil
}

// SafetyNetWorker finds pending transfers without a live payout job and
// reversal_pending transfers without a live reversal job, and enqueues them
// (uniquely: a job that appeared meanwhile is not doubled).
type SafetyNetWorker struct {
	river.WorkerDefaults[jobargs.SafetyNetArgs]
	DB       *store.DB
	Inserter settle.Inserter
	Jobs     jobargs.Policy
	// Grace leaves fresh rows to the jobs enqueued with them.
	Grace  time.Duration
	Limit  int
	Logger zerolog.Logger
}

func (w *SafetyNetWorker) Work(ctx context.Context, job *river.Job[jobargs.SafetyNetArgs]) error {
	pool := w.DB.Primary()
	payouts, err := store.TransfersWithoutJob(ctx, pool, string(veza.TransferPending), jobargs.PayoutArgs{}.Kind(), w.Grace, w.Limit)
	if err != nil {
		return err
	}
	reversals, err := store.TransfersWithoutJob(ctx, pool, string(veza.TransferReversalPending), jobargs.ReversalArgs{}.Kind(), w.Grace, w.Limit)
	if err != nil {
		return err
	}
	params := make([]river.InsertManyParams, 0, len(payouts)+len(reversals))
	// Unique while one is queued: a job that appeared since the query above
	// is not doubled.
	for _, id := range payouts {
		params = append(params, jobargs.Unique(w.Jobs.PayoutJob(id)))
	}
	for _, id := range reversals {
		params = append(params, jobargs.Unique(w.Jobs.ReversalJob(id)))
	}
	if len(params) == 0 {
		return nil
	}
	err = w.DB.InTx(ctx, func(tx pgx.Tx) error {
		_, err := w.Inserter.InsertManyTx(ctx, tx, params)
		return err
	})
	if err != nil {
		return fmt.Errorf("error re-enqueueing: %w", err)
	}
	w.Logger.Warn().Ctx(ctx).Int("payouts", len(payouts)).Int("reversals", len(reversals)).Msg("safety net re-enqueued jobs for rows that had none")
	return nil
}
