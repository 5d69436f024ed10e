package veza_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/veza/backend"
)

func TestTransferMachine(t *testing.T) {
	t.Parallel()
	allowed := [][2]veza.TransferStatus{
		{"pending", "completed"}, {"pending", "failed"}, {"failed", "pending"}, {"failed", "permanently_failed"},
		{"completed", "reversal_pending"}, {"reversal_pending", "reversed"}, {"reversal_pending", "permanently_failed"},
		{"failed", "completed"}, {"reversal_pending", "reversal_failed"}, {"reversal_failed", "reversal_pending"},
		{"reversal_failed", "reversed"},
	}
	for _, m := range allowed {
		require.NoError(t, veza.CheckTransferMove(m[0], m[1]), "%v", m)
	}
	for _, m := range [][2]veza.TransferStatus{
		{"completed", "pending"}, {"reversed", "reversal_pending"}, {"permanently_failed", "pending"},
		{"pending", "reversed"}, {"completed", "completed"}, {"reversal_pending", "completed"},
		{"reversal_failed", "completed"}, {"reversed", "reversal_failed"},
	} {
		require.ErrorIs(t, veza.CheckTransferMove(m[0], m[1]), veza.ErrInvalidTransition, "%v", m)
	}
}

func TestOrderMachine(t *testing.T) {
	t.Parallel()
	require.NoError(t, veza.CheckOrderMove(veza.OrderPending, veza.OrderCompleted))
	require.NoError(t, veza.CheckOrderMove(veza.OrderRefundPending, veza.OrderCompleted))
	for _, terminal := range []veza.OrderStatus{veza.OrderCancelled, veza.OrderExpired, veza.OrderRefunded} {
		for _, to := range []veza.OrderStatus{veza.OrderPending, veza.OrderCompleted, veza.OrderFailed, veza.OrderRefunded} {
			require.Error(t, veza.CheckOrderMove(terminal, to))
		}
	}
	require.NoError(t, veza.CheckOrderMove(veza.OrderFailed, veza.OrderCompleted), "a manual retry at Hyperswitch succeeded")
	require.Error(t, veza.CheckOrderMove(veza.OrderFailed, veza.OrderRefunded))
	require.NoError(t, veza.CheckOrderMove(veza.OrderCompleted, veza.OrderRefunded), "a cancel after capture")
	require.Error(t, veza.CheckOrderMove(veza.OrderCompleted, veza.OrderFailed), "a late payment_failed never undoes a success")
	require.NoError(t, veza.CheckRefundMove(veza.RefundPending, veza.RefundFailed))
	require.Error(t, veza.CheckRefundMove(veza.RefundSucceeded, veza.RefundFailed))
	require.NoError(t, veza.CheckRefundMove(veza.RefundFailed, veza.RefundSucceeded), "the provider's late success is repaired")
}

func TestFormatMoney(t *testing.T) {
	t.Parallel()
	require.Equal(t, "19.99 EUR", veza.FormatMoney(1999, "EUR"))
	require.Equal(t, "0.05 USD", veza.FormatMoney(5, "USD"))
	require.Equal(t, "500 JPY", veza.FormatMoney(500, "JPY"))
	require.True(t, veza.ValidCurrency("EUR"))
	require.False(t, veza.ValidCurrency("eur"))
	// ISO 4217 minor units, from a maintained table.
	for _, tc := range []struct {
		amount   int64
		currency string
		want     string
	}{{1999, "KWD", "1.999 KWD"}, {1999, "BHD", "1.999 BHD"}, {5, "OMR", "0.005 OMR"}, {1000, "JOD", "1.000 JOD"},
		{-1234, "TND", "-1.234 TND"}, {1999, "KRW", "1999 KRW"}, {-5, "EUR", "-0.05 EUR"}, {100, "GBP", "1.00 GBP"}} {
		require.Equal(t, tc.want, veza.FormatMoney(tc.amount, tc.currency))
	}
	for _, c := range []string{"USD", "KWD", "JPY", "CHF"} {
		require.True(t, veza.ValidCurrency(c), c)
	}
	require.Equal(t, "1.999 IQD", veza.FormatMoney(1999, "IQD"), "ISO 4217, where CLDR rounds to 0")
	require.Equal(t, "19.99 IDR", veza.FormatMoney(1999, "IDR"))
	for _, c := range []string{"ZZZ", "ABC", "XXX", "XTS", "XAU", "DEM", "FRF", "EU", "EURO", ""} {
		require.False(t, veza.ValidCurrency(c), "%q is not a currency", c)
	}
}

