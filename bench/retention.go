package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/jobs"
	"github.com/veza/backend/store"
)

// retention: the cleanup job drops an expired day of the webhook log
// (size.expired rows in its partition) while ingest runs at half its max.
func (b *bench) retention(ctx context.Context) error {
	n := b.size.expired
	full, err := b.ingestMax(ctx)
	if err != nil {
		return err
	}
	maxRate := full.rate
	// The rows span an hour inside one UTC day, whatever the time now
	// (at 23:30 an hour from now - 200 days crossed into a day with no
	// partition, and half the rows went to the default one).
	old := time.Now().UTC().AddDate(0, 0, -200).Truncate(24 * time.Hour).Add(time.Hour)
	if _, err := store.EnsureLogPartitions(ctx, b.pool, old, old); err != nil {
		return err
	}
	if _, err := b.pool.Exec(ctx, `INSERT INTO hyperswitch_webhook_log (request_id, signature_valid, event_id, payload, processing_result, received_at)
		SELECT 'old', true, 'old_' || g, '{"event_type":"payment_succeeded"}', 'ok', $2::timestamptz + make_interval(secs => g % 3600) FROM generate_series(1, $1) g`, n, old); err != nil {
		return err
	}
	if _, err := b.pool.Exec(ctx, `VACUUM ANALYZE hyperswitch_webhook_log`); err != nil {
		return err
	}
	quiet, _, _ := b.load(ctx, 0, maxRate/2, 6*time.Second, nil, unknownPayment)
	if err := b.drain(ctx); err != nil {
		return err
	}

	client, err := jobs.NewInserter(b.pool, jobs.ClientOpts{Logger: zerolog.Nop()})
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	var during []time.Duration
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		during, _, _ = b.load(ctx, 0, maxRate/2, 10*time.Minute, stop, unknownPayment)
	}()
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	if _, err := client.Insert(ctx, jobargs.WebhookLogCleanupArgs{}, nil); err != nil {
		return err
	}
	err = b.waitFor(8*time.Minute, func() bool {
		return b.count(ctx, `SELECT count(*) FROM river_job WHERE kind = 'webhook_log_cleanup' AND state = 'completed'`) > 0
	})
	took := time.Since(start)
	// The load runs at least 5 s, so its p99 has samples however short
	// the cleanup was.
	time.Sleep(max(0, 5*time.Second-took))
	close(stop)
	wg.Wait()
	if err != nil {
		return err
	}
	left := b.count(ctx, `SELECT count(*) FROM hyperswitch_webhook_log WHERE request_id = 'old'`)
	var jobSeconds float64
	if err := b.pool.QueryRow(ctx, `SELECT extract(epoch FROM finalized_at - attempted_at) FROM river_job
		WHERE kind = 'webhook_log_cleanup' AND state = 'completed' ORDER BY id DESC LIMIT 1`).Scan(&jobSeconds); err != nil {
		return err
	}
	b.add(Result{Name: "retention: an expired day's partition dropped", Value: jobSeconds, Unit: "s", Target: "< 1 s, nothing left",
		Pass: pass(jobSeconds < 1 && left == 0),
		Note: fmt.Sprintf("%d rows in one day partition; the cleanup job ran %.3f s (%.1f s from its insert); %d left; the batched delete it replaces took about 55 s for 1,000,000 rows", n, jobSeconds, took.Seconds(), left)})
	p99q, p99d := pct(quiet, 0.99), pct(during, 0.99)
	b.add(Result{Name: "ingest p99 during cleanup", Value: p99d, Unit: "ms", Baseline: p99q, Target: "ratio <= 2", Pass: pass(p99d/p99q <= 2),
		Note: fmt.Sprintf("half the max rate; p99 without cleanup %.1f ms", p99q)})
	return b.drain(ctx)
}
