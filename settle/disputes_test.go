package settle_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	veza "github.com/veza/backend"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/mail"
	"github.com/veza/backend/settle"
	"github.com/veza/backend/store"
	"github.com/veza/backend/store/storetest"
)

// disputeEvent is a dispute_* event as Hyperswitch sends it: the dispute's
// status in dispute_status, its amount (here already decoded from the
// string), its stage and deadline.
func disputeEvent(eventType string, o *store.Order, disputeID string, amount int64) jobargs.ProcessEventArgs {
	ev := event(eventType, o, "")
	ev.Object.Amount = amount
	ev.Object.DisputeID, ev.Object.DisputeStatus, ev.Object.DisputeStage = disputeID, eventType, "dispute"
	ev.Object.ConnectorDisputeID, ev.Object.ConnectorReason = "du_"+disputeID, "fraudulent"
	ev.Object.ChallengeRequiredBy = "2026-12-20T10:00:00.000Z"
	return ev
}

func (b *testBundle) dispute(t *testing.T, orderID uuid.UUID) store.Dispute {
	t.Helper()
	ds, err := store.OrderDisputes(b.ctx, b.tx, orderID)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	return ds[0]
}

func TestDisputeOpenedHoldsTheOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.CompletedOrder(t, b.tx, 1000)
	o.Transfer(t, b.tx, 0, veza.TransferPending)

	require.Equal(t, store.ResultOK, b.apply(t, disputeEvent("dispute_opened", o.Order, "dp_1", 1000)))
	require.Equal(t, veza.OrderDisputed, b.order(t, o.ID).Status)
	d := b.dispute(t, o.ID)
	require.Equal(t, veza.DisputeOpened, d.Status)
	require.EqualValues(t, 1000, d.Amount)
	require.Equal(t, "EUR", d.Currency)
	require.Equal(t, "dispute", *d.Stage)
	require.Equal(t, "fraudulent", *d.Reason)
	require.Equal(t, time.Date(2026, 12, 20, 10, 0, 0, 0, time.UTC), d.ChallengeRequiredBy.UTC())
	require.Nil(t, d.ClosedAt)
	require.Contains(t, b.logs.String(), `"level":"error"`)
	require.Contains(t, b.logs.String(), "dispute opened")

	_, err := b.settle.RequestRefund(b.ctx, b.tx, b.ins, settle.RefundRequest{OrderID: o.ID, BuyerID: o.Buyer.ID})
	require.ErrorIs(t, err, settle.ErrOrderDisputed)
	require.Equal(t, "order_disputed", veza.AsError(err).Code)
	require.True(t, veza.IsKind(err, veza.KindConflict))
	b.requireNoJobs(t)

	// Challenged (evidence submitted): still open, the deadline kept.
	challenged := disputeEvent("dispute_challenged", o.Order, "dp_1", 1000)
	challenged.Object.ChallengeRequiredBy = ""
	require.Equal(t, store.ResultOK, b.apply(t, challenged))
	require.Equal(t, veza.DisputeChallenged, b.dispute(t, o.ID).Status)
	require.NotNil(t, b.dispute(t, o.ID).ChallengeRequiredBy)
	require.Equal(t, veza.OrderDisputed, b.order(t, o.ID).Status)
}

func TestDisputeWonCompletesTheOrderAgain(t *testing.T) {
	for _, outcome := range []string{"dispute_won", "dispute_cancelled"} {
		t.Run(outcome, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			o := storetest.CompletedOrder(t, b.tx, 1000)
			paidOut := o.Transfer(t, b.tx, 0, veza.TransferCompleted)
			require.Equal(t, store.ResultOK, b.apply(t, disputeEvent("dispute_opened", o.Order, "dp_1", 1000)))
			require.Equal(t, store.ResultOK, b.apply(t, disputeEvent(outcome, o.Order, "dp_1", 1000)))
			require.Equal(t, veza.OrderCompleted, b.order(t, o.ID).Status)
			d := b.dispute(t, o.ID)
			require.NotNil(t, d.ClosedAt)
			require.Equal(t, veza.TransferCompleted, b.transfer(t, paidOut.ID).Status, "the seller keeps the money")
			b.requireNoJobs(t)

			_, err := b.settle.RequestRefund(b.ctx, b.tx, b.ins, settle.RefundRequest{OrderID: o.ID, BuyerID: o.Buyer.ID})
			require.NoError(t, err, "refundable again")
		})
	}
}