func TestSplitShareNeverLosesACent(t *testing.T) {
	t.Parallel()
	require.Equal(t, veza.Share{Gross: 999, Fee: 99, Net: 900}, veza.SplitShare(999, 1000))
	require.Equal(t, veza.Share{Gross: 1, Fee: 0, Net: 1}, veza.SplitShare(1, 1000))
	require.Equal(t, veza.Share{Gross: 500, Fee: 500, Net: 0}, veza.SplitShare(500, 10_000))
	for gross := int64(1); gross < 5000; gross += 7 {
		for _, bps := range []int{0, 1, 333, 1000, 2500, 9999, 10_000} {
			s := veza.SplitShare(gross, bps)
			require.Equal(t, gross, s.Net+s.Fee)
			require.GreaterOrEqual(t, s.Fee, int64(0))
			require.GreaterOrEqual(t, s.Net, int64(0))
		}
	}
}

func TestProportionalShares(t *testing.T) {
	t.Parallel()
	require.Equal(t, []int64{900, 450}, veza.ProportionalShares([]int64{900, 450}, 1500, 1500), "the whole payment: everything")
	require.Equal(t, []int64{450, 225}, veza.ProportionalShares([]int64{900, 450}, 750, 1500))
	// 1/3 of 100 + 100 + 100 + 1 = 100.33...: 100, shared 34, 33, 33, 0.
	got := veza.ProportionalShares([]int64{100, 100, 100, 1}, 1, 3)
	require.Equal(t, []int64{34, 33, 33, 0}, got)
	var sum int64
	for _, s := range veza.ProportionalShares([]int64{333, 667, 1}, 517, 1001) {
		sum += s
	}
	require.EqualValues(t, (2*1001*517+1001)/(2*1001), sum, "the sum is exact")
	require.Equal(t, []int64{0, 0}, veza.ProportionalShares([]int64{5, 5}, 0, 10))
	// Products beyond int64 (an amount times a disputed amount) stay exact.
	require.Equal(t, []int64{3_500_000_000_000_000, 2_100_000_000_000_000},
		veza.ProportionalShares([]int64{5_000_000_000_000_000, 3_000_000_000_000_000}, 7_000_000_000_000, 10_000_000_000_000))
}

func TestDisputeMovesWithStages(t *testing.T) {
	t.Parallel()
	ok := func(fs string, f veza.DisputeStatus, ts string, to veza.DisputeStatus) {
		t.Helper()
		require.NoError(t, veza.CheckDisputeMoveAt(fs, f, ts, to), "%s/%s → %s/%s", fs, f, ts, to)
	}
	no := func(fs string, f veza.DisputeStatus, ts string, to veza.DisputeStatus) {
		t.Helper()
		require.ErrorIs(t, veza.CheckDisputeMoveAt(fs, f, ts, to), veza.ErrInvalidTransition, "%s/%s → %s/%s", fs, f, ts, to)
	}
	ok("dispute", veza.DisputeOpened, "dispute", veza.DisputeChallenged)
	ok("dispute", veza.DisputeChallenged, "dispute", veza.DisputeLost)
	no("dispute", veza.DisputeWon, "dispute", veza.DisputeLost) // terminal within a stage
	no("dispute", veza.DisputeLost, "dispute", veza.DisputeOpened)
	no("dispute", veza.DisputeLost, "", veza.DisputeOpened) // no stage: the same stage
	// A later stage starts over, as Hyperswitch allows: won, then lost in pre-arbitration.
	ok("dispute", veza.DisputeWon, "pre_arbitration", veza.DisputeOpened)
	ok("dispute", veza.DisputeWon, "pre_arbitration", veza.DisputeLost)
	ok("pre_dispute", veza.DisputeCancelled, "dispute", veza.DisputeOpened)
	ok("dispute", veza.DisputeOpened, "pre_arbitration", veza.DisputeOpened)
	// An earlier stage is an old event.
	no("pre_arbitration", veza.DisputeOpened, "dispute", veza.DisputeLost)
	no("dispute", veza.DisputeOpened, "pre_dispute", veza.DisputeWon)
	no("dispute", veza.DisputeWon, "pre_arbitration", veza.DisputeStatus("reversed"))

	require.True(t, veza.DisputeExpired.Lost(), "expired: the response deadline passed, the chargeback stands")
	require.False(t, veza.DisputeCancelled.Lost())
}
