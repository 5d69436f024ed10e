package sandbox_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/sandbox"
	"github.com/veza/backend/store/dbtest"
	"github.com/veza/backend/stripeconnect"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// eventID is a Hyperswitch webhook body's event_id.
func eventID(t *testing.T, body []byte) string {
	t.Helper()
	var ev struct {
		EventID string `json:"event_id"`
	}
	require.NoError(t, json.Unmarshal(body, &ev))
	require.NotEmpty(t, ev.EventID, "%s", body)
	return ev.EventID
}

// service is a stand-in for the service's webhook receiver that fails the
// first failures deliveries, checking each signature.
type service struct {
	failures int32
	got      atomic.Int32
	bodies   chan []byte
	t        *testing.T
}

func (s *service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	n := s.got.Add(1)
	switch r.URL.Path {
	case "/webhooks/hyperswitch":
		if !hyperswitch.VerifySignature(sandbox.HyperswitchWebhookSecret, body, r.Header.Get(hyperswitch.SignatureHeader)) {
			s.t.Errorf("bad Hyperswitch signature on %s", body)
		}
	case "/webhooks/stripe":
		if r.Header.Get("Stripe-Signature") == "" {
			s.t.Errorf("unsigned Stripe event")
		}
	}
	if n <= s.failures {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	s.bodies <- body
}

// open mounts a sandbox on a test server with svc as the service.
func open(t *testing.T, db string, svc http.Handler) (*sandbox.Sandbox, *httptest.Server, context.CancelFunc) {
	t.Helper()
	target := httptest.NewServer(svc)
	t.Cleanup(target.Close)
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	sb, err := sandbox.Open(context.Background(), sandbox.Opts{DB: dbtest.PoolFor(t, db), URL: srv.URL + sandbox.Path, ServiceURL: target.URL,
		RefundDelay: 100 * time.Millisecond, Logger: zerolog.Nop(), Tick: 20 * time.Millisecond})
	require.NoError(t, err)
	mux.Handle("/", sb.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	go sb.Run(ctx)
	t.Cleanup(cancel)
	return sb, srv, cancel
}

// A webhook the service refuses is sent again, the same bytes, on
// Hyperswitch's schedule (compressed: its first retry after 1 s).
func TestWebhookRetriedOnHyperswitchSchedule(t *testing.T) {
	t.Parallel()
	svc := &service{failures: 1, bodies: make(chan []byte, 10), t: t}
	sb, srv, _ := open(t, dbtest.URL(t), svc)
	hs := hyperswitch.New(srv.URL+sandbox.Path+"/hyperswitch", sandbox.HyperswitchAPIKey, nil)
	_, err := hs.CreatePayment(context.Background(), hyperswitch.CreatePaymentParams{PaymentID: "pay_retry", Amount: 500, Currency: "EUR"})
	require.NoError(t, err)

	began := time.Now()
	_, event, err := sb.CompletePayment(context.Background(), "pay_retry", "succeeded")
	require.NoError(t, err)
	require.Equal(t, "payment_succeeded", event)
	select {
	case body := <-svc.bodies:
		require.Contains(t, string(body), `"event_type":"payment_succeeded"`)
		require.GreaterOrEqual(t, time.Since(began), time.Second, "the retry waits Hyperswitch's first interval (1 min / 60)")
	case <-time.After(10 * time.Second):
		t.Fatal("the refused webhook was not retried")
	}
	require.Eventually(t, func() bool {
		ds, err := sb.Deliveries(context.Background())
		require.NoError(t, err)
		require.Len(t, ds, 1)
		return ds[0].Delivered && ds[0].Attempts == 2 && ds[0].LastStatus == 200
	}, 5*time.Second, 20*time.Millisecond, "one delivery, two attempts, the second accepted")
}

// The simulators' state is in PostgreSQL: a second sandbox on the same
// database (a restart of make run) knows the payments, refunds, transfers
// and Stripe's saved idempotency results, and settles a pending refund.
func TestStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.URL(t)
	svc := &service{bodies: make(chan []byte, 10), t: t}
	sb, srv, stop := open(t, db, svc)
	hs := hyperswitch.New(srv.URL+sandbox.Path+"/hyperswitch", sandbox.HyperswitchAPIKey, nil)
	_, err := hs.CreatePayment(ctx, hyperswitch.CreatePaymentParams{PaymentID: "pay_keep", Amount: 800, Currency: "EUR"})
	require.NoError(t, err)
	_, _, err = sb.CompletePayment(ctx, "pay_keep", "succeeded")
	require.NoError(t, err)
	paid := eventID(t, <-svc.bodies)
	sc := stripeconnect.New(sandbox.StripeSecretKey, srv.URL, &http.Client{Transport: sandbox.StripeTransport(http.DefaultTransport)})
	acct, err := sc.CreateExpressAccount(ctx, "user_1", "acct-key-1")
	require.NoError(t, err)
	tr, err := sc.CreateTransfer(ctx, stripeconnect.TransferParams{Amount: 700, Currency: "eur", Destination: acct, TransferGroup: "g1", IdempotencyKey: "k1"})
	require.NoError(t, err)
	stop() // the refund below stays pending: nobody settles it now
	_, err = hs.CreateRefund(ctx, hyperswitch.CreateRefundParams{RefundID: "ref_keep", PaymentID: "pay_keep", Amount: 800, Reason: "requested_by_customer"})
	require.NoError(t, err)

	svc2 := &service{bodies: make(chan []byte, 10), t: t}
	_, srv2, _ := open(t, db, svc2)
	hs2 := hyperswitch.New(srv2.URL+sandbox.Path+"/hyperswitch", sandbox.HyperswitchAPIKey, nil)
	p, err := hs2.GetPayment(ctx, "pay_keep")
	require.NoError(t, err)
	require.Equal(t, "succeeded", p.Status)
	sc2 := stripeconnect.New(sandbox.StripeSecretKey, srv2.URL, &http.Client{Transport: sandbox.StripeTransport(http.DefaultTransport)})
	again, err := sc2.CreateTransfer(ctx, stripeconnect.TransferParams{Amount: 700, Currency: "eur", Destination: acct, TransferGroup: "g1", IdempotencyKey: "k1"})
	require.NoError(t, err)
	require.Equal(t, tr, again, "Stripe's saved result under the key survives: no second transfer")

	// Delivery is at least once: stop() may come between the service's
	// answer and the sandbox recording it, and the restarted sandbox then
	// sends that event again (the same event id, which the service skips).
	for settled := false; !settled; {
		select {
		case body := <-svc2.bodies:
			if strings.Contains(string(body), `"event_type":"payment_succeeded"`) {
				require.Equal(t, paid, eventID(t, body), "only a redelivery of the payment's event")
				continue
			}
			require.Contains(t, string(body), `"event_type":"refund_succeeded"`, "the pending refund settles after the restart")
			settled = true
		case <-time.After(10 * time.Second):
			t.Fatal("the pending refund never settled")
		}
	}
	rf, err := hs2.GetRefund(ctx, "ref_keep")
	require.NoError(t, err)
	require.Equal(t, "succeeded", rf.Status)

	// A reversal is stored with its transfer.reversed, announced once even
	// when its key is replayed.
	for range 2 {
		_, err = sc2.ReverseTransfer(ctx, tr, "rev-key-1", nil)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		reversed := 0
		for _, d := range mustDeliveries(t, sb) {
			if d.EventType == "transfer.reversed" {
				reversed++
			}
		}
		return reversed == 1
	}, 5*time.Second, 20*time.Millisecond, "one transfer.reversed for one reversal")
}

