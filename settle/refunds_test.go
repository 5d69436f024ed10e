package settle_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	veza "github.com/veza/backend"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/mail"
	"github.com/veza/backend/settle"
	"github.com/veza/backend/store"
	"github.com/veza/backend/store/storetest"
)

func TestRequestRefund(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.CompletedOrder(t, b.tx, 1000)
	reason := "changed my mind"
	refund, err := b.settle.RequestRefund(b.ctx, b.tx, b.ins, settle.RefundRequest{OrderID: o.ID, BuyerID: o.Buyer.ID, Reason: &reason})
	require.NoError(t, err)
	require.Equal(t, veza.RefundPending, refund.Status)
	require.Equal(t, o.Amount, refund.Amount)
	require.Nil(t, refund.HyperswitchRefundID, "phase 2 submits it")
	require.Equal(t, veza.OrderRefundPending, b.order(t, o.ID).Status)
	jobs := b.requireJobs(t, rivertestJob(&jobargs.SubmitRefundArgs{}, jobargs.QueueHyperswitch))
	require.Equal(t, refund.ID, args[jobargs.SubmitRefundArgs](t, jobs[0]).RefundID)

	_, err = b.settle.RequestRefund(b.ctx, b.tx, b.ins, settle.RefundRequest{OrderID: o.ID, BuyerID: o.Buyer.ID})
	require.ErrorIs(t, err, settle.ErrNotRefundable, "a second request finds it refund_pending")
}

func TestRequestRefundOfAnotherBuyersOrderIsNotFound(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.CompletedOrder(t, b.tx, 1000)
	stranger := storetest.User(t, b.tx, store.RoleUser)
	_, err := b.settle.RequestRefund(b.ctx, b.tx, b.ins, settle.RefundRequest{OrderID: o.ID, BuyerID: stranger.ID})
	require.ErrorIs(t, err, settle.ErrOrderNotFound)
	pending := storetest.PendingOrder(t, b.tx, 1000)
	_, err = b.settle.RequestRefund(b.ctx, b.tx, b.ins, settle.RefundRequest{OrderID: pending.ID, BuyerID: pending.Buyer.ID})
	require.ErrorIs(t, err, settle.ErrNotRefundable)
	require.Equal(t, veza.OrderCompleted, b.order(t, o.ID).Status)
	b.requireNoJobs(t)
}

// refunded is a completed order of three sellers whose transfers are
// completed, failed and pending, with a pending refund.
func (b *testBundle) refunded(t *testing.T) (*storetest.Order, []*store.Transfer, *store.Refund) {
	t.Helper()
	o := storetest.CompletedOrder(t, b.tx, 1000, 700, 500)
	ts := []*store.Transfer{
		o.Transfer(t, b.tx, 0, veza.TransferCompleted),
		o.Transfer(t, b.tx, 1, veza.TransferFailed),
		o.Transfer(t, b.tx, 2, veza.TransferPending),
	}
	refund, err := store.CreateRefund(b.ctx, b.tx, o.ID, o.Amount, o.Currency, nil)
	require.NoError(t, err)
	o.Move(t, b.tx, veza.OrderCompleted, veza.OrderRefundPending)
	return o, ts, refund
}

func TestSettleRefund(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o, ts, refund := b.refunded(t)
	require.NoError(t, b.settle.SettleRefund(b.ctx, b.tx, b.ins, refund))
	require.Equal(t, veza.RefundSucceeded, b.refund(t, refund.ID).Status)
	require.Equal(t, veza.OrderRefunded, b.order(t, o.ID).Status)
	require.Equal(t, veza.TransferReversalPending, b.transfer(t, ts[0].ID).Status, "paid: taken back")
	// Failed and pending payouts may have been made (an answer lost): their
	// payout job looks at Stripe before anything is closed unpaid.
	require.Equal(t, veza.TransferFailed, b.transfer(t, ts[1].ID).Status)
	require.Equal(t, veza.TransferPending, b.transfer(t, ts[2].ID).Status)
	jobs := b.requireJobs(t, reversalJob(), payoutJob(), payoutJob(), emailJob())
	require.Equal(t, ts[0].ID, args[jobargs.ReversalArgs](t, jobs[0]).TransferID)
	require.ElementsMatch(t, []any{ts[1].ID, ts[2].ID}, []any{args[jobargs.PayoutArgs](t, jobs[1]).TransferID, args[jobargs.PayoutArgs](t, jobs[2]).TransferID})
	email := args[jobargs.EmailArgs](t, jobs[3])
	require.Equal(t, mail.TemplateRefundConfirmation, email.Template)
	require.Equal(t, refund.ID, *email.RefundID)
}

