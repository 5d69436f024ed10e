package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/veza/backend"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/settle"
	"github.com/veza/backend/store"
	"github.com/veza/backend/stripeconnect"
)

// The two workers that move money at Stripe Connect. Stripe saves the
// answer of every request that began executing under its idempotency key,
// errors included, and forgets keys after a day; answers get lost after the
// work was done. So neither worker concludes from an error that nothing
// happened: an unknown outcome is retried and then read back, a new key is
// sent only after a read-back (a new round), and a transfer is closed
// unpaid only when Stripe's listing lacks it.

// PayoutWorker pays one transfer: it reads the transfer, lets settle decide
// whether to send it, calls Stripe Connect outside any transaction with the
// round's idempotency key, and has settle record the result.
type PayoutWorker struct {
	river.WorkerDefaults[jobargs.PayoutArgs]
	DB       *store.DB
	Stripe   *stripeconnect.Client // nil when Stripe Connect is disabled
	Settle   *settle.Settler
	Inserter settle.Inserter
	Logger   zerolog.Logger
	// Now is this process's clock (nil: time.Now), for the retry times
	// mirrored on the row. A key's age is never read on it (see
	// store.Transfer.ReadAt).
	Now func() time.Time
}

func (w *PayoutWorker) now() time.Time { return clock(w.Now) }

// clock is now's reading, time.Now when now is nil.
func clock(now func() time.Time) time.Time {
	if now == nil {
		return time.Now()
	}
	return now()
}

func (w *PayoutWorker) NextRetry(job *river.Job[jobargs.PayoutArgs]) time.Time {
	return w.Settle.Jobs.Payout.NextRetry(job.Attempt)
}

func (w *PayoutWorker) Work(ctx context.Context, job *river.Job[jobargs.PayoutArgs]) error {
	view, err := store.GetPayoutView(ctx, w.DB.Primary(), job.Args.TransferID)
	if errors.Is(err, store.ErrNotFound) {
		return river.JobCancel(fmt.Errorf("transfer %s does not exist", job.Args.TransferID))
	}
	if err != nil {
		return err
	}
	t := view.Transfer
	switch step, reason := settle.NextPayoutStep(view, w.Stripe != nil); step {
	case settle.PayoutDone:
		return nil
	case settle.PayoutWait:
		if view.OrderStatus == veza.OrderDisputed {
			// Disputes take weeks: the row is held and this job ends; the
			// dispute's outcome enqueues the next one (no attempt used).
			held, err := store.HoldPayout(ctx, w.DB.Primary(), t.ID)
			if err != nil || held {
				return err
			}
			return river.JobSnooze(time.Second) // the dispute closed meanwhile: decide again
		}
		return river.JobSnooze(time.Minute)
	case settle.PayoutWaitAccount:
		// Held on its row; account.updated (payouts enabled) enqueues the
		// next job. No attempt used.
		held, err := store.HoldPayoutForAccount(ctx, w.DB.Primary(), t.ID)
		if err != nil || held {
			return err
		}
		return river.JobSnooze(time.Second) // enabled meanwhile: decide again
	case settle.PayoutCloseUnpaid:
		if w.Stripe == nil {
			return river.JobSnooze(15 * time.Minute) // nothing to look at: wait for Stripe Connect
		}
		return w.closeUnpaid(ctx, t, reason)
	case settle.PayoutHold:
		if w.Stripe == nil && (t.RetryCount > 0 || job.Attempt > 1) {
			// An earlier attempt's outcome is unknown (recorded, or its
			// process died between send and record and River rescued
			// the job): Stripe may have paid. Failing the row would say
			// "did not happen" without Stripe's word; a process that can
			// ask decides (no attempt used).
			w.Logger.Warn().Ctx(ctx).Str("transfer_id", t.ID.String()).
				Msg("payout with an unknown outcome waits: Stripe Connect is not enabled on this process")
			return river.JobSnooze(15 * time.Minute)
		}
		return w.fail(ctx, t.ID, reason)
	}

	if job.Attempt >= job.MaxAttempts && t.RetryCount == job.Attempt {
		// This last attempt sent already and lost its answer (it recorded
		// its own number), then waited for the request to settle: Stripe's
		// listing decides now, and nothing is sent again.
		return w.exhausted(ctx, job, t)
	}
	if t.PayoutKeySentAt != nil {
		if age, known := t.KeyAge(*t.PayoutKeySentAt); !known || age > w.Settle.Jobs.KeyReuse() {
			// Stripe may have forgotten this key (or its age is unknown):
			// a new round, which looks up first, once a request whose
			// answer was lost cannot still be executing (a look-up before
			// would miss the transfer it is making, and the new key would
			// pay again; no attempt used).
			if wait := w.unsettled(t); wait > 0 {
				return river.JobSnooze(wait)
			}
			if moved, err := store.StartPayoutRound(ctx, w.DB.Primary(), t.ID, t.PayoutRound); err != nil || !moved {
				return roundMoved(err)
			}
			t.PayoutRound, t.PayoutKeySentAt = t.PayoutRound+1, nil
		}
	}
	if t.PayoutRound > 0 && t.PayoutKeySentAt == nil {
		// A new round starts with a look-up: an earlier round may have paid.
		if found, err := w.lookup(ctx, t); err != nil || found {
			return err
		}
	}
	if t.PayoutKeySentAt == nil {
		if marked, err := store.MarkPayoutKeySent(ctx, w.DB.Primary(), t.ID, t.PayoutRound); err != nil || !marked {
			return roundMoved(err)
		}
	}
	stripeID, err := w.Stripe.CreateTransfer(ctx, stripeconnect.TransferParams{
		Amount:         t.Amount,
		Currency:       t.Currency,
		Destination:    *t.Destination,
		TransferGroup:  t.OrderID.String(),
		IdempotencyKey: t.PayoutKey(),
		Metadata:       map[string]string{"order_id": t.OrderID.String(), "transfer_id": t.ID.String()},
	})
	if err != nil {
		return w.stripeFailed(ctx, job, t, err)
	}
	return w.Settle.RecordPayout(ctx, w.DB, w.Inserter, t, stripeID)
}

