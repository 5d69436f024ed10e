package jobs_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	veza "github.com/veza/backend"
	"github.com/veza/backend/config"
	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/hyperswitch/hyperswitchtest"
	faults "github.com/veza/backend/internal/fake"
	"github.com/veza/backend/internal/logtest"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/jobs"
	"github.com/veza/backend/store"
	"github.com/veza/backend/store/dbtest"
)

type recBundle struct {
	db     *store.DB
	hs     *hyperswitchtest.Server
	client *jobs.Client
	buyer  uuid.UUID
	logs   *logtest.Buffer
}

// setupReconcile runs the service's workers against a fake Hyperswitch with
// the default thresholds (orders and refunds stuck after 30m, orphans after
// 5m) and batchLimit rows per class.
func setupReconcile(t *testing.T, batchLimit int) *recBundle {
	t.Helper()
	ctx := context.Background()
	pool := dbtest.Pool(t)
	db := store.New(pool, nil)
	hs := hyperswitchtest.Start(t)
	cfg, _ := config.Load(func(k string) string {
		return map[string]string{"HYPERSWITCH_ENABLED": "true", "HYPERSWITCH_API_KEY": hyperswitchtest.APIKey}[k]
	})
	cfg.Reconcile.BatchLimit = batchLimit
	logs := &logtest.Buffer{}
	client := serviceClient(t, jobs.Deps{Config: cfg, DB: db, Hyperswitch: hs.Client(), Logger: zerolog.New(logs)})
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { _ = client.Stop(context.Background()) })
	var buyer uuid.UUID
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO users (email, password_hash) VALUES ('b@example.test', 'h') RETURNING id`).Scan(&buyer))
	return &recBundle{db: db, hs: hs, client: client, buyer: buyer, logs: logs}
}

// order inserts an order (no items) in status, created age ago, with its
// payment at the fake Hyperswitch in pspStatus ("" for none).
func (b *recBundle) order(t *testing.T, status veza.OrderStatus, age time.Duration, pspStatus string) uuid.UUID {
	t.Helper()
	id := uuid.New()
	paymentID := store.PaymentIDFor(id)
	_, err := b.db.Primary().Exec(context.Background(), `INSERT INTO orders (id, buyer_id, status, amount, currency, payment_id, created_at)
		VALUES ($1, $2, $3, 1000, 'EUR', $4, now() - make_interval(secs => $5))`, id, b.buyer, string(status), paymentID, age.Seconds())
	require.NoError(t, err)
	if pspStatus != "" {
		b.hs.PutPayment(hyperswitch.Payment{PaymentID: paymentID, Status: pspStatus, Amount: 1000, Currency: "EUR"})
	}
	return id
}

// refund inserts a pending refund of a refund_pending order, created age
// ago; with pspStatus != "" it reached Hyperswitch in that status.
func (b *recBundle) refund(t *testing.T, age time.Duration, pspStatus string, errMsg *string) (refundID, orderID uuid.UUID) {
	t.Helper()
	orderID = b.order(t, veza.OrderRefundPending, time.Hour, "succeeded")
	refundID = uuid.New()
	var pspID *string
	if pspStatus != "" {
		id := store.RefundIDFor(refundID)
		pspID = &id
		b.hs.PutRefund(hyperswitch.Refund{RefundID: id, PaymentID: store.PaymentIDFor(orderID), Amount: 1000, Currency: "EUR", Status: pspStatus, ErrorMessage: errMsg})
	}
	_, err := b.db.Primary().Exec(context.Background(), `INSERT INTO refunds (id, order_id, amount, currency, hyperswitch_refund_id, created_at)
		VALUES ($1, $2, 1000, 'EUR', $3, now() - make_interval(secs => $4))`, refundID, orderID, pspID, age.Seconds())
	require.NoError(t, err)
	return refundID, orderID
}

// settle waits until no job is left to run.
func (b *recBundle) settle(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, b.db.Primary().QueryRow(context.Background(),
			`SELECT count(*) FROM river_job WHERE state IN ('available', 'running', 'retryable', 'scheduled', 'pending')`).Scan(&n))
		return n == 0
	}, 60*time.Second, 20*time.Millisecond)
}

func (b *recBundle) sweep(t *testing.T) {
	t.Helper()
	_, err := jobs.EnqueueReconcile(context.Background(), b.client, b.db, jobs.ReconcileRequest{})
	require.NoError(t, err)
	b.settle(t)
}

func (b *recBundle) orderStatus(t *testing.T, id uuid.UUID) veza.OrderStatus {
	t.Helper()
	o, err := store.GetOrder(context.Background(), b.db.Primary(), id)
	require.NoError(t, err)
	return o.Status
}

func (b *recBundle) refundRow(t *testing.T, id uuid.UUID) *store.Refund {
	t.Helper()
	r, err := store.GetRefund(context.Background(), b.db.Primary(), id)
	require.NoError(t, err)
	return r
}

func TestReconcileOrders(t *testing.T) {
	t.Parallel()
	b := setupReconcile(t, 50)
	stuck := b.order(t, veza.OrderPending, time.Hour, "succeeded")
	stuckFailed := b.order(t, veza.OrderPending, time.Hour, "failed")
	stillPaying := b.order(t, veza.OrderPending, time.Hour, "processing")
	recent := b.order(t, veza.OrderPending, time.Minute, "succeeded")
	completed := b.order(t, veza.OrderCompleted, time.Hour, "succeeded")
	noPayment := b.order(t, veza.OrderPending, time.Hour, "")
	_, err := b.db.Primary().Exec(context.Background(), `UPDATE orders SET payment_id = NULL WHERE id = $1`, noPayment)
	require.NoError(t, err)

	b.sweep(t)
	require.Equal(t, veza.OrderCompleted, b.orderStatus(t, stuck), "synced through a synthetic payment_succeeded")
	require.Equal(t, veza.OrderFailed, b.orderStatus(t, stuckFailed))
	require.Equal(t, veza.OrderPending, b.orderStatus(t, stillPaying))
	require.Equal(t, veza.OrderPending, b.orderStatus(t, recent), "recent: untouched")
	require.Equal(t, veza.OrderCompleted, b.orderStatus(t, completed))
	require.Equal(t, veza.OrderPending, b.orderStatus(t, noPayment), "no payment id: untouched")
	require.Equal(t, 3, b.hs.Calls("GET /payments"), "only the three stuck orders were read")

	var eventID string
	require.NoError(t, b.db.Primary().QueryRow(context.Background(),
		`SELECT args->>'event_id' FROM river_job WHERE kind = 'hyperswitch_event' AND args->>'event_type' = 'payment_succeeded'`).Scan(&eventID))
	require.Equal(t, "reconcile:"+store.PaymentIDFor(stuck)+":succeeded", eventID)

	logs := b.logs.String()
	require.Contains(t, logs, `"component":"reconcile","order_id":"`+stuck.String())
	require.Contains(t, logs, `"status_synced":"succeeded"`)
	require.Contains(t, logs, `"stuck_for":`)

	// A late real webhook for the same payment is a no-op (the terminal
	// guard), and so is another sweep.
	b.sweep(t)
	require.Equal(t, veza.OrderCompleted, b.orderStatus(t, stuck))
	var receipts int
	require.NoError(t, b.db.Primary().QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = 'email'`).Scan(&receipts))
	require.Equal(t, 1, receipts)
}

// A stuck payment that only a person can move (Hyperswitch and the
// connector disagree, or the merchant must act) is an ERROR an operator
// sees, and a status this code does not know is a WARN: neither is left
// at INFO as "still not final". The order stays pending either way.
func TestStuckPaymentNeedingAPersonIsAnError(t *testing.T) {
	t.Parallel()
	b := setupReconcile(t, 50)
	levels := map[string]string{"conflicted": "error", "requires_merchant_action": "error", "teleported": "warn", "processing": "info"}
	ids := map[string]uuid.UUID{}
	for status := range levels {
		ids[status] = b.order(t, veza.OrderPending, time.Hour, status)
	}
	b.sweep(t)
	for status, level := range levels {
		id := ids[status]
		require.Equal(t, veza.OrderPending, b.orderStatus(t, id), status)
		var line string
		for _, l := range strings.Split(b.logs.String(), "\n") {
			if strings.Contains(l, `"order_id":"`+id.String()+`"`) && strings.Contains(l, `"psp_status":"`+status+`"`) {
				line = l
			}
		}
		require.NotEmpty(t, line, "a reconcile line for %s", status)
		require.Contains(t, line, `"level":"`+level+`"`, status)
	}
}

// Hyperswitch never heard the connector's outcome (the buyer did not come
// back from 3-D Secure, the connector's webhook to it was lost): its cached
// status is not final. The sweep reads with force_sync, which asks the
// connector: the charged buyer's order completes, and a refund's outcome
// is found the same way.
func TestReconcileAsksTheConnector(t *testing.T) {
	t.Parallel()
	b := setupReconcile(t, 50)
	order := b.order(t, veza.OrderPending, time.Hour, "requires_customer_action")
	b.hs.SetConnectorPaymentStatus(store.PaymentIDFor(order), "succeeded")
	refund, refundOrder := b.refund(t, time.Hour, "pending", nil)
	b.hs.SetConnectorRefundStatus(store.RefundIDFor(refund), "succeeded")

	b.sweep(t)
	require.Equal(t, veza.OrderCompleted, b.orderStatus(t, order), "the connector took the money")
	require.Equal(t, veza.RefundSucceeded, b.refundRow(t, refund).Status)
	require.Equal(t, veza.OrderRefunded, b.orderStatus(t, refundOrder))
}

// Hyperswitch lets a failed payment be retried on the same payment_id.
// When the retry's success never arrives (its deliveries failed for a
// day), the sweep finds it: a failed order is read again, at most every
// FailedOrderRecheck, while it is younger than FailedOrderWindow (the
// window its buyer keeps streaming in). Only the money taken moves it:
// its whole price completes it, any other amount taken is the webhook's
// "payment the order does not account for" and is refunded, once.
func TestReconcileFindsAFailedPaymentRetriedToSuccess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupReconcile(t, 50)
	retried := b.order(t, veza.OrderFailed, time.Hour, "succeeded")
	stillFailed := b.order(t, veza.OrderFailed, time.Hour, "failed")
	expired := b.order(t, veza.OrderFailed, time.Hour, "expired")
	old := b.order(t, veza.OrderFailed, 40*24*time.Hour, "succeeded")
	_, err := b.db.Primary().Exec(ctx, `UPDATE orders SET updated_at = created_at WHERE id = $1`, old)
	require.NoError(t, err)
	// Failed for a part capture (its automatic refund handled the part):
	// the part is not news, and it is not refunded again.
	part := b.order(t, veza.OrderFailed, time.Hour, "succeeded")
	b.hs.Capture(store.PaymentIDFor(part), 600)
	_, err = b.db.Primary().Exec(ctx, `INSERT INTO refunds (order_id, amount, currency, reason, automatic, status) VALUES ($1, 600, 'EUR', 'automatic', true, 'succeeded')`, part)
	require.NoError(t, err)
	// Failed, then a manual retry at Hyperswitch took another amount: the
	// buyer's 900 is held for nothing, and nobody but the sweep knows.
	other := b.order(t, veza.OrderFailed, time.Hour, "")
	received := int64(900)
	b.hs.PutPayment(hyperswitch.Payment{PaymentID: store.PaymentIDFor(other), Status: "succeeded", Amount: 900, AmountReceived: &received, Currency: "EUR"})
	// The same, but its automatic refund failed at the provider: that
	// failure's ERROR asked an operator to pay the buyer by hand, and a
	// second automatic refund could pay them twice.
	refundFailed := b.order(t, veza.OrderFailed, time.Hour, "")
	b.hs.PutPayment(hyperswitch.Payment{PaymentID: store.PaymentIDFor(refundFailed), Status: "succeeded", Amount: 900, AmountReceived: &received, Currency: "EUR"})
	_, err = b.db.Primary().Exec(ctx, `INSERT INTO refunds (order_id, amount, currency, reason, automatic, status) VALUES ($1, 900, 'EUR', 'automatic', true, 'failed')`, refundFailed)
	require.NoError(t, err)
	// Its create was refused: Hyperswitch never knew the payment.
	unknown := b.order(t, veza.OrderFailed, time.Hour, "")

	b.sweep(t)
	require.Equal(t, veza.OrderCompleted, b.orderStatus(t, retried), "the retry took the money")
	require.Equal(t, veza.OrderFailed, b.orderStatus(t, stillFailed))
	require.Equal(t, veza.OrderFailed, b.orderStatus(t, expired), "only the money taken moves a failed order")
	require.Equal(t, veza.OrderFailed, b.orderStatus(t, old), "past the window: not read")
	require.Equal(t, 7, b.hs.Calls("GET /payments"))
	fed := func(id uuid.UUID) (n int) {
		require.NoError(t, b.db.Primary().QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'hyperswitch_event' AND args->'object'->>'payment_id' = $1`,
			store.PaymentIDFor(id)).Scan(&n))
		return n
	}
	for _, id := range []uuid.UUID{stillFailed, expired, unknown, part, refundFailed} {
		require.Equal(t, veza.OrderFailed, b.orderStatus(t, id))
		require.Zero(t, fed(id), "only money taken that no automatic refund dealt with is fed for a failed order")
	}
	for _, id := range []uuid.UUID{other} {
		require.Equal(t, veza.OrderFailed, b.orderStatus(t, id), "not its price: it stays failed")
		require.Equal(t, 1, fed(id), "money taken is fed, as its webhook would have been")
	}
	refunds := b.hs.Refunds()
	require.Len(t, refunds, 1, "only the amount nobody refunded yet is refunded: %+v", refunds)
	require.Equal(t, store.PaymentIDFor(other), refunds[0].PaymentID)
	require.Equal(t, int64(900), refunds[0].Amount)
	require.Contains(t, b.logs.String(), "payment the order does not account for", "the money held is logged at ERROR")
	require.NotContains(t, b.logs.String(), "could not read the payment", "a payment Hyperswitch never knew is no read failure")

	b.sweep(t)
	require.Equal(t, 7, b.hs.Calls("GET /payments"), "read again only after FailedOrderRecheck")
	_, err = b.db.Primary().Exec(ctx, `UPDATE orders SET reconciled_at = now() - make_interval(secs => $2) WHERE id = $1`,
		stillFailed, (jobs.FailedOrderRecheck + time.Minute).Seconds())
	require.NoError(t, err)
	b.sweep(t)
	require.Equal(t, 8, b.hs.Calls("GET /payments"))
}