func TestDisputeLostTakesThePayoutsBack(t *testing.T) {
	for _, outcome := range []string{"dispute_lost", "dispute_accepted", "dispute_expired"} {
		t.Run(outcome, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			o := storetest.CompletedOrder(t, b.tx, 1000, 700, 500)
			paidOut := o.Transfer(t, b.tx, 0, veza.TransferCompleted)
			failed := o.Transfer(t, b.tx, 1, veza.TransferFailed)
			held := o.Transfer(t, b.tx, 2, veza.TransferPending)
			require.Equal(t, store.ResultOK, b.apply(t, disputeEvent("dispute_opened", o.Order, "dp_1", o.Amount)))
			require.Equal(t, store.ResultOK, b.apply(t, disputeEvent(outcome, o.Order, "dp_1", o.Amount)))

			require.Equal(t, veza.OrderChargedBack, b.order(t, o.ID).Status)
			require.Equal(t, veza.TransferReversalPending, b.transfer(t, paidOut.ID).Status)
			for _, tr := range []*store.Transfer{paidOut, failed, held} {
				require.Equal(t, tr.Amount, *b.transfer(t, tr.ID).ReversalAmount, "the whole payment is disputed: all of each seller's share")
			}
			require.Equal(t, veza.TransferFailed, b.transfer(t, failed.ID).Status, "its payout job looks at Stripe first")
			require.Equal(t, veza.TransferPending, b.transfer(t, held.ID).Status)
			jobs := b.requireJobs(t, reversalJob(), emailJob(), emailJob(), emailJob(), payoutJob(), payoutJob())
			require.Equal(t, paidOut.ID, args[jobargs.ReversalArgs](t, jobs[0]).TransferID)
			require.ElementsMatch(t, []any{failed.ID, held.ID},
				[]any{args[jobargs.PayoutArgs](t, jobs[4]).TransferID, args[jobargs.PayoutArgs](t, jobs[5]).TransferID})
			var emailed []any
			for _, j := range jobs[1:4] {
				email := args[jobargs.EmailArgs](t, j)
				require.Equal(t, mail.TemplateChargeback, email.Template)
				emailed = append(emailed, email.UserID)
			}
			require.ElementsMatch(t, []any{paidOut.SellerID, failed.SellerID, held.SellerID}, emailed, "every seller is told: taken back, or not paid")
			require.Contains(t, b.logs.String(), "dispute lost")
			for _, step := range []*store.Transfer{failed, held} {
				require.Equal(t, settle.PayoutCloseUnpaid, b.payoutStep(t, step.ID), "never paid: closed after the look-up")
			}

			// The outcome never moves again.
			require.Equal(t, store.ResultSkipped, b.apply(t, disputeEvent("dispute_won", o.Order, "dp_1", o.Amount)))
			require.Equal(t, store.ResultSkipped, b.apply(t, disputeEvent(outcome, o.Order, "dp_1", o.Amount)))
			require.Equal(t, veza.OrderChargedBack, b.order(t, o.ID).Status)
			b.requireJobs(t, reversalJob(), emailJob(), emailJob(), emailJob(), payoutJob(), payoutJob())
		})
	}
}

// A dispute of part of the payment takes back that part of each payout,
// the cents summing exactly to the disputed share.
func TestPartialDisputeLostTakesBackTheDisputedShare(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.CompletedOrder(t, b.tx, 999, 333, 1001)
	ts := []*store.Transfer{
		o.Transfer(t, b.tx, 0, veza.TransferCompleted),
		o.Transfer(t, b.tx, 1, veza.TransferCompleted),
		o.Transfer(t, b.tx, 2, veza.TransferCompleted),
	}
	const disputed = 1000 // of 2,333
	require.Equal(t, store.ResultOK, b.apply(t, disputeEvent("dispute_lost", o.Order, "dp_1", disputed)))
	require.Equal(t, veza.OrderChargedBack, b.order(t, o.ID).Status)

	var paid, back int64
	for _, tr := range ts {
		got := b.transfer(t, tr.ID)
		require.Equal(t, veza.TransferReversalPending, got.Status)
		require.NotNil(t, got.ReversalAmount)
		require.Positive(t, *got.ReversalAmount)
		require.Less(t, *got.ReversalAmount, got.Amount)
		// Each share within a cent of the exact proportion.
		exact := float64(got.Amount) * disputed / float64(o.Amount)
		require.InDelta(t, exact, float64(*got.ReversalAmount), 1)
		paid += got.Amount
		back += *got.ReversalAmount
	}
	require.Equal(t, (2*paid*disputed+o.Amount)/(2*o.Amount), back, "the reversals sum to the disputed share of the payouts, rounded once")
	b.requireJobs(t, reversalJob(), reversalJob(), reversalJob(), emailJob(), emailJob(), emailJob())

	var chargeback int64
	for _, tr := range ts {
		amount, currency, err := store.SellerChargeback(b.ctx, b.tx, o.ID, tr.SellerID)
		require.NoError(t, err)
		require.Equal(t, "EUR", currency)
		chargeback += amount
	}
	require.Equal(t, back, chargeback, "the sellers' emails tell what is taken back")
}