// lookup lists the order's transfers at Stripe and, when one was made for
// this row, records it (adopted: completed, and reversed when the order was
// refunded). found is false when Stripe lists none: the provider's word
// that no transfer was made.
func (w *PayoutWorker) lookup(ctx context.Context, t *store.Transfer) (found bool, err error) {
	made, err := w.Stripe.FindTransfers(ctx, t.OrderID.String(), t.ID.String())
	if err != nil {
		return false, wrapConfig(fmt.Errorf("looking up transfer %s at Stripe: %w", t.ID, err))
	}
	if len(made) == 0 {
		return false, nil
	}
	if len(made) > 1 {
		ids := make([]string, len(made))
		for i, m := range made {
			ids[i] = m.ID
		}
		w.Logger.Error().Ctx(ctx).Str("transfer_id", t.ID.String()).Str("order_id", t.OrderID.String()).Strs("stripe_transfer_ids", ids).
			Msg("Stripe holds more than one transfer for one payout: the seller was paid twice; reverse the extra ones at Stripe")
	}
	w.Logger.Warn().Ctx(ctx).Str("transfer_id", t.ID.String()).Str("stripe_transfer_id", made[0].ID).Str("status", string(t.Status)).
		Msg("payout found at Stripe by look-up (an answer was lost): recorded")
	return true, w.Settle.RecordPayout(ctx, w.DB, w.Inserter, t, made[0].ID)
}

// closeUnpaid settles the payout of a refunded order: a transfer Stripe
// made anyway is recorded and reversed; only when Stripe lists none is the
// row closed unpaid.
func (w *PayoutWorker) closeUnpaid(ctx context.Context, t *store.Transfer, reason string) error {
	if wait := w.unsettled(t); wait > 0 {
		// A request whose answer was lost may still be executing at
		// Stripe: a look-up now could miss the transfer it is making, and
		// nothing asks again once the row is closed. No attempt used.
		return river.JobSnooze(wait)
	}
	if found, err := w.lookup(ctx, t); err != nil || found {
		return err
	}
	return w.DB.InTx(ctx, func(tx pgx.Tx) error { return w.Settle.CloseUnpaid(ctx, tx, t.ID, reason) })
}

