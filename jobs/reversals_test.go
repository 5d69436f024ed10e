package jobs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	veza "github.com/veza/backend"
	faults "github.com/veza/backend/internal/fake"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/jobs"
	"github.com/veza/backend/store"
)

// paidTransfer makes a transfer completed at the fake Stripe and, with
// reversal, moves it to reversal_pending: all through the state machine.
func (b *payBundle) paidTransfer(t *testing.T, i int, reversal bool) *store.Transfer {
	t.Helper()
	ctx := context.Background()
	tr := b.transfer(t, i)
	stripeID, err := b.stripe.Client().CreateTransfer(ctx, stripeTransferParams(b, tr))
	require.NoError(t, err)
	require.NoError(t, b.db.InTx(ctx, func(tx pgx.Tx) error {
		if err := store.TransitionTransfer(ctx, tx, tr.ID, veza.TransferPending, veza.TransferCompleted, store.TransferUpdate{StripeTransferID: &stripeID}); err != nil {
			return err
		}
		if !reversal {
			return nil
		}
		return store.TransitionTransfer(ctx, tx, tr.ID, veza.TransferCompleted, veza.TransferReversalPending, store.TransferUpdate{})
	}))
	return b.get(t, tr.ID)
}

func (b *payBundle) reverse(t *testing.T, id store.Transfer, attempt int) error {
	t.Helper()
	return b.reversals().Work(context.Background(), job(jobargs.ReversalArgs{TransferID: id.ID}, attempt, b.settle.Jobs.Reversal.MaxAttempts))
}

func TestReversalHappyPath(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 1000)
	tr := b.paidTransfer(t, 0, true)
	require.NoError(t, b.reverse(t, *tr, 1))
	got := b.get(t, tr.ID)
	require.Equal(t, veza.TransferReversed, got.Status)
	require.NotNil(t, got.StripeReversalID)
	revs := b.stripe.Reversals()
	require.Len(t, revs, 1)
	require.Equal(t, *got.StripeReversalID, revs[0].ID)
	require.EqualValues(t, 900, revs[0].Amount, "full reversal")
	st, _ := b.stripe.Transfer(*tr.StripeTransferID)
	require.True(t, st.Reversed)
}

func TestReversalAlreadyReversed(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 1000)
	tr := b.paidTransfer(t, 0, true)
	_, err := b.stripe.Client().ReverseTransfer(context.Background(), *tr.StripeTransferID, "someone-else", nil)
	require.NoError(t, err)
	require.NoError(t, b.reverse(t, *tr, 1))
	got := b.get(t, tr.ID)
	require.Equal(t, veza.TransferReversed, got.Status)
	require.Nil(t, got.StripeReversalID)
	require.Len(t, b.stripe.Reversals(), 1, "not reversed twice")
}

func TestReversalTransferNotFound(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 1000)
	tr := b.transfer(t, 0)
	ctx := context.Background()
	missing := "tr_does_not_exist"
	require.NoError(t, b.db.InTx(ctx, func(tx pgx.Tx) error {
		if err := store.TransitionTransfer(ctx, tx, tr.ID, veza.TransferPending, veza.TransferCompleted, store.TransferUpdate{StripeTransferID: &missing}); err != nil {
			return err
		}
		return store.TransitionTransfer(ctx, tx, tr.ID, veza.TransferCompleted, veza.TransferReversalPending, store.TransferUpdate{})
	}))
	require.NoError(t, b.reverse(t, *tr, 1))
	got := b.get(t, tr.ID)
	require.Equal(t, veza.TransferPermanentlyFailed, got.Status)
	require.Contains(t, *got.ErrorMessage, "resource_missing")
}

func TestReversalTransientErrorMirrorsRetry(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 1000)
	tr := b.paidTransfer(t, 0, true)
	b.stripe.FailNext(1, 503)
	before := time.Now()
	err := b.reverse(t, *tr, 1)
	after := time.Now()
	require.Error(t, err, "River retries it")
	got := b.get(t, tr.ID)
	require.Equal(t, veza.TransferReversalPending, got.Status, "stays reversal_pending")
	require.Equal(t, 1, got.RetryCount)
	require.NotNil(t, got.NextRetryAt)
	require.WithinRange(t, *got.NextRetryAt, before.Add(time.Second-time.Millisecond), after.Add(time.Second+time.Millisecond), "base·2^0")
	require.Contains(t, *got.ErrorMessage, "stripe 503")

	// River's schedule is the same formula.
	next := b.reversals().NextRetry(job(jobargs.ReversalArgs{TransferID: tr.ID}, 1, 6))
	require.InDelta(t, time.Second.Seconds(), time.Until(next).Seconds(), 0.5)
}