// Hyperswitch keeps no order: the outcome may come first, an event twice.
func TestDisputeEventsOutOfOrder(t *testing.T) {
	t.Parallel()
	t.Run("won before opened", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		o := storetest.CompletedOrder(t, b.tx, 1000)
		require.Equal(t, store.ResultOK, b.apply(t, disputeEvent("dispute_won", o.Order, "dp_1", 1000)))
		require.Equal(t, store.ResultSkipped, b.apply(t, disputeEvent("dispute_opened", o.Order, "dp_1", 1000)))
		require.Equal(t, store.ResultSkipped, b.apply(t, disputeEvent("dispute_challenged", o.Order, "dp_1", 1000)))
		require.Equal(t, veza.OrderCompleted, b.order(t, o.ID).Status)
		require.Equal(t, veza.DisputeWon, b.dispute(t, o.ID).Status)
		b.requireNoJobs(t)
	})
	t.Run("lost before opened", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		o := storetest.CompletedOrder(t, b.tx, 1000)
		paidOut := o.Transfer(t, b.tx, 0, veza.TransferCompleted)
		require.Equal(t, store.ResultOK, b.apply(t, disputeEvent("dispute_lost", o.Order, "dp_1", 1000)))
		require.Equal(t, store.ResultSkipped, b.apply(t, disputeEvent("dispute_opened", o.Order, "dp_1", 1000)))
		require.Equal(t, veza.OrderChargedBack, b.order(t, o.ID).Status)
		require.Equal(t, veza.TransferReversalPending, b.transfer(t, paidOut.ID).Status)
		b.requireJobs(t, reversalJob(), emailJob())
	})
	t.Run("the same event twice", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		o := storetest.CompletedOrder(t, b.tx, 1000)
		ev := disputeEvent("dispute_opened", o.Order, "dp_1", 1000)
		require.Equal(t, store.ResultOK, b.apply(t, ev))
		require.Equal(t, store.ResultSkipped, b.apply(t, ev))
		require.Equal(t, veza.OrderDisputed, b.order(t, o.ID).Status)
	})
}

// Two disputes of one order: the order is completed again only when
// neither is open.
func TestTwoDisputesOfOneOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.CompletedOrder(t, b.tx, 1000)
	require.Equal(t, store.ResultOK, b.apply(t, disputeEvent("dispute_opened", o.Order, "dp_1", 400)))
	require.Equal(t, store.ResultOK, b.apply(t, disputeEvent("dispute_opened", o.Order, "dp_2", 600)))
	require.Equal(t, store.ResultOK, b.apply(t, disputeEvent("dispute_won", o.Order, "dp_1", 400)))
	require.Equal(t, veza.OrderDisputed, b.order(t, o.ID).Status, "dp_2 is still open")
	require.Equal(t, store.ResultOK, b.apply(t, disputeEvent("dispute_cancelled", o.Order, "dp_2", 600)))
	require.Equal(t, veza.OrderCompleted, b.order(t, o.ID).Status)
}

// A partial dispute lost while a seller is not yet paid: that seller is
// paid (their payout goes out as usual) and reversed for their share when
// Stripe's transfer is recorded, not closed unpaid for all of it.
func TestPartialDisputeLostBeforeAPayout(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.CompletedOrder(t, b.tx, 1000, 1000)
	paid := o.Transfer(t, b.tx, 0, veza.TransferCompleted)
	held := o.Transfer(t, b.tx, 1, veza.TransferPending)
	require.Equal(t, store.ResultOK, b.apply(t, disputeEvent("dispute_lost", o.Order, "dp_1", 200))) // a tenth of 2000
	require.Equal(t, veza.OrderChargedBack, b.order(t, o.ID).Status)
	share := *b.transfer(t, held.ID).ReversalAmount
	require.EqualValues(t, held.Amount/10, share, "its share is recorded before it is paid")
	require.EqualValues(t, paid.Amount/10, *b.transfer(t, paid.ID).ReversalAmount)

	require.Equal(t, settle.PayoutSend, b.payoutStep(t, held.ID), "paid, then reversed for its share")
	amount, _, err := store.SellerChargeback(b.ctx, b.tx, o.ID, held.SellerID)
	require.NoError(t, err)
	require.Equal(t, share, amount, "the seller's email tells the share")
}

