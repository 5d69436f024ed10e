package http

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/jobs"
	"github.com/veza/backend/store"
)

// Group commit of webhook deliveries. Profiling `make bench` showed webhook
// ingest bound by round trips, not by work: four per delivery (BEGIN, log
// and event, job, COMMIT), each a write and a wake-up on both sides of the
// socket. Deliveries that arrive while earlier ones are being stored wait
// for the next transaction and share it, so a storm costs four round trips
// per batch instead of per delivery. Nothing waits on a timer: a delivery
// that finds a committer free is stored at once, so a quiet service answers
// as fast as before. Each delivery still gets its 200 only after the
// transaction holding its log row, event id and job has committed.
const (
	// DefaultWebhookCommitters bounds the transactions storing deliveries
	// at once. Measured with `go run ./bench -only ingest` on 2 cores (ratio
	// to pgbench at full speed, p99 at half that rate): 1 committer 1.00 and
	// 17.6 ms, 2: 0.93 to 1.20 and 15 to 19 ms, 4: 0.78 to 0.87 and 13 to
	// 27 ms, 8: 0.65, 16: 0.47 (no batching left, as before). Two, not one,
	// so a transaction waiting on a lock (a redelivery racing its original)
	// does not stall every other delivery behind it.
	DefaultWebhookCommitters = 2
	// maxDeliveryBatch bounds a batch, so one transaction stays short.
	maxDeliveryBatch = 128
)

// delivery is one valid webhook delivery waiting to be stored: its log row
// (ID, EventID and EventType set) and the object its job will act on.
type delivery struct {
	log    *store.WebhookLog
	object hyperswitch.EventObject
	done   chan error // buffered: the committer never blocks on a gone handler
}

// deliveryCommitter stores deliveries in batches. It keeps no goroutine
// while idle: a committer goroutine starts when a delivery finds fewer than
// max running and ends when the queue is empty, so there is nothing to stop.
type deliveryCommitter struct {
	db      *store.DB
	river   *jobs.Client
	timeout time.Duration
	max     int

	mu      sync.Mutex
	queue   []*delivery
	running int
}

// store queues d and waits until it is committed or failed, or ctx ends.
// When ctx ends first the delivery may still be committed: the sender then
// gets an error, redelivers, and the redelivery is logged as skipped.
func (c *deliveryCommitter) store(ctx context.Context, d *delivery) error {
	d.done = make(chan error, 1)
	c.mu.Lock()
	c.queue = append(c.queue, d)
	if c.running < c.max {
		c.running++
		go c.run()
	}
	c.mu.Unlock()
	select {
	case err := <-d.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run stores batches until the queue is empty.
func (c *deliveryCommitter) run() {
	for {
		c.mu.Lock()
		n := min(len(c.queue), maxDeliveryBatch)
		if n == 0 {
			c.queue = nil // let a storm's backing array go
			c.running--
			c.mu.Unlock()
			return
		}
		batch := c.queue[:n:n]
		c.queue = c.queue[n:]
		c.mu.Unlock()

		err := c.storeBatch(batch)
		if err != nil && len(batch) > 1 {
			// One delivery the database refuses must not fail the others,
			// nor may a deadlock between two batches: store them one by one.
			for _, d := range batch {
				d.done <- c.storeBatch([]*delivery{d})
			}
			continue
		}
		for _, d := range batch {
			d.done <- err
		}
	}
}

// storeBatch writes the batch's log rows and event ids and enqueues a job
// for each event not seen before, in one transaction.
func (c *deliveryCommitter) storeBatch(batch []*delivery) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	logs := make([]*store.WebhookLog, len(batch))
	for i, d := range batch {
		logs[i] = d.log
	}
	return c.db.InTx(ctx, func(tx pgx.Tx) error {
		first, err := store.InsertDeliveries(ctx, tx, logs)
		if err != nil {
			return err
		}
		params := make([]river.InsertManyParams, 0, len(batch))
		for i, d := range batch {
			if first[i] {
				params = append(params, river.InsertManyParams{Args: jobs.ProcessEventArgs{
					EventID: *d.log.EventID, EventType: *d.log.EventType, LogID: &d.log.ID, Object: d.object,
				}})
			}
		}
		if len(params) == 0 {
			return nil // redeliveries only: logged, not redone
		}
		_, err = c.river.InsertManyTx(ctx, tx, params)
		return err
	})
}