// unsettled is how long a request of this payout whose answer was lost may
// still be executing at Stripe: the settle time (REVERSAL_KEY_SETTLE, the
// same for any Stripe request our client gave up on) since the row last
// recorded an unknown outcome. updated_at is written right after the
// client gives up, so it is no earlier than the request, and it is read
// on the database's clock (KeyAge; unknown counts as just written). A
// pending row with no retry recorded lost no answer it knows of; a send
// whose process died before recording went out within a job timeout of
// its key's mark, and the caller asks only once that key is older than
// Stripe's reuse window, long settled.
func (w *PayoutWorker) unsettled(t *store.Transfer) time.Duration {
	if t.Status == veza.TransferPending && t.RetryCount == 0 {
		return 0
	}
	age, _ := t.KeyAge(t.UpdatedAt)
	return w.Settle.Jobs.ReversalSettleTime() - age
}

// stripeFailed handles an error from CreateTransfer by what it says:
//   - balance_insufficient (saved under the key) heals with time: a new
//     round after TRANSFER_BALANCE_WAIT, without using an attempt;
//   - an unknown outcome is retried with the same key while attempts last,
//     then read back: the row fails (for an operator) only if Stripe lists
//     no transfer;
//   - a refusal saved under the key fails the row for an operator, whose
//     retry starts a new round.
func (w *PayoutWorker) stripeFailed(ctx context.Context, job *river.Job[jobargs.PayoutArgs], t *store.Transfer, err error) error {
	if d, ok := Paced(err); ok {
		// Not executed (our limit, or Stripe's 429: never saved under the
		// key): not a failure, and no attempt used.
		return river.JobSnooze(d)
	}
	// What the row records about this call is written even when the job's
	// own context ended it (its timeout, a shutdown): Stripe may still
	// execute the request, and closeUnpaid's wait reads this record.
	ctx, cancel := detached(ctx)
	defer cancel()
	msg := stripeconnect.Describe(err)
	switch stripeconnect.Classify(err) {
	case stripeconnect.Balance:
		wait := w.Settle.Jobs.BalanceWait
		if moved, err := store.StartPayoutRound(ctx, w.DB.Primary(), t.ID, t.PayoutRound); err != nil || !moved {
			return roundMoved(err)
		}
		note := "waiting for the platform's available balance (Stripe balance_insufficient); tries again with a new key: " + msg
		if err := store.RecordTransferRetry(ctx, w.DB.Primary(), t.ID, t.RetryCount, w.now().Add(wait), note); err != nil {
			return err
		}
		return river.JobSnooze(wait)
	case stripeconnect.Refused, stripeconnect.Missing:
		if ferr := w.fail(ctx, t.ID, msg); ferr != nil {
			return ferr
		}
		return river.JobCancel(err)
	}
	if stripeconnect.IsReplayedError(err) {
		// An error Stripe saved under this key: it would only repeat. The
		// next attempt looks up, then sends a new key.
		if moved, rerr := store.StartPayoutRound(ctx, w.DB.Primary(), t.ID, t.PayoutRound); rerr != nil || !moved {
			return roundMoved(rerr)
		}
	}
	if job.Attempt < job.MaxAttempts {
		if rerr := store.RecordTransferRetry(ctx, w.DB.Primary(), t.ID, job.Attempt, w.NextRetry(job), msg); rerr != nil {
			return rerr
		}
		return wrapConfig(err)
	}
	// Out of attempts with the outcome unknown. The unknown outcome is on
	// the row first (closeUnpaid's wait and the re-run read it), then the
	// job waits, without using an attempt, until the request cannot still
	// be executing at Stripe: a look-up now could miss the transfer it is
	// making, and a failed row is never looked at again by itself.
	wait := w.Settle.Jobs.ReversalSettleTime() // never 0: unset is the default
	if rerr := store.RecordTransferRetry(ctx, w.DB.Primary(), t.ID, job.Attempt, w.now().Add(wait), msg); rerr != nil {
		return rerr
	}
	return river.JobSnooze(wait)
}