// Stripe makes a payout after its order was charged back (the call was in
// flight, or its answer was lost and a look-up finds it): recorded, then
// reversed for the seller's share. Before, it was recorded as paid and
// never taken back.
func TestPayoutMadeAfterTheChargebackIsReversed(t *testing.T) {
	for _, tc := range []struct {
		name     string
		disputed int64
		status   veza.TransferStatus
	}{{"full, in flight", 1000, veza.TransferPending}, {"partial, in flight", 500, veza.TransferPending},
		{"full, closed unpaid then found", 1000, veza.TransferPermanentlyFailed}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			o := storetest.CompletedOrder(t, b.tx, 1000)
			tr := o.Transfer(t, b.tx, 0, veza.TransferPending)
			require.Equal(t, store.ResultOK, b.apply(t, disputeEvent("dispute_lost", o.Order, "dp_1", tc.disputed)))
			if tc.status == veza.TransferPermanentlyFailed {
				require.NoError(t, store.TransitionTransfer(b.ctx, b.tx, tr.ID, veza.TransferPending, veza.TransferFailed, store.TransferUpdate{}))
				require.NoError(t, store.TransitionTransfer(b.ctx, b.tx, tr.ID, veza.TransferFailed, veza.TransferPermanentlyFailed, store.TransferUpdate{}))
			}
			require.NoError(t, b.tx.Commit(b.ctx))
			now, err := store.GetTransfer(b.ctx, b.db.Primary(), tr.ID)
			require.NoError(t, err)
			require.NoError(t, b.settle.RecordPayout(b.ctx, b.db, b.ins, now, "tr_late"))
			got, err := store.GetTransfer(b.ctx, b.db.Primary(), tr.ID)
			require.NoError(t, err)
			require.Equal(t, veza.TransferReversalPending, got.Status, "taken back")
			require.Equal(t, "tr_late", *got.StripeTransferID)
			require.Equal(t, veza.ProportionalShares([]int64{tr.Amount}, tc.disputed, 1000)[0], *got.ReversalAmount)
		})
	}
}

// A lost dispute of one cent, between two sellers' payouts not yet made:
// one share is the cent, the other rounds to nothing. That seller is paid
// in full, and a payout Stripe makes meanwhile is not taken back. Before,
// the share of nothing was left unwritten, which reads as "all of it goes
// back": the payout was closed unpaid, or reversed in full.
func TestDisputeShareOfNothingIsPaidInFull(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.CompletedOrder(t, b.tx, 1000, 1000)
	ts := []*store.Transfer{o.Transfer(t, b.tx, 0, veza.TransferPending), o.Transfer(t, b.tx, 1, veza.TransferPending)}
	require.Equal(t, store.ResultOK, b.apply(t, disputeEvent("dispute_lost", o.Order, "dp_1", 1)))
	require.Equal(t, veza.OrderChargedBack, b.order(t, o.ID).Status)

	var nothing, cent *store.Transfer
	for _, tr := range ts {
		got := b.transfer(t, tr.ID)
		if got.ReversalAmount == nil || *got.ReversalAmount == 0 {
			nothing = got
		} else {
			cent = got
		}
	}
	require.NotNil(t, nothing, "one share rounds to nothing")
	require.NotNil(t, cent)
	require.EqualValues(t, 1, *cent.ReversalAmount)
	for _, tr := range []*store.Transfer{nothing, cent} {
		require.Equal(t, settle.PayoutSend, b.payoutStep(t, tr.ID), "paid (then reversed for its share, if it has one)")
	}
	amount, _, err := store.SellerChargeback(b.ctx, b.tx, o.ID, nothing.SellerID)
	require.NoError(t, err)
	require.Zero(t, amount)

	require.NoError(t, b.tx.Commit(b.ctx))
	for _, tr := range []*store.Transfer{nothing, cent} {
		require.NoError(t, b.settle.RecordPayout(b.ctx, b.db, b.ins, tr, "tr_"+tr.ID.String()))
	}
	got, err := store.GetTransfer(b.ctx, b.db.Primary(), nothing.ID)
	require.NoError(t, err)
	require.Equal(t, veza.TransferCompleted, got.Status, "nothing of it goes back")
	got, err = store.GetTransfer(b.ctx, b.db.Primary(), cent.ID)
	require.NoError(t, err)
	require.Equal(t, veza.TransferReversalPending, got.Status, "the cent goes back")
}

