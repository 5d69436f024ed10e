package settle_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	veza "github.com/veza/backend"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/mail"
	"github.com/veza/backend/store"
	"github.com/veza/backend/store/storetest"
)

func TestCompletePaidOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.PendingOrder(t, b.tx, 1000, 499)

	order, err := b.settle.CompletePaidOrder(b.ctx, b.tx, b.ins, paid(o).Object)
	require.NoError(t, err)
	require.Equal(t, veza.OrderCompleted, b.order(t, o.ID).Status)
	require.Equal(t, "succeeded", *b.order(t, o.ID).PaymentStatus)
	require.ElementsMatch(t, o.Items, order.Items)

	ts := b.transfers(t, o.ID)
	require.Len(t, ts, 2)
	// net and fee per seller: 10% of 499 is rounded down, for the seller.
	split := map[uuid.UUID][2]int64{o.Sellers[0].ID: {900, 100}, o.Sellers[1].ID: {450, 49}}
	for _, tr := range ts {
		require.Equal(t, veza.TransferPending, tr.Status)
		require.Equal(t, split[tr.SellerID], [2]int64{tr.Amount, tr.PlatformFee})
	}
	jobs := b.requireJobs(t, emailJob(), payoutJob(), payoutJob())
	require.Equal(t, mail.TemplatePurchaseReceipt, args[jobargs.EmailArgs](t, jobs[0]).Template)
	require.ElementsMatch(t, []any{ts[0].ID, ts[1].ID}, []any{args[jobargs.PayoutArgs](t, jobs[1]).TransferID, args[jobargs.PayoutArgs](t, jobs[2]).TransferID})
}

func TestCompletePaidOrderRefusesAnythingButTheOrdersAmount(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.PendingOrder(t, b.tx, 1000)
	short := paid(o).Object
	short.Amount--
	_, err := b.settle.CompletePaidOrder(b.ctx, b.tx, b.ins, short)
	require.ErrorIs(t, err, veza.ErrStaleState)
	other := paid(o).Object
	other.Currency = "USD"
	_, err = b.settle.CompletePaidOrder(b.ctx, b.tx, b.ins, other)
	require.ErrorIs(t, err, veza.ErrStaleState)
	require.Equal(t, veza.OrderPending, b.order(t, o.ID).Status)
	require.Empty(t, b.transfers(t, o.ID))
	b.requireNoJobs(t)
}

func TestCompletePaidOrderOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.PendingOrder(t, b.tx, 1000)
	_, err := b.settle.CompletePaidOrder(b.ctx, b.tx, b.ins, paid(o).Object)
	require.NoError(t, err)
	_, err = b.settle.CompletePaidOrder(b.ctx, b.tx, b.ins, paid(o).Object)
	require.ErrorIs(t, err, veza.ErrStaleState, "a replay changes nothing")
	require.Len(t, b.transfers(t, o.ID), 1)
	b.requireJobs(t, emailJob(), payoutJob())
}

func TestPlatformKeepingEverythingMakesNoTransfer(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.settle.FeeBPS = 10_000
	o := storetest.PendingOrder(t, b.tx, 1000)
	_, err := b.settle.CompletePaidOrder(b.ctx, b.tx, b.ins, paid(o).Object)
	require.NoError(t, err)
	require.Empty(t, b.transfers(t, o.ID))
	b.requireJobs(t, emailJob())
}

func TestPaymentEventsCloseAPendingOrder(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		event, status string
		want          veza.OrderStatus
	}{
		{"payment_failed", "failed", veza.OrderFailed},
		{"payment_cancelled", "cancelled", veza.OrderCancelled},
		{"payment_expired", "expired", veza.OrderExpired},
	} {
		t.Run(tc.event, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			o := storetest.PendingOrder(t, b.tx, 1000)
			require.Equal(t, store.ResultOK, b.apply(t, event(tc.event, o.Order, tc.status)))
			require.Equal(t, tc.want, b.order(t, o.ID).Status)
			require.Equal(t, store.ResultSkipped, b.apply(t, event(tc.event, o.Order, tc.status)), "a replay")
			b.requireNoJobs(t)
		})
	}
}

