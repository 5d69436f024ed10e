package settle_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	veza "github.com/veza/backend"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/settle"
	"github.com/veza/backend/store"
	"github.com/veza/backend/store/storetest"
)

func TestStartReversal(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.CompletedOrder(t, b.tx, 1000)
	tr := o.Transfer(t, b.tx, 0, veza.TransferCompleted)
	require.NoError(t, store.RecordTransferRetry(b.ctx, b.tx, tr.ID, 3, tr.CreatedAt, "an older round"))
	require.NoError(t, b.settle.StartReversal(b.ctx, b.tx, b.ins, tr.ID))
	got := b.transfer(t, tr.ID)
	require.Equal(t, veza.TransferReversalPending, got.Status)
	require.Zero(t, got.RetryCount, "a new round")
	require.Nil(t, got.NextRetryAt)
	jobs := b.requireJobs(t, reversalJob())
	require.Equal(t, tr.ID, args[jobargs.ReversalArgs](t, jobs[0]).TransferID)
	require.ErrorIs(t, b.settle.StartReversal(b.ctx, b.tx, b.ins, tr.ID), veza.ErrStaleState, "only a completed transfer")
}

func TestCloseUnpaid(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.CompletedOrder(t, b.tx, 100, 200, 300)
	pending, failed, completed := o.Transfer(t, b.tx, 0, veza.TransferPending), o.Transfer(t, b.tx, 1, veza.TransferFailed), o.Transfer(t, b.tx, 2, veza.TransferCompleted)
	for _, tr := range []*store.Transfer{pending, failed, completed} {
		require.NoError(t, b.settle.CloseUnpaid(b.ctx, b.tx, tr.ID, "not paid"))
	}
	require.Equal(t, veza.TransferPermanentlyFailed, b.transfer(t, pending.ID).Status)
	require.Equal(t, veza.TransferPermanentlyFailed, b.transfer(t, failed.ID).Status)
	require.Equal(t, "not paid", *b.transfer(t, failed.ID).ErrorMessage)
	require.Equal(t, veza.TransferCompleted, b.transfer(t, completed.ID).Status, "paid money is never closed as unpaid")
	b.requireNoJobs(t)
}

