package http

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/jobs"
	"github.com/veza/backend/store"
	"github.com/veza/backend/store/dbtest"
)

type committerBundle struct {
	c    *deliveryCommitter
	pool *pgxpool.Pool
}

func setupCommitter(t *testing.T) *committerBundle {
	t.Helper()
	pool := dbtest.Pool(t)
	client, err := jobs.NewClient(pool, jobs.ClientOpts{Logger: zerolog.Nop()})
	require.NoError(t, err)
	return &committerBundle{c: &deliveryCommitter{db: store.New(pool, nil), river: client, timeout: 10 * time.Second, max: 1}, pool: pool}
}

func newDelivery(t *testing.T, eventID string) *delivery {
	t.Helper()
	id, err := uuid.NewV7()
	require.NoError(t, err)
	eventType := "payment_succeeded"
	return &delivery{
		log:  &store.WebhookLog{ID: id, RequestID: "req-" + eventID, SignatureValid: true, EventID: &eventID, EventType: &eventType, Payload: "{}"},
		done: make(chan error, 1),
	}
}

// runQueued stores ds as the committer would find them queued behind a
// busy transaction, and returns each one's outcome.
func (b *committerBundle) runQueued(ds ...*delivery) []error {
	b.c.queue, b.c.running = ds, 1
	b.c.run()
	errs := make([]error, len(ds))
	for i, d := range ds {
		errs[i] = <-d.done
	}
	return errs
}

func (b *committerBundle) count(t *testing.T, sql string) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), sql).Scan(&n))
	return n
}

func TestCommitterStoresQueuedDeliveriesInOneTransaction(t *testing.T) {
	t.Parallel()
	b := setupCommitter(t)
	var ds []*delivery
	for _, id := range []string{"evt_1", "evt_2", "evt_3", "evt_4", "evt_5"} {
		ds = append(ds, newDelivery(t, id))
	}
	require.Equal(t, []error{nil, nil, nil, nil, nil}, b.runQueued(ds...))
	require.Equal(t, 5, b.count(t, `SELECT count(*) FROM hyperswitch_webhook_log WHERE processing_result = 'queued'`))
	require.Equal(t, 1, b.count(t, `SELECT count(DISTINCT xmin::text) FROM hyperswitch_webhook_log`), "one transaction")
	require.Equal(t, 5, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'hyperswitch_event'`))
	require.Equal(t, 5, b.count(t, `SELECT count(*) FROM river_job j JOIN hyperswitch_webhook_log l
		ON l.id = (j.args->>'log_id')::uuid AND l.event_id = j.args->>'event_id'`), "each job names its own log row")
	require.Equal(t, 0, b.c.running)
	require.Nil(t, b.c.queue)
}

func TestCommitterSkipsRedeliveriesInAndAcrossBatches(t *testing.T) {
	t.Parallel()
	b := setupCommitter(t)
	require.Equal(t, []error{nil}, b.runQueued(newDelivery(t, "evt_old")))

	errs := b.runQueued(newDelivery(t, "evt_new"), newDelivery(t, "evt_old"), newDelivery(t, "evt_new"))
	require.Equal(t, []error{nil, nil, nil}, errs)
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM hyperswitch_webhook_log WHERE processing_result = 'queued'`))
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM hyperswitch_webhook_log WHERE processing_result = 'skipped' AND processed_at IS NOT NULL`))
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'hyperswitch_event'`), "one job per event")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE args->>'event_id' = 'evt_new'
		AND args->>'log_id' = (SELECT id::text FROM hyperswitch_webhook_log WHERE event_id = 'evt_new' AND processing_result = 'queued')`),
		"the job names the first delivery's row")
}

func TestCommitterOneRefusedDeliveryDoesNotFailTheBatch(t *testing.T) {
	t.Parallel()
	b := setupCommitter(t)
	bad := newDelivery(t, "evt_bad")
	bad.log.Payload = "nul \x00 is refused by TEXT"
	noID := newDelivery(t, "evt_no_id")
	noID.log.ID = uuid.Nil // a caller's bug: refused before any SQL
	errs := b.runQueued(newDelivery(t, "evt_a"), bad, newDelivery(t, "evt_b"), noID)
	require.NoError(t, errs[0])
	require.Error(t, errs[1])
	require.NoError(t, errs[2])
	require.ErrorContains(t, errs[3], "id, event id and event type are required")
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM hyperswitch_webhook_log`))
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM hyperswitch_events WHERE event_id IN ('evt_bad', 'evt_no_id')`), "nothing half-written")
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'hyperswitch_event'`))
}

func TestCommitterCallerGivingUpStillStores(t *testing.T) {
	t.Parallel()
	b := setupCommitter(t)
	b.c.running = b.c.max // every committer busy: the delivery waits in the queue
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	d := newDelivery(t, "evt_late")
	require.ErrorIs(t, b.c.store(ctx, d), context.DeadlineExceeded)
	b.c.run()
	require.NoError(t, <-d.done)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'hyperswitch_event'`),
		"stored anyway: the sender's redelivery will be logged as skipped")
}