func TestFailRefund(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o, ts, refund := b.refunded(t)
	require.NoError(t, b.settle.FailRefund(b.ctx, b.tx, b.ins, refund, "card closed"))
	got := b.refund(t, refund.ID)
	require.Equal(t, veza.RefundFailed, got.Status)
	require.Equal(t, "card closed", *got.ErrorMessage)
	require.Equal(t, veza.OrderCompleted, b.order(t, o.ID).Status, "rolled back")
	require.Equal(t, veza.TransferCompleted, b.transfer(t, ts[0].ID).Status)
	require.ErrorIs(t, b.settle.FailRefund(b.ctx, b.tx, b.ins, refund, "again"), veza.ErrStaleState)
	b.requireNoJobs(t)
}

func TestRefundEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o, _, refund := b.refunded(t)
	ev := refundEvent("refund_succeeded", o.Order, refund, "succeeded")
	require.Equal(t, store.ResultOK, b.apply(t, ev))
	require.Equal(t, store.RefundIDFor(refund.ID), *b.refund(t, refund.ID).HyperswitchRefundID, "recorded when the webhook beats the submit job")
	require.Equal(t, veza.OrderRefunded, b.order(t, o.ID).Status)

	ev.EventType, ev.Object.Status = "refund_failed", "failed"
	require.Equal(t, store.ResultSkipped, b.apply(t, ev), "terminal: a late contrary event changes nothing")
	require.Equal(t, veza.RefundSucceeded, b.refund(t, refund.ID).Status)

	ev.Object.RefundID = "ref_someone_elses"
	require.Equal(t, store.ResultSkipped, b.apply(t, ev))
	b.requireJobs(t, reversalJob(), payoutJob(), payoutJob(), emailJob())
}

func TestRefundFailedEventKeepsTheMessage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o, _, refund := b.refunded(t)
	require.Equal(t, store.ResultOK, b.apply(t, refundEvent("refund_failed", o.Order, refund, "failed")))
	require.Equal(t, "refund failed at the payment provider (no message)", *b.refund(t, refund.ID).ErrorMessage)
	require.Equal(t, veza.OrderCompleted, b.order(t, o.ID).Status)
	b.requireNoJobs(t)
}

// A refund we had failed (an orphan, a lost answer) that the provider
// reports succeeded is repaired, loudly: the order is refunded after all.
func TestLateRefundSuccessIsRepaired(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o, ts, refund := b.refunded(t)
	require.NoError(t, b.settle.FailRefund(b.ctx, b.tx, b.ins, refund, "orphan"))
	require.Equal(t, veza.OrderCompleted, b.order(t, o.ID).Status)
	require.Equal(t, store.ResultOK, b.apply(t, refundEvent("refund_succeeded", o.Order, refund, "succeeded")))
	require.Equal(t, veza.RefundSucceeded, b.refund(t, refund.ID).Status)
	require.Equal(t, veza.OrderRefunded, b.order(t, o.ID).Status)
	require.Equal(t, veza.TransferReversalPending, b.transfer(t, ts[0].ID).Status)
	require.Contains(t, b.logs.String(), "a refund we had marked failed succeeded")
}