// The automatic refund a failed order's other amount starts meets
// Hyperswitch's unpleasant answers: made, then its answer lost (a 502, an
// HTML page from a proxy). It is asked again under the same refund_id,
// never failed, and the buyer is refunded once; the next recheck feeds
// nothing new.
func TestFedRefundOfAnotherAmountSurvivesALostAnswer(t *testing.T) {
	t.Parallel()
	for _, loss := range []faults.Loss{faults.Lost502, faults.LostHTML200} {
		b := setupReconcile(t, 50)
		ctx := context.Background()
		id := b.order(t, veza.OrderFailed, time.Hour, "")
		received := int64(900)
		b.hs.PutPayment(hyperswitch.Payment{PaymentID: store.PaymentIDFor(id), Status: "succeeded", Amount: 900, AmountReceived: &received, Currency: "EUR"})
		b.hs.LoseNext("POST /refunds", 1, loss)
		b.sweep(t)
		require.GreaterOrEqual(t, b.hs.Calls("POST /refunds"), 2, "the lost answer was asked again")
		require.Len(t, b.hs.Refunds(), 1, "made once at Hyperswitch")
		require.EqualValues(t, 900, b.hs.Refunds()[0].Amount)
		refunds, err := store.OrderRefunds(ctx, b.db.Primary(), id)
		require.NoError(t, err)
		require.Len(t, refunds, 1)
		require.True(t, refunds[0].Automatic)
		require.NotEqual(t, veza.RefundFailed, refunds[0].Status, "a lost answer is not a refusal")
		require.NotNil(t, refunds[0].HyperswitchRefundID)

		_, err = b.db.Primary().Exec(ctx, `UPDATE orders SET reconciled_at = now() - make_interval(secs => $2) WHERE id = $1`,
			id, (jobs.FailedOrderRecheck + time.Minute).Seconds())
		require.NoError(t, err)
		b.sweep(t)
		require.Len(t, b.hs.Refunds(), 1, "the next recheck refunds nothing more")
		refunds, err = store.OrderRefunds(ctx, b.db.Primary(), id)
		require.NoError(t, err)
		require.Len(t, refunds, 1)
	}
}

