package main

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/veza/backend/internal/agedb"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/jobs"
)

// aged: the database a marketplace has after months (agedb: size.agedLog
// webhook deliveries over 90 days and one expired day, size.agedOrders
// orders with their items, transfers, refunds and disputes in every state,
// the events of the dedupe retention, finished River jobs), then ingest,
// settlement, a reconcile sweep and one day's retention on it. Ingest and
// settlement are ratios to the same run's figures on the nearly empty
// database, measured first. It runs after the other steps: the preload
// stays (the upload step after it does not read these tables).
func (b *bench) aged(ctx context.Context) error {
	empty, err := b.ingestMax(ctx)
	if err != nil {
		return err
	}
	emptySettle, err := b.settlementRate(ctx)
	if err != nil {
		return err
	}
	say("aged: preloading")
	counts, err := agedb.Preload(ctx, b.pool, agedb.Sizes{Orders: b.size.agedOrders, LogRows: b.size.agedLog, Days: 90, EventDays: 30,
		Jobs: b.size.agedJobs, Parallel: 2, Logf: say})
	if err != nil {
		return err
	}
	var size string
	if err := b.pool.QueryRow(ctx, `SELECT pg_size_pretty(pg_database_size(current_database()))`).Scan(&size); err != nil {
		return err
	}
	b.add(Result{Name: "aged: preload", Value: counts.Took.Seconds(), Unit: "s",
		Note: fmt.Sprintf("%s; database %s", counts, size)})

	// Ingest at the edge, as on the empty database.
	aged, ingestEach, failed, err := b.ingestMedian(ctx, "aged-ingest")
	if err != nil {
		return err
	}
	if err := b.drain(ctx); err != nil {
		return err
	}
	b.add(Result{Name: "aged: webhook ingest, max rate", Value: aged.rate, Unit: "deliveries/s", Baseline: empty.rate, Target: "ratio >= 0.8",
		Pass: pass(aged.rate >= 0.8*empty.rate),
		Note: fmt.Sprintf("median of %s; baseline: the same on the empty database; p50 %.1f ms, p99 %.1f ms (empty: %.1f, %.1f); %d failed",
			ingestEach, aged.p50, aged.p99, empty.p50, empty.p99, failed)})

	settle, each, settleFailed, err := b.settleMedian(ctx, b.size.orders, b.size.medianRuns, "aged-settlement")
	if err != nil {
		return err
	}
	b.add(Result{Name: "aged: settlement", Value: settle, Unit: "orders/s", Baseline: emptySettle, Target: "ratio >= 0.8",
		Pass: pass(settle >= 0.8*emptySettle),
		Note: fmt.Sprintf("median of %d runs (%s) of %d orders; baseline: the same on the empty database; %d webhook failures",
			b.size.medianRuns, each, b.size.orders, settleFailed)})

	if err := b.agedSweep(ctx); err != nil {
		return err
	}
	return b.agedRetention(ctx, counts)
}

// agedSweep times one reconcile sweep job: its four queries over the aged
// tables and the insert of the row jobs it finds (RECONCILE_BATCH_LIMIT per
// class). The row jobs are not this measure (the fake Hyperswitch knows
// none of the preloaded payments): their queue is paused meanwhile and
// they are deleted after.
func (b *bench) agedSweep(ctx context.Context) error {
	client, err := jobs.NewInserter(b.pool, jobs.ClientOpts{Logger: zerolog.Nop()})
	if err != nil {
		return err
	}
	if err := client.QueuePause(ctx, jobargs.QueueHyperswitch, nil); err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // the workers see the pause
	res, err := client.Insert(ctx, jobargs.ReconcileSweepArgs{}, nil)
	if err != nil {
		return err
	}
	if err := b.waitFor(time.Minute, func() bool {
		return b.count(ctx, `SELECT count(*) FROM river_job WHERE id = $1 AND state = 'completed'`, res.Job.ID) == 1
	}); err != nil {
		return fmt.Errorf("the sweep did not complete: %w", err)
	}
	var took float64
	if err := b.pool.QueryRow(ctx, `SELECT extract(epoch FROM finalized_at - attempted_at) FROM river_job WHERE id = $1`, res.Job.ID).Scan(&took); err != nil {
		return err
	}
	tag, err := b.pool.Exec(ctx, `DELETE FROM river_job WHERE kind IN ('reconcile_order', 'reconcile_refund', 'reconcile_dispute') AND state = 'available'`)
	if err != nil {
		return err
	}
	if err := client.QueueResume(ctx, jobargs.QueueHyperswitch, nil); err != nil {
		return err
	}
	b.add(Result{Name: "aged: reconcile sweep job", Value: took * 1000, Unit: "ms",
		Note: fmt.Sprintf("stuck orders, refunds, orphans and disputes found among the aged rows and %d row jobs enqueued (batch limit %d per class); every sweep query is an index scan (store's TestSweepQueriesUseIndexesOnAnAgedDatabase)",
			tag.RowsAffected(), shippedConfig().Reconcile.BatchLimit)})
	return nil
}

// agedRetention: the cleanup job drops the expired day of the aged log
// (one of 92 partitions), while nothing else runs.
func (b *bench) agedRetention(ctx context.Context, counts agedb.Counts) error {
	client, err := jobs.NewInserter(b.pool, jobs.ClientOpts{Logger: zerolog.Nop()})
	if err != nil {
		return err
	}
	before := b.count(ctx, `SELECT count(*) FROM hyperswitch_webhook_log`)
	res, err := client.Insert(ctx, jobargs.WebhookLogCleanupArgs{}, nil)
	if err != nil {
		return err
	}
	if err := b.waitFor(2*time.Minute, func() bool {
		return b.count(ctx, `SELECT count(*) FROM river_job WHERE id = $1 AND state = 'completed'`, res.Job.ID) == 1
	}); err != nil {
		return fmt.Errorf("the cleanup did not complete: %w", err)
	}
	var took float64
	if err := b.pool.QueryRow(ctx, `SELECT extract(epoch FROM finalized_at - attempted_at) FROM river_job WHERE id = $1`, res.Job.ID).Scan(&took); err != nil {
		return err
	}
	after := b.count(ctx, `SELECT count(*) FROM hyperswitch_webhook_log`)
	dropped := before - after
	perDay := b.size.agedLog / 90
	b.add(Result{Name: "aged: one day's retention", Value: took, Unit: "s", Target: "< 1 s, that day alone gone",
		Pass: pass(took < 1 && dropped == perDay),
		Note: fmt.Sprintf("the cleanup job ran %.3f s on a log of %d rows in 92 day partitions: %d rows went (a day is %d)", took, before, dropped, perDay)})
	return nil
}