// An automatic refund the provider refuses leaves the order as it was and
// tells ops to return the money by hand.
func TestAutomaticRefundFailureNeedsAHuman(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.PendingOrder(t, b.tx, 1000)
	o.Move(t, b.tx, veza.OrderPending, veza.OrderCancelled)
	refund, err := store.CreateAutomaticRefund(b.ctx, b.tx, o.ID, 1000, "EUR", "automatic: test")
	require.NoError(t, err)
	require.Equal(t, store.ResultOK, b.apply(t, refundEvent("refund_failed", o.Order, refund, "failed")))
	require.Equal(t, veza.RefundFailed, b.refund(t, refund.ID).Status)
	require.Equal(t, veza.OrderCancelled, b.order(t, o.ID).Status)
	require.Contains(t, b.logs.String(), "return the money to the buyer by hand")
}

// A buyer's refund that fails after the order's money went back another way
// (a cancel after capture) closes without moving the order.
func TestRefundFailureAfterTheOrderMovedOn(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o, _, refund := b.refunded(t)
	require.Equal(t, store.ResultOK, b.apply(t, event("payment_cancelled_post_capture", o.Order, "cancelled_post_capture")))
	require.Equal(t, veza.OrderRefunded, b.order(t, o.ID).Status)
	require.Equal(t, store.ResultOK, b.apply(t, refundEvent("refund_failed", o.Order, refund, "failed")))
	require.Equal(t, veza.RefundFailed, b.refund(t, refund.ID).Status)
	require.Equal(t, veza.OrderRefunded, b.order(t, o.ID).Status)
}

// A refund we had failed lands after the order was charged back: the
// buyer has the money twice, the sellers gave back only the disputed
// share, and reversed rows do not move again. Unpaid payouts are closed;
// the rest of the paid ones is an operator's, said so at ERROR.
func TestLateRefundSuccessOnAChargedBackOrderNeedsAHuman(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o, ts, refund := b.refunded(t)
	require.NoError(t, b.settle.FailRefund(b.ctx, b.tx, b.ins, refund, "orphan"))
	require.Equal(t, store.ResultOK, b.apply(t, disputeEvent("dispute_opened", o.Order, "dp_1", 300)))
	require.Equal(t, store.ResultOK, b.apply(t, disputeEvent("dispute_lost", o.Order, "dp_1", 300)))
	require.Equal(t, veza.OrderChargedBack, b.order(t, o.ID).Status)
	for _, unpaid := range ts[1:] {
		require.Less(t, *b.transfer(t, unpaid.ID).ReversalAmount, unpaid.Amount, "a share of the dispute")
	}
	require.Equal(t, store.ResultOK, b.apply(t, refundEvent("refund_succeeded", o.Order, refund, "succeeded")))
	require.Equal(t, veza.RefundSucceeded, b.refund(t, refund.ID).Status)
	require.Equal(t, veza.OrderChargedBack, b.order(t, o.ID).Status)
	for _, unpaid := range ts[1:] {
		// Paid now, the seller would keep all but the disputed share of
		// money the buyer has back.
		require.Equal(t, unpaid.Amount, *b.transfer(t, unpaid.ID).ReversalAmount, "the buyer has it all back: nothing of it is paid")
		require.Equal(t, settle.PayoutCloseUnpaid, b.payoutStep(t, unpaid.ID))
	}
	logs := b.logs.String()
	require.Contains(t, logs, "take the rest of the paid ones back by hand")
	require.NotContains(t, logs, "the order is refunded and its payouts taken back")
}