func TestReconcileReadErrorLeavesTheRow(t *testing.T) {
	t.Parallel()
	b := setupReconcile(t, 50)
	id := b.order(t, veza.OrderPending, time.Hour, "succeeded")
	b.hs.FailNext(1, 503)
	b.sweep(t)
	require.Equal(t, veza.OrderPending, b.orderStatus(t, id))
	require.Contains(t, b.logs.String(), "could not read the payment")
	b.sweep(t)
	require.Equal(t, veza.OrderCompleted, b.orderStatus(t, id), "the next run syncs it")
}

func TestReconcileRefunds(t *testing.T) {
	t.Parallel()
	b := setupReconcile(t, 50)
	orphan, orphanOrder := b.refund(t, 10*time.Minute, "", nil)
	recentOrphan, recentOrder := b.refund(t, time.Minute, "", nil)
	stuck, stuckOrder := b.refund(t, time.Hour, "succeeded", nil)
	declined := "card issuer declined the refund"
	failed, failedOrder := b.refund(t, time.Hour, "failed", &declined)
	pending, _ := b.refund(t, time.Hour, "pending", nil)

	b.sweep(t)
	r := b.refundRow(t, orphan)
	require.Equal(t, veza.RefundFailed, r.Status, "orphan auto-fails")
	require.Contains(t, *r.ErrorMessage, "orphan")
	require.Equal(t, veza.OrderCompleted, b.orderStatus(t, orphanOrder), "and its order rolls back")
	require.Contains(t, b.logs.String(), `"level":"error","component":"reconcile","refund_id":"`+orphan.String())

	require.Equal(t, veza.RefundPending, b.refundRow(t, recentOrphan).Status, "a recent orphan is untouched")
	require.Equal(t, veza.OrderRefundPending, b.orderStatus(t, recentOrder))

	require.Equal(t, veza.RefundSucceeded, b.refundRow(t, stuck).Status)
	require.Equal(t, veza.OrderRefunded, b.orderStatus(t, stuckOrder))

	r = b.refundRow(t, failed)
	require.Equal(t, veza.RefundFailed, r.Status)
	require.Equal(t, declined, *r.ErrorMessage, "the PSP's message is forwarded")
	require.Equal(t, veza.OrderCompleted, b.orderStatus(t, failedOrder))

	require.Equal(t, veza.RefundPending, b.refundRow(t, pending).Status)
}