// exhausted ends a payout whose last attempt's outcome is unknown, re-run
// after its settle wait (the row keeps the attempt's message): Stripe's
// listing decides. Found, it is recorded; listed nowhere, the row fails
// for an operator, whose retry looks up first.
func (w *PayoutWorker) exhausted(ctx context.Context, job *river.Job[jobargs.PayoutArgs], t *store.Transfer) error {
	if wait := w.unsettled(t); wait > 0 {
		return river.JobSnooze(wait)
	}
	msg := "the last attempt's outcome was unknown"
	if t.ErrorMessage != nil && *t.ErrorMessage != "" {
		msg = *t.ErrorMessage
	}
	lookCtx, lookCancel := detached(ctx)
	defer lookCancel()
	found, lerr := w.lookup(lookCtx, t)
	if d, ok := Paced(lerr); ok {
		return river.JobSnooze(d) // the look-up was not made: ask again later
	}
	switch {
	case found && lerr == nil:
		return nil
	case lerr != nil:
		// No word from Stripe either way: still unknown, so the row stays
		// pending and the job asks again (no attempt used), at the
		// payouts' longest backoff; the row shows when. A configuration
		// error does not heal by itself: ERROR.
		wait := max(w.Settle.Jobs.ReversalSettleTime(), w.Settle.Jobs.Payout.Delay(job.Attempt-1))
		ev := w.Logger.Warn()
		var cfg *configError
		if errors.As(lerr, &cfg) {
			ev = w.Logger.Error()
		}
		ev.Ctx(ctx).Err(lerr).Str("transfer_id", t.ID.String()).Dur("again_in", wait).
			Msg("payout out of attempts with its outcome unknown, and the look-up at Stripe failed: asking again")
		// A bound of its own (the look-up may have used up its own), and
		// the job snoozes even if the write fails: returning an error on
		// the last attempt would discard it.
		recCtx, recCancel := detached(ctx)
		defer recCancel()
		if rerr := store.RecordTransferRetry(recCtx, w.DB.Primary(), t.ID, job.Attempt, w.now().Add(wait), msg); rerr != nil {
			w.Logger.Warn().Ctx(ctx).Err(rerr).Str("transfer_id", t.ID.String()).Msg("could not write the payout's next look-up on its row")
		}
		return river.JobSnooze(wait)
	}
	msg = "Stripe lists no transfer after " + fmt.Sprint(job.Attempt) + " attempts: " + msg
	failCtx, failCancel := detached(ctx)
	defer failCancel()
	if ferr := w.fail(failCtx, t.ID, msg); ferr != nil {
		return ferr
	}
	return errors.New(msg) // exhausted: River discards the job, the row waits in failed
}

// detached is ctx without its cancel and deadline, bounded by 10 s of its
// own: a step that must run even when the job's context has ended.
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}

// roundMoved: another job moved the row's key round meanwhile; this one
// reads the row again soon, without using an attempt.
func roundMoved(err error) error {
	if err != nil {
		return err
	}
	return river.JobSnooze(time.Second)
}

func (w *PayoutWorker) fail(ctx context.Context, id uuid.UUID, reason string) error {
	return w.DB.InTx(ctx, func(tx pgx.Tx) error { return w.Settle.FailPayout(ctx, tx, id, reason) })
}

// ReversalWorker reverses one transfer in full at Stripe (SPEC §4). Each
// retry reads the transfer back first and then sends a new key: a saved
// error cannot repeat, and a reversal an earlier attempt made is found
// (Stripe refuses to reverse a fully reversed transfer twice).
type ReversalWorker struct {
	river.WorkerDefaults[jobargs.ReversalArgs]
	DB      *store.DB
	Stripe  *stripeconnect.Client // nil when Stripe Connect is disabled
	Settle  *settle.Settler
	Enabled bool // REVERSAL_WORKER_ENABLED
	Logger  zerolog.Logger
	// Now is PayoutWorker.Now: retry times only, never a key's age.
	Now func() time.Time
}