func TestReversalBackoffIsCapped(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 1000)
	tr := b.paidTransfer(t, 0, true)
	// Four retries already happened; the schedule says "now".
	require.NoError(t, store.RecordTransferRetry(context.Background(), b.db.Primary(), tr.ID, 4, time.Now().Add(-time.Second), "earlier"))
	b.stripe.FailNext(1, 503)
	before := time.Now()
	require.Error(t, b.reverse(t, *tr, 5))
	after := time.Now()
	got := b.get(t, tr.ID)
	require.Equal(t, 5, got.RetryCount)
	require.WithinRange(t, *got.NextRetryAt, before.Add(10*time.Second-time.Millisecond), after.Add(10*time.Second+time.Millisecond),
		"base 1s, max 10s, retry 4 → 10s, not 16s")
}

// The last attempt's outcome is unknown (a 503: Stripe may have done
// it): the job waits the settle time, then only reads back. Not reversed
// at Stripe, the row waits in reversal_failed for an operator, never
// closed with the seller paid.
func TestReversalExhausted(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 1000)
	tr := b.paidTransfer(t, 0, true)
	last := b.settle.Jobs.Reversal.MaxAttempts
	b.stripe.FailNext(1, 503)
	requireSettling(t, b.reverse(t, *tr, last))
	require.Equal(t, veza.TransferReversalPending, b.get(t, tr.ID).Status, "unknown: not failed yet")

	require.Error(t, b.reverseNow(t, tr, last), "the read-back's word: River discards the job")
	got := b.get(t, tr.ID)
	require.Equal(t, veza.TransferReversalFailed, got.Status, "an operator's to retry")
	require.Contains(t, *got.ErrorMessage, "retries exhausted")
	require.Contains(t, *got.ErrorMessage, "not reversed at Stripe")
	require.Equal(t, 1, b.stripe.Calls("POST reversals"), "nothing sent again on the exhausted attempt")
}

// The last attempt's answer was lost after Stripe reversed the transfer:
// after the settle wait the read-back finds it, and the row is reversed,
// not left in reversal_failed for an operator to reverse a second time.
func TestLastReversalAttemptWaitsForItsLostAnswer(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 1000)
	tr := b.paidTransfer(t, 0, true)
	last := b.settle.Jobs.Reversal.MaxAttempts
	b.stripe.LoseNext("POST reversals", 1, faults.LostReset)
	requireSettling(t, b.reverse(t, *tr, last))
	require.Equal(t, veza.TransferReversalPending, b.get(t, tr.ID).Status)

	require.NoError(t, b.reverseNow(t, tr, last))
	require.Equal(t, veza.TransferReversed, b.get(t, tr.ID).Status)
	require.Len(t, b.stripe.Reversals(), 1, "reversed once")
	require.Equal(t, 1, b.stripe.Calls("POST reversals"))
}

// The last attempt's answer was lost after Stripe reversed the transfer,
// and the exhausted re-run's read came back as a page that is not JSON:
// no word from Stripe, so the row stays reversal_pending and is read
// again later; the next read finds the reversal.
func TestExhaustedReversalWhoseReadIsUndecodableAsksAgain(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 1000)
	tr := b.paidTransfer(t, 0, true)
	last := b.settle.Jobs.Reversal.MaxAttempts
	b.stripe.LoseNext("POST reversals", 1, faults.LostReset)
	requireSettling(t, b.reverse(t, *tr, last))

	b.stripe.LoseNext("GET transfer", 1, faults.LostHTML200)
	err := b.reverseNow(t, tr, last)
	var snooze *river.JobSnoozeError
	require.ErrorAs(t, err, &snooze, "asks again, does not fail the row")
	require.Equal(t, veza.TransferReversalPending, b.get(t, tr.ID).Status, "no word from Stripe")

	require.NoError(t, b.reverseNow(t, tr, last))
	require.Equal(t, veza.TransferReversed, b.get(t, tr.ID).Status)
	require.Equal(t, 1, b.stripe.Calls("POST reversals"), "nothing sent again")
	require.Equal(t, 2, b.stripe.Calls("GET transfer"))
}