// A refund still pending at Hyperswitch a day after it was requested (a
// connector timeout leaves it so for good) is an ERROR on every read: only
// ops looking at the connector can settle it. Younger ones stay at Info.
func TestRefundPendingForADayIsAnError(t *testing.T) {
	t.Parallel()
	b := setupReconcile(t, 50)
	old, _ := b.refund(t, jobs.RefundPendingTooLong+time.Hour, "pending", nil)
	young, _ := b.refund(t, time.Hour, "pending", nil)
	b.sweep(t)
	require.Equal(t, veza.RefundPending, b.refundRow(t, old).Status)
	logs := b.logs.String()
	require.Contains(t, logs, `"level":"error","component":"reconcile","refund_id":"`+old.String())
	require.Contains(t, logs, "check it at the connector")
	require.NotContains(t, logs, `"level":"error","component":"reconcile","refund_id":"`+young.String())
}

func TestOrphanWithLiveSubmitJobIsLeftAlone(t *testing.T) {
	t.Parallel()
	b := setupReconcile(t, 50)
	id, _ := b.refund(t, 10*time.Minute, "", nil)
	// A submit job waiting out a PSP outage (scheduled in the future).
	_, err := b.client.Insert(context.Background(), jobargs.SubmitRefundArgs{RefundID: id}, &riverInsertLater)
	require.NoError(t, err)
	_, err = jobs.EnqueueReconcile(context.Background(), b.client, b.db, jobs.ReconcileRequest{RefundID: &id})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return countJobs(t, b.db, "reconcile_refund", "completed") == 1 }, 20*time.Second, 20*time.Millisecond)
	require.Equal(t, veza.RefundPending, b.refundRow(t, id).Status)
}