func TestRetryTransfer(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.CompletedOrder(t, b.tx, 1000, 500)
	failed, completed := o.Transfer(t, b.tx, 0, veza.TransferFailed), o.Transfer(t, b.tx, 1, veza.TransferCompleted)
	require.NoError(t, store.RecordTransferRetry(b.ctx, b.tx, failed.ID, 5, failed.CreatedAt, "stripe 500"))
	jobID, to, err := b.settle.RetryTransfer(b.ctx, b.tx, b.ins, failed.ID)
	require.NoError(t, err)
	got := b.transfer(t, failed.ID)
	require.Equal(t, veza.TransferPending, got.Status)
	require.Equal(t, veza.TransferPending, to)
	require.Zero(t, got.RetryCount)
	jobs := b.requireJobs(t, payoutJob())
	require.Equal(t, jobID, jobs[0].ID)
	require.Equal(t, failed.ID, args[jobargs.PayoutArgs](t, jobs[0]).TransferID)

	_, _, err = b.settle.RetryTransfer(b.ctx, b.tx, b.ins, completed.ID)
	require.True(t, veza.IsKind(err, veza.KindConflict), "%v", err)
	require.ErrorContains(t, err, "this one is completed")
	require.Equal(t, 1, b.transfer(t, failed.ID).PayoutRound, "a new round: the job looks up before a new key")
	_, _, err = b.settle.RetryTransfer(b.ctx, b.tx, b.ins, o.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestFailPayoutAndFinishReversalLeaveMovedRowsAlone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.CompletedOrder(t, b.tx, 1000, 500)
	pending, reversing := o.Transfer(t, b.tx, 0, veza.TransferPending), o.Transfer(t, b.tx, 1, veza.TransferReversalPending)
	require.NoError(t, b.settle.FailPayout(b.ctx, b.tx, pending.ID, "no account"))
	require.Equal(t, veza.TransferFailed, b.transfer(t, pending.ID).Status)
	require.NoError(t, b.settle.FailPayout(b.ctx, b.tx, pending.ID, "again"), "stale: nothing to do")
	require.Equal(t, "no account", *b.transfer(t, pending.ID).ErrorMessage)

	rev := "trr_1"
	require.NoError(t, b.settle.FinishReversal(b.ctx, b.tx, reversing.ID, veza.TransferReversed, &rev, ""))
	require.Equal(t, veza.TransferReversed, b.transfer(t, reversing.ID).Status)
	require.NoError(t, b.settle.FinishReversal(b.ctx, b.tx, reversing.ID, veza.TransferPermanentlyFailed, nil, "late"))
	require.Equal(t, "trr_1", *b.transfer(t, reversing.ID).StripeReversalID, "terminal: never moved again")
	b.requireNoJobs(t)
}

func TestNextPayoutStep(t *testing.T) {
	t.Parallel()
	account := "acct_1"
	for _, tc := range []struct {
		name     string
		transfer veza.TransferStatus
		order    veza.OrderStatus
		account  *string
		stripe   bool
		want     settle.PayoutStep
		reason   string
	}{
		{"send", veza.TransferPending, veza.OrderCompleted, &account, true, settle.PayoutSend, ""},
		{"paid already", veza.TransferCompleted, veza.OrderCompleted, &account, true, settle.PayoutDone, ""},
		{"refund in flight", veza.TransferPending, veza.OrderRefundPending, &account, true, settle.PayoutWait, ""},
		{"refunded first", veza.TransferPending, veza.OrderRefunded, &account, true, settle.PayoutCloseUnpaid, settle.ReasonRefundedBeforePayout},
		{"no account", veza.TransferPending, veza.OrderCompleted, nil, true, settle.PayoutHold, "no Stripe Connect account"},
		{"failed, then refunded", veza.TransferFailed, veza.OrderRefunded, &account, true, settle.PayoutCloseUnpaid, settle.ReasonRefundedBeforePayout},
		{"failed", veza.TransferFailed, veza.OrderCompleted, &account, true, settle.PayoutDone, ""},
		{"stripe off", veza.TransferPending, veza.OrderCompleted, &account, false, settle.PayoutHold, "STRIPE_CONNECT_ENABLED"},
		{"disputed", veza.TransferPending, veza.OrderDisputed, &account, true, settle.PayoutWait, ""},
		{"charged back first", veza.TransferPending, veza.OrderChargedBack, &account, true, settle.PayoutCloseUnpaid, settle.ReasonChargedBackBeforePayout},
		{"failed, then charged back", veza.TransferFailed, veza.OrderChargedBack, &account, true, settle.PayoutCloseUnpaid, settle.ReasonChargedBackBeforePayout},
		{"paid, then charged back", veza.TransferCompleted, veza.OrderChargedBack, &account, true, settle.PayoutDone, ""},
	} {
		v := &store.PayoutView{Transfer: &store.Transfer{Status: tc.transfer, Destination: tc.account}, OrderStatus: tc.order}
		step, reason := settle.NextPayoutStep(v, tc.stripe)
		require.Equal(t, tc.want, step, tc.name)
		require.Contains(t, reason, tc.reason, tc.name)
	}
}

// RecordPayout runs outside a transaction (its common case is one
// statement), so its test commits its rows on a database of its own.
func TestRecordPayout(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var o *storetest.Order
	var paid, raced *store.Transfer
	require.NoError(t, b.db.InTx(b.ctx, func(tx pgx.Tx) error {
		o = storetest.CompletedOrder(t, tx, 1000, 500)
		paid, raced = o.Transfer(t, tx, 0, veza.TransferPending), o.Transfer(t, tx, 1, veza.TransferPending)
		return nil
	}))
	require.NoError(t, b.settle.RecordPayout(b.ctx, b.db, b.ins, paid, "tr_paid"))
	got, err := store.GetTransfer(b.ctx, b.db.Primary(), paid.ID)
	require.NoError(t, err)
	require.Equal(t, veza.TransferCompleted, got.Status)
	require.Equal(t, "tr_paid", *got.StripeTransferID)

	// The refund settled while Stripe was paying: the money Stripe moved is
	// recorded and its reversal started, in one transaction.
	require.NoError(t, b.db.InTx(b.ctx, func(tx pgx.Tx) error {
		o.Move(t, tx, veza.OrderCompleted, veza.OrderRefundPending)
		o.Move(t, tx, veza.OrderRefundPending, veza.OrderRefunded)
		return nil
	}))
	require.NoError(t, b.settle.RecordPayout(b.ctx, b.db, b.ins, raced, "tr_raced"))
	got, err = store.GetTransfer(b.ctx, b.db.Primary(), raced.ID)
	require.NoError(t, err)
	require.Equal(t, veza.TransferReversalPending, got.Status)
	require.Equal(t, "tr_raced", *got.StripeTransferID)
	var kind string
	var maxAttempts int
	require.NoError(t, b.db.Primary().QueryRow(context.Background(), `SELECT kind, max_attempts FROM river_job WHERE args->>'transfer_id' = $1`, raced.ID.String()).Scan(&kind, &maxAttempts))
	require.Equal(t, jobargs.ReversalArgs{}.Kind(), kind)
	require.Equal(t, reversalAttempts, maxAttempts)
}

func TestRetryAReversalThatRanOut(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.CompletedOrder(t, b.tx, 1000)
	tr := o.Transfer(t, b.tx, 0, veza.TransferReversalPending)
	require.NoError(t, b.settle.FinishReversal(b.ctx, b.tx, tr.ID, veza.TransferReversalFailed, nil, "retries exhausted"))
	_, to, err := b.settle.RetryTransfer(b.ctx, b.tx, b.ins, tr.ID)
	require.NoError(t, err)
	got := b.transfer(t, tr.ID)
	require.Equal(t, veza.TransferReversalPending, got.Status)
	require.Equal(t, veza.TransferReversalPending, to, "the status it moved to")
	require.Equal(t, 1, got.ReversalRound, "a new round: read back, then a new key")
	b.requireJobs(t, reversalJob())
}

func TestBulkRetryAfterAnOutage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.CompletedOrder(t, b.tx, 100, 200, 300)
	o.Transfer(t, b.tx, 0, veza.TransferFailed)
	o.Transfer(t, b.tx, 1, veza.TransferFailed)
	o.Transfer(t, b.tx, 2, veza.TransferCompleted)
	n, err := b.settle.RetryTransfers(b.ctx, b.tx, b.ins, veza.TransferFailed, 100)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	b.requireJobs(t, payoutJob(), payoutJob())
}

// A transfer keeps the account its seller had when the order was paid.
func TestDestinationIsFrozenWhenPlanned(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.CompletedOrder(t, b.tx, 1000)
	tr := o.Transfer(t, b.tx, 0, veza.TransferPending)
	require.Equal(t, o.Sellers[0].StripeAccountID, tr.Destination)
	_, err := store.SetPayoutAccount(b.ctx, b.tx, o.Sellers[0].ID, "acct_changed_later")
	require.NoError(t, err)
	require.Equal(t, *o.Sellers[0].StripeAccountID, *b.transfer(t, tr.ID).Destination)
}
