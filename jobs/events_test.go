package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	veza "github.com/veza/backend"
	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/internal/logtest"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/jobs"
	"github.com/veza/backend/store"
	"github.com/veza/backend/store/dbtest"
	"github.com/veza/backend/store/storetest"
)

type eventBundle struct {
	db     *store.DB
	client *jobs.Client
	done   <-chan *river.Event
	order  *store.Order
	logs   *logtest.Buffer
}

// setupEvents runs the service's real workers on a fresh database with one
// pending order (two sellers) to act on.
func setupEvents(t *testing.T) *eventBundle {
	t.Helper()
	ctx := context.Background()
	pool := dbtest.Pool(t)
	db := store.New(pool, nil)
	logs := &logtest.Buffer{}
	client := serviceClient(t, jobs.Deps{DB: db, Logger: zerolog.New(logs)})

	var order *store.Order
	require.NoError(t, db.InTx(ctx, func(tx pgx.Tx) error {
		order = storetest.PendingOrder(t, tx, 1000, 499).Order
		return nil
	}))

	done, cancel := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled)
	t.Cleanup(cancel)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { _ = client.Stop(context.Background()) })
	return &eventBundle{db: db, client: client, done: done, order: order, logs: logs}
}

// apply enqueues one event with a log row, waits for its job to complete
// and returns the log row's result.
func (b *eventBundle) apply(t *testing.T, eventType string, obj hyperswitch.EventObject) string {
	t.Helper()
	return b.run(t, eventType, obj, river.EventKindJobCompleted)
}

// applyFailing is apply for an event whose first attempt fails.
func (b *eventBundle) applyFailing(t *testing.T, eventType string, obj hyperswitch.EventObject) string {
	t.Helper()
	return b.run(t, eventType, obj, river.EventKindJobFailed)
}

func (b *eventBundle) run(t *testing.T, eventType string, obj hyperswitch.EventObject, want river.EventKind) string {
	t.Helper()
	ctx := context.Background()
	logID, err := store.InsertWebhookLog(ctx, b.db.Primary(), &store.WebhookLog{RequestID: "r", SignatureValid: true, Payload: "{}", ProcessingResult: store.ResultQueued})
	require.NoError(t, err)
	res, err := b.client.Insert(ctx, jobargs.ProcessEventArgs{EventID: uuid.NewString(), EventType: eventType, LogID: &logID, Object: obj}, nil)
	require.NoError(t, err)
	for {
		select {
		case ev := <-b.done:
			if ev.Job.ID != res.Job.ID {
				continue
			}
			require.Equal(t, want, ev.Kind, "event job's outcome: %s", b.logs.String())
			var result string
			require.NoError(t, b.db.Primary().QueryRow(ctx, `SELECT processing_result FROM hyperswitch_webhook_log WHERE id = $1`, logID).Scan(&result))
			return result
		case <-time.After(15 * time.Second):
			t.Fatal("event job did not finish")
		}
	}
}

func (b *eventBundle) status(t *testing.T) veza.OrderStatus {
	t.Helper()
	o, err := store.GetOrder(context.Background(), b.db.Primary(), b.order.ID)
	require.NoError(t, err)
	return o.Status
}

func (b *eventBundle) paid() hyperswitch.EventObject {
	return hyperswitch.EventObject{PaymentID: b.order.PaymentID, Status: "succeeded", Amount: b.order.Amount, Currency: "EUR"}
}

func (b *eventBundle) jobs(t *testing.T, kind string) int {
	t.Helper()
	var n int
	require.NoError(t, b.db.Primary().QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = $1`, kind).Scan(&n))
	return n
}

// The decisions are settle's (settle/orders_test.go); the worker applies
// them in one transaction with the log row's result.
func TestProcessEventRecordsItsResult(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	require.Equal(t, store.ResultOK, b.apply(t, "payment_succeeded", b.paid()))
	require.Equal(t, veza.OrderCompleted, b.status(t))
	require.Equal(t, 1, b.jobs(t, "email"), "receipt enqueued with the completion")
	require.Equal(t, 2, b.jobs(t, "seller_payout"), "one payout per seller, through the worker's inserter")
	require.Equal(t, store.ResultSkipped, b.apply(t, "payment_succeeded", b.paid()), "a replay")
	require.Equal(t, 2, b.jobs(t, "seller_payout"))
}

func TestProcessEventFailureIsOnTheLogRow(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	_, err := b.db.Primary().Exec(context.Background(), `
		CREATE FUNCTION refuse_order_update() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'orders are read-only in this test'; END $$;
		CREATE TRIGGER refuse_order_update BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION refuse_order_update()`)
	require.NoError(t, err)
	result := b.applyFailing(t, "payment_succeeded", b.paid())
	require.Contains(t, result, "error: ")
	require.Contains(t, result, "orders are read-only in this test")
	require.Equal(t, veza.OrderPending, b.status(t), "rolled back: River retries it")
}