func TestReversalLegacyRowWithoutStripeID(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 1000)
	tr := b.transfer(t, 0)
	ctx := context.Background()
	require.NoError(t, b.db.InTx(ctx, func(tx pgx.Tx) error {
		if err := store.TransitionTransfer(ctx, tx, tr.ID, veza.TransferPending, veza.TransferCompleted, store.TransferUpdate{}); err != nil {
			return err
		}
		return store.TransitionTransfer(ctx, tx, tr.ID, veza.TransferCompleted, veza.TransferReversalPending, store.TransferUpdate{})
	}))
	require.NoError(t, b.reverse(t, *tr, 1))
	got := b.get(t, tr.ID)
	require.Equal(t, veza.TransferPermanentlyFailed, got.Status)
	require.Contains(t, *got.ErrorMessage, "legacy")
	require.Zero(t, b.stripe.Calls("POST reversals")+b.stripe.Calls("GET transfer"), "Stripe never called")
}

func TestReversalTouchesOnlyReversalPending(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 1000, 700)
	completed := b.paidTransfer(t, 0, false)
	pending := b.transfer(t, 1)
	for _, tr := range []*store.Transfer{completed, pending} {
		require.NoError(t, b.reverse(t, *tr, 1))
		require.Equal(t, tr.Status, b.get(t, tr.ID).Status)
	}
	require.Zero(t, b.stripe.Calls("POST reversals"))
}

func TestReversalRespectsFutureNextRetryAt(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 1000)
	tr := b.paidTransfer(t, 0, true)
	require.NoError(t, store.RecordTransferRetry(context.Background(), b.db.Primary(), tr.ID, 2, time.Now().Add(time.Hour), "earlier"))
	err := b.reverse(t, *tr, 3)
	var snooze *river.JobSnoozeError
	require.ErrorAs(t, err, &snooze)
	require.InDelta(t, time.Hour.Seconds(), snooze.Duration.Seconds(), 5)
	require.Zero(t, b.stripe.Calls("POST reversals"))
	require.Equal(t, veza.TransferReversalPending, b.get(t, tr.ID).Status)
}

// reverseNow runs attempt on tr as if its retry were due now (the row's
// schedule moved into the past): what a short REVERSAL_BACKOFF_BASE or an
// early run does.
func (b *payBundle) reverseNow(t *testing.T, tr *store.Transfer, attempt int) error {
	t.Helper()
	return b.reverseNowWith(t, b.reversals(), tr, attempt)
}

// reverseNowWith is reverseNow on worker w (a skewed clock, say).
func (b *payBundle) reverseNowWith(t *testing.T, w *jobs.ReversalWorker, tr *store.Transfer, attempt int) error {
	t.Helper()
	got := b.get(t, tr.ID)
	require.NoError(t, store.RecordTransferRetry(context.Background(), b.db.Primary(), tr.ID, got.RetryCount, time.Now().Add(-time.Second), "earlier"))
	return w.Work(context.Background(), job(jobargs.ReversalArgs{TransferID: tr.ID}, attempt, b.settle.Jobs.Reversal.MaxAttempts))
}

// savedErrorFirst makes a reversal_pending transfer whose first reversal
// request ended in a 500 Stripe saved under its key: for all the code
// knows, still executing at Stripe.
func (b *payBundle) savedErrorFirst(t *testing.T) *store.Transfer {
	t.Helper()
	tr := b.paidTransfer(t, 0, true)
	b.stripe.SaveErrorNext("POST reversals", 1, 500)
	require.Error(t, b.reverse(t, *tr, 1), "an unknown outcome is retried")
	return tr
}

// requireSettling asserts err is the snooze that waits for the last
// request's settle time (no attempt used).
func requireSettling(t *testing.T, err error) {
	t.Helper()
	var snooze *river.JobSnoozeError
	require.ErrorAs(t, err, &snooze)
	require.InDelta(t, jobargs.DefaultReversalSettle.Seconds(), snooze.Duration.Seconds(), 5)
}

// TestReversalWaitsBeforeANewKey: the first request ends in a 500 Stripe
// saved under its key (it did no work), and its retry comes at once. The
// read-back finds the transfer not reversed, but the code cannot tell a
// saved error from a request still executing at Stripe (our client gave up
// on it), and a new key beside that would reverse twice. The job waits for
// the settle time without an attempt; after it, the next attempt reads
// back again and sends a new key.
func TestReversalWaitsBeforeANewKey(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 1000)
	ctx := context.Background()
	tr := b.savedErrorFirst(t)

	requireSettling(t, b.reverseNow(t, tr, 2))
	require.Equal(t, 1, b.stripe.Calls("POST reversals"), "no second request beside the first")
	got := b.get(t, tr.ID)
	require.Equal(t, 0, got.ReversalRound, "still the first key")
	require.Equal(t, veza.TransferReversalPending, got.Status)

	_, err := b.db.Primary().Exec(ctx, `UPDATE seller_transfers SET reversal_key_sent_at = now() - interval '3 minutes' WHERE id = $1`, tr.ID)
	require.NoError(t, err)
	require.NoError(t, b.reverseNow(t, tr, 3))
	got = b.get(t, tr.ID)
	require.Equal(t, veza.TransferReversed, got.Status)
	require.Equal(t, 1, got.ReversalRound, "a new key once the first request had its time")
	require.Len(t, b.stripe.Reversals(), 1)
}