// Controls refuse what the providers would not do, with the API's errors.
func TestControlsRefuseBadRequests(t *testing.T) {
	t.Parallel()
	_, srv, _ := open(t, dbtest.URL(t), &service{bodies: make(chan []byte, 10), t: t})
	post := func(path, body string) (int, string) {
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		path, body string
		status     int
		code       string
	}{
		{"/sandbox/payments/nope/complete", `{"status":"succeeded"}`, 404, "not_found"},
		{"/sandbox/payments/nope/complete", `{"status":"paid"}`, 422, "invalid_status"},
		{"/sandbox/payments/nope/complete", `{"status":`, 400, "invalid_json"},
		{"/sandbox/refunds/nope/complete", `{"status":"pending"}`, 422, "invalid_status"},
		{"/sandbox/refunds/nope/complete", `{"status":"failed"}`, 404, "not_found"},
		{"/sandbox/payments/nope/dispute", `{"status":"dispute_opened"}`, 404, "not_found"},
		{"/sandbox/payments/nope/dispute", `{"status":"opened"}`, 422, "invalid_status"},
		{"/sandbox/nothing", `{}`, 404, "not_found"},
	} {
		status, body := post(c.path, c.body)
		require.Equal(t, c.status, status, "%s %s: %s", c.path, c.body, body)
		require.Contains(t, body, `"code":"`+c.code+`"`, c.path)
	}
}

// Two controls racing on one refund (a developer's "failed" as the delay
// runs out) do not both move it: one wins, the other is told it is final,
// and one webhook is queued.
func TestRefundControlsRaceOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb, srv, stop := open(t, dbtest.URL(t), &service{bodies: make(chan []byte, 100), t: t})
	stop() // no timer: only the controls move it
	hs := hyperswitch.New(srv.URL+sandbox.Path+"/hyperswitch", sandbox.HyperswitchAPIKey, nil)
	_, err := hs.CreatePayment(ctx, hyperswitch.CreatePaymentParams{PaymentID: "pay_race", Amount: 500, Currency: "EUR"})
	require.NoError(t, err)
	_, _, err = sb.CompletePayment(ctx, "pay_race", "succeeded")
	require.NoError(t, err)
	_, err = hs.CreateRefund(ctx, hyperswitch.CreateRefundParams{RefundID: "ref_race", PaymentID: "pay_race", Amount: 500, Reason: "requested_by_customer"})
	require.NoError(t, err)

	statuses := make(chan int, 20)
	for i := range 20 {
		go func() {
			body := `{"status":"succeeded"}`
			if i%2 == 0 {
				body = `{"status":"failed"}`
			}
			resp, err := http.Post(srv.URL+"/sandbox/refunds/ref_race/complete", "application/json", strings.NewReader(body))
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	counts := map[int]int{}
	for range 20 {
		counts[<-statuses]++
	}
	require.Equal(t, map[int]int{200: 1, 409: 19}, counts)
	ds, err := sb.Deliveries(ctx)
	require.NoError(t, err)
	refundEvents := 0
	for _, d := range ds {
		if strings.HasPrefix(d.EventType, "refund_") {
			refundEvents++
		}
	}
	require.Equal(t, 1, refundEvents, "one outcome, one webhook")
}

// The controls take JSON only: a browser must then ask before a foreign
// page may post to them.
func TestControlsTakeJSONOnly(t *testing.T) {
	t.Parallel()
	_, srv, _ := open(t, dbtest.URL(t), &service{bodies: make(chan []byte, 10), t: t})
	resp, err := http.Post(srv.URL+"/sandbox/payments/x/complete", "text/plain", strings.NewReader(`{"status":"succeeded"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode)
}

func mustDeliveries(t *testing.T, sb *sandbox.Sandbox) []sandbox.Delivery {
	t.Helper()
	ds, err := sb.Deliveries(context.Background())
	require.NoError(t, err)
	return ds
}