// Hyperswitch lets a failed payment be retried on the same payment_id.
func TestSuccessAfterFailureCompletesTheOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.PendingOrder(t, b.tx, 1000)
	require.Equal(t, store.ResultOK, b.apply(t, event("payment_failed", o.Order, "failed")))
	require.Equal(t, store.ResultOK, b.apply(t, paid(o)))
	require.Equal(t, veza.OrderCompleted, b.order(t, o.ID).Status)
	require.Len(t, b.transfers(t, o.ID), 1)
	b.requireJobs(t, emailJob(), payoutJob())
	require.Contains(t, b.logs.String(), "payment succeeded after the order was failed")
}

// Money taken for an order closed meanwhile goes back to the buyer.
func TestSuccessOnAClosedOrderIsRefunded(t *testing.T) {
	t.Parallel()
	for _, closed := range []string{"payment_cancelled", "payment_expired"} {
		t.Run(closed, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			o := storetest.PendingOrder(t, b.tx, 1000)
			require.Equal(t, store.ResultOK, b.apply(t, event(closed, o.Order, "x")))
			was := b.order(t, o.ID).Status
			require.Equal(t, store.ResultOK, b.apply(t, paid(o)))
			require.Equal(t, was, b.order(t, o.ID).Status, "terminal: it stays closed")
			refund := b.onlyRefund(t, o.ID)
			require.True(t, refund.Automatic)
			require.EqualValues(t, 1000, refund.Amount)
			b.requireJobs(t, rivertestJob(&jobargs.SubmitRefundArgs{}, jobargs.QueueHyperswitch))
			require.Equal(t, store.ResultSkipped, b.apply(t, paid(o)), "a replay refunds nothing more")
			require.Contains(t, b.logs.String(), "refunding it automatically")
		})
	}
}

// An automatic refund the provider refused asked an operator to return the
// money by hand (FailRefund's ERROR): the same money arriving again (a
// redelivery under another event id, a reconcile feed) makes no second
// automatic refund, which could pay the buyer twice.
func TestFailedAutomaticRefundIsNotMadeAgain(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.PendingOrder(t, b.tx, 1000)
	require.Equal(t, store.ResultOK, b.apply(t, event("payment_cancelled", o.Order, "cancelled")))
	require.Equal(t, store.ResultOK, b.apply(t, paid(o)))
	refund := b.onlyRefund(t, o.ID)
	_, err := b.tx.Exec(b.ctx, `UPDATE refunds SET status = 'failed' WHERE id = $1`, refund.ID)
	require.NoError(t, err)
	require.Equal(t, store.ResultSkipped, b.apply(t, paid(o)))
	require.Equal(t, refund.ID, b.onlyRefund(t, o.ID).ID, "no second automatic refund")
}

// A capture of part of the amount: not completed, the part refunded.
func TestPartialCaptureFailsTheOrderAndRefundsThePart(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.PendingOrder(t, b.tx, 1000)
	ev := event("payment_captured", o.Order, "partially_captured")
	received := int64(600)
	ev.Object.AmountReceived = &received
	require.Equal(t, store.ResultOK, b.apply(t, ev))
	require.Equal(t, veza.OrderFailed, b.order(t, o.ID).Status)
	require.Empty(t, b.transfers(t, o.ID), "no seller is paid")
	require.EqualValues(t, 600, b.onlyRefund(t, o.ID).Amount)
	b.requireJobs(t, rivertestJob(&jobargs.SubmitRefundArgs{}, jobargs.QueueHyperswitch))
}

// A cancel after capture gave the money back: like a full refund.
func TestCancelAfterCaptureTakesThePayoutsBack(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.CompletedOrder(t, b.tx, 1000, 500)
	paidOut, notYet := o.Transfer(t, b.tx, 0, veza.TransferCompleted), o.Transfer(t, b.tx, 1, veza.TransferPending)
	require.Equal(t, store.ResultOK, b.apply(t, event("payment_cancelled_post_capture", o.Order, "cancelled_post_capture")))
	require.Equal(t, veza.OrderRefunded, b.order(t, o.ID).Status)
	require.Equal(t, veza.TransferReversalPending, b.transfer(t, paidOut.ID).Status)
	jobs := b.requireJobs(t, reversalJob(), payoutJob())
	require.Equal(t, notYet.ID, args[jobargs.PayoutArgs](t, jobs[1]).TransferID, "it looks at Stripe before closing unpaid")
}

func TestPaymentEventsThatChangeNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.PendingOrder(t, b.tx, 1000)

	require.Equal(t, store.ResultSkipped, b.apply(t, event("payment_processing", o.Order, "processing")))
	require.Equal(t, "processing", *b.order(t, o.ID).PaymentStatus, "the PSP status is recorded")

	unknown := paid(o)
	unknown.Object.PaymentID = "pay_not_ours"
	require.Equal(t, store.ResultSkipped, b.apply(t, unknown))

	require.Equal(t, store.ResultSkipped, b.apply(t, event("mandate_revoked", o.Order, "")))

	require.Equal(t, veza.OrderPending, b.order(t, o.ID).Status)
	b.requireNoJobs(t)
}

// A payment of another amount than the order's is not the order's: the
// order fails and the money goes back.
func TestPaymentOfAnotherAmountIsRefunded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.PendingOrder(t, b.tx, 1000)
	short := paid(o)
	short.Object.Amount--
	require.Equal(t, store.ResultOK, b.apply(t, short))
	require.Equal(t, veza.OrderFailed, b.order(t, o.ID).Status)
	require.EqualValues(t, 999, b.onlyRefund(t, o.ID).Amount)
	require.Contains(t, b.logs.String(), "payment the order does not account for")
	require.Empty(t, b.transfers(t, o.ID))
}

func TestPaymentSucceededOnACompletedOrderIsAReplay(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.CompletedOrder(t, b.tx, 1000)
	other := paid(o)
	other.Object.Amount++
	require.Equal(t, store.ResultSkipped, b.apply(t, other), "not a mismatch: the order moved on")
	require.NotContains(t, b.logs.String(), "does not match")
	b.requireNoJobs(t)
}

// An expired order's Idempotency-Key may make a new order.
func TestExpiryReleasesTheOrdersKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.PendingOrder(t, b.tx, 1000)
	_, _, err := store.ClaimIdempotencyKey(b.ctx, b.tx, o.Buyer.ID, "k", []byte("h"))
	require.NoError(t, err)
	require.NoError(t, store.SetIdempotencyOrder(b.ctx, b.tx, o.Buyer.ID, "k", o.ID))
	require.Equal(t, store.ResultOK, b.apply(t, event("payment_expired", o.Order, "expired")))
	rec, claimed, err := store.ClaimIdempotencyKey(b.ctx, b.tx, o.Buyer.ID, "k", []byte("other"))
	require.NoError(t, err)
	require.True(t, claimed, "released: %+v", rec)
}

// A capture of part of the amount that may still grow is not final; a
// success after a partial capture was refunded cannot complete the order.
func TestPartialCaptureNeverCompletesOnTopOfItsRefund(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.PendingOrder(t, b.tx, 1000)
	part := int64(400)
	more := event("payment_captured", o.Order, "partially_captured_and_capturable")
	more.Object.AmountReceived = &part
	require.Equal(t, store.ResultSkipped, b.apply(t, more))
	require.Equal(t, veza.OrderPending, b.order(t, o.ID).Status, "more may be captured")

	final := event("payment_captured", o.Order, "partially_captured")
	final.Object.AmountReceived = &part
	require.Equal(t, store.ResultOK, b.apply(t, final))
	require.Equal(t, store.ResultSkipped, b.apply(t, paid(o)))
	require.Equal(t, veza.OrderFailed, b.order(t, o.ID).Status)
	require.Empty(t, b.transfers(t, o.ID), "no seller paid on top of the refund")
	require.Contains(t, b.logs.String(), "settle it by hand")
}

