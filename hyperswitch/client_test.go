package hyperswitch_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
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

	require.Equal(t, 1, fake.Calls("GET /refunds"), "the repeat, refused for its amount (IR_13), was read back")

	// A refusal with no refund under our id stands, and is no unknown.
	_, err = c.CreatePayment(ctx, hyperswitch.CreatePaymentParams{PaymentID: "p2", Amount: 500, Currency: "USD"})
	require.NoError(t, err)
	_, err = c.CreateRefund(ctx, hyperswitch.CreateRefundParams{RefundID: "r2", PaymentID: "p2", Amount: 500})
	var herr *hyperswitch.Error
	require.ErrorAs(t, err, &herr)
	require.Equal(t, "IR_14", herr.Code, "the refusal itself, not the read-back's HE_02")
	require.False(t, hyperswitch.IsTransient(err))
	require.Equal(t, 2, fake.Calls("GET /refunds"))

	msg := "insufficient funds"
	fake.SetRefundStatus("r1", "failed", &msg)
	got, err := c.GetRefund(ctx, "r1")
	require.NoError(t, err)
	require.Equal(t, "failed", got.Status)
	require.Equal(t, "insufficient funds", *got.ErrorMessage)
}

// readBackFails answers every GET /refunds with status and body, and sends
// everything else on to the fake.
type readBackFails struct {
	status int
	body   string
}

func (f readBackFails) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/refunds/") {
		return &http.Response{StatusCode: f.status, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(f.body)), Request: r}, nil
	}
	return http.DefaultTransport.RoundTrip(r)
}

// A refusal whose read-back does not answer "no such refund" leaves the
// outcome unknown: the caller asks again, it never fails the refund.
func TestRefusedRefundWhoseReadBackFailsIsUnknown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := hyperswitchtest.Start(t)
	_, err := fake.Client().CreatePayment(ctx, hyperswitch.CreatePaymentParams{PaymentID: "p1", Amount: 500, Currency: "USD"})
	require.NoError(t, err) // not succeeded: a refund is refused (IR_14)
	for name, rb := range map[string]readBackFails{
		"5xx":             {503, `{"error":{"type":"api","code":"HE_00","message":"Something went wrong"}}`},
		"another refusal": {400, `{"error":{"type":"invalid_request","code":"IR_05","message":"Missing required param"}}`},
		"not JSON":        {200, `<html>wait</html>`},
	} {
		t.Run(name, func(t *testing.T) {
			c := hyperswitch.New(fake.URL, hyperswitchtest.APIKey, &http.Client{Transport: rb})
			_, err := c.CreateRefund(ctx, hyperswitch.CreateRefundParams{RefundID: "r_" + strings.ReplaceAll(name, " ", "_"), PaymentID: "p1", Amount: 500})
			require.Error(t, err)
			require.True(t, hyperswitch.IsTransient(err), "unknown, not a refusal: %v", err)
			require.False(t, hyperswitch.IsRefundNotFound(err))
		})
	}
}

func TestErrorsTellTransientFromPermanent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := hyperswitchtest.Start(t)
	c := fake.Client()

	_, err := c.GetPayment(ctx, "nope")
	require.True(t, hyperswitch.IsPaymentNotFound(err))
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
	require.False(t, hyperswitch.IsPaymentNotFound(err))

	_, err = hyperswitch.New(fake.URL+"/v2-wrong-prefix", hyperswitchtest.APIKey, nil).GetPayment(ctx, "x")
	require.True(t, hyperswitch.IsTransient(err), "IR_02, a wrong URL, is a configuration error: %v", err)
	require.False(t, hyperswitch.IsPaymentNotFound(err))

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

