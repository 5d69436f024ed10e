package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/veza/backend/internal/servicetest"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/jobs"
)

// pspLimit is the hard limit the fake Stripe enforces in the PSP-bound
// step (writes per wall-clock second, 429 above), and pspRate and
// pspBurst the service's bucket under it: a bucket allows rate + burst in
// a second, and the arrivals of one second at the fake are the grants of
// about one second give or take the network, so the two are kept a little
// under the limit (at 192 + 4 one second reached 203 and 3 writes got a 429).
const (
	pspLimit = 200
	pspRate  = 186
	pspBurst = 4
)

// pspSettlement: the payouts of paid orders (two sellers each) by serve
// and two `app work` processes sharing one Stripe bucket, against a fake
// Stripe that refuses writes past pspLimit per second and answers in 20
// ms. The orders are paid with the stripe queue paused, so the step
// measures the payouts alone (as the ingest step measures the edge alone):
// the value is transfers completed per second from the queue's resume to
// the last completed transfer; the baseline is the limit.
func (b *bench) pspSettlement(ctx context.Context) error {
	n := b.size.pspOrders
	stop, err := b.threeProcesses(map[string]string{"STRIPE_RATE_LIMIT": strconv.Itoa(pspRate), "STRIPE_RATE_BURST": strconv.Itoa(pspBurst)})
	defer stop()
	if err != nil {
		return err
	}
	payments, err := b.seedOrders(ctx, n, 0)
	if err != nil {
		return err
	}
	ids := keys(payments)
	b.stripe.SetLatency(20 * time.Millisecond)
	defer b.stripe.SetLatency(0)
	defer b.stripe.SetRateLimit(0, nil)
	before := b.stripe.TransferCount()
	pending := b.count(ctx, `SELECT count(*) FROM seller_transfers WHERE status = 'pending'`)
	inserter, err := jobs.NewInserter(b.pool, jobs.ClientOpts{Logger: zerolog.Nop()})
	if err != nil {
		return err
	}
	if err := inserter.QueuePause(ctx, jobargs.QueueStripe, nil); err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // the workers see the pause
	_, _, failed := b.load(ctx, n, 0, 2*time.Minute, nil, func(i int) (string, int64) { return ids[i-1], 2499 })
	if err := b.waitFor(2*time.Minute, func() bool {
		return b.count(ctx, `SELECT count(*) FROM seller_transfers WHERE status = 'pending'`)-pending >= 2*n
	}); err != nil {
		return fmt.Errorf("the paid orders' transfers were not all created: %w", err)
	}
	b.stripe.SetRateLimit(pspLimit, func(key string) bool { return strings.HasPrefix(key, "POST ") })
	start := time.Now()
	if err := inserter.QueueResume(ctx, jobargs.QueueStripe, nil); err != nil {
		return err
	}
	if err := b.waitTransfers(ctx, ids, before, 5*time.Minute); err != nil {
		return fmt.Errorf("transfers did not all complete: %w", err)
	}
	rate := float64(2*n) / time.Since(start).Seconds()
	busiest, refused := b.stripe.RateCounts()
	say("stripe writes per second: %v", b.stripe.RateSeconds())
	b.add(Result{Name: "PSP-bound settlement at Stripe's limit", Value: rate, Unit: "transfers/s", Baseline: pspLimit,
		Target: fmt.Sprintf("ratio >= 0.9, no 429, no second > %d", pspLimit),
		Pass:   pass(rate >= 0.9*pspLimit && refused == 0 && busiest <= pspLimit),
		Note: fmt.Sprintf("%d transfers (%d orders), serve + 2 app work, bucket %d/s + %d; fake Stripe: busiest second %d writes, %d refused with 429; %d webhook failures",
			2*n, n, pspRate, pspBurst, busiest, refused, failed)})
	return b.drain(ctx)
}

// threeProcesses restarts serve with limits and starts two `app work`
// processes beside it; stop undoes both.
func (b *bench) threeProcesses(limits map[string]string) (stop func(), err error) {
	var works []*servicetest.Service
	stop = func() {
		for _, w := range works {
			_ = w.Stop(20 * time.Second)
		}
		_ = b.restartServe(nil)
	}
	if err := b.restartServe(limits); err != nil {
		return stop, err
	}
	for i := range 2 {
		w, err := b.startWork(fmt.Sprintf("work%d", i+1), limits)
		if err != nil {
			return stop, err
		}
		works = append(works, w)
	}
	return stop, nil
}

// Hyperswitch's limit in the reconcile step, and the bucket under it.
const (
	hsLimit = 100
	hsRate  = 96
	hsBurst = 3
)