func TestReconcileTerminalStatesAreNoOps(t *testing.T) {
	t.Parallel()
	b := setupReconcile(t, 50)
	ctx := context.Background()
	var orders []uuid.UUID
	for _, st := range []veza.OrderStatus{veza.OrderCompleted, veza.OrderCancelled, veza.OrderRefunded} {
		orders = append(orders, b.order(t, st, time.Hour, "succeeded"))
	}
	var refunds []uuid.UUID
	for _, st := range []veza.RefundStatus{veza.RefundSucceeded, veza.RefundFailed} {
		id, _ := b.refund(t, time.Hour, "succeeded", nil)
		_, err := b.db.Primary().Exec(ctx, `UPDATE refunds SET status = $2 WHERE id = $1`, id, string(st))
		require.NoError(t, err)
		refunds = append(refunds, id)
	}
	for i := range orders {
		_, err := jobs.EnqueueReconcile(ctx, b.client, b.db, jobs.ReconcileRequest{OrderID: &orders[i]})
		require.NoError(t, err)
	}
	for i := range refunds {
		_, err := jobs.EnqueueReconcile(ctx, b.client, b.db, jobs.ReconcileRequest{RefundID: &refunds[i]})
		require.NoError(t, err)
	}
	b.settle(t)
	for i, st := range []veza.OrderStatus{veza.OrderCompleted, veza.OrderCancelled, veza.OrderRefunded} {
		require.Equal(t, st, b.orderStatus(t, orders[i]))
	}
	require.Equal(t, veza.RefundSucceeded, b.refundRow(t, refunds[0]).Status)
	require.Equal(t, veza.RefundFailed, b.refundRow(t, refunds[1]).Status)
	require.Zero(t, b.hs.Calls("GET /payments")+b.hs.Calls("GET /refunds"), "terminal rows never reach the PSP")
	require.Zero(t, countJobs(t, b.db, "hyperswitch_event", ""))
}