// Hyperswitch lets a dispute move again at a later stage (pre-arbitration):
// won, then lost, is a chargeback; lost, then won, is told to ops.
func TestDisputeAtALaterStage(t *testing.T) {
	t.Parallel()
	at := func(ev jobargs.ProcessEventArgs, stage string) jobargs.ProcessEventArgs {
		ev.Object.DisputeStage = stage
		return ev
	}
	t.Run("won then lost in pre-arbitration", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		o := storetest.CompletedOrder(t, b.tx, 1000)
		paidOut := o.Transfer(t, b.tx, 0, veza.TransferCompleted)
		require.Equal(t, store.ResultOK, b.apply(t, disputeEvent("dispute_won", o.Order, "dp_1", 1000)))
		require.Equal(t, store.ResultSkipped, b.apply(t, at(disputeEvent("dispute_lost", o.Order, "dp_1", 1000), "dispute")), "terminal within its stage")
		require.Equal(t, store.ResultOK, b.apply(t, at(disputeEvent("dispute_opened", o.Order, "dp_1", 1000), "pre_arbitration")))
		require.Equal(t, veza.OrderDisputed, b.order(t, o.ID).Status, "open again: held again")
		require.Nil(t, b.dispute(t, o.ID).ClosedAt)
		require.Equal(t, store.ResultOK, b.apply(t, at(disputeEvent("dispute_lost", o.Order, "dp_1", 1000), "pre_arbitration")))
		require.Equal(t, veza.OrderChargedBack, b.order(t, o.ID).Status)
		require.Equal(t, veza.TransferReversalPending, b.transfer(t, paidOut.ID).Status)
		require.Equal(t, "pre_arbitration", *b.dispute(t, o.ID).Stage)
		require.Equal(t, store.ResultSkipped, b.apply(t, at(disputeEvent("dispute_won", o.Order, "dp_1", 1000), "dispute")), "an earlier stage is old news")
	})
	t.Run("lost then won in pre-arbitration", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		o := storetest.CompletedOrder(t, b.tx, 1000)
		o.Transfer(t, b.tx, 0, veza.TransferCompleted)
		require.Equal(t, store.ResultOK, b.apply(t, disputeEvent("dispute_lost", o.Order, "dp_1", 1000)))
		require.Equal(t, store.ResultOK, b.apply(t, at(disputeEvent("dispute_won", o.Order, "dp_1", 1000), "pre_arbitration")))
		require.Equal(t, veza.DisputeWon, b.dispute(t, o.ID).Status)
		require.Equal(t, veza.OrderChargedBack, b.order(t, o.ID).Status, "the sellers were taken back: ops re-pay them")
		require.Contains(t, b.logs.String(), "dispute won after the order was charged back")
	})
}

// An amount we cannot read, or that is not this order's money, is taken
// as the whole payment (the platform is debited whatever it is), loudly.
func TestDisputeAmountUnreadable(t *testing.T) {
	for name, mutate := range map[string]func(*jobargs.ProcessEventArgs){
		"zero":           func(ev *jobargs.ProcessEventArgs) { ev.Object.Amount = 0 },
		"over the order": func(ev *jobargs.ProcessEventArgs) { ev.Object.Amount = 5000 },
		"other currency": func(ev *jobargs.ProcessEventArgs) { ev.Object.Currency = "USD" },
		"negative":       func(ev *jobargs.ProcessEventArgs) { ev.Object.Amount = -5 },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			o := storetest.CompletedOrder(t, b.tx, 1000)
			paidOut := o.Transfer(t, b.tx, 0, veza.TransferCompleted)
			ev := disputeEvent("dispute_lost", o.Order, "dp_1", 400)
			mutate(&ev)
			require.Equal(t, store.ResultOK, b.apply(t, ev))
			d := b.dispute(t, o.ID)
			require.Equal(t, o.Amount, d.Amount)
			require.Equal(t, "EUR", d.Currency)
			require.Equal(t, paidOut.Amount, *b.transfer(t, paidOut.ID).ReversalAmount)
			require.Contains(t, b.logs.String(), "dispute amount unreadable or not the order's")
		})
	}
}

// A known dispute id carried by an event of another payment is not applied
// to that other order.
func TestDisputeOfAnotherOrderIsSkipped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.CompletedOrder(t, b.tx, 1000)
	other := storetest.CompletedOrder(t, b.tx, 1000)
	require.Equal(t, store.ResultOK, b.apply(t, disputeEvent("dispute_opened", o.Order, "dp_1", 1000)))
	require.Equal(t, store.ResultSkipped, b.apply(t, disputeEvent("dispute_lost", other.Order, "dp_1", 1000)))
	require.Equal(t, veza.OrderCompleted, b.order(t, other.ID).Status)
	require.Equal(t, veza.OrderDisputed, b.order(t, o.ID).Status)
	require.Contains(t, b.logs.String(), "dispute event names another payment")
}