func TestParseEventReadsARealDisputeBody(t *testing.T) {
	t.Parallel()
	// As Hyperswitch sends it: amount a string, status as dispute_status,
	// times without a zone, fields we never read (numbers, nulls, objects).
	body := []byte(`{"merchant_id":"merchant_veza","event_id":"evt_d1","event_type":"dispute_opened",
	 "content":{"type":"dispute_details","object":{"dispute_id":"dp_1","payment_id":"veza_ord_1","attempt_id":"a_1",
	  "amount":"1500","currency":"EUR","dispute_stage":"pre_arbitration","dispute_status":"dispute_opened",
	  "connector":"stripe","connector_status":"needs_response","connector_dispute_id":"du_1",
	  "connector_reason":"fraudulent","connector_reason_code":null,"challenge_required_by":"2026-12-09T10:00:00.000Z",
	  "connector_created_at":null,"created_at":"2026-12-02T10:00:00.000Z","profile_id":null,
	  "is_already_refunded":false,"additional_details":{"network":"visa","score":0.9},"status":{"unexpected":true}}},
	 "timestamp":"2026-12-02T10:00:00.123Z","processor_merchant_id":42}`)
	ev, err := hyperswitch.ParseEvent(body)
	require.NoError(t, err)
	o := ev.Content.Object
	require.Equal(t, "dispute_details", ev.Content.Type)
	require.Equal(t, int64(1500), o.Amount, "a string of minor units")
	require.Equal(t, "dp_1", o.DisputeID)
	require.Equal(t, "veza_ord_1", o.PaymentID)
	require.Equal(t, "dispute_opened", o.DisputeStatus)
	require.Equal(t, "pre_arbitration", o.DisputeStage)
	require.Equal(t, "du_1", o.ConnectorDisputeID)
	require.Equal(t, "needs_response", o.ConnectorStatus)
	require.Equal(t, "fraudulent", o.ConnectorReason)
	require.Equal(t, "2026-12-09T10:00:00.000Z", o.ChallengeRequiredBy)
	require.Equal(t, "", o.Status, "a status of the wrong type is ignored, not an error")

	// A payment's amount stays a number; amount_received may be null.
	ev, err = hyperswitch.ParseEvent([]byte(`{"event_id":"e","event_type":"payment_succeeded","content":{"type":"payment_details",
	 "object":{"payment_id":"p","status":"succeeded","amount":1999,"amount_received":null,"currency":"EUR","metadata":{"n":1}}}}`))
	require.NoError(t, err)
	require.Equal(t, int64(1999), ev.Content.Object.Amount)
	require.Nil(t, ev.Content.Object.AmountReceived)

	// Content we do not act on (a mandate, a payout) parses.
	for _, b := range []string{
		`{"event_id":"e","event_type":"mandate_active","content":{"type":"mandate_details","object":{"mandate_id":"m","amount":{"x":1}}}}`,
		`{"event_id":"e","event_type":"payout_success","content":{"type":"payout_details","object":[1,2]}}`,
		`{"event_id":"e","event_type":"invoice_paid","content":"text"}`,
	} {
		_, err := hyperswitch.ParseEvent([]byte(b))
		require.NoError(t, err, b)
	}
	// What we key on must be there, as strings, storable.
	for _, b := range []string{
		`{"event_type":"dispute_won"}`, `{"event_id":7,"event_type":"dispute_won"}`, `[]`, `{"event_id":"e\u0000","event_type":"x"}`,
		`{"event_id":"e","event_type":"x\u0000"}`,
	} {
		_, err := hyperswitch.ParseEvent([]byte(b))
		require.Error(t, err, b)
	}
	// An id or status with a NUL is none of ours: read as absent.
	ev, err = hyperswitch.ParseEvent([]byte(`{"event_id":"e","event_type":"dispute_won","content":{"object":{"dispute_id":"d\u0000","payment_id":"p","dispute_status":"\u0000"}}}`))
	require.NoError(t, err)
	require.Equal(t, "", ev.Content.Object.DisputeID)
	require.Equal(t, "", ev.Content.Object.DisputeStatus)
	require.Equal(t, "p", ev.Content.Object.PaymentID)
	// An id or stage longer than its column can be none of Hyperswitch's:
	// read as absent, or the event's job fails on every attempt.
	long := strings.Repeat("x", 129)
	ev, err = hyperswitch.ParseEvent([]byte(`{"event_id":"e","event_type":"dispute_opened","content":{"object":{"dispute_id":"` + long +
		`","payment_id":"` + long[:65] + `","refund_id":"` + long[:65] + `","dispute_stage":"` + long[:33] + `","dispute_status":"dispute_opened"}}}`))
	require.NoError(t, err)
	require.Equal(t, "", ev.Content.Object.DisputeID)
	require.Equal(t, "", ev.Content.Object.PaymentID)
	require.Equal(t, "", ev.Content.Object.RefundID)
	require.Equal(t, "", ev.Content.Object.DisputeStage)
	require.Equal(t, "dispute_opened", ev.Content.Object.DisputeStatus)
	ev, err = hyperswitch.ParseEvent([]byte(`{"event_id":"e","event_type":"dispute_opened","content":{"object":{"dispute_id":"` + long[:128] +
		`","dispute_stage":"` + long[:32] + `"}}}`))
	require.NoError(t, err)
	require.Len(t, ev.Content.Object.DisputeID, 128, "the longest that fits is kept")
	require.Len(t, ev.Content.Object.DisputeStage, 32)
	// Free text loses its NULs instead of failing the delivery.
	ev, err = hyperswitch.ParseEvent([]byte(`{"event_id":"e","event_type":"dispute_lost","content":{"object":{"connector_reason":"a\u0000b"}}}`))
	require.NoError(t, err)
	require.Equal(t, "ab", ev.Content.Object.ConnectorReason)
}

