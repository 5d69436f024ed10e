package settle_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend"
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

func TestPaymentEvents(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		event, status string
		want          veza.OrderStatus
	}{
		{"payment_failed", "failed", veza.OrderFailed},
		{"payment_cancelled", "cancelled", veza.OrderCancelled},
	} {
		t.Run(tc.event, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			o := storetest.PendingOrder(t, b.tx, 1000)
			require.Equal(t, store.ResultOK, b.apply(t, event(tc.event, o.Order, tc.status)))
			require.Equal(t, tc.want, b.order(t, o.ID).Status)
			// Terminal: a late success does not resurrect it.
			require.Equal(t, store.ResultSkipped, b.apply(t, paid(o)))
			require.Equal(t, tc.want, b.order(t, o.ID).Status)
			b.requireNoJobs(t)
		})
	}
}

func TestPaymentEventsThatChangeNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := storetest.PendingOrder(t, b.tx, 1000)

	require.Equal(t, store.ResultSkipped, b.apply(t, event("payment_processing", o.Order, "processing")))
	require.Equal(t, "processing", *b.order(t, o.ID).PaymentStatus, "the PSP status is recorded")

	short := paid(o)
	short.Object.Amount--
	result := b.apply(t, short)
	require.Contains(t, result, "error: amount mismatch")
	require.Contains(t, b.logs.String(), "payment amount does not match the order")

	unknown := paid(o)
	unknown.Object.PaymentID = "pay_not_ours"
	require.Equal(t, store.ResultSkipped, b.apply(t, unknown))

	require.Equal(t, store.ResultSkipped, b.apply(t, event("mandate_revoked", o.Order, "")))

	dispute := event("dispute_opened", o.Order, "")
	dispute.Object.DisputeID = "dp_1"
	require.Equal(t, store.ResultOK, b.apply(t, dispute))
	require.Contains(t, b.logs.String(), "dispute event received")

	require.Equal(t, veza.OrderPending, b.order(t, o.ID).Status)
	b.requireNoJobs(t)
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
