package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	veza "github.com/veza/backend"
	faults "github.com/veza/backend/internal/fake"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/jobs"
	"github.com/veza/backend/settle"
	"github.com/veza/backend/store"
	"github.com/veza/backend/store/dbtest"
	"github.com/veza/backend/store/storetest"
	"github.com/veza/backend/stripeconnect/stripetest"
)

type payBundle struct {
	db       *store.DB
	stripe   *stripetest.Server
	inserter *jobs.Client
	settle   *settle.Settler
	order    *storetest.Order
}

// setupPay makes a completed order with one item per seller price, sellers
// with Stripe accounts, and the payout and reversal workers on a fake Stripe.
func setupPay(t *testing.T, prices ...int64) *payBundle {
	t.Helper()
	pool := dbtest.Pool(t)
	b := &payBundle{db: store.New(pool, nil), stripe: stripetest.Start(t)}
	var err error
	b.inserter, err = jobs.NewInserter(pool, jobs.ClientOpts{Logger: zerolog.Nop()})
	require.NoError(t, err)
	b.settle = &settle.Settler{FeeBPS: storetest.FeeBPS, Logger: zerolog.Nop(), Jobs: jobargs.Policy{
		Payout:   jobargs.Retry{MaxAttempts: 3, Base: time.Second, Max: time.Minute},
		Reversal: jobargs.Retry{MaxAttempts: 6, Base: time.Second, Max: 10 * time.Second},
	}}
	require.NoError(t, b.db.InTx(context.Background(), func(tx pgx.Tx) error {
		b.order = storetest.CompletedOrder(t, tx, prices...)
		return nil
	}))
	return b
}

func (b *payBundle) payouts() *jobs.PayoutWorker {
	return &jobs.PayoutWorker{DB: b.db, Stripe: b.stripe.Client(), Settle: b.settle, Inserter: b.inserter}
}

func (b *payBundle) reversals() *jobs.ReversalWorker {
	return &jobs.ReversalWorker{DB: b.db, Stripe: b.stripe.Client(), Settle: b.settle, Enabled: true, Logger: zerolog.Nop()}
}

// pay runs the payout worker's attempt on tr (of the 3 the bundle's policy
// allows).
func (b *payBundle) pay(tr *store.Transfer, attempt int) error {
	return b.payouts().Work(context.Background(), job(jobargs.PayoutArgs{TransferID: tr.ID}, attempt, b.settle.Jobs.Payout.MaxAttempts))
}

// transfer inserts a pending transfer for seller i.
func (b *payBundle) transfer(t *testing.T, i int) *store.Transfer {
	t.Helper()
	var tr *store.Transfer
	require.NoError(t, b.db.InTx(context.Background(), func(tx pgx.Tx) error {
		tr = b.order.Transfer(t, tx, i, veza.TransferPending)
		return nil
	}))
	return tr
}

func (b *payBundle) get(t *testing.T, id uuid.UUID) *store.Transfer {
	t.Helper()
	tr, err := store.GetTransfer(context.Background(), b.db.Primary(), id)
	require.NoError(t, err)
	return tr
}

func job[T river.JobArgs](args T, attempt, maxAttempts int) *river.Job[T] {
	return &river.Job[T]{JobRow: &rivertype.JobRow{ID: 1, Attempt: attempt, MaxAttempts: maxAttempts}, Args: args}
}

func (b *payBundle) moveOrder(t *testing.T, from, to veza.OrderStatus) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, b.db.InTx(ctx, func(tx pgx.Tx) error { return store.TransitionOrder(ctx, tx, b.order.ID, from, to) }))
}

