package hyperswitch_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/veza/backend/hyperswitch"
)

func TestPaymentSupersedes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		current, next string
		want          bool
	}{
		{"", "processing", true},
		{"", "succeeded", true},
		{"processing", "succeeded", true},
		{"requires_customer_action", "processing", true},
		{"failed", "succeeded", true},                 // a manual retry succeeded
		{"succeeded", "cancelled_post_capture", true}, // the money went back
		{"partially_captured", "succeeded", true},
		{"failed", "expired", true},
		{"conflicted", "failed", true},

		{"succeeded", "succeeded", false}, // nothing new: updated_at keeps its time
		{"failed", "failed", false},
		{"succeeded", "", false},
		{"", "", false},
		{"cancelled_post_capture", "succeeded", false},
		{"cancelled_post_capture", "processing", false},
		{"cancelled_post_capture", "failed", false},
		{"succeeded", "processing", false},
		{"succeeded", "conflicted", false},
		{"succeeded", "partially_captured_and_capturable", false},
		{"succeeded", "partially_authorized_and_requires_capture", false},
		{"failed", "requires_payment_method", false},
		{"succeeded", "failed", false}, // an earlier attempt's failure
		{"succeeded", "expired", false},
		{"partially_captured", "cancelled", false},
		{"succeeded", "teleported", false}, // unknown: not final
		{"succeeded", strings.Repeat("x", 200), false},
	} {
		require.Equal(t, c.want, hyperswitch.PaymentSupersedes(c.current, c.next), "%q then %q", c.current, c.next)
	}
}

func TestPaymentStatusClasses(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"succeeded", "partially_captured", "partially_captured_and_capturable"} {
		require.True(t, hyperswitch.PaymentTookMoney(s), s)
	}
	for _, s := range []string{"failed", "cancelled", "expired", "processing", "requires_capture", "conflicted", "", "Succeeded"} {
		require.False(t, hyperswitch.PaymentTookMoney(s), s)
	}
	for _, s := range []string{"conflicted", "requires_merchant_action", "teleported", "", "succeeded"} {
		require.False(t, hyperswitch.PaymentWaiting(s), s)
	}
	require.True(t, hyperswitch.PaymentWaiting("processing"))
	require.False(t, hyperswitch.PaymentFinal("partially_captured_and_capturable"), "more may still be captured")
}