func (w *ReversalWorker) now() time.Time { return clock(w.Now) }

// NextRetry is base·2^retry capped at max; the row mirrors it.
func (w *ReversalWorker) NextRetry(job *river.Job[jobargs.ReversalArgs]) time.Time {
	return w.Settle.Jobs.Reversal.NextRetry(job.Attempt)
}

func (w *ReversalWorker) Work(ctx context.Context, job *river.Job[jobargs.ReversalArgs]) error {
	if !w.Enabled {
		w.Logger.Warn().Ctx(ctx).Str("transfer_id", job.Args.TransferID.String()).Msg("reversal worker disabled (REVERSAL_WORKER_ENABLED=false): job snoozed")
		return river.JobSnooze(15 * time.Minute)
	}
	t, err := store.GetTransfer(ctx, w.DB.Primary(), job.Args.TransferID)
	if errors.Is(err, store.ErrNotFound) {
		return river.JobCancel(fmt.Errorf("transfer %s does not exist", job.Args.TransferID))
	}
	if err != nil {
		return err
	}
	if t.Status != veza.TransferReversalPending {
		return nil // only reversal_pending rows are touched
	}
	if t.NextRetryAt != nil {
		// The row's schedule wins over an early run (a manual retry, the
		// safety-net sweep): wait for it. (One reading of the clock: a
		// negative snooze panics.)
		if wait := t.NextRetryAt.Sub(w.now()); wait > 0 {
			return river.JobSnooze(wait)
		}
	}
	log := w.Logger.With().Ctx(ctx).Str("transfer_id", t.ID.String()).Str("order_id", t.OrderID.String()).Logger()

	if t.StripeTransferID == nil || *t.StripeTransferID == "" {
		log.Error().Msg("reversal impossible: the transfer has no stripe_transfer_id (legacy row); reverse it by hand in Stripe")
		return w.finish(ctx, t.ID, veza.TransferPermanentlyFailed, nil, "no stripe_transfer_id (legacy row): reverse manually in Stripe")
	}
	if w.Stripe == nil {
		log.Warn().Msg("reversal waits: Stripe Connect is not enabled")
		return river.JobSnooze(15 * time.Minute)
	}
	if job.Attempt >= job.MaxAttempts && t.RetryCount == job.Attempt {
		// This last attempt's outcome was unknown (it recorded its own
		// number), and the row's next_retry_at made it wait until the
		// request could not still be executing: Stripe's word decides now,
		// and nothing is sent again.
		return w.exhausted(ctx, job, t, log)
	}
	if t.ReversalRound > 0 || t.ReversalKeySentAt != nil {
		// Not the first attempt: did an earlier one reverse it?
		state, err := w.Stripe.GetTransfer(ctx, *t.StripeTransferID)
		switch {
		case errors.Is(err, stripeconnect.ErrTransferNotFound):
			return w.notFound(ctx, t, log)
		case err != nil:
			return w.retry(ctx, job, t, err, log)
		case state.Reversed || state.AmountReversed >= reversalTarget(t):
			log.Info().Str("stripe_transfer_id", state.ID).Msg("read back: the transfer is reversed at Stripe (an earlier attempt's answer was lost): marking reversed")
			return w.finish(ctx, t.ID, veza.TransferReversed, nil, "")
		}
		if t.ReversalKeySentAt != nil {
			// The earlier key may hold a saved error: a new key, once the
			// earlier request cannot still be executing at Stripe (a new
			// key beside it would reverse twice; no attempt used).
			// An unknown age counts as just sent: the full settle time.
			age, _ := t.KeyAge(*t.ReversalKeySentAt)
			if wait := w.Settle.Jobs.ReversalSettleTime() - age; wait > 0 {
				return river.JobSnooze(wait)
			}
			if moved, err := store.StartReversalRound(ctx, w.DB.Primary(), t.ID, t.ReversalRound); err != nil || !moved {
				return roundMoved(err)
			}
			t.ReversalRound++
		}
	}
	sentAt, marked, err := store.MarkReversalKeySent(ctx, w.DB.Primary(), t.ID, t.ReversalRound)
	if err != nil || !marked {
		return roundMoved(err)
	}
	revID, err := w.Stripe.ReverseTransfer(ctx, *t.StripeTransferID, t.ReversalKey(), t.ReversalAmount)
	switch {
	case err == nil:
		return w.finish(ctx, t.ID, veza.TransferReversed, &revID, "")
	case errors.Is(err, stripeconnect.ErrTransferAlreadyReversed):
		log.Info().Str("stripe_transfer_id", *t.StripeTransferID).Msg("transfer was already reversed at Stripe: marking reversed")
		return w.finish(ctx, t.ID, veza.TransferReversed, nil, "")
	case errors.Is(err, stripeconnect.ErrTransferNotFound):
		return w.notFound(ctx, t, log)
	}
	if d, ok := Paced(err); ok {
		// Not sent, or not executed: the key is unused, and the next
		// attempt sends it (no new round, no settle wait).
		if uerr := store.UnmarkReversalKeySent(context.WithoutCancel(ctx), w.DB.Primary(), t.ID, t.ReversalRound, sentAt); uerr != nil {
			return uerr
		}
		return river.JobSnooze(d)
	}
	switch stripeconnect.Classify(err) {
	case stripeconnect.Balance:
		wait := w.Settle.Jobs.BalanceWait
		note := "waiting for the connected account's balance (Stripe balance_insufficient); tries again with a new key: " + stripeconnect.Describe(err)
		if err := store.RecordTransferRetry(ctx, w.DB.Primary(), t.ID, t.RetryCount, w.now().Add(wait), note); err != nil {
			return err
		}
		return river.JobSnooze(wait)
	case stripeconnect.Refused:
		msg := "Stripe refused the reversal: " + stripeconnect.Describe(err) + "; fix the cause, then POST /admin/transfers/" + t.ID.String() + "/retry"
		if ferr := w.finish(ctx, t.ID, veza.TransferReversalFailed, nil, msg); ferr != nil {
			return ferr
		}
		return river.JobCancel(err)
	}
	return w.retry(ctx, job, t, err, log)
}