// TestReversalLostAnswerIsFoundWithoutWaiting: Stripe reversed the
// transfer and the answer was lost (the connection reset). The retry's
// read-back finds it reversed and records it at once: the settle wait is
// only for sending a new key.
func TestReversalLostAnswerIsFoundWithoutWaiting(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 1000)
	tr := b.paidTransfer(t, 0, true)
	b.stripe.LoseNext("POST reversals", 1, faults.LostReset)
	require.Error(t, b.reverse(t, *tr, 1), "the outcome is unknown: retried, not failed")
	require.Equal(t, veza.TransferReversalPending, b.get(t, tr.ID).Status)

	require.NoError(t, b.reverseNow(t, tr, 2))
	got := b.get(t, tr.ID)
	require.Equal(t, veza.TransferReversed, got.Status)
	require.Equal(t, 0, got.ReversalRound, "no new key")
	require.Len(t, b.stripe.Reversals(), 1, "reversed once")
	require.Equal(t, 1, b.stripe.Calls("POST reversals"))
}

// TestPacedReversalKeepsItsKey: Stripe refused the reversal with either
// of its 429s, rate_limit or lock_timeout (never executed): the key is
// still unused, so the next attempt sends it at once, with no new round
// and no settle wait.
func TestPacedReversalKeepsItsKey(t *testing.T) {
	t.Parallel()
	for name, refuse := range map[string]func(b *payBundle){
		"rate_limit":   func(b *payBundle) { b.stripe.FailNext(1, 429) },
		"lock_timeout": func(b *payBundle) { b.stripe.LockTimeoutNext("POST reversals", 1) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setupPay(t, 1000)
			tr := b.paidTransfer(t, 0, true)
			refuse(b)
			err := b.reverse(t, *tr, 1)
			var snooze *river.JobSnoozeError
			require.ErrorAs(t, err, &snooze, "paced: no attempt used")
			got := b.get(t, tr.ID)
			require.Nil(t, got.ReversalKeySentAt, "the key was not used")
			require.Zero(t, got.RetryCount)

			require.NoError(t, b.reverse(t, *got, 2))
			got = b.get(t, tr.ID)
			require.Equal(t, veza.TransferReversed, got.Status)
			require.Equal(t, 0, got.ReversalRound, "the same, unused key")
			require.Equal(t, 2, b.stripe.Calls("POST reversals"), "the 429, then the reversal")
		})
	}
}

// TestReversalAfterItsKeyExpiredReadsBackFirst: Stripe reversed the
// transfer, the answer was lost, and the retry comes after Stripe forgot
// the key (25 h). Sending that key again would reverse a second time; the
// retry reads back first, finds the reversal and records it.
func TestReversalAfterItsKeyExpiredReadsBackFirst(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 1000)
	ctx := context.Background()
	tr := b.paidTransfer(t, 0, true)
	b.stripe.LoseNext("POST reversals", 1, faults.Lost502)
	require.Error(t, b.reverse(t, *tr, 1))
	b.stripe.Advance(25 * time.Hour)
	_, err := b.db.Primary().Exec(ctx, `UPDATE seller_transfers SET reversal_key_sent_at = reversal_key_sent_at - interval '25 hours' WHERE id = $1`, tr.ID)
	require.NoError(t, err)

	require.NoError(t, b.reverseNow(t, tr, 2))
	got := b.get(t, tr.ID)
	require.Equal(t, veza.TransferReversed, got.Status)
	require.Len(t, b.stripe.Reversals(), 1, "reversed once")
	require.Equal(t, 1, b.stripe.Calls("POST reversals"), "the forgotten key was not sent again")
}