// TestPayoutKeyAgeIsReadOnTheDatabaseClock: the key window is measured on
// the clock that marked the key (PostgreSQL's), never this process's. A key
// first sent 23 h 30 min ago by the database's clock is past the 23 h
// window even for a worker whose clock runs an hour behind: it is never
// sent again near Stripe's 24 h, after which Stripe may have forgotten it
// and a retry would pay the seller twice. Here the first attempt's answer
// was lost after Stripe made the transfer, and Stripe has forgotten the
// key: the new round looks up first, finds the transfer and records it.
func TestPayoutKeyAgeIsReadOnTheDatabaseClock(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 1000)
	ctx := context.Background()
	tr := b.transfer(t, 0)
	b.stripe.LoseNext("POST /v1/transfers", 1, faults.Lost502)
	require.Error(t, b.pay(tr, 1), "the answer was lost: retried, not failed")
	require.Equal(t, 1, b.stripe.TransferCount(), "Stripe made it")
	b.stripe.Advance(25 * time.Hour)
	// The lost answer is long settled (minutes ago on the row).
	_, err := b.db.Primary().Exec(ctx, `UPDATE seller_transfers SET payout_key_sent_at = now() - interval '23 hours 30 minutes',
		updated_at = now() - interval '10 minutes' WHERE id = $1`, tr.ID)
	require.NoError(t, err)

	behind := b.payouts()
	behind.Now = func() time.Time { return time.Now().Add(-time.Hour) }
	require.NoError(t, behind.Work(ctx, job(jobargs.PayoutArgs{TransferID: tr.ID}, 2, b.settle.Jobs.Payout.MaxAttempts)))
	got := b.get(t, tr.ID)
	require.Equal(t, veza.TransferCompleted, got.Status)
	require.Equal(t, 1, got.PayoutRound, "a new key: the first is past the window on the database's clock")
	require.Equal(t, 1, b.stripe.TransferCount(), "paid once: found by the look-up, not made again under a forgotten key")
}

func TestPayoutPaysOnceEvenWhenRunTwice(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 999)
	tr := b.transfer(t, 0)

	// Stripe down for the first attempt: the row mirrors the retry.
	b.stripe.FailNext(1, 503)
	err := b.pay(tr, 1)
	require.Error(t, err)
	got := b.get(t, tr.ID)
	require.Equal(t, veza.TransferPending, got.Status)
	require.Equal(t, 1, got.RetryCount)
	require.NotNil(t, got.NextRetryAt)
	require.Contains(t, *got.ErrorMessage, "stripe 503")

	// Back up: completed with the Stripe id; the fake saw one transfer.
	require.NoError(t, b.pay(tr, 2))
	got = b.get(t, tr.ID)
	require.Equal(t, veza.TransferCompleted, got.Status)
	require.NotNil(t, got.StripeTransferID)
	require.Nil(t, got.ErrorMessage)

	// The job runs again (a rescued duplicate): nothing more is paid.
	require.NoError(t, b.pay(tr, 1))
	transfers := b.stripe.Transfers()
	require.Len(t, transfers, 1)
	require.EqualValues(t, 900, transfers[0].Amount)
	require.Equal(t, *got.StripeTransferID, transfers[0].ID)
	require.Equal(t, b.order.ID.String(), transfers[0].TransferGroup)
	require.Equal(t, tr.ID.String(), transfers[0].IdempotencyKey)
	require.Equal(t, *b.order.Sellers[0].StripeAccountID, transfers[0].Destination)
	require.Zero(t, b.stripe.MissingKeys())
}

func TestPayoutRetriedAfterLostAnswerIsNotPaidTwice(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 500)
	tr := b.transfer(t, 0)
	ctx := context.Background()
	// Stripe made the transfer but our process died before recording it:
	// the retry reuses the idempotency key and gets the same transfer.
	id, err := b.stripe.Client().CreateTransfer(ctx, stripeTransferParams(b, tr))
	require.NoError(t, err)
	require.NoError(t, b.pay(tr, 2))
	require.Equal(t, id, *b.get(t, tr.ID).StripeTransferID)
	require.Len(t, b.stripe.Transfers(), 1)
}

