package settle_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/internal/logtest"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/settle"
	"github.com/veza/backend/store"
	"github.com/veza/backend/store/dbtest"
	"github.com/veza/backend/store/storetest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// The budgets the tests' settler gives payout and reversal jobs: distinct,
// so an assertion can tell which budget a job got.
const (
	payoutAttempts   = 7
	reversalAttempts = 9
)

type testBundle struct {
	ctx    context.Context
	db     *store.DB
	tx     pgx.Tx // rolled back when the test ends
	ins    settle.Inserter
	settle *settle.Settler
	logs   *logtest.Buffer
}

// setup opens a transaction on a fresh database, rolled back at the end:
// each test sees only its own rows and jobs.
func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx := context.Background()
	pool := dbtest.Pool(t)
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	ins, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	require.NoError(t, err)
	logs := &logtest.Buffer{}
	s := &settle.Settler{FeeBPS: storetest.FeeBPS, Logger: zerolog.New(logs), Jobs: jobargs.Policy{
		Payout:   jobargs.Retry{MaxAttempts: payoutAttempts, Base: time.Second, Max: time.Minute},
		Reversal: jobargs.Retry{MaxAttempts: reversalAttempts, Base: time.Second, Max: time.Minute},
	}}
	return &testBundle{ctx: ctx, db: store.New(pool, nil), tx: tx, ins: ins, settle: s, logs: logs}
}

// apply applies an event in the test's transaction and returns the log
// row's result.
func (b *testBundle) apply(t *testing.T, ev jobargs.ProcessEventArgs) string {
	t.Helper()
	result, err := b.settle.ApplyEvent(b.ctx, b.tx, b.ins, ev)
	require.NoError(t, err)
	return result
}

func (b *testBundle) order(t *testing.T, id uuid.UUID) *store.Order {
	t.Helper()
	o, err := store.GetOrder(b.ctx, b.tx, id)
	require.NoError(t, err)
	return o
}

func (b *testBundle) transfer(t *testing.T, id uuid.UUID) *store.Transfer {
	t.Helper()
	tr, err := store.GetTransfer(b.ctx, b.tx, id)
	require.NoError(t, err)
	return tr
}

// payoutStep is what a payout job would decide for transfer id now.
func (b *testBundle) payoutStep(t *testing.T, id uuid.UUID) settle.PayoutStep {
	t.Helper()
	view, err := store.GetPayoutView(b.ctx, b.tx, id)
	require.NoError(t, err)
	step, _ := settle.NextPayoutStep(view, true)
	return step
}

func (b *testBundle) transfers(t *testing.T, orderID uuid.UUID) []store.Transfer {
	t.Helper()
	ts, err := store.OrderTransfersForUpdate(b.ctx, b.tx, orderID)
	require.NoError(t, err)
	return ts
}

// onlyRefund is the order's one refund.
func (b *testBundle) onlyRefund(t *testing.T, orderID uuid.UUID) store.Refund {
	t.Helper()
	refunds, err := store.OrderRefunds(b.ctx, b.tx, orderID)
	require.NoError(t, err)
	require.Len(t, refunds, 1)
	return refunds[0]
}

func (b *testBundle) refund(t *testing.T, id uuid.UUID) *store.Refund {
	t.Helper()
	r, err := store.GetRefund(b.ctx, b.tx, id)
	require.NoError(t, err)
	return r
}

// requireJobs asserts the jobs inserted in the test's transaction, in order.
func (b *testBundle) requireJobs(t *testing.T, expected ...rivertest.ExpectedJob) []*rivertype.JobRow {
	t.Helper()
	return rivertest.RequireManyInsertedTx[*riverpgxv5.Driver](b.ctx, t, b.tx, expected)
}

// requireNoJobs asserts that nothing was enqueued in the test's transaction.
func (b *testBundle) requireNoJobs(t *testing.T) {
	t.Helper()
	var n int
	require.NoError(t, b.tx.QueryRow(b.ctx, `SELECT count(*) FROM river_job`).Scan(&n))
	require.Zero(t, n, "no job enqueued")
}

func payoutJob() rivertest.ExpectedJob {
	return rivertest.ExpectedJob{Args: &jobargs.PayoutArgs{}, Opts: &rivertest.RequireInsertedOpts{Queue: jobargs.QueueStripe, MaxAttempts: payoutAttempts}}
}

func reversalJob() rivertest.ExpectedJob {
	return rivertest.ExpectedJob{Args: &jobargs.ReversalArgs{}, Opts: &rivertest.RequireInsertedOpts{Queue: jobargs.QueueStripe, MaxAttempts: reversalAttempts}}
}

func rivertestJob(args river.JobArgs, queue string) rivertest.ExpectedJob {
	return rivertest.ExpectedJob{Args: args, Opts: &rivertest.RequireInsertedOpts{Queue: queue}}
}

func emailJob() rivertest.ExpectedJob {
	return rivertest.ExpectedJob{Args: &jobargs.EmailArgs{}, Opts: &rivertest.RequireInsertedOpts{Queue: jobargs.QueueEmail}}
}

// args decodes a job row's args.
func args[T any](t *testing.T, row *rivertype.JobRow) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(row.EncodedArgs, &v))
	return v
}

func paid(o *storetest.Order) jobargs.ProcessEventArgs {
	return event("payment_succeeded", o.Order, "succeeded")
}

// refundEvent is a Hyperswitch event about our refund of o.
func refundEvent(eventType string, o *store.Order, refund *store.Refund, status string) jobargs.ProcessEventArgs {
	ev := event(eventType, o, status)
	ev.Object.RefundID = store.RefundIDFor(refund.ID)
	return ev
}

// event is a Hyperswitch event about o's payment (its amount), with status.
func event(eventType string, o *store.Order, status string) jobargs.ProcessEventArgs {
	ev := jobargs.ProcessEventArgs{EventID: "evt_" + uuid.NewString(), EventType: eventType}
	ev.Object.PaymentID, ev.Object.Status, ev.Object.Amount, ev.Object.Currency = o.PaymentID, status, o.Amount, o.Currency
	return ev
}