// A dispute on a refunded order: the PSP should not allow it; it is
// recorded, no money moves, and ops are told.
func TestDisputeOnARefundedOrderMovesNoMoney(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.CompletedOrder(t, b.tx, 1000)
	reversed := o.Transfer(t, b.tx, 0, veza.TransferReversed)
	o.Move(t, b.tx, veza.OrderCompleted, veza.OrderRefunded)
	require.Equal(t, store.ResultOK, b.apply(t, disputeEvent("dispute_opened", o.Order, "dp_1", 1000)))
	require.Equal(t, store.ResultOK, b.apply(t, disputeEvent("dispute_lost", o.Order, "dp_1", 1000)))
	require.Equal(t, veza.OrderRefunded, b.order(t, o.ID).Status)
	require.Equal(t, veza.DisputeLost, b.dispute(t, o.ID).Status, "recorded")
	require.Equal(t, veza.TransferReversed, b.transfer(t, reversed.ID).Status)
	require.Contains(t, b.logs.String(), "dispute on an order that is not completed")
	require.Contains(t, b.logs.String(), `"level":"error"`)
	b.requireNoJobs(t)
}

// A dispute that came while a refund was pending waits for the refund: if
// the refund fails, the dispute decides the order.
func TestDisputeDuringAFailedRefund(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		events []string
		want   veza.OrderStatus
	}{
		{[]string{"dispute_opened"}, veza.OrderDisputed},
		{[]string{"dispute_opened", "dispute_lost"}, veza.OrderChargedBack},
		{[]string{"dispute_won"}, veza.OrderCompleted},
	} {
		b := setup(t)
		o := storetest.CompletedOrder(t, b.tx, 1000)
		paidOut := o.Transfer(t, b.tx, 0, veza.TransferCompleted)
		refund, err := b.settle.RequestRefund(b.ctx, b.tx, b.ins, settle.RefundRequest{OrderID: o.ID, BuyerID: o.Buyer.ID})
		require.NoError(t, err)
		for _, e := range tc.events {
			require.Equal(t, store.ResultOK, b.apply(t, disputeEvent(e, o.Order, "dp_1", 1000)))
		}
		require.Equal(t, veza.OrderRefundPending, b.order(t, o.ID).Status, "nothing moves while the refund is out")
		require.NoError(t, b.settle.FailRefund(b.ctx, b.tx, b.ins, refund, "card closed"))
		require.Equal(t, tc.want, b.order(t, o.ID).Status, tc.events)
		if tc.want == veza.OrderChargedBack {
			require.Equal(t, veza.TransferReversalPending, b.transfer(t, paidOut.ID).Status)
		} else {
			require.Equal(t, veza.TransferCompleted, b.transfer(t, paidOut.ID).Status)
		}
	}
}

// A refund we had failed that succeeded after all, on a disputed order:
// the buyer has the money, so the order is refunded and the payouts come
// back; the dispute's outcome then moves nothing.
func TestRepairedRefundOnADisputedOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.CompletedOrder(t, b.tx, 1000)
	paidOut := o.Transfer(t, b.tx, 0, veza.TransferCompleted)
	refund, err := b.settle.RequestRefund(b.ctx, b.tx, b.ins, settle.RefundRequest{OrderID: o.ID, BuyerID: o.Buyer.ID})
	require.NoError(t, err)
	require.NoError(t, b.settle.FailRefund(b.ctx, b.tx, b.ins, refund, "timeout"))
	require.Equal(t, store.ResultOK, b.apply(t, disputeEvent("dispute_opened", o.Order, "dp_1", 1000)))
	require.Equal(t, veza.OrderDisputed, b.order(t, o.ID).Status)

	require.Equal(t, store.ResultOK, b.apply(t, refundEvent("refund_succeeded", o.Order, b.refund(t, refund.ID), "succeeded")))
	require.Equal(t, veza.OrderRefunded, b.order(t, o.ID).Status)
	require.Equal(t, veza.TransferReversalPending, b.transfer(t, paidOut.ID).Status)
	require.Equal(t, store.ResultOK, b.apply(t, disputeEvent("dispute_lost", o.Order, "dp_1", 1000)))
	require.Equal(t, veza.OrderRefunded, b.order(t, o.ID).Status)
}

func TestDisputeEventsWeCannotUse(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.CompletedOrder(t, b.tx, 1000)
	noID := disputeEvent("dispute_opened", o.Order, "", 1000)
	require.Equal(t, store.ResultSkipped, b.apply(t, noID))
	unknownStatus := disputeEvent("dispute_opened", o.Order, "dp_1", 1000)
	unknownStatus.Object.DisputeStatus, unknownStatus.EventType = "dispute_reopened", "dispute_reopened"
	require.Equal(t, store.ResultSkipped, b.apply(t, unknownStatus))
	notOurs := disputeEvent("dispute_opened", o.Order, "dp_2", 1000)
	notOurs.Object.PaymentID = "pay_not_ours"
	require.Equal(t, store.ResultSkipped, b.apply(t, notOurs))
	pending := storetest.PendingOrder(t, b.tx, 1000)
	require.Equal(t, store.ResultOK, b.apply(t, disputeEvent("dispute_opened", pending.Order, "dp_3", 1000)))
	require.Equal(t, veza.OrderPending, b.order(t, pending.ID).Status, "recorded; a pending order is not disputed")
	require.Equal(t, veza.OrderCompleted, b.order(t, o.ID).Status)
	b.requireNoJobs(t)
}