func TestPayoutExhaustedWaitsInFailed(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 500)
	b.settle.Jobs.ReversalSettle = time.Second
	tr := b.transfer(t, 0)
	b.stripe.FailNext(1, 500)
	var snooze *river.JobSnoozeError
	require.ErrorAs(t, b.pay(tr, 3), &snooze, "the last attempt's request may still be executing: it settles first")
	require.Equal(t, veza.TransferPending, b.get(t, tr.ID).Status)
	time.Sleep(snooze.Duration)
	err := b.pay(tr, 3)
	require.Error(t, err)
	require.NotErrorAs(t, err, &snooze)
	got := b.get(t, tr.ID)
	require.Equal(t, veza.TransferFailed, got.Status)
	require.Contains(t, *got.ErrorMessage, "stripe 500")
	require.Contains(t, *got.ErrorMessage, "Stripe lists no transfer after 3 attempts")
	require.Equal(t, 1, b.stripe.Calls("POST /v1/transfers"), "the re-run after the wait sends nothing")
}

// The last attempt's answer is lost while Stripe is still making the
// transfer. Looking up at once listed nothing and failed the row; the
// transfer then landed and nothing asked again (with the order refunded
// meanwhile, the seller kept the buyer's money). The last attempt now
// waits the settle time, then the look-up finds the transfer.
func TestLastPayoutAttemptWaitsForItsLostRequest(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 500)
	b.settle.Jobs.ReversalSettle = 2 * time.Second
	tr := b.transfer(t, 0)
	b.stripe.SlowNext("POST /v1/transfers", time.Second)
	var snooze *river.JobSnoozeError
	require.ErrorAs(t, b.pay(tr, 3), &snooze, "the outcome is unknown: not failed yet")
	require.Equal(t, veza.TransferPending, b.get(t, tr.ID).Status)
	require.Equal(t, 3, b.get(t, tr.ID).RetryCount, "the unknown outcome is on the row")

	b.moveOrder(t, veza.OrderCompleted, veza.OrderRefundPending)
	b.moveOrder(t, veza.OrderRefundPending, veza.OrderRefunded)
	require.Eventually(t, func() bool { return len(b.stripe.Transfers()) == 1 }, 10*time.Second, 20*time.Millisecond)
	time.Sleep(snooze.Duration)
	require.NoError(t, b.pay(tr, 3))
	got := b.get(t, tr.ID)
	require.Equal(t, veza.TransferReversalPending, got.Status, "found, recorded and taken back")
	require.Equal(t, b.stripe.Transfers()[0].ID, *got.StripeTransferID)
	require.Equal(t, 1, b.stripe.Calls("POST /v1/transfers"))
}

// The last attempt under each of Stripe's unpleasant answers (PSP.md): the
// work done and its answer lost (a 502, a page that is not JSON), or a 500
// saved under the key that a resend would only replay. None fails the row
// at once: after the settle wait, Stripe's listing decides, and the re-run
// sends nothing.
func TestLastPayoutAttemptUnderProviderFaults(t *testing.T) {
	for _, c := range []struct {
		name   string
		fault  func(b *payBundle)
		paid   bool
		status veza.TransferStatus
	}{
		{"answer lost after the transfer (502)", func(b *payBundle) { b.stripe.LoseNext("POST /v1/transfers", 1, faults.Lost502) }, true, veza.TransferCompleted},
		{"answer not JSON after the transfer", func(b *payBundle) { b.stripe.LoseNext("POST /v1/transfers", 1, faults.LostHTML200) }, true, veza.TransferCompleted},
		{"500 saved under the key", func(b *payBundle) { b.stripe.SaveErrorNext("POST /v1/transfers", 1, 500) }, false, veza.TransferFailed},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setupPay(t, 500)
			b.settle.Jobs.ReversalSettle = 50 * time.Millisecond
			tr := b.transfer(t, 0)
			c.fault(b)
			var snooze *river.JobSnoozeError
			require.ErrorAs(t, b.pay(tr, 3), &snooze, "the outcome is unknown: not decided yet")
			require.Equal(t, veza.TransferPending, b.get(t, tr.ID).Status)
			time.Sleep(snooze.Duration)
			err := b.pay(tr, 3)
			require.Equal(t, c.status, b.get(t, tr.ID).Status, "Stripe's listing decided: %v", err)
			require.Equal(t, 1, b.stripe.Calls("POST /v1/transfers"), "the re-run only looks up")
			if c.paid {
				require.NoError(t, err)
				require.Equal(t, b.stripe.Transfers()[0].ID, *b.get(t, tr.ID).StripeTransferID)
			} else {
				require.Empty(t, b.stripe.Transfers(), "the saved 500 did no work")
			}
		})
	}
}

