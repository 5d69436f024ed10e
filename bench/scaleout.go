package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/veza/backend/internal/servicetest"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/jobs"
)

// scaleOut: the settlement pipeline's jobs (events, order completion,
// payouts, receipts) worked by 1, 2 and 4 `app work` processes with the
// shipped settings, beside a serve that keeps one worker per queue (serve
// always runs River; here it is the HTTP edge). The orders are paid with
// the events queue paused, so each run measures the workers alone: orders/s
// from the queue's resume to the last transfer completed, Stripe at 20 ms.
// The ratios are to one process, in the same run: on this machine's two
// cores they say how many processes per database core are worth running.
func (b *bench) scaleOut(ctx context.Context) error {
	n := b.size.pspOrders
	one := map[string]string{}
	for _, q := range []string{jobargs.QueueDefault, jobargs.QueueEvents, jobargs.QueueStripe, jobargs.QueueHyperswitch, jobargs.QueueEmail, jobargs.QueueMaintenance} {
		one["RIVER_WORKERS_"+strings.ToUpper(q)] = "1"
	}
	if err := b.restartServe(one); err != nil {
		return err
	}
	defer func() { _ = b.restartServe(nil) }()
	b.stripe.SetLatency(20 * time.Millisecond)
	defer b.stripe.SetLatency(0)

	var base float64
	for _, k := range []int{1, 2, 4} {
		var works []*servicetest.Service
		stop := func() {
			for _, w := range works {
				_ = w.Stop(20 * time.Second)
			}
		}
		for i := range k {
			w, err := b.startWork(fmt.Sprintf("scale%d-work%d", k, i+1), nil)
			if err != nil {
				stop()
				return err
			}
			works = append(works, w)
		}
		rate, conns, err := b.workOnce(ctx, n)
		stop()
		if err != nil {
			return err
		}
		say("scale-out: %d app work: %.1f orders/s, %d connections", k, rate, conns)
		r := Result{Name: fmt.Sprintf("scale-out: %d app work process(es)", k), Value: rate, Unit: "orders/s",
			Note: fmt.Sprintf("%d orders (2 transfers each) worked from a paused queue; %d connections to the database at the end (serve + workers)", n, conns)}
		if k == 1 {
			base = rate
		} else {
			r.Baseline = base
			r.Note += "; ratio to 1 process"
		}
		b.add(r)
	}
	return nil
}

// workOnce pays n orders with the events queue paused, resumes it and
// returns orders/s until their transfers are all completed, and the
// database connections then open.
func (b *bench) workOnce(ctx context.Context, n int) (float64, int, error) {
	payments, err := b.seedOrders(ctx, n, 0)
	if err != nil {
		return 0, 0, err
	}
	ids := keys(payments)
	inserter, err := jobs.NewInserter(b.pool, jobs.ClientOpts{Logger: zerolog.Nop()})
	if err != nil {
		return 0, 0, err
	}
	if err := inserter.QueuePause(ctx, jobargs.QueueEvents, nil); err != nil {
		return 0, 0, err
	}
	time.Sleep(2 * time.Second) // the workers see the pause
	before := b.stripe.TransferCount()
	_, _, failed := b.load(ctx, n, 0, 2*time.Minute, nil, func(i int) (string, int64) { return ids[i-1], 2499 })
	if failed > 0 {
		return 0, 0, fmt.Errorf("%d webhooks failed", failed)
	}
	start := time.Now()
	if err := inserter.QueueResume(ctx, jobargs.QueueEvents, nil); err != nil {
		return 0, 0, err
	}
	if err := b.waitTransfers(ctx, ids, before, 5*time.Minute); err != nil {
		return 0, 0, fmt.Errorf("transfers did not all complete: %w", err)
	}
	rate := float64(n) / time.Since(start).Seconds()
	conns := b.count(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()`)
	return rate, conns, b.drain(ctx)
}