// A payment event on a disputed or charged-back order (a capture event
// after the success, a reconcile's synthetic success) is a replay: it must
// not refund the order automatically, or a chargeback and a refund pay the
// buyer twice.
func TestPaymentEventsOnADisputedOrderRefundNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.CompletedOrder(t, b.tx, 1000)
	require.Equal(t, store.ResultOK, b.apply(t, disputeEvent("dispute_opened", o.Order, "dp_1", 1000)))
	replays := func() {
		t.Helper()
		b.apply(t, event("payment_succeeded", o.Order, "succeeded"))
		captured := event("payment_captured", o.Order, "partially_captured")
		received := int64(600)
		captured.Object.AmountReceived = &received
		b.apply(t, captured)
		refunds, err := store.OrderRefunds(b.ctx, b.tx, o.ID)
		require.NoError(t, err)
		require.Empty(t, refunds)
	}
	replays()
	require.Equal(t, veza.OrderDisputed, b.order(t, o.ID).Status)
	b.requireNoJobs(t)
	require.Equal(t, store.ResultOK, b.apply(t, disputeEvent("dispute_lost", o.Order, "dp_1", 1000)))
	replays()
	require.Equal(t, veza.OrderChargedBack, b.order(t, o.ID).Status)
}

// Deliveries are not ordered: a dispute may be recorded while the order is
// still pending (its payment_succeeded delayed). Once paid, the dispute
// applies: open holds the order, lost charges it back before any payout.
func TestDisputeRecordedBeforeThePaymentSucceeded(t *testing.T) {
	for _, tc := range []struct {
		dispute string
		want    veza.OrderStatus
	}{{"dispute_opened", veza.OrderDisputed}, {"dispute_lost", veza.OrderChargedBack}, {"dispute_won", veza.OrderCompleted}} {
		t.Run(tc.dispute, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			o := storetest.PendingOrder(t, b.tx, 1000)
			require.Equal(t, store.ResultOK, b.apply(t, disputeEvent(tc.dispute, o.Order, "dp_1", 1000)))
			require.Equal(t, veza.OrderPending, b.order(t, o.ID).Status)
			b.dispute(t, o.ID)
			require.Equal(t, store.ResultOK, b.apply(t, event("payment_succeeded", o.Order, "succeeded")))
			require.Equal(t, tc.want, b.order(t, o.ID).Status)
			for _, tr := range b.transfers(t, o.ID) {
				require.Equal(t, veza.TransferPending, tr.Status, "nothing was paid yet; a charged-back order's payout is closed by its job after the look-up")
			}
		})
	}
}

// A payout held by a dispute waits on its row (its job ended); the
// dispute's outcome releases it and enqueues its payout job in the same
// transaction: won, it pays; lost, it closes unpaid after the look-up.
func TestDisputeOutcomeReleasesTheHeldPayout(t *testing.T) {
	for _, outcome := range []string{"dispute_won", "dispute_lost"} {
		t.Run(outcome, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			o := storetest.CompletedOrder(t, b.tx, 1000)
			tr := o.Transfer(t, b.tx, 0, veza.TransferPending)
			held, err := store.HoldPayout(b.ctx, b.tx, tr.ID)
			require.NoError(t, err)
			require.False(t, held, "not disputed: nothing to hold")

			require.Equal(t, store.ResultOK, b.apply(t, disputeEvent("dispute_opened", o.Order, "dp_1", 1000)))
			held, err = store.HoldPayout(b.ctx, b.tx, tr.ID)
			require.NoError(t, err)
			require.True(t, held)
			require.Equal(t, store.HeldMessage, *b.transfer(t, tr.ID).ErrorMessage, "ops see why it waits")
			ids, err := store.TransfersWithoutJob(b.ctx, b.tx, string(veza.TransferPending), jobargs.PayoutArgs{}.Kind(), -time.Hour, 10)
			require.NoError(t, err)
			require.NotContains(t, ids, tr.ID, "the safety net leaves a held payout to its dispute")
			b.requireNoJobs(t)

			require.Equal(t, store.ResultOK, b.apply(t, disputeEvent(outcome, o.Order, "dp_1", 1000)))
			jobs := b.requireJobs(t, append([]rivertest.ExpectedJob{payoutJob()}, map[string][]rivertest.ExpectedJob{
				"dispute_won": nil, "dispute_lost": {emailJob()}}[outcome]...)...)
			require.Equal(t, tr.ID, args[jobargs.PayoutArgs](t, jobs[0]).TransferID)
			require.Nil(t, b.transfer(t, tr.ID).ErrorMessage)
			ids, err = store.TransfersWithoutJob(b.ctx, b.tx, string(veza.TransferPending), jobargs.PayoutArgs{}.Kind(), -time.Hour, 10)
			require.NoError(t, err)
			require.Empty(t, ids, "released, with its job")
		})
	}
}