// A look-up that fails after the last attempt is no word from Stripe: the
// row stays pending and the job asks again, without using an attempt.
func TestExhaustedPayoutWhoseLookUpFailsStaysUnknown(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 500)
	b.settle.Jobs.ReversalSettle = 10 * time.Millisecond
	tr := b.transfer(t, 0)
	b.stripe.FailNext(2, 500) // the send, then the look-up
	var snooze *river.JobSnoozeError
	require.ErrorAs(t, b.pay(tr, 3), &snooze, "the settle wait")
	time.Sleep(snooze.Duration)
	require.ErrorAs(t, b.pay(tr, 3), &snooze, "the look-up failed: ask again")
	require.GreaterOrEqual(t, snooze.Duration, b.settle.Jobs.Payout.Delay(2), "at the payouts' longest backoff")
	got := b.get(t, tr.ID)
	require.Equal(t, veza.TransferPending, got.Status, "not failed without Stripe's word")
	require.NotNil(t, got.NextRetryAt, "the row shows when it asks again")
	require.Contains(t, *got.ErrorMessage, "stripe 500", "the attempt's message is kept")
	time.Sleep(20 * time.Millisecond) // the settle wait since the row was written
	require.Equal(t, 2, b.stripe.Calls("GET /v1/transfers")+b.stripe.Calls("POST /v1/transfers"), "one send, one look-up")
	err := b.pay(tr, 3)
	require.Error(t, err, "the look-up answers now: nothing listed, so the job ends")
	require.NotErrorAs(t, err, &snooze)
	require.Equal(t, veza.TransferFailed, b.get(t, tr.ID).Status)
	require.Equal(t, 1, b.stripe.Calls("POST /v1/transfers"))
}

func TestPayoutWithoutStripeAccountFailsClearly(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 500)
	tr := b.transfer(t, 0)
	// Planned while the seller had no account.
	_, err := b.db.Primary().Exec(context.Background(), `UPDATE seller_transfers SET destination = NULL WHERE id = $1`, tr.ID)
	require.NoError(t, err)
	require.NoError(t, b.pay(tr, 1),
		"no retry loop: the row waits for a human")
	got := b.get(t, tr.ID)
	require.Equal(t, veza.TransferFailed, got.Status)
	require.Contains(t, *got.ErrorMessage, "no Stripe Connect account")
	require.Empty(t, b.stripe.Transfers())
}

func TestPayoutNeverPaysARefundedOrder(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 500)
	tr := b.transfer(t, 0)

	b.moveOrder(t, veza.OrderCompleted, veza.OrderRefundPending)
	err := b.pay(tr, 1)
	var snooze *river.JobSnoozeError
	require.ErrorAs(t, err, &snooze, "waits for the refund's outcome")

	b.moveOrder(t, veza.OrderRefundPending, veza.OrderRefunded)
	require.NoError(t, b.pay(tr, 1))
	got := b.get(t, tr.ID)
	require.Equal(t, veza.TransferPermanentlyFailed, got.Status)
	require.Contains(t, *got.ErrorMessage, "refunded before payout")
	require.Empty(t, b.stripe.Transfers())
}