// pspReconcile: a backlog of stuck orders read back by serve and two
// `app work` processes against a fake Hyperswitch that refuses calls past
// hsLimit per second (20 ms each). Reconcile row jobs are sweeps: they
// take only tokens free now; the whole backlog is due at once, as a sweep
// enqueues it. The value is reads per second from the backlog's insert
// (committed) to its last read; the baseline is the limit.
func (b *bench) pspReconcile(ctx context.Context) error {
	n := b.size.pspOrders * 2
	stop, err := b.threeProcesses(map[string]string{"HYPERSWITCH_RATE_LIMIT": strconv.Itoa(hsRate), "HYPERSWITCH_RATE_BURST": strconv.Itoa(hsBurst)})
	defer stop()
	if err != nil {
		return err
	}
	orderIDs, err := b.stuckOrders(ctx, n)
	if err != nil {
		return err
	}
	b.hs.SetLatency(20 * time.Millisecond)
	defer b.hs.SetLatency(0)
	b.hs.SetRateLimit(hsLimit, func(string) bool { return true })
	defer b.hs.SetRateLimit(0, nil)
	callsBefore := b.hs.Calls("GET /payments")
	enqueued := time.Now()
	if err := b.enqueueReconcile(ctx, orderIDs); err != nil {
		return err
	}
	start := time.Now()
	say("enqueueing %d reconcile jobs took %v", n, start.Sub(enqueued).Round(time.Millisecond))
	if err := b.waitFor(5*time.Minute, func() bool { return b.hs.Calls("GET /payments")-callsBefore >= n }); err != nil {
		return err
	}
	rate := float64(n) / time.Since(start).Seconds()
	busiest, refused := b.hs.RateCounts()
	say("hyperswitch calls per second: %v", b.hs.RateSeconds())
	var snoozes int
	_ = b.pool.QueryRow(ctx, `SELECT coalesce(sum((metadata->>'snoozes')::int), 0) FROM river_job WHERE kind = 'reconcile_order'`).Scan(&snoozes)
	b.add(Result{Name: "reconcile backlog at Hyperswitch's limit", Value: rate, Unit: "reads/s", Baseline: hsLimit,
		Target: fmt.Sprintf("ratio >= 0.9, no 429, no second > %d", hsLimit),
		Pass:   pass(rate >= 0.9*hsLimit && refused == 0 && busiest <= hsLimit),
		Note: fmt.Sprintf("%d stuck orders, serve + 2 app work, bucket %d/s + %d, sweep jobs (free tokens only); fake Hyperswitch: busiest second %d calls, %d refused with 429; %d snoozes (%.1f per job)",
			n, hsRate, hsBurst, busiest, refused, snoozes, float64(snoozes)/float64(n))})
	return b.drain(ctx)
}

// startWork starts an `app work` process with the bench's environment.
func (b *bench) startWork(name string, extra map[string]string) (*servicetest.Service, error) {
	bin, err := servicetest.Build()
	if err != nil {
		return nil, err
	}
	return servicetest.Start(servicetest.Opts{Bin: bin, Command: "work", Env: b.serviceEnv(extra), LogPath: filepath.Join(b.dir, name+".log")})
}

// brownout: webhook-to-order-completed latency while Stripe answers after
// 30 s (the Stripe client's timeout: every payout's outcome is unknown and
// holds a stripe worker that long), against the same load with Stripe at
// 20 ms, in the same serve. Order completion runs on the events queue and
// waits on no Stripe call.
func (b *bench) brownout(ctx context.Context) error {
	n := b.size.pspOrders / 2
	if err := b.restartServe(map[string]string{"SHUTDOWN_TIMEOUT": "2s"}); err != nil {
		return err
	}
	measure := func(latency time.Duration) (float64, error) {
		b.stripe.SetLatency(latency)
		payments, err := b.seedOrders(ctx, n, 0)
		if err != nil {
			return 0, err
		}
		ids := keys(payments)
		_, _, failed := b.load(ctx, n, 100, 2*time.Minute, nil, func(i int) (string, int64) { return ids[i-1], 2499 })
		if failed > 0 {
			return 0, fmt.Errorf("%d webhooks failed", failed)
		}
		if err := b.waitFor(2*time.Minute, func() bool {
			return b.count(ctx, `SELECT count(*) FROM orders WHERE payment_id = ANY($1) AND status = 'completed'`, ids) == n
		}); err != nil {
			return 0, fmt.Errorf("orders did not all complete: %w", err)
		}
		var p99 float64
		err = b.pool.QueryRow(ctx, `
			SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM o.completed_at - l.received_at))
			FROM orders o JOIN hyperswitch_webhook_log l ON l.payload::jsonb #>> '{content,object,payment_id}' = o.payment_id
			WHERE o.payment_id = ANY($1)`, ids).Scan(&p99)
		return p99 * 1000, err
	}
	calm, err := measure(20 * time.Millisecond)
	if err != nil {
		return err
	}
	if err := b.drain(ctx); err != nil {
		return err
	}
	slow, err := measure(30 * time.Second)
	if err != nil {
		return err
	}
	held := b.count(ctx, `SELECT count(*) FROM river_job WHERE kind = 'seller_payout' AND state = 'running'`)
	b.add(Result{Name: "brownout: webhook to order completed, p99", Value: slow, Unit: "ms", Baseline: calm,
		Target: "ratio <= 1.5", Pass: pass(slow <= 1.5*calm),
		Note: fmt.Sprintf("%d orders at 100 webhooks/s with Stripe answering after 30 s (%d payouts held meanwhile) against the same with Stripe at 20 ms", n, held)})
	// The brownout's payouts are not this step's measure: stop serve (it
	// gives them up after 2 s), forget them, start serve again.
	b.stripe.SetLatency(0)
	if err := b.serve.Stop(20 * time.Second); err != nil {
		return err
	}
	if _, err := b.pool.Exec(ctx, `DELETE FROM river_job WHERE kind = 'seller_payout' AND state <> 'completed'`); err != nil {
		return err
	}
	return b.launchServe(nil)
}