// Events are not ordered: a late processing or failed event after the
// cancel after capture must not hide it, or the success that follows
// starts a refund Hyperswitch refuses (and an ERROR asking for a manual
// payment the buyer does not need).
func TestLateEventsAfterACancelAfterCaptureRefundNothing(t *testing.T) {
	t.Parallel()
	for _, late := range lateEvents {
		t.Run(late.status, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			o := storetest.PendingOrder(t, b.tx, 1000)
			require.Equal(t, store.ResultOK, b.apply(t, event("payment_cancelled_post_capture", o.Order, "cancelled_post_capture")))
			b.apply(t, event(late.typ, o.Order, late.status))
			require.Equal(t, "cancelled_post_capture", *b.order(t, o.ID).PaymentStatus)
			require.Equal(t, store.ResultSkipped, b.apply(t, paid(o)))
			require.Equal(t, veza.OrderCancelled, b.order(t, o.ID).Status)
			refunds, err := store.OrderRefunds(b.ctx, b.tx, o.ID)
			require.NoError(t, err)
			require.Empty(t, refunds)
			b.requireNoJobs(t)
		})
	}
}

// lateEvents arrive after the payment's last word (events are not
// ordered): intermediate statuses, and an earlier attempt's failure.
var lateEvents = []struct{ typ, status string }{
	{"payment_processing", "processing"},
	{"payment_processing", "conflicted"},
	{"action_required", "requires_customer_action"},
	{"payment_captured", "partially_captured_and_capturable"},
	{"payment_authorized", "partially_authorized_and_requires_capture"},
	{"payment_failed", "failed"},
	{"payment_expired", "expired"},
}

// A late intermediate status, or the failure of an earlier attempt (a
// manual retry then succeeded), does not overwrite the payment's last word.
func TestLateEventsDoNotOverwriteSuccess(t *testing.T) {
	t.Parallel()
	for _, late := range lateEvents {
		t.Run(late.status, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			o := storetest.PendingOrder(t, b.tx, 1000)
			require.Equal(t, store.ResultOK, b.apply(t, paid(o)))
			require.Equal(t, "succeeded", *b.order(t, o.ID).PaymentStatus)
			b.apply(t, event(late.typ, o.Order, late.status))
			got := b.order(t, o.ID)
			require.Equal(t, veza.OrderCompleted, got.Status)
			require.Equal(t, "succeeded", *got.PaymentStatus)
		})
	}
}

// The same status again writes nothing: updated_at keeps its time (the
// failed-order recheck's 30-day window is counted from it, and a repeated
// feed must not renew it for ever).
func TestRepeatedStatusKeepsUpdatedAt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.PendingOrder(t, b.tx, 1000)
	require.Equal(t, store.ResultOK, b.apply(t, event("payment_failed", o.Order, "failed")))
	_, err := b.tx.Exec(b.ctx, `UPDATE orders SET updated_at = now() - interval '20 days' WHERE id = $1`, o.ID)
	require.NoError(t, err)
	before := b.order(t, o.ID).UpdatedAt
	b.apply(t, event("payment_failed", o.Order, "failed"))
	got := b.order(t, o.ID)
	require.Equal(t, veza.OrderFailed, got.Status)
	require.True(t, before.Equal(got.UpdatedAt), "updated_at moved from %s to %s", before, got.UpdatedAt)
}

// A cancel after capture applied before the payment's success (two event
// jobs racing for the order, or reconcile reading the payment first): the
// money went back to the buyer already, so the success that follows asks
// for no automatic refund (Hyperswitch refuses a refund of a cancelled
// payment, and the refusal would send operators to pay the buyer by
// hand), and the cancel stays the payment's recorded status.
func TestSuccessAfterACancelAfterCaptureRefundsNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.PendingOrder(t, b.tx, 1000)
	require.Equal(t, store.ResultOK, b.apply(t, event("payment_cancelled_post_capture", o.Order, "cancelled_post_capture")))
	require.Equal(t, veza.OrderCancelled, b.order(t, o.ID).Status)
	require.Equal(t, store.ResultSkipped, b.apply(t, paid(o)))
	got := b.order(t, o.ID)
	require.Equal(t, veza.OrderCancelled, got.Status)
	require.Equal(t, "cancelled_post_capture", *got.PaymentStatus)
	refunds, err := store.OrderRefunds(b.ctx, b.tx, o.ID)
	require.NoError(t, err)
	require.Empty(t, refunds)
	b.requireNoJobs(t)
}