// TestOperatorRetryWaitsForTheLastRequest: the last attempt's request
// ended in a saved 500 (for all the code knows, still executing at
// Stripe); the exhausted re-run read back, found nothing reversed and
// moved the row to reversal_failed; an operator retries at once. The
// retry's new round reads back first, and its new key still waits for
// the settle time.
func TestOperatorRetryWaitsForTheLastRequest(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 1000)
	ctx := context.Background()
	tr := b.paidTransfer(t, 0, true)
	last := b.settle.Jobs.Reversal.MaxAttempts
	b.stripe.SaveErrorNext("POST reversals", 1, 500)
	requireSettling(t, b.reverse(t, *tr, last))
	require.Error(t, b.reverseNow(t, tr, last), "the exhausted attempt's read-back")
	require.Equal(t, veza.TransferReversalFailed, b.get(t, tr.ID).Status, "retries exhausted")
	require.Equal(t, 1, b.stripe.Calls("GET transfer"), "the exhausted attempt read back")
	require.NoError(t, b.db.InTx(ctx, func(tx pgx.Tx) error {
		_, _, err := b.settle.RetryTransfer(ctx, tx, b.inserter, tr.ID)
		return err
	}))
	got := b.get(t, tr.ID)
	require.Equal(t, veza.TransferReversalPending, got.Status)
	require.NotNil(t, got.ReversalKeySentAt, "the new round keeps when the last key went out")

	requireSettling(t, b.reverse(t, *got, 1))
	require.Equal(t, 1, b.stripe.Calls("POST reversals"), "no new key beside a request that may still run")
	require.Equal(t, 2, b.stripe.Calls("GET transfer"), "the new round read back first")
}

// TestReversalConfirmReadPacedKeepsTheMark: Stripe answered the reversal
// 400 without a code (saved under the key) and the read that would confirm
// "already reversed" was refused with a 429. The request was executed, so
// the key's mark stays and the attempt is an ordinary retry, not paced.
func TestReversalConfirmReadPacedKeepsTheMark(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 1000)
	ctx := context.Background()
	tr := b.paidTransfer(t, 0, true)
	_, err := b.stripe.Client().ReverseTransfer(ctx, *tr.StripeTransferID, "someone-else", nil)
	require.NoError(t, err)
	b.stripe.LockTimeoutNext("GET transfer", 1)
	before := b.stripe.Calls("POST reversals")

	err = b.reverse(t, *tr, 1)
	require.Error(t, err)
	var snooze *river.JobSnoozeError
	require.False(t, errors.As(err, &snooze), "not paced: %v", err)
	got := b.get(t, tr.ID)
	require.NotNil(t, got.ReversalKeySentAt, "the key was used")
	require.Equal(t, 1, got.RetryCount)
	require.Equal(t, before+1, b.stripe.Calls("POST reversals"))
}

// TestReversalRoundsMoveByCompareAndSet: two jobs on one row (a rescued
// job beside a live one) cannot both mark a key, nor both start a round:
// the second one reads the row again instead.
func TestReversalRoundsMoveByCompareAndSet(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 1000)
	ctx := context.Background()
	tr := b.paidTransfer(t, 0, true)
	db := b.db.Primary()

	_, marked, err := store.MarkReversalKeySent(ctx, db, tr.ID, 0)
	require.NoError(t, err)
	require.True(t, marked)
	_, marked, err = store.MarkReversalKeySent(ctx, db, tr.ID, 0)
	require.NoError(t, err)
	require.False(t, marked, "already marked by another job: its request gets its settle time")

	moved, err := store.StartReversalRound(ctx, db, tr.ID, 0)
	require.NoError(t, err)
	require.True(t, moved)
	moved, err = store.StartReversalRound(ctx, db, tr.ID, 0)
	require.NoError(t, err)
	require.False(t, moved, "the round moved meanwhile")
	_, marked, err = store.MarkReversalKeySent(ctx, db, tr.ID, 0)
	require.NoError(t, err)
	require.False(t, marked, "a stale round marks nothing")
	require.Equal(t, 1, b.get(t, tr.ID).ReversalRound)
	require.Nil(t, b.get(t, tr.ID).ReversalKeySentAt)
}

// TestReversalSettleIsReadOnTheDatabaseClock: the settle time is measured
// on the clock that marked the key (PostgreSQL's), never this process's. A
// worker whose clock runs 5 minutes ahead of the database still sees the
// first request (a saved 500 it cannot tell from one still executing) as
// just sent, and waits instead of sending a second key beside it.
func TestReversalSettleIsReadOnTheDatabaseClock(t *testing.T) {
	t.Parallel()
	b := setupPay(t, 1000)
	tr := b.savedErrorFirst(t)

	ahead := b.reversals()
	ahead.Now = func() time.Time { return time.Now().Add(5 * time.Minute) }
	requireSettling(t, b.reverseNowWith(t, ahead, tr, 2))
	require.Equal(t, 1, b.stripe.Calls("POST reversals"), "no second request beside the first")
	require.Equal(t, 0, b.get(t, tr.ID).ReversalRound, "still the first key")
}