// TestReconcileBacklogDrains: 2,000 stuck orders, 50 per sweep: repeated
// sweeps reconcile every one exactly once.
func TestReconcileBacklogDrains(t *testing.T) {
	t.Parallel()
	b := setupReconcile(t, 50)
	ctx := context.Background()
	_, err := b.db.Primary().Exec(ctx, `INSERT INTO orders (id, buyer_id, amount, currency, payment_id, created_at)
		SELECT id, $1, 1000, 'EUR', 'veza_ord_' || id, now() - interval '1 hour' FROM (SELECT gen_random_uuid() AS id FROM generate_series(1, 2000)) g`, b.buyer)
	require.NoError(t, err)
	rows, err := b.db.Primary().Query(ctx, `SELECT payment_id FROM orders`)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	for _, id := range ids {
		b.hs.PutPayment(hyperswitch.Payment{PaymentID: id, Status: "succeeded", Amount: 1000, Currency: "EUR"})
	}

	sweeps := 0
	for ; sweeps < 60; sweeps++ {
		var pending int
		require.NoError(t, b.db.Primary().QueryRow(ctx, `SELECT count(*) FROM orders WHERE status = 'pending'`).Scan(&pending))
		if pending == 0 {
			break
		}
		b.sweep(t)
	}
	require.Equal(t, 40, sweeps, "2,000 rows at 50 per sweep")
	require.Equal(t, 2000, countJobs(t, b.db, "reconcile_order", ""), "each row reconciled once: never again after it became terminal")
	require.Equal(t, 2000, countJobs(t, b.db, "hyperswitch_event", ""))
	require.Equal(t, 2000, countJobs(t, b.db, "email", ""), "one receipt per order")
	require.Equal(t, 2000, b.hs.Calls("GET /payments"))
}

func countJobs(t *testing.T, db *store.DB, kind, state string) int {
	t.Helper()
	var n int
	require.NoError(t, db.Primary().QueryRow(context.Background(),
		`SELECT count(*) FROM river_job WHERE kind = $1 AND ($2 = '' OR state = $2::river_job_state)`, kind, state).Scan(&n))
	return n
}