func TestGetDispute(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := hyperswitchtest.Start(t)
	c := fake.Client()
	fake.PutPayment(hyperswitch.Payment{PaymentID: "veza_ord_d", Status: "succeeded", Amount: 3000, Currency: "EUR"})
	d := fake.OpenDispute("veza_ord_d", 1200)
	require.Equal(t, "1200", d.Amount)

	got, err := c.GetDispute(ctx, d.DisputeID)
	require.NoError(t, err)
	require.Equal(t, int64(1200), got.Amount)
	require.Equal(t, "dispute_opened", got.DisputeStatus)
	require.Equal(t, "veza_ord_d", got.PaymentID)
	require.NotEmpty(t, got.ChallengeRequiredBy)

	fake.SetDisputeStatus(d.DisputeID, "dispute_lost")
	got, err = c.GetDispute(ctx, d.DisputeID)
	require.NoError(t, err)
	require.Equal(t, "dispute_lost", got.DisputeStatus)

	_, err = c.GetDispute(ctx, "dp_missing")
	var missing *hyperswitch.Error
	require.ErrorAs(t, err, &missing)
	require.Equal(t, "HE_04", missing.Code, "Hyperswitch's DisputeNotFound is HE_04, not HE_02")

	ev, err := hyperswitch.ParseEvent(fake.DisputeWebhook("evt_x", d.DisputeID))
	require.NoError(t, err)
	require.Equal(t, "dispute_lost", ev.EventType)
	require.Equal(t, int64(1200), ev.Content.Object.Amount)
}

// A payment's metadata is any JSON (an operator's update_metadata may add
// numbers, lists, objects): a payment read must not fail on it, or
// reconcile could never read a payment whose webhook was lost.
func TestPaymentWithMetadataThatIsNotStrings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := hyperswitchtest.Start(t)
	c := fake.Client()
	_, err := c.CreatePayment(ctx, hyperswitch.CreatePaymentParams{PaymentID: "veza_ord_meta", Amount: 1999, Currency: "EUR",
		Metadata: map[string]string{"order_id": "ord_1"}})
	require.NoError(t, err)
	fake.SetPaymentStatus("veza_ord_meta", "succeeded")
	fake.UpdateMetadata("veza_ord_meta", map[string]any{"order_id": "ord_1", "attempts": 2, "tags": []any{"vip"}, "crm": map[string]any{"id": 7}, "note": nil})

	for _, read := range []func(context.Context, string) (*hyperswitch.Payment, error){c.GetPayment, c.SyncPayment} {
		p, err := read(ctx, "veza_ord_meta")
		require.NoError(t, err)
		require.Equal(t, "succeeded", p.Status)
		require.Equal(t, "ord_1", p.Metadata["order_id"])
		require.EqualValues(t, 2, p.Metadata["attempts"])
	}
}