// A refund made outside Veza (Hyperswitch's dashboard or API, with an id
// Hyperswitch generated: ref_...) gives the buyer money back as ours do:
// all of the order's amount settles the order like a refund; part of it
// is an operator's, at ERROR.
func TestRefundMadeOutsideVeza(t *testing.T) {
	t.Parallel()
	t.Run("all of it", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		o := storetest.CompletedOrder(t, b.tx, 1000, 700)
		paidOut := o.Transfer(t, b.tx, 0, veza.TransferCompleted)
		unpaid := o.Transfer(t, b.tx, 1, veza.TransferPending)
		ev := event("refund_succeeded", o.Order, "succeeded")
		ev.Object.RefundID = "ref_dashboard1"
		require.Equal(t, store.ResultOK, b.apply(t, ev))
		require.Equal(t, veza.OrderRefunded, b.order(t, o.ID).Status)
		require.Equal(t, veza.TransferReversalPending, b.transfer(t, paidOut.ID).Status)
		require.Equal(t, settle.PayoutCloseUnpaid, b.payoutStep(t, unpaid.ID))
		require.Contains(t, b.logs.String(), "refund made outside Veza")
		ev.EventID = "evt_again"
		require.Equal(t, store.ResultSkipped, b.apply(t, ev), "a replay moves nothing")
	})
	t.Run("without a refund id", func(t *testing.T) {
		// Hyperswitch always names the refund; an event without one (or
		// with one no column could hold, read as absent) is not a refund
		// made outside Veza, and moves nothing.
		t.Parallel()
		b := setup(t)
		o := storetest.CompletedOrder(t, b.tx, 1000, 700)
		paidOut := o.Transfer(t, b.tx, 0, veza.TransferCompleted)
		ev := event("refund_succeeded", o.Order, "succeeded")
		require.Equal(t, store.ResultSkipped, b.apply(t, ev))
		require.Equal(t, veza.OrderCompleted, b.order(t, o.ID).Status)
		require.Equal(t, veza.TransferCompleted, b.transfer(t, paidOut.ID).Status)
		require.Contains(t, b.logs.String(), "refund event without a refund_id")
		b.requireNoJobs(t)
	})
	t.Run("part of it", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		o := storetest.CompletedOrder(t, b.tx, 1000)
		paidOut := o.Transfer(t, b.tx, 0, veza.TransferCompleted)
		ev := event("refund_succeeded", o.Order, "succeeded")
		ev.Object.RefundID, ev.Object.Amount = "ref_dashboard2", 400
		require.Equal(t, store.ResultSkipped, b.apply(t, ev))
		require.Equal(t, veza.OrderCompleted, b.order(t, o.ID).Status)
		require.Equal(t, veza.TransferCompleted, b.transfer(t, paidOut.ID).Status)
		require.Contains(t, b.logs.String(), "take the sellers' share of it back by hand")
		b.requireNoJobs(t)
	})
	t.Run("all of a charged-back order", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		o := storetest.CompletedOrder(t, b.tx, 1000)
		unpaid := o.Transfer(t, b.tx, 0, veza.TransferFailed)
		b.apply(t, disputeEvent("dispute_opened", o.Order, "dp_1", 300))
		b.apply(t, disputeEvent("dispute_lost", o.Order, "dp_1", 300))
		require.Equal(t, veza.OrderChargedBack, b.order(t, o.ID).Status)
		ev := event("refund_succeeded", o.Order, "succeeded")
		ev.Object.RefundID = "ref_dashboard4"
		require.Equal(t, store.ResultOK, b.apply(t, ev))
		require.Equal(t, unpaid.Amount, *b.transfer(t, unpaid.ID).ReversalAmount)
		require.Equal(t, settle.PayoutCloseUnpaid, b.payoutStep(t, unpaid.ID))
	})
	// The payment was taken while the order still read pending (its
	// success lost or late) or failed (a manual retry at Hyperswitch), and
	// given back from the dashboard: the buyer has it all back, so the
	// success that arrives after (a redelivery, reconcile's read of a
	// payment that stays succeeded) pays no seller.
	for _, failedFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("all of it before the order completed (failed first: %v)", failedFirst), func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			o := storetest.PendingOrder(t, b.tx, 1000)
			if failedFirst {
				require.Equal(t, store.ResultOK, b.apply(t, event("payment_failed", o.Order, "failed")))
			}
			ev := event("refund_succeeded", o.Order, "succeeded")
			ev.Object.RefundID = "ref_dashboard5"
			require.Equal(t, store.ResultOK, b.apply(t, ev))
			refunds, err := store.OrderRefunds(b.ctx, b.tx, o.ID)
			require.NoError(t, err)
			require.Len(t, refunds, 1, "the refund is on the order's record")
			require.Equal(t, veza.RefundSucceeded, refunds[0].Status)
			require.Equal(t, "ref_dashboard5", *refunds[0].HyperswitchRefundID)
			require.EqualValues(t, 1000, refunds[0].Amount)

			require.Equal(t, store.ResultSkipped, b.apply(t, paid(o)))
			require.NotEqual(t, veza.OrderCompleted, b.order(t, o.ID).Status)
			require.Empty(t, b.transfers(t, o.ID), "no seller is paid for money the buyer has back")
			b.requireNoJobs(t)
			require.NotContains(t, b.logs.String(), "settle it by hand", "nothing is left to settle")
			ev.EventID = "evt_again"
			require.Equal(t, store.ResultSkipped, b.apply(t, ev), "a replay finds the refund it recorded")
			refunds, err = store.OrderRefunds(b.ctx, b.tx, o.ID)
			require.NoError(t, err)
			require.Len(t, refunds, 1)
		})
	}
	t.Run("not succeeded", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		o := storetest.CompletedOrder(t, b.tx, 1000)
		ev := event("refund_failed", o.Order, "failed")
		ev.Object.RefundID = "ref_dashboard3"
		require.Equal(t, store.ResultSkipped, b.apply(t, ev))
		require.Equal(t, veza.OrderCompleted, b.order(t, o.ID).Status)
	})
}

