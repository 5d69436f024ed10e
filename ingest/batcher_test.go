package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/store"
	"github.com/veza/backend/store/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

type batcherBundle struct {
	b    *Batcher
	pool *pgxpool.Pool
}

func setupBatcher(t *testing.T) *batcherBundle {
	t.Helper()
	pool := dbtest.Pool(t)
	inserter, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	require.NoError(t, err)
	return &batcherBundle{b: NewBatcher(store.New(pool, nil), inserter, 10*time.Second, 1), pool: pool}
}

func newDelivery(t *testing.T, eventID string) *pending {
	t.Helper()
	id, err := uuid.NewV7()
	require.NoError(t, err)
	eventType := "payment_succeeded"
	return &pending{
		Delivery: Delivery{Log: &store.WebhookLog{ID: id, RequestID: "req-" + eventID, SignatureValid: true, EventID: &eventID, EventType: &eventType, Payload: "{}"}},
		done:     make(chan error, 1),
	}
}

// runQueued stores ds as a committer would find them queued behind a
// busy transaction, and returns each one's outcome.
func (b *batcherBundle) runQueued(ds ...*pending) []error {
	b.b.queue, b.b.running = ds, 1
	b.b.run()
	errs := make([]error, len(ds))
	for i, d := range ds {
		errs[i] = <-d.done
	}
	return errs
}

func (b *batcherBundle) count(t *testing.T, sql string) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), sql).Scan(&n))
	return n
}

func TestBatcherStoresQueuedDeliveriesInOneTransaction(t *testing.T) {
	t.Parallel()
	b := setupBatcher(t)
	var ds []*pending
	for _, id := range []string{"evt_1", "evt_2", "evt_3", "evt_4", "evt_5"} {
		ds = append(ds, newDelivery(t, id))
	}
	require.Equal(t, []error{nil, nil, nil, nil, nil}, b.runQueued(ds...))
	require.Equal(t, 5, b.count(t, `SELECT count(*) FROM hyperswitch_webhook_log WHERE processing_result = 'queued'`))
	require.Equal(t, 1, b.count(t, `SELECT count(DISTINCT xmin::text) FROM hyperswitch_webhook_log`), "one transaction")
	require.Equal(t, 5, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'hyperswitch_event'`))
	require.Equal(t, 5, b.count(t, `SELECT count(*) FROM river_job j JOIN hyperswitch_webhook_log l
		ON l.id = (j.args->>'log_id')::uuid AND l.event_id = j.args->>'event_id'`), "each job names its own log row")
	require.Equal(t, 0, b.b.running)
	require.Nil(t, b.b.queue)
}

func TestBatcherSkipsRedeliveriesInAndAcrossBatches(t *testing.T) {
	t.Parallel()
	b := setupBatcher(t)
	require.Equal(t, []error{nil}, b.runQueued(newDelivery(t, "evt_old")))

	errs := b.runQueued(newDelivery(t, "evt_new"), newDelivery(t, "evt_old"), newDelivery(t, "evt_new"))
	require.Equal(t, []error{nil, nil, nil}, errs)
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM hyperswitch_webhook_log WHERE processing_result = 'queued'`))

	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM hyperswitch_webhook_log WHERE processing_result = 'skipped' AND processed_at IS NOT NULL`))
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'hyperswitch_event'`), "one job per event")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE args->>'event_id' = 'evt_new'
		AND args->>'log_id' = (SELECT id::text FROM hyperswitch_webhook_log WHERE event_id = 'evt_new' AND processing_result = 'queued')`),
		"the job names the first delivery's row")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job j JOIN hyperswitch_webhook_log l
		ON l.id::text = j.args->>'log_id' AND l.received_at = (j.args->>'log_received_at')::timestamptz
		WHERE j.args->>'event_id' = 'evt_new'`), "and its partition, by the row's received_at")

	// Store tells its caller which (the webhook metric's queued/skipped),
	// and carries the caller's job metadata (its trace).
	queued, err := b.b.Store(context.Background(), Delivery{Log: newDelivery(t, "evt_third").Log, Metadata: []byte(`{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}`)})
	require.NoError(t, err)
	require.True(t, queued)
	queued, err = b.b.Store(context.Background(), newDelivery(t, "evt_third").Delivery)
	require.NoError(t, err)
	require.False(t, queued, "a redelivery")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE args->>'event_id' = 'evt_third'
		AND metadata->>'traceparent' = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'`))
}

func TestBatcherOneRefusedDeliveryDoesNotFailTheBatch(t *testing.T) {
	t.Parallel()
	b := setupBatcher(t)
	bad := newDelivery(t, "evt_bad")
	bad.Log.Payload = "nul \x00 is refused by TEXT"
	noID := newDelivery(t, "evt_no_id")
	noID.Log.ID = uuid.Nil // a caller's bug: refused before any SQL
	errs := b.runQueued(newDelivery(t, "evt_a"), bad, newDelivery(t, "evt_b"), noID)
	require.NoError(t, errs[0])
	require.Error(t, errs[1])
	require.NoError(t, errs[2])
	require.ErrorContains(t, errs[3], "id, event id and event type are required")
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM hyperswitch_webhook_log`))
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM hyperswitch_events WHERE event_id IN ('evt_bad', 'evt_no_id')`), "nothing half-written")
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'hyperswitch_event'`))
}

func TestBatcherCallerGivingUpStillStores(t *testing.T) {
	t.Parallel()
	b := setupBatcher(t)
	b.b.running = b.b.committers // every committer busy: the delivery waits in the queue
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	d := newDelivery(t, "evt_late")
	queuedNow, err := b.b.Store(ctx, d.Delivery)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.False(t, queuedNow)
	require.Len(t, b.b.queue, 1)
	queued := b.b.queue[0]
	b.b.run()
	require.NoError(t, <-queued.done)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'hyperswitch_event'`),
		"stored anyway: the sender's redelivery will be logged as skipped")
}