// The same, on Hyperswitch's own bytes: metadata values that are numbers,
// lists and objects decode.
func TestPaymentReadDecodesAnyMetadata(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"payment_id":"p1","status":"succeeded","amount":1999,"amount_received":1999,"currency":"EUR",`+
			`"metadata":{"order_id":"ord_1","attempts":2,"tags":["vip"],"crm":{"id":7},"flag":true,"note":null}}`)
	}))
	t.Cleanup(srv.Close)
	p, err := hyperswitch.New(srv.URL, "key", nil).SyncPayment(context.Background(), "p1")
	require.NoError(t, err)
	require.Equal(t, "ord_1", p.Metadata["order_id"])
}

// answers sends every request to status and body (no fake behind it).
type answers struct {
	status int
	body   string
}

func (f answers) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: f.status, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(f.body)), Request: r}, nil
}

// HE_02 is Hyperswitch's code for any missing object: the merchant
// connector account, the merchant account, a profile, a config key
// (hyperswitch_domain_models' ApiErrorResponse). Only one that names the
// payment or the refund we asked about is its word that it does not exist;
// the others are a configuration problem and say nothing about money.
func TestOnlyAnHE02NamingTheObjectSaysItDoesNotExist(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	read := func(body string) (payErr, refundErr error) {
		c := hyperswitch.New("http://hyperswitch.invalid", hyperswitchtest.APIKey, &http.Client{Transport: answers{404, body}})
		_, payErr = c.SyncPayment(ctx, "p1")
		_, refundErr = c.SyncRefund(ctx, "r1")
		return
	}
	payErr, refundErr := read(`{"error":{"type":"invalid_request","code":"HE_02","message":"Merchant connector account does not exist in our records"}}`)
	require.False(t, hyperswitch.IsPaymentNotFound(payErr), "a missing connector account is not a missing payment")
	require.False(t, hyperswitch.IsRefundNotFound(refundErr))
	require.True(t, hyperswitch.IsTransient(payErr), "a configuration error: ask again")

	payErr, refundErr = read(`{"error":{"type":"invalid_request","code":"HE_02","message":"Payment does not exist in our records"}}`)
	require.True(t, hyperswitch.IsPaymentNotFound(payErr))
	require.False(t, hyperswitch.IsRefundNotFound(refundErr), "a refund read answered about a payment says nothing about the refund")

	_, refundErr = read(`{"error":{"type":"invalid_request","code":"HE_02","message":"Refund does not exist in our records"}}`)
	require.True(t, hyperswitch.IsRefundNotFound(refundErr))
}

// A 2xx whose JSON is not the object asked for (`{}` from a gateway, null,
// another object) decoded without error and was taken as the answer: a
// refund with an empty id and status, stored as submitted, never asked
// about again. It is an unknown outcome.
func TestSuccessWithoutTheObjectIsUnknown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, body := range []string{`{}`, `null`, `{"object":"list","data":[]}`, `{"refund_id":"r1"}`, `{"payment_id":"p1"}`} {
		c := hyperswitch.New("http://hyperswitch.invalid", hyperswitchtest.APIKey, &http.Client{Transport: answers{200, body}})
		_, err := c.CreateRefund(ctx, hyperswitch.CreateRefundParams{RefundID: "r1", PaymentID: "p1", Amount: 500})
		require.Error(t, err, body)
		require.True(t, hyperswitch.IsTransient(err), "unknown, not a refusal: %v", err)
		_, err = c.SyncRefund(ctx, "r1")
		require.True(t, hyperswitch.IsTransient(err), "%s: %v", body, err)
		_, err = c.SyncPayment(ctx, "p1")
		require.True(t, hyperswitch.IsTransient(err), "%s: %v", body, err)
		_, err = c.CreatePayment(ctx, hyperswitch.CreatePaymentParams{PaymentID: "p1", Amount: 500, Currency: "USD"})
		require.True(t, hyperswitch.IsTransient(err), "%s: %v", body, err)
	}
	// Another refund's answer is not ours either.
	c := hyperswitch.New("http://hyperswitch.invalid", hyperswitchtest.APIKey, &http.Client{Transport: answers{200, `{"refund_id":"r2","payment_id":"p1","status":"succeeded","amount":500}`}})
	_, err := c.CreateRefund(ctx, hyperswitch.CreateRefundParams{RefundID: "r1", PaymentID: "p1", Amount: 500})
	require.True(t, hyperswitch.IsTransient(err), "%v", err)
	for _, read := range []func() error{
		func() error { _, err := c.SyncRefund(ctx, "r1"); return err },
		func() error { _, err := c.GetRefund(ctx, "r1"); return err },
	} {
		err := read()
		require.True(t, hyperswitch.IsTransient(err), "a read of r1 answered r2: %v", err)
	}
	// Nor is another payment's, read or created.
	c = hyperswitch.New("http://hyperswitch.invalid", hyperswitchtest.APIKey, &http.Client{Transport: answers{200, `{"payment_id":"p2","status":"succeeded","amount":500,"currency":"USD"}`}})
	_, err = c.SyncPayment(ctx, "p1")
	require.True(t, hyperswitch.IsTransient(err), "%v", err)
	_, err = c.GetPayment(ctx, "p1")
	require.True(t, hyperswitch.IsTransient(err), "%v", err)
	_, err = c.CreatePayment(ctx, hyperswitch.CreatePaymentParams{PaymentID: "p1", Amount: 500, Currency: "USD"})
	require.True(t, hyperswitch.IsTransient(err), "%v", err)
}
