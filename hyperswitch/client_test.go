package hyperswitch_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/hyperswitch/hyperswitchtest"
	faults "github.com/veza/backend/internal/fake"
)

func TestCreatePaymentIsIdempotentByPaymentID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := hyperswitchtest.Start(t)
	c := fake.Client()

	params := hyperswitch.CreatePaymentParams{PaymentID: "veza_ord_1", Amount: 1999, Currency: "EUR"}
	first, err := c.CreatePayment(ctx, params)
	require.NoError(t, err)
	require.Equal(t, "veza_ord_1", first.PaymentID)
	require.Equal(t, "requires_payment_method", first.Status)
	require.NotEmpty(t, first.ClientSecret)

	// A retried create answers HE_01 at Hyperswitch and is read back.
	again, err := c.CreatePayment(ctx, params)
	require.NoError(t, err)
	require.Equal(t, first.ClientSecret, again.ClientSecret)
	require.Equal(t, 2, fake.Calls("POST /payments"))
	require.Equal(t, 1, fake.Calls("GET /payments"))
}

func TestCreateWithoutOurIDFailsLoudly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := hyperswitchtest.Start(t)
	c := fake.Client()
	_, err := c.CreatePayment(ctx, hyperswitch.CreatePaymentParams{Amount: 100, Currency: "EUR"})
	require.ErrorIs(t, err, hyperswitch.ErrMissingIdentity)
	_, err = c.CreateRefund(ctx, hyperswitch.CreateRefundParams{PaymentID: "p", Amount: 100})
	require.ErrorIs(t, err, hyperswitch.ErrMissingIdentity)
	require.Zero(t, fake.Calls("POST /payments")+fake.Calls("POST /refunds"), "nothing was sent")
}

func TestRefunds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := hyperswitchtest.Start(t)
	c := fake.Client()
	_, err := c.CreatePayment(ctx, hyperswitch.CreatePaymentParams{PaymentID: "p1", Amount: 500, Currency: "USD"})
	require.NoError(t, err)
	fake.SetPaymentStatus("p1", "succeeded")

	ref, err := c.CreateRefund(ctx, hyperswitch.CreateRefundParams{RefundID: "r1", PaymentID: "p1", Amount: 500})
	require.NoError(t, err)
	require.Equal(t, "pending", ref.Status)
	again, err := c.CreateRefund(ctx, hyperswitch.CreateRefundParams{RefundID: "r1", PaymentID: "p1", Amount: 500})
	require.NoError(t, err, "a retried refund reads the first back")
	require.Equal(t, "r1", again.RefundID)
	require.Len(t, fake.Refunds(), 1)

	msg := "insufficient funds"
	fake.SetRefundStatus("r1", "failed", &msg)
	got, err := c.GetRefund(ctx, "r1")
	require.NoError(t, err)
	require.Equal(t, "failed", got.Status)
	require.Equal(t, "insufficient funds", *got.ErrorMessage)
}

func TestErrorsTellTransientFromPermanent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := hyperswitchtest.Start(t)
	c := fake.Client()

	_, err := c.GetPayment(ctx, "nope")
	require.True(t, hyperswitch.IsNotFound(err))
	require.False(t, hyperswitch.IsTransient(err))

	fake.FailNext(1, 503)
	_, err = c.GetPayment(ctx, "nope")
	require.True(t, hyperswitch.IsTransient(err))

	_, err = hyperswitch.New(fake.URL, "wrong-key", nil).GetPayment(ctx, "x")
	var herr *hyperswitch.Error
	require.ErrorAs(t, err, &herr)
	require.Equal(t, 401, herr.HTTPStatus)
	require.Equal(t, "IR_01", herr.Code)
	require.True(t, herr.Transient(), "our key refused is a configuration error, not the provider's word on a refund")

	fake.LoseNext("GET /payments", 1, faults.Lost502)
	_, err = c.GetPayment(ctx, "nope")
	require.True(t, hyperswitch.IsTransient(err), "a proxy's 502 page")
	require.False(t, hyperswitch.IsNotFound(err))

	_, err = hyperswitch.New(fake.URL+"/v2-wrong-prefix", hyperswitchtest.APIKey, nil).GetPayment(ctx, "x")
	require.True(t, hyperswitch.IsTransient(err), "IR_02, a wrong URL, is a configuration error: %v", err)
	require.False(t, hyperswitch.IsNotFound(err))

	_, err = hyperswitch.New("http://127.0.0.1:1", hyperswitchtest.APIKey, nil).GetPayment(ctx, "x")
	require.True(t, hyperswitch.IsTransient(err), "network errors are transient")
}

func TestSignature(t *testing.T) {
	t.Parallel()
	body := []byte(`{"event_id":"evt_1"}`)
	sig := hyperswitch.Sign("whsec", body)
	require.Len(t, sig, 128, "hex of 64 bytes")
	require.True(t, hyperswitch.VerifySignature("whsec", body, sig))
	require.True(t, hyperswitch.VerifySignature("whsec", body, " "+sig+" "))
	require.False(t, hyperswitch.VerifySignature("other", body, sig))
	require.False(t, hyperswitch.VerifySignature("whsec", append(body, ' '), sig))
	require.False(t, hyperswitch.VerifySignature("whsec", body, sig[:127]))
	require.False(t, hyperswitch.VerifySignature("whsec", body, "zz"+sig[2:]))
	require.False(t, hyperswitch.VerifySignature("", body, hyperswitch.Sign("", body)), "an empty secret never verifies")
	require.False(t, hyperswitch.VerifySignature("whsec", body, ""))
}

func TestEventTypeOf(t *testing.T) {
	t.Parallel()
	require.Equal(t, "payment_succeeded", hyperswitch.EventTypeOf([]byte(`{"event_type":"payment_succeeded"}`)))
	require.Equal(t, "", hyperswitch.EventTypeOf([]byte(`{"event_type":`)))
	require.Equal(t, "", hyperswitch.EventTypeOf([]byte(`{"event_type":42}`)))
	require.Equal(t, "", hyperswitch.EventTypeOf([]byte(`garbage`)))
}
