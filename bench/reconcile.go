package main

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/jobs"
)

// reconcile: a backlog of stuck orders, each read at a Hyperswitch
// answering in 20 ms, drained by the maintenance queue.
func (b *bench) reconcile(ctx context.Context) error {
	n := b.size.backlog
	orderIDs, err := b.stuckOrders(ctx, n)
	if err != nil {
		return err
	}
	b.hs.SetLatency(20 * time.Millisecond)
	defer b.hs.SetLatency(0)
	callsBefore := b.hs.Calls("GET /payments")
	start := time.Now()
	if err := b.enqueueReconcile(ctx, orderIDs); err != nil {
		return err
	}
	if err := b.waitFor(8*time.Minute, func() bool { return b.hs.Calls("GET /payments")-callsBefore >= n }); err != nil {
		return err
	}
	if err := b.drain(ctx); err != nil {
		return err
	}
	took := time.Since(start)
	workers := shippedConfig().River.Workers[jobargs.QueueHyperswitch]
	ideal := time.Duration(n) * 20 * time.Millisecond / time.Duration(workers)
	inflight := b.hs.MaxInFlight()
	b.add(Result{Name: "reconcile backlog drain time", Value: took.Seconds(), Unit: "s", Baseline: ideal.Seconds(),
		Target: fmt.Sprintf("ratio <= 2, PSP calls in flight <= %d", workers), Pass: pass(took.Seconds()/ideal.Seconds() <= 2 && inflight <= int64(workers)),
		Note: fmt.Sprintf("%d stuck orders, Hyperswitch 20 ms, %d hyperswitch workers; max PSP calls in flight %d", n, workers, inflight)})
	return nil
}

// stuckOrders seeds n orders pending for an hour whose payments
// Hyperswitch knows as still processing: a reconcile backlog.
func (b *bench) stuckOrders(ctx context.Context, n int) ([]uuid.UUID, error) {
	payments, err := b.seedOrders(ctx, n, time.Hour)
	if err != nil {
		return nil, err
	}
	for id := range payments {
		b.hs.PutPayment(hyperswitch.Payment{PaymentID: id, Status: "processing", Amount: 2499, Currency: "EUR"})
	}
	rows, err := b.pool.Query(ctx, `SELECT id FROM orders WHERE payment_id = ANY($1)`, keys(payments))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
}

// enqueueReconcile inserts one reconcile row job per order, as the sweep
// does, in batches of 1,000.
func (b *bench) enqueueReconcile(ctx context.Context, orderIDs []uuid.UUID) error {
	client, err := jobs.NewInserter(b.pool, jobs.ClientOpts{Logger: zerolog.Nop()})
	if err != nil {
		return err
	}
	for i := 0; i < len(orderIDs); i += 1000 {
		end := min(i+1000, len(orderIDs))
		params := make([]river.InsertManyParams, 0, end-i)
		for _, id := range orderIDs[i:end] {
			params = append(params, river.InsertManyParams{Args: jobargs.ReconcileOrderArgs{OrderID: id}})
		}
		if _, err := client.InsertMany(ctx, params); err != nil {
			return err
		}
	}
	return nil
}

func keys(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