// dispute inserts a disputed order with an open dispute opened age ago,
// whose dispute the fake Hyperswitch knows in pspStatus.
func (b *recBundle) dispute(t *testing.T, age time.Duration, pspStatus string) (disputeID, orderID uuid.UUID) {
	t.Helper()
	orderID = b.order(t, veza.OrderDisputed, 30*24*time.Hour, "succeeded")
	d := b.hs.OpenDispute(store.PaymentIDFor(orderID), 0)
	if pspStatus != "dispute_opened" {
		b.hs.SetDisputeStatus(d.DisputeID, pspStatus)
	}
	require.NoError(t, b.db.Primary().QueryRow(context.Background(), `INSERT INTO disputes (dispute_id, order_id, amount, currency, status, opened_at)
		VALUES ($1, $2, 1000, 'EUR', 'opened', now() - make_interval(secs => $3)) RETURNING id`, d.DisputeID, orderID, age.Seconds()).Scan(&disputeID))
	return disputeID, orderID
}

func (b *recBundle) disputeStatus(t *testing.T, id uuid.UUID) veza.DisputeStatus {
	t.Helper()
	d, err := store.GetDispute(context.Background(), b.db.Primary(), id)
	require.NoError(t, err)
	return d.Status
}

func TestReconcileDisputes(t *testing.T) {
	t.Parallel()
	b := setupReconcile(t, 50)
	lost, lostOrder := b.dispute(t, 8*24*time.Hour, "dispute_lost")
	won, wonOrder := b.dispute(t, 8*24*time.Hour, "dispute_won")
	open, openOrder := b.dispute(t, 8*24*time.Hour, "dispute_opened")
	recent, recentOrder := b.dispute(t, 24*time.Hour, "dispute_lost")

	b.hs.FailNext(1, 503) // the first read fails: that row waits for the next sweep
	b.sweep(t)
	require.Equal(t, 3, b.hs.Calls("GET /disputes"), "only the three old open disputes were read")
	require.Contains(t, b.logs.String(), "could not read the dispute")
	var stillOpen int
	require.NoError(t, b.db.Primary().QueryRow(context.Background(), `SELECT count(*) FROM disputes
		WHERE status IN ('opened', 'challenged') AND opened_at < now() - interval '7 days'`).Scan(&stillOpen))
	require.Contains(t, []int{1, 2}, stillOpen, "the still-open one, and the one whose read failed unless it is that one")
	b.sweep(t)
	require.Equal(t, 3+stillOpen, b.hs.Calls("GET /disputes"), "those still open are read again; the synced ones are closed")

	require.Equal(t, veza.DisputeLost, b.disputeStatus(t, lost))
	require.Equal(t, veza.OrderChargedBack, b.orderStatus(t, lostOrder), "a lost outcome whose webhook never came still charges back")
	require.Equal(t, veza.DisputeWon, b.disputeStatus(t, won))
	require.Equal(t, veza.OrderCompleted, b.orderStatus(t, wonOrder))
	require.Equal(t, veza.DisputeOpened, b.disputeStatus(t, open))
	require.Equal(t, veza.OrderDisputed, b.orderStatus(t, openOrder))
	require.Equal(t, veza.DisputeOpened, b.disputeStatus(t, recent), "younger than RECONCILE_DISPUTE_STUCK_AFTER: not read")
	require.Equal(t, veza.OrderDisputed, b.orderStatus(t, recentOrder))

	var eventID string
	require.NoError(t, b.db.Primary().QueryRow(context.Background(),
		`SELECT args->>'event_id' FROM river_job WHERE kind = 'hyperswitch_event' AND args->>'event_type' = 'dispute_lost'`).Scan(&eventID))
	d, err := store.GetDispute(context.Background(), b.db.Primary(), lost)
	require.NoError(t, err)
	require.Equal(t, "reconcile:"+d.DisputeID+":dispute:dispute_lost", eventID)
	require.Contains(t, b.logs.String(), `"status_synced":"dispute_lost"`)
}

// An answer to the dispute read that cannot be decoded (a proxy's HTML
// page) is not an outcome: the dispute stays open, read again next sweep.
func TestReconcileDisputeUndecodableAnswer(t *testing.T) {
	t.Parallel()
	b := setupReconcile(t, 50)
	id, order := b.dispute(t, 8*24*time.Hour, "dispute_lost")
	b.hs.LoseNext("GET /disputes", 1, faults.LostHTML200)
	b.sweep(t)
	require.Equal(t, veza.DisputeOpened, b.disputeStatus(t, id))
	require.Equal(t, veza.OrderDisputed, b.orderStatus(t, order))
	b.sweep(t)
	require.Equal(t, veza.DisputeLost, b.disputeStatus(t, id), "the next read settles it")
	require.Equal(t, veza.OrderChargedBack, b.orderStatus(t, order))
}