// The payment is cancelled after capture while the order is disputed: the
// buyer has the money back, so it settles like a refund (SettleRefund does
// the same for a refund that lands on a disputed order), and the dispute
// won afterwards pays no held seller.
func TestCancelAfterCaptureOnADisputedOrderTakesThePayoutsBack(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.CompletedOrder(t, b.tx, 1000, 700)
	paidOut := o.Transfer(t, b.tx, 0, veza.TransferCompleted)
	held := o.Transfer(t, b.tx, 1, veza.TransferPending)
	require.Equal(t, store.ResultOK, b.apply(t, disputeEvent("dispute_opened", o.Order, "dp_1", o.Amount)))
	isHeld, err := store.HoldPayout(b.ctx, b.tx, held.ID) // what its payout job does on a disputed order
	require.NoError(t, err)
	require.True(t, isHeld)
	require.Equal(t, store.ResultOK, b.apply(t, event("payment_cancelled_post_capture", o.Order, "cancelled_post_capture")))
	require.Equal(t, veza.OrderRefunded, b.order(t, o.ID).Status)
	require.Equal(t, veza.TransferReversalPending, b.transfer(t, paidOut.ID).Status)
	require.Equal(t, settle.PayoutCloseUnpaid, b.payoutStep(t, held.ID), "never paid: closed after the look-up")
	jobs := b.requireJobs(t, reversalJob(), payoutJob())
	require.Equal(t, held.ID, args[jobargs.PayoutArgs](t, jobs[1]).TransferID, "the held row gets the job that closes it")

	b.apply(t, disputeEvent("dispute_won", o.Order, "dp_1", o.Amount))
	require.Equal(t, veza.OrderRefunded, b.order(t, o.ID).Status, "the dispute's outcome moves no money any more")
	require.Equal(t, settle.PayoutCloseUnpaid, b.payoutStep(t, held.ID), "the held seller is not paid")
}

// Two disputes lost while a refund was pending: when the refund fails, the
// first charges the order back and the second is told to ops at ERROR, as
// the live path does: its share is taken back by hand.
func TestSecondDisputeLostWhileRefundingIsSaid(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o, _, refund := b.refunded(t)
	for _, id := range []string{"dp_1", "dp_2"} {
		b.apply(t, disputeEvent("dispute_opened", o.Order, id, 300))
		b.apply(t, disputeEvent("dispute_lost", o.Order, id, 300))
	}
	require.Equal(t, veza.OrderRefundPending, b.order(t, o.ID).Status)
	require.NoError(t, b.settle.FailRefund(b.ctx, b.tx, b.ins, refund, "declined"))
	require.Equal(t, veza.OrderChargedBack, b.order(t, o.ID).Status)
	require.Contains(t, b.logs.String(), "another dispute lost on a charged-back order")
}

// Two disputes on one order: dp_2 lost charges it back; dp_1, never lost,
// then won, gives nothing back to re-pay (dp_2's chargeback stands), so no
// line tells operators to pay the sellers by hand. When the dispute that
// was lost is the one won, it does.
func TestDisputeWonBesideAnotherLostSaysNothingToRepay(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.CompletedOrder(t, b.tx, 1000)
	o.Transfer(t, b.tx, 0, veza.TransferCompleted)
	b.apply(t, disputeEvent("dispute_opened", o.Order, "dp_1", 400))
	b.apply(t, disputeEvent("dispute_lost", o.Order, "dp_2", 600))
	require.Equal(t, veza.OrderChargedBack, b.order(t, o.ID).Status)
	b.apply(t, disputeEvent("dispute_won", o.Order, "dp_1", 400))
	require.NotContains(t, b.logs.String(), "pay them by hand")
	require.Contains(t, b.logs.String(), "another dispute of the order is lost")

	won := disputeEvent("dispute_won", o.Order, "dp_2", 600)
	won.Object.DisputeStage = "pre_arbitration" // a later stage reverses dp_2's loss
	require.Equal(t, store.ResultOK, b.apply(t, won))
	require.Contains(t, b.logs.String(), "pay them by hand")
}
