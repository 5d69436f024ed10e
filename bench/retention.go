package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/jobs"
)

// retention: delete expired log rows while ingest runs at half its max.
func (b *bench) retention(ctx context.Context) error {
	n := b.size.expired
	full, err := b.ingestMax(ctx)
	if err != nil {
		return err
	}
	maxRate := full.rate
	if _, err := b.pool.Exec(ctx, `INSERT INTO hyperswitch_webhook_log (request_id, signature_valid, event_id, payload, processing_result, received_at)
		SELECT 'old', true, 'old_' || g, '{"event_type":"payment_succeeded"}', 'ok', now() - interval '200 days' FROM generate_series(1, $1) g`, n); err != nil {
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
	close(stop)
	wg.Wait()
	if err != nil {
		return err
	}
	left := b.count(ctx, `SELECT count(*) FROM hyperswitch_webhook_log WHERE request_id = 'old'`)
	b.add(Result{Name: "retention: expired rows deleted", Value: float64(n-left) / took.Seconds(), Unit: "rows/s",
		Note: fmt.Sprintf("%d rows in %.1f s, batches of 2,000, pause max(100 ms, batch time), %d left", n-left, took.Seconds(), left)})
	p99q, p99d := pct(quiet, 0.99), pct(during, 0.99)
	b.add(Result{Name: "ingest p99 during cleanup", Value: p99d, Unit: "ms", Baseline: p99q, Target: "ratio <= 2", Pass: pass(p99d/p99q <= 2),
		Note: fmt.Sprintf("half the max rate; p99 without cleanup %.1f ms", p99q)})
	return b.drain(ctx)
}
