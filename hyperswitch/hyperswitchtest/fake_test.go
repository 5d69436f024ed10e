package hyperswitchtest_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/hyperswitch/hyperswitchtest"
	"github.com/veza/backend/internal/fake"
)

func TestRefundMadeButAnsweredWithHTML(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := hyperswitchtest.Start(t)
	c := s.Client()
	s.PutPayment(hyperswitch.Payment{PaymentID: "pay_1", Status: "succeeded", Amount: 1000, Currency: "EUR"})
	s.LoseNext("POST /refunds", 1, fake.LostHTML200)
	_, err := c.CreateRefund(ctx, hyperswitch.CreateRefundParams{RefundID: "ref_1", PaymentID: "pay_1", Amount: 1000, Reason: "requested_by_customer"})
	require.Error(t, err, "the answer cannot be decoded")
	got, ok := s.Refund("ref_1")
	require.True(t, ok, "but the refund was made")
	require.Equal(t, "pending", got.Status)

	_, err = c.GetRefund(ctx, "ref_unknown")
	require.True(t, hyperswitch.IsRefundNotFound(err), "HE_02 for our own id: %v", err)
}

func TestRefundsFollowTheConnectorsRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := hyperswitchtest.Start(t)
	c := s.Client()
	s.PutPayment(hyperswitch.Payment{PaymentID: "pay_2", Status: "requires_capture", Amount: 1000, Currency: "EUR"})
	s.Capture("pay_2", 600)
	p, _ := s.Payment("pay_2")
	require.Equal(t, "partially_captured", p.Status)

	_, err := c.CreateRefund(ctx, hyperswitch.CreateRefundParams{RefundID: "ref_over", PaymentID: "pay_2", Amount: 1000})
	require.Error(t, err, "more than was captured")
	rf, err := c.CreateRefund(ctx, hyperswitch.CreateRefundParams{RefundID: "ref_reason", PaymentID: "pay_2", Amount: 600, Reason: "changed my mind"})
	require.NoError(t, err)
	require.Equal(t, "failed", rf.Status, "Stripe takes only duplicate, fraudulent, requested_by_customer")
	rf, err = c.CreateRefund(ctx, hyperswitch.CreateRefundParams{RefundID: "ref_ok", PaymentID: "pay_2", Amount: 600, Reason: "requested_by_customer"})
	require.NoError(t, err)
	require.Equal(t, "pending", rf.Status)
}