// reversalTarget is how much of the transfer its reversal takes back: a
// dispute's share, or all of it.
func reversalTarget(t *store.Transfer) int64 {
	if t.ReversalAmount != nil {
		return *t.ReversalAmount
	}
	return t.Amount
}

// retry mirrors an unknown outcome's retry on the row; out of attempts, the
// reversal waits in reversal_failed for an operator (never closed for good:
// the seller would keep the money).
func (w *ReversalWorker) retry(ctx context.Context, job *river.Job[jobargs.ReversalArgs], t *store.Transfer, err error, log zerolog.Logger) error {
	if d, ok := Paced(err); ok {
		return river.JobSnooze(d) // not executed: no failure, no attempt
	}
	msg := stripeconnect.Describe(err)
	if job.Attempt >= job.MaxAttempts {
		// Out of attempts with the outcome unknown: Stripe may have
		// reversed it, or may still be doing so. The row records the
		// attempt and waits the settle time (no attempt used); then only
		// a read-back decides (exhausted). Failing it now would send an
		// operator to reverse by hand what Stripe reversed already.
		recCtx, cancel := detached(ctx)
		defer cancel()
		if rerr := store.RecordTransferRetry(recCtx, w.DB.Primary(), t.ID, job.Attempt, w.now().Add(w.Settle.Jobs.ReversalSettleTime()), msg); rerr != nil {
			return rerr
		}
		return river.JobSnooze(w.Settle.Jobs.ReversalSettleTime())
	}
	next := w.now().Add(w.Settle.Jobs.Reversal.Delay(t.RetryCount))
	if rerr := store.RecordTransferRetry(ctx, w.DB.Primary(), t.ID, t.RetryCount+1, next, msg); rerr != nil {
		return rerr
	}
	return wrapConfig(err)
}