// TestPacedOrphanReadWaitsForTheProvidersWord: Hyperswitch refuses an
// orphan refund's read with 429. A refusal is not the provider saying it
// has no such refund: the job snoozes (no attempt used) and reads again,
// and only the second read's "not found" fails the refund.
func TestPacedOrphanReadWaitsForTheProvidersWord(t *testing.T) {
	t.Parallel()
	b := setupReconcile(t, 50)
	orphan, order := b.refund(t, 10*time.Minute, "", nil)
	b.hs.FailNext(1, 429)
	b.sweep(t)
	require.Equal(t, 2, b.hs.Calls("GET /refunds"), "refused once, then read")
	require.Equal(t, veza.RefundFailed, b.refundRow(t, orphan).Status, "on the provider's word")
	require.Equal(t, veza.OrderCompleted, b.orderStatus(t, order))
	var attempt, snoozes int
	require.NoError(t, b.db.Primary().QueryRow(context.Background(),
		`SELECT attempt, (metadata->>'snoozes')::int FROM river_job WHERE kind = 'reconcile_refund'`).Scan(&attempt, &snoozes))
	require.Equal(t, 1, attempt, "pacing uses no attempt")
	require.Equal(t, 1, snoozes)
}

// A pending order whose payment Hyperswitch never received (its create
// failed before reaching it: our bucket, a network error, a bad key) is
// failed on Hyperswitch's word (HE_02) once it is stuck, instead of being
// read on every sweep for ever. A payment made later under its id (the
// client resuming with its key) still completes it: a failed order's
// success with its price does. A younger one (a reconcile asked for by
// hand) is left alone: its create may still be on its way.
func TestPendingOrderHyperswitchNeverKnewIsFailed(t *testing.T) {
	t.Parallel()
	b := setupReconcile(t, 50)
	stuck := b.order(t, veza.OrderPending, time.Hour, "")
	young := b.order(t, veza.OrderPending, time.Minute, "")
	b.sweep(t)
	require.Equal(t, veza.OrderFailed, b.orderStatus(t, stuck))
	require.Contains(t, b.logs.String(), "Hyperswitch has no payment for this order")

	_, err := jobs.EnqueueReconcile(context.Background(), b.client, b.db, jobs.ReconcileRequest{OrderID: &young})
	require.NoError(t, err)
	b.settle(t)
	require.Equal(t, veza.OrderPending, b.orderStatus(t, young), "its create may be on its way")
}

// HE_02 is also Hyperswitch's answer when the merchant connector account
// is missing (an operator deleted and re-created the Stripe connector):
// every force_sync read answers it. Reconcile took it as "no such
// payment" and failed a stuck order the buyer had paid, and as "no such
// refund" and failed an orphan refund the connector had made (the buyer
// could then ask, and be refunded, again). Both now wait for a read that
// names the object.
func TestMissingConnectorAccountIsNotAMissingPayment(t *testing.T) {
	t.Parallel()
	b := setupReconcile(t, 50)
	paid := b.order(t, veza.OrderPending, time.Hour, "processing")
	b.hs.SetConnectorPaymentStatus(store.PaymentIDFor(paid), "succeeded")
	orphan, orphanOrder := b.refund(t, 10*time.Minute, "", nil)
	b.hs.RemoveConnectorAccount()

	b.sweep(t)
	require.Equal(t, veza.OrderPending, b.orderStatus(t, paid), "not failed: Hyperswitch said nothing about the payment")
	require.Equal(t, veza.RefundPending, b.refundRow(t, orphan).Status, "not failed: Hyperswitch said nothing about the refund")
	require.Equal(t, veza.OrderRefundPending, b.orderStatus(t, orphanOrder))

	b.hs.RestoreConnectorAccount()
	b.sweep(t)
	require.Equal(t, veza.OrderCompleted, b.orderStatus(t, paid), "the next read with the account back completes it")
}