// The refund wins while Stripe is still making a payout whose answer was
// lost (our client gave up; Stripe executes the request a second later).
// A look-up at once lists nothing, and closing the row unpaid then would
// leave the seller the money: nothing asks again. So a payout with an
// unknown outcome is closed unpaid only once the request cannot still be
// executing (the settle time since the row recorded that outcome), and the
// look-up then finds the transfer and reverses it.
func TestRefundedPayoutWaitsForItsLostRequestToSettle(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 500)
	b.settle.Jobs.ReversalSettle = 3 * time.Second
	tr := b.transfer(t, 0)
	b.stripe.SlowNext("POST /v1/transfers", time.Second)
	require.Error(t, b.pay(tr, 1), "the answer was lost: an unknown outcome, retried")
	require.Empty(t, b.stripe.Transfers(), "Stripe is still executing it")

	b.moveOrder(t, veza.OrderCompleted, veza.OrderRefundPending)
	b.moveOrder(t, veza.OrderRefundPending, veza.OrderRefunded)
	var snooze *river.JobSnoozeError
	require.ErrorAs(t, b.pay(tr, 2), &snooze, "not closed while its request may still be executing")
	require.Equal(t, veza.TransferPending, b.get(t, tr.ID).Status)
	require.LessOrEqual(t, snooze.Duration, 3*time.Second)

	require.Eventually(t, func() bool { return len(b.stripe.Transfers()) == 1 }, 10*time.Second, 20*time.Millisecond)
	time.Sleep(snooze.Duration)
	require.NoError(t, b.pay(tr, 2))
	got := b.get(t, tr.ID)
	require.Equal(t, veza.TransferReversalPending, got.Status, "found, recorded and taken back")
	require.Equal(t, b.stripe.Transfers()[0].ID, *got.StripeTransferID)
}

// The job's own timeout cut the call (Stripe answers later than the job
// may wait, and executes the request anyway): the unknown outcome is
// still recorded on the row, with a context of its own, so a refund that
// wins meanwhile waits the settle time too.
func TestPayoutCutByItsTimeoutStillRecordsTheUnknown(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 500)
	b.settle.Jobs.ReversalSettle = 3 * time.Second
	tr := b.transfer(t, 0)
	b.stripe.SetLatency(500 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	require.Error(t, b.payouts().Work(ctx, job(jobargs.PayoutArgs{TransferID: tr.ID}, 1, b.settle.Jobs.Payout.MaxAttempts)))
	require.Equal(t, 1, b.get(t, tr.ID).RetryCount, "the unknown outcome is on the row")

	b.moveOrder(t, veza.OrderCompleted, veza.OrderRefundPending)
	b.moveOrder(t, veza.OrderRefundPending, veza.OrderRefunded)
	var snooze *river.JobSnoozeError
	require.ErrorAs(t, b.pay(tr, 2), &snooze, "not closed while its request may still be executing")
	require.Eventually(t, func() bool { return len(b.stripe.Transfers()) == 1 }, 10*time.Second, 20*time.Millisecond)
}

// TestRefundDuringPayoutIsReversed: the refund settles while Stripe is
// paying the seller. The payout still records the money it moved, sees the
// refunded order and starts the reversal in the same transaction.
func TestRefundDuringPayoutIsReversed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupPay(t, 800)
	tr := b.transfer(t, 0)
	workers := river.NewWorkers()
	river.AddWorker(workers, b.payouts())
	river.AddWorker(workers, b.reversals())
	client, err := jobs.NewClient(b.db.Primary(), jobs.ClientOpts{River: riverConfig(), Logger: zerolog.Nop(), Workers: workers})
	require.NoError(t, err)

	b.stripe.SetLatency(700 * time.Millisecond)
	job := b.settle.Jobs.PayoutJob(tr.ID)
	_, err = client.Insert(ctx, job.Args, job.InsertOpts)
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { _ = client.Stop(context.Background()) })

	require.Eventually(t, func() bool { return b.stripe.Calls("POST /v1/transfers") == 1 }, 10*time.Second, 5*time.Millisecond)
	b.moveOrder(t, veza.OrderCompleted, veza.OrderRefundPending)
	b.moveOrder(t, veza.OrderRefundPending, veza.OrderRefunded)

	require.Eventually(t, func() bool { return b.get(t, tr.ID).Status == veza.TransferReversed }, 20*time.Second, 20*time.Millisecond)
	require.Len(t, b.stripe.Transfers(), 1)
	require.Len(t, b.stripe.Reversals(), 1)
}

