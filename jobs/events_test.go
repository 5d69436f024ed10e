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

	"github.com/veza/backend"
	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/internal/logtest"
	"github.com/veza/backend/jobs"
	"github.com/veza/backend/store"
	"github.com/veza/backend/store/dbtest"
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
		buyer, err := store.CreateUser(ctx, tx, "buyer@example.test", "h", store.RoleUser)
		if err != nil {
			return err
		}
		var tracks []store.Track
		for i, price := range []int64{1000, 499} {
			seller, err := store.CreateUser(ctx, tx, uuid.NewString()+"@example.test", "h", store.RoleSeller)
			if err != nil {
				return err
			}
			tr, err := store.CreateTrack(ctx, tx, store.CreateTrackParams{OwnerID: seller.ID, Title: []string{"A", "B"}[i], PriceCents: price, Currency: "EUR"})
			if err != nil {
				return err
			}
			tracks = append(tracks, *tr)
		}
		order, err = store.CreateOrder(ctx, tx, buyer.ID, tracks)
		return err
	}))

	done, cancel := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled)
	t.Cleanup(cancel)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { _ = client.Stop(context.Background()) })
	return &eventBundle{db: db, client: client, done: done, order: order, logs: logs}
}

// apply enqueues one event with a log row, waits for its job to finish and
// returns the log row's result.
func (b *eventBundle) apply(t *testing.T, eventType string, obj hyperswitch.EventObject) string {
	t.Helper()
	ctx := context.Background()
	logID, err := store.InsertWebhookLog(ctx, b.db.Primary(), &store.WebhookLog{RequestID: "r", SignatureValid: true, Payload: "{}", ProcessingResult: store.ResultQueued})
	require.NoError(t, err)
	res, err := b.client.Insert(ctx, jobs.ProcessEventArgs{EventID: uuid.NewString(), EventType: eventType, LogID: &logID, Object: obj}, nil)
	require.NoError(t, err)
	for {
		select {
		case ev := <-b.done:
			if ev.Job.ID != res.Job.ID {
				continue
			}
			require.Equal(t, river.EventKindJobCompleted, ev.Kind, "event job must complete: %s", b.logs.String())
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

func TestPaymentSucceededCompletesOnce(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	require.Equal(t, store.ResultOK, b.apply(t, "payment_succeeded", b.paid()))
	require.Equal(t, veza.OrderCompleted, b.status(t))
	require.Equal(t, 1, b.jobs(t, "email"), "receipt enqueued with the completion")
	o, err := store.GetOrder(context.Background(), b.db.Primary(), b.order.ID)
	require.NoError(t, err)
	require.Equal(t, "succeeded", *o.PaymentStatus, "recorded with the transition")
	require.Len(t, b.order.Items, 2)
	require.ElementsMatch(t, b.order.Items, o.Items, "items read back in the same query")

	// A success for another amount on a completed order is a replay's
	// business, not a mismatch: skipped, the order untouched.
	other := b.paid()
	other.Amount++
	require.Equal(t, store.ResultSkipped, b.apply(t, "payment_succeeded", other))

	// Replays and late contrary events change nothing.
	require.Equal(t, store.ResultSkipped, b.apply(t, "payment_succeeded", b.paid()))
	failed := b.paid()
	failed.Status = "failed"
	require.Equal(t, store.ResultSkipped, b.apply(t, "payment_failed", failed))
	require.Equal(t, store.ResultSkipped, b.apply(t, "payment_cancelled", failed))
	require.Equal(t, veza.OrderCompleted, b.status(t))
	require.Equal(t, 1, b.jobs(t, "email"))
}

func TestPaymentFailedAndCancelled(t *testing.T) {
	t.Parallel()
	for eventType, want := range map[string]veza.OrderStatus{"payment_failed": veza.OrderFailed, "payment_cancelled": veza.OrderCancelled} {
		t.Run(eventType, func(t *testing.T) {
			t.Parallel()
			b := setupEvents(t)
			obj := b.paid()
			obj.Status = "failed"
			require.Equal(t, store.ResultOK, b.apply(t, eventType, obj))
			require.Equal(t, want, b.status(t))
			// Terminal: a late success does not resurrect it.
			require.Equal(t, store.ResultSkipped, b.apply(t, "payment_succeeded", b.paid()))
			require.Equal(t, want, b.status(t))
			require.Zero(t, b.jobs(t, "email"))
		})
	}
}

func TestPaymentEventsThatChangeNothing(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)

	processing := b.paid()
	processing.Status = "processing"
	require.Equal(t, store.ResultSkipped, b.apply(t, "payment_processing", processing))
	o, err := store.GetOrder(context.Background(), b.db.Primary(), b.order.ID)
	require.NoError(t, err)
	require.Equal(t, "processing", *o.PaymentStatus, "the PSP status is recorded")

	unknown := b.paid()
	unknown.PaymentID = "pay_not_ours"
	require.Equal(t, store.ResultSkipped, b.apply(t, "payment_succeeded", unknown))

	require.Equal(t, store.ResultSkipped, b.apply(t, "mandate_revoked", b.paid()))

	short := b.paid()
	short.Amount--
	result := b.apply(t, "payment_succeeded", short)
	require.Contains(t, result, "error: amount mismatch")
	wrongCurrency := b.paid()
	wrongCurrency.Currency = "USD"
	require.Contains(t, b.apply(t, "payment_succeeded", wrongCurrency), "error: amount mismatch")
	require.Equal(t, veza.OrderPending, b.status(t), "never completed on a short payment")

	require.Equal(t, store.ResultOK, b.apply(t, "dispute_opened", hyperswitch.EventObject{PaymentID: b.order.PaymentID, DisputeID: "dp_1"}))
	require.Contains(t, b.logs.String(), "dispute event received")
	require.Equal(t, veza.OrderPending, b.status(t))
}
