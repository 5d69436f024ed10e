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

// WebhookLogCleanupWorker applies the webhook logs' retention by dropping
// whole day partitions older than RetentionDays (a catalog change whatever
// their size), then deletes what rows are left to delete in batches: late
// rows of a default partition (normally none) and the dedupe events older
// than EventRetentionDays (one day's worth a day). Batches pause at least
// as long as they took, so a backlog never holds long locks or starves
// webhook ingest, and the job stops between batches when its context ends.
type WebhookLogCleanupWorker struct {
	river.WorkerDefaults[jobargs.WebhookLogCleanupArgs]
	DB                 *store.DB
	RetentionDays      int // 0 or less means 90
	EventRetentionDays int // 0 or less means 30
	BatchSize          int // default 2,000
	Pause              time.Duration
	Logger             zerolog.Logger
}

// DefaultEventRetentionDays keeps event ids well past the providers'
// redeliveries (Hyperswitch about 24 h, Stripe 3 days).
const DefaultEventRetentionDays = 30

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
	eventDays := w.EventRetentionDays
	if eventDays <= 0 {
		eventDays = DefaultEventRetentionDays
	}
	now := time.Now()
	cutoff, eventCutoff := now.AddDate(0, 0, -days), now.AddDate(0, 0, -eventDays)
	var dropped int
	err := w.DB.InTx(ctx, func(tx pgx.Tx) error {
		// Dropping a partition locks its parent: never queue ingest behind
		// a long wait for that lock (the next run tries again).
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '5s'`); err != nil {
			return err
		}
		var err error
		dropped, err = store.DropLogPartitionsBefore(ctx, tx, cutoff)
		return err
	})
	if err != nil {
		return fmt.Errorf("error dropping expired webhook log partitions: %w", err)
	}
	var late, events int64
	for _, step := range []struct {
		total *int64
		del   func() (int64, error)
	}{
		{&late, func() (int64, error) { return store.DeleteDefaultLogRowsBefore(ctx, w.DB.Primary(), cutoff, batch) }},
		{&events, func() (int64, error) { return store.DeleteEventsBefore(ctx, w.DB.Primary(), eventCutoff, batch) }},
	} {
		for {
			started := time.Now()
			n, err := step.del()
			*step.total += n
			if err != nil {
				return fmt.Errorf("error deleting expired webhook rows after %d: %w", *step.total, err)
			}
			if n < int64(batch) {
				break
			}
			select {
			case <-ctx.Done():
				w.Logger.Info().Ctx(ctx).Int64("late_rows", late).Int64("events", events).Msg("webhook log cleanup interrupted; the next run continues")
				return ctx.Err()
			case <-time.After(max(w.Pause, time.Since(started))):
			}
		}
	}
	w.Logger.Info().Ctx(ctx).Int("partitions_dropped", dropped).Int64("late_rows", late).Int64("events", events).
		Int("retention_days", days).Int("event_retention_days", eventDays).Time("cutoff", cutoff).Msg("webhook log cleanup done")
	return nil
}

// PartitionsAhead is how many days of webhook log partitions exist ahead
// of today: a missed day or two of the job loses nothing (the default
// partition would catch deliveries anyway).
const PartitionsAhead = 3

// WebhookLogPartitionsWorker creates the webhook logs' partitions from
// yesterday to PartitionsAhead days ahead (idempotent; rows that fell into
// a default partition move into their day's).
type WebhookLogPartitionsWorker struct {
	river.WorkerDefaults[jobargs.WebhookLogPartitionsArgs]
	DB     *store.DB
	Logger zerolog.Logger
	Now    func() time.Time // tests
}

func (w *WebhookLogPartitionsWorker) Work(ctx context.Context, job *river.Job[jobargs.WebhookLogPartitionsArgs]) error {
	now := time.Now()
	if w.Now != nil {
		now = w.Now()
	}
	n, err := store.EnsureLogPartitions(ctx, w.DB.Primary(), now.AddDate(0, 0, -1), now.AddDate(0, 0, PartitionsAhead))
	if err != nil {
		return err
	}
	if n > 0 {
		w.Logger.Info().Ctx(ctx).Int("created", n).Msg("webhook log partitions created ahead")
	}
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