// A payout's key passes the reuse window while its last request may still
// be executing at Stripe (a payout held for a day, released just before
// the window ends, whose first send lost its answer). The new round's
// look-up then ran at once, listed nothing, and a new key paid the seller
// a second time. The new round now waits the settle time since the row
// recorded the unknown outcome, and its look-up finds the first transfer.
func TestNewPayoutRoundWaitsForTheLostRequestToSettle(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 500)
	b.settle.Jobs.ReversalSettle = 3 * time.Second
	ctx := context.Background()
	tr := b.transfer(t, 0)
	b.stripe.SlowNext("POST /v1/transfers", time.Second)
	require.Error(t, b.pay(tr, 1), "the answer was lost: an unknown outcome, retried")
	require.Empty(t, b.stripe.Transfers(), "Stripe is still executing it")
	_, err := b.db.Primary().Exec(ctx, `UPDATE seller_transfers SET payout_key_sent_at = now() - interval '23 hours 30 minutes' WHERE id = $1`, tr.ID)
	require.NoError(t, err)

	var snooze *river.JobSnoozeError
	require.ErrorAs(t, b.pay(tr, 2), &snooze, "no new key while the last request may still be executing")
	require.LessOrEqual(t, snooze.Duration, 3*time.Second)
	require.Equal(t, 1, b.stripe.Calls("POST /v1/transfers"))

	require.Eventually(t, func() bool { return len(b.stripe.Transfers()) == 1 }, 10*time.Second, 20*time.Millisecond)
	time.Sleep(snooze.Duration)
	require.NoError(t, b.pay(tr, 2))
	got := b.get(t, tr.ID)
	require.Equal(t, veza.TransferCompleted, got.Status)
	require.Equal(t, b.stripe.Transfers()[0].ID, *got.StripeTransferID)
	require.Len(t, b.stripe.Transfers(), 1, "paid once: the look-up found the first transfer")
}

// The retry of a payout whose answer was lost lands on a process with
// Stripe Connect disabled (a mixed fleet, a setting rolled back). It used
// to fail the row at once: "did not happen", although Stripe had made the
// transfer. With an unknown outcome outstanding it now waits for a process
// that can ask Stripe.
func TestPayoutWithUnknownOutcomeWaitsWhenStripeIsDisabled(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 500)
	tr := b.transfer(t, 0)
	b.stripe.LoseNext("POST /v1/transfers", 1, faults.Lost502)
	require.Error(t, b.pay(tr, 1), "the answer was lost: retried, not failed")
	require.Equal(t, 1, b.stripe.TransferCount(), "Stripe made it")

	off := b.payouts()
	off.Stripe = nil
	var snooze *river.JobSnoozeError
	require.ErrorAs(t, off.Work(context.Background(), job(jobargs.PayoutArgs{TransferID: tr.ID}, 2, b.settle.Jobs.Payout.MaxAttempts)), &snooze)
	require.Equal(t, veza.TransferPending, b.get(t, tr.ID).Status, "not failed without Stripe's word")

	require.NoError(t, b.pay(tr, 2))
	got := b.get(t, tr.ID)
	require.Equal(t, veza.TransferCompleted, got.Status)
	require.Equal(t, 1, b.stripe.TransferCount())
}

// A process killed between its send and its record leaves no retry on the
// row, and River rescues the job (attempt 2) onto a process whose Stripe
// is disabled: the first attempt may have paid, so it waits too.
func TestRescuedPayoutWaitsWhenStripeIsDisabled(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 500)
	tr := b.transfer(t, 0)
	off := b.payouts()
	off.Stripe = nil
	var snooze *river.JobSnoozeError
	require.ErrorAs(t, off.Work(context.Background(), job(jobargs.PayoutArgs{TransferID: tr.ID}, 2, b.settle.Jobs.Payout.MaxAttempts)), &snooze)
	got := b.get(t, tr.ID)
	require.Equal(t, veza.TransferPending, got.Status, "not failed: the rescued attempt's first run may have sent")
	require.Zero(t, got.RetryCount)
}