// A refund row that recorded an id of another form (Hyperswitch's answer,
// not our veza_ref_) is found by it: its success settles that row, not an
// "outside" refund that would leave the row pending and the buyer without
// the confirmation.
func TestRefundEventFindsTheRowByTheRecordedID(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o, ts, refund := b.refunded(t)
	require.NoError(t, store.SetRefundPSPID(b.ctx, b.tx, refund.ID, "ref_recorded1"))
	ev := event("refund_succeeded", o.Order, "succeeded")
	ev.Object.RefundID = "ref_recorded1"
	require.Equal(t, store.ResultOK, b.apply(t, ev))
	require.Equal(t, veza.RefundSucceeded, b.refund(t, refund.ID).Status)
	require.Equal(t, veza.OrderRefunded, b.order(t, o.ID).Status)
	require.Equal(t, veza.TransferReversalPending, b.transfer(t, ts[0].ID).Status)
	require.NotContains(t, b.logs.String(), "outside Veza")
}

// A refund we had failed (on Hyperswitch's word) that succeeds after the
// buyer's second request succeeded too: the buyer has the order's money
// twice. That is said at ERROR with both refunds, whichever lands first.
func TestTwoSucceededRefundsOfOneOrderAreSaid(t *testing.T) {
	t.Parallel()
	for _, secondFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("second first: %v", secondFirst), func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			o, _, first := b.refunded(t)
			require.NoError(t, b.settle.FailRefund(b.ctx, b.tx, b.ins, first, "refused"))
			require.Equal(t, veza.OrderCompleted, b.order(t, o.ID).Status)
			second, err := b.settle.RequestRefund(b.ctx, b.tx, b.ins, settle.RefundRequest{OrderID: o.ID, BuyerID: o.Buyer.ID})
			require.NoError(t, err)
			order := []*store.Refund{b.refund(t, first.ID), second}
			if secondFirst {
				order[0], order[1] = order[1], order[0]
			}
			for _, r := range order {
				require.NoError(t, b.settle.SettleRefund(b.ctx, b.tx, b.ins, b.refund(t, r.ID)))
			}
			require.Equal(t, veza.OrderRefunded, b.order(t, o.ID).Status)
			logs := b.logs.String()
			require.Contains(t, logs, "the buyer has this order's money back twice")
			require.Contains(t, logs, first.ID.String())
			require.Contains(t, logs, second.ID.String())
		})
	}
}