// notFound: Stripe says (resource_missing) the transfer does not exist.
// exhausted ends a reversal whose last attempt's outcome was unknown,
// re-run after the settle wait: the transfer read at Stripe decides.
// Reversed, the row is; not reversed, it waits in reversal_failed for an
// operator (whose retry reads back first). A read that fails is asked
// again at the reversals' longest backoff, no attempt used.
func (w *ReversalWorker) exhausted(ctx context.Context, job *river.Job[jobargs.ReversalArgs], t *store.Transfer, log zerolog.Logger) error {
	msg := "the last attempt's outcome was unknown"
	if t.ErrorMessage != nil && *t.ErrorMessage != "" {
		msg = *t.ErrorMessage
	}
	lookCtx, cancel := detached(ctx)
	defer cancel()
	state, err := w.Stripe.GetTransfer(lookCtx, *t.StripeTransferID)
	if d, ok := Paced(err); ok {
		return river.JobSnooze(d)
	}
	switch {
	case errors.Is(err, stripeconnect.ErrTransferNotFound):
		return w.notFound(lookCtx, t, log)
	case err != nil:
		wait := max(w.Settle.Jobs.ReversalSettleTime(), w.Settle.Jobs.Reversal.Delay(job.Attempt-1))
		ev := log.Warn()
		var cfg *configError
		if errors.As(err, &cfg) {
			ev = log.Error()
		}
		ev.Err(err).Dur("again_in", wait).Msg("reversal out of attempts with its outcome unknown, and the read at Stripe failed: asking again")
		if rerr := store.RecordTransferRetry(lookCtx, w.DB.Primary(), t.ID, job.Attempt, w.now().Add(wait), msg); rerr != nil {
			log.Warn().Err(rerr).Msg("could not write the reversal's next read on its row")
		}
		return river.JobSnooze(wait)
	case state.Reversed || state.AmountReversed >= reversalTarget(t):
		log.Info().Str("stripe_transfer_id", state.ID).Msg("read back after the last attempt: the transfer is reversed at Stripe: marking reversed")
		return w.finish(lookCtx, t.ID, veza.TransferReversed, nil, "")
	}
	msg = "retries exhausted, not reversed at Stripe after " + fmt.Sprint(job.Attempt) + " attempts: " + msg + "; POST /admin/transfers/" + t.ID.String() + "/retry"
	if ferr := w.finish(lookCtx, t.ID, veza.TransferReversalFailed, nil, msg); ferr != nil {
		return ferr
	}
	return errors.New(msg) // River discards the job: visible to ops with the row
}

func (w *ReversalWorker) notFound(ctx context.Context, t *store.Transfer, log zerolog.Logger) error {
	log.Error().Str("stripe_transfer_id", *t.StripeTransferID).Msg("Stripe does not know this transfer (resource_missing): permanently failed; check it in Stripe's dashboard")
	return w.finish(ctx, t.ID, veza.TransferPermanentlyFailed, nil, "Stripe: transfer not found (resource_missing)")
}

func (w *ReversalWorker) finish(ctx context.Context, id uuid.UUID, to veza.TransferStatus, reversalID *string, msg string) error {
	return w.DB.InTx(ctx, func(tx pgx.Tx) error { return w.Settle.FinishReversal(ctx, tx, id, to, reversalID, msg) })
}

// configError is a provider error that says our configuration is wrong (a
// 404 without resource_missing: a wrong STRIPE_API_BASE or proxy). The job
// retries; the error handler logs it at ERROR.
type configError struct{ err error }

func (e *configError) Error() string {
	return "configuration error (check STRIPE_API_BASE, proxies): " + e.err.Error()
}
func (e *configError) Unwrap() error { return e.err }

func wrapConfig(err error) error {
	if stripeconnect.IsWrongURL(err) {
		return &configError{err: err}
	}
	return err
}
