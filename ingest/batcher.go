package ingest

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/settle"
	"github.com/veza/backend/store"
)

// Group commit of webhook deliveries. Webhook ingest is bound by round
// trips, not by work: four per delivery stored alone (BEGIN, log and event,
// job, COMMIT). Deliveries that arrive while earlier ones are being stored
// wait for the next transaction and share it, so a storm costs four round
// trips per batch instead of per delivery. Nothing waits on a timer: a
// delivery that finds a committer free is stored at once, so a quiet service
// answers as fast as without batching. Each delivery is acknowledged only
// after the transaction holding its log row, event id and job has committed.
const (
	// DefaultCommitters bounds the transactions storing deliveries at once.
	// Two, not one, so a transaction waiting on a lock (a redelivery racing
	// its original) does not stall every other delivery behind it; more
	// leave less to batch (docs/DEPLOYMENT.md has the measurements).
	DefaultCommitters = 2
	// maxBatch bounds a batch, so one transaction stays short.
	maxBatch = 128
)

// Delivery is one valid webhook delivery to store: its log row (ID, EventID
// and EventType set) and the object its job will act on.
type Delivery struct {
	Log    *store.WebhookLog
	Object hyperswitch.EventObject
	// Metadata is the job's River metadata: the request's trace context
	// (the batch's transaction runs in no request's context).
	Metadata []byte
}

type pending struct {
	Delivery
	done   chan error // buffered: the committer never blocks on a gone caller
	queued bool       // set before done: a job was enqueued (first delivery)
}

// Batcher stores deliveries in batches. It keeps no goroutine while idle: a
// committer starts when a delivery finds fewer than the maximum running and
// ends when the queue is empty, so there is nothing to stop.
type Batcher struct {
	db         *store.DB
	ins        settle.Inserter
	timeout    time.Duration
	committers int

	mu      sync.Mutex
	queue   []*pending
	running int
}

// NewBatcher returns a batcher storing on db with at most committers
// transactions at once (0: DefaultCommitters), each bounded by timeout.
func NewBatcher(db *store.DB, ins settle.Inserter, timeout time.Duration, committers int) *Batcher {
	if committers <= 0 {
		committers = DefaultCommitters
	}
	return &Batcher{db: db, ins: ins, timeout: timeout, committers: committers}
}

// Store queues d and waits until it is committed or failed, or ctx ends.
// When ctx ends first the delivery may still be committed: the sender then
// gets an error, redelivers, and the redelivery is logged as skipped.
// queued reports whether the event was new and its job enqueued (false: a
// redelivery, logged as skipped).
func (b *Batcher) Store(ctx context.Context, d Delivery) (queued bool, err error) {
	p := &pending{Delivery: d, done: make(chan error, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, p)
	if b.running < b.committers {
		b.running++
		go b.run()
	}
	b.mu.Unlock()
	select {
	case err := <-p.done:
		return err == nil && p.queued, err
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// run stores batches until the queue is empty.
func (b *Batcher) run() {
	for {
		b.mu.Lock()
		n := min(len(b.queue), maxBatch)
		if n == 0 {
			b.queue = nil // let a storm's backing array go
			b.running--
			b.mu.Unlock()
			return
		}
		batch := b.queue[:n:n]
		b.queue = b.queue[n:]
		b.mu.Unlock()

		err := b.storeBatch(batch)
		if err != nil && len(batch) > 1 {
			// One delivery the database refuses must not fail the others,
			// nor may a deadlock between two batches: store them one by one.
			for _, p := range batch {
				p.done <- b.storeBatch([]*pending{p})
			}
			continue
		}
		for _, p := range batch {
			p.done <- err
		}
	}
}

// storeBatch writes the batch's log rows and event ids and enqueues a job
// for each event not seen before, in one transaction.
func (b *Batcher) storeBatch(batch []*pending) error {
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	logs := make([]*store.WebhookLog, len(batch))
	for i, p := range batch {
		logs[i] = p.Log
	}
	return b.db.InTx(ctx, func(tx pgx.Tx) error {
		first, err := store.InsertDeliveries(ctx, tx, logs)
		if err != nil {
			return err
		}
		params := make([]river.InsertManyParams, 0, len(batch))
		for i, p := range batch {
			p.queued = first[i] // read by Store only after done, and rewritten by a retry alone
			if first[i] {
				var opts *river.InsertOpts
				if p.Metadata != nil {
					opts = &river.InsertOpts{Metadata: p.Metadata}
				}
				params = append(params, river.InsertManyParams{Args: jobargs.ProcessEventArgs{
					EventID: *p.Log.EventID, EventType: *p.Log.EventType, LogID: &p.Log.ID, LogReceivedAt: &p.Log.ReceivedAt, Object: p.Object,
				}, InsertOpts: opts})
			}
		}
		if len(params) == 0 {
			return nil // redeliveries only: logged, not redone
		}
		_, err = b.ins.InsertManyTx(ctx, tx, params)
		return err
	})
}
