package http_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	fake "github.com/veza/backend/internal/fake"

	vezahttp "github.com/veza/backend/http"
	"github.com/veza/backend/stripeconnect"
	"github.com/veza/backend/stripeconnect/stripetest"
)

func (b *apiBundle) deliverStripe(t testing.TB, body []byte, sig string) response {
	t.Helper()
	req := httptest.NewRequest("POST", "/webhooks/stripe", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set(vezahttp.StripeSignatureHeader, sig)
	}
	resp, err := b.app.App().Test(req, -1)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Raw: string(raw)}
}

func stripeAPI(t testing.TB, sc *stripetest.Server) *apiBundle {
	return setupAPI(t, func(o *vezahttp.ServerOpts) {
		o.StripeWebhookSecret = stripetest.WebhookSecret
		o.InvalidWebhooksPerMinute = 1 << 30
		if sc != nil {
			o.Stripe = sc.Client()
		}
	})
}

// account.updated records payouts_enabled as Stripe reads it now (an old
// redelivery cannot undo a newer state); each delivery is logged once,
// applied once.
func TestStripeAccountUpdated(t *testing.T) {
	t.Parallel()
	sc := stripetest.Start(t)
	b := stripeAPI(t, sc)
	seller, token := b.newUser(t, "seller")
	_, err := b.pool.Exec(context.Background(), `UPDATE users SET stripe_account_id = 'acct_1Seller000000' WHERE id = $1`, seller.ID)
	require.NoError(t, err)
	require.Equal(t, false, b.do(t, "GET", "/v1/me", token, nil).Body["payouts_enabled"])

	sc.PutAccount("acct_1Seller000000", true)
	body := stripetest.ConnectEvent("evt_1", "account.updated", "acct_1Seller000000", sc.AccountObject("acct_1Seller000000"))
	r := b.deliverStripe(t, body, stripetest.SignWebhook(stripetest.WebhookSecret, body))
	require.Equal(t, 200, r.Status, r.Raw+b.logs.String())
	require.Equal(t, true, b.do(t, "GET", "/v1/me", token, nil).Body["payouts_enabled"])

	// An older delivery saying "disabled" arrives late: Stripe's current
	// word (enabled) wins.
	stale := stripetest.ConnectEvent("evt_0", "account.updated", "acct_1Seller000000", map[string]any{"id": "acct_1Seller000000", "payouts_enabled": false})
	require.Equal(t, 200, b.deliverStripe(t, stale, stripetest.SignWebhook(stripetest.WebhookSecret, stale)).Status)
	require.Equal(t, true, b.do(t, "GET", "/v1/me", token, nil).Body["payouts_enabled"])

	// A redelivery: logged, applied once.
	sc.PutAccount("acct_1Seller000000", false)
	r = b.deliverStripe(t, body, stripetest.SignWebhook(stripetest.WebhookSecret, body))
	require.Equal(t, 200, r.Status)
	require.Contains(t, r.Raw, "duplicate")
	require.Equal(t, true, b.do(t, "GET", "/v1/me", token, nil).Body["payouts_enabled"], "not applied again")
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM stripe_webhook_log`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM stripe_webhook_log WHERE event_id = 'evt_1' AND processing_result = 'duplicate'`))
}

// Stripe cannot be read while an account.updated arrives: the delivery is
// answered 503 (Stripe redelivers) and logged, without being recorded as
// seen, so its redelivery is applied. A redelivery of an event already
// applied is answered from the log, without reading Stripe.
func TestStripeAccountReadFailureIsLoggedAndRedelivered(t *testing.T) {
	t.Parallel()
	sc := stripetest.Start(t)
	b := stripeAPI(t, sc)
	const acct = "acct_1Down00000000"
	seller, token := b.newUser(t, "seller")
	_, err := b.pool.Exec(context.Background(), `UPDATE users SET stripe_account_id = $2 WHERE id = $1`, seller.ID, acct)
	require.NoError(t, err)
	sc.PutAccount(acct, true)
	body := stripetest.ConnectEvent("evt_down", "account.updated", acct, sc.AccountObject(acct))
	sc.FailNext(100, 503)
	r := b.deliverStripe(t, body, stripetest.SignWebhook(stripetest.WebhookSecret, body))
	require.Equal(t, 503, r.Status, r.Raw)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM stripe_webhook_log WHERE event_id = 'evt_down' AND signature_valid AND processing_result LIKE 'error:%'`),
		"the delivery Stripe will make again is logged")
	require.Equal(t, false, b.do(t, "GET", "/v1/me", token, nil).Body["payouts_enabled"])

	sc.FailNext(0, 0)
	r = b.deliverStripe(t, body, stripetest.SignWebhook(stripetest.WebhookSecret, body))
	require.Equal(t, 200, r.Status, r.Raw)
	require.Contains(t, r.Raw, "accepted", "the redelivery is applied: the failed one was not recorded as seen")
	require.Equal(t, true, b.do(t, "GET", "/v1/me", token, nil).Body["payouts_enabled"])

	reads := sc.Calls("GET /v1/accounts/" + acct)
	r = b.deliverStripe(t, body, stripetest.SignWebhook(stripetest.WebhookSecret, body))
	require.Equal(t, 200, r.Status, r.Raw)
	require.Contains(t, r.Raw, "duplicate")
	require.Equal(t, reads, sc.Calls("GET /v1/accounts/"+acct), "a duplicate reads nothing at Stripe")
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM stripe_webhook_log WHERE event_id = 'evt_down'`))
}

func TestStripeWebhookBadPaths(t *testing.T) {
	t.Parallel()
	b := stripeAPI(t, nil)
	body := stripetest.ConnectEvent("evt_x", "payout.failed", "acct_1", map[string]any{"id": "po_1", "failure_code": "account_closed"})
	for name, sig := range map[string]string{"none": "", "forged": "t=1,v1=00", "other secret": stripetest.SignWebhook("whsec_other", body)} {
		r := b.deliverStripe(t, body, sig)
		require.Equal(t, 400, r.Status, name)
		require.Contains(t, r.Raw, "invalid_signature", name)
	}
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM stripe_webhook_log WHERE NOT signature_valid AND processing_result = 'signature_invalid'`))
	notEvent := []byte(`{"object":"not an event"}`)
	r := b.deliverStripe(t, notEvent, stripetest.SignWebhook(stripetest.WebhookSecret, notEvent))
	require.Equal(t, 400, r.Status)
	require.Contains(t, r.Raw, "invalid_event")

	r = b.deliverStripe(t, body, stripetest.SignWebhook(stripetest.WebhookSecret, body))
	require.Equal(t, 200, r.Status, r.Raw)
	require.Contains(t, b.logs.String(), "a seller's bank payout failed at Stripe")
	other := stripetest.ConnectEvent("evt_y", "charge.succeeded", "", map[string]any{"id": "ch_1", "amount": "weird"})
	require.Equal(t, 200, b.deliverStripe(t, other, stripetest.SignWebhook(stripetest.WebhookSecret, other)).Status, "an event we do not use is accepted")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM stripe_webhook_log WHERE event_id = 'evt_y' AND processing_result = 'skipped'`))

	off := setupAPI(t)
	require.Equal(t, 503, off.deliverStripe(t, body, stripetest.SignWebhook(stripetest.WebhookSecret, body)).Status, "not configured")
}

// FuzzStripeWebhook: whatever arrives, no 5xx and one log row per delivery
// under the cap; an unsigned body is never applied.
func FuzzStripeWebhook(f *testing.F) {
	f.Add([]byte(stripetest.ConnectEvent("evt_1", "account.updated", "acct_1", map[string]any{"id": "acct_1", "payouts_enabled": true})), true)
	f.Add([]byte(`{"id":"evt_2","type":"payout.failed","data":{"object":[1,2]}}`), true)
	f.Add([]byte(`{"id":7}`), true)
	f.Add([]byte(`{"id":"evt_\u0000","type":"x"}`), true)
	f.Add([]byte("\xff\xfe"), false)
	f.Add([]byte(``), true)
	b := stripeAPI(f, nil)
	n := 0
	f.Fuzz(func(t *testing.T, body []byte, signed bool) {
		n++
		before := b.count(t, `SELECT count(*) FROM stripe_webhook_log`)
		sig := fmt.Sprintf("t=%d,v1=00", n)
		if signed {
			sig = stripetest.SignWebhook(stripetest.WebhookSecret, body)
		}
		r := b.deliverStripe(t, body, sig)
		require.Less(t, r.Status, 500, "%q: %s", body, r.Raw)
		if !signed {
			require.Equal(t, 400, r.Status)
		}
		if len(body) <= vezahttp.MaxWebhookBody {
			require.Equal(t, before+1, b.count(t, `SELECT count(*) FROM stripe_webhook_log`), "one log row per delivery")
		}
	})
}

// Onboarding creates the seller's connected account once and a link to
// Stripe's hosted onboarding each time; Stripe's account.updated then says
// when payouts are enabled.
func TestPayoutOnboarding(t *testing.T) {
	t.Parallel()
	sc := stripetest.Start(t)
	b := setupAPI(t, func(o *vezahttp.ServerOpts) {
		o.Stripe, o.StripeWebhookSecret, o.PublicBaseURL = sc.Client(), stripetest.WebhookSecret, "https://veza.example"
	})
	user, token := b.newUser(t, "user")
	r := b.do(t, "POST", "/v1/me/payout-account/onboarding", token, nil)
	require.Equal(t, 200, r.Status, r.Raw)
	acct := r.Body["stripe_account_id"].(string)
	require.Contains(t, r.Body["url"], "/setup/e/"+acct)
	me := b.do(t, "GET", "/v1/me", token, nil).Body
	require.Equal(t, "seller", me["role"])
	require.Equal(t, acct, me["stripe_account_id"])
	require.Equal(t, false, me["payouts_enabled"], "not until Stripe says so")

	again := b.do(t, "POST", "/v1/me/payout-account/onboarding", token, nil)
	require.Equal(t, 200, again.Status)
	require.Equal(t, acct, again.Body["stripe_account_id"], "created once")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'email' AND args->>'template' = 'payout_account_changed' AND args->>'user_id' = $1`, user.ID.String()))

	sc.PutAccount(acct, true) // the seller finished on Stripe
	body := stripetest.ConnectEvent("evt_onb", "account.updated", acct, sc.AccountObject(acct))
	require.Equal(t, 200, b.deliverStripe(t, body, stripetest.SignWebhook(stripetest.WebhookSecret, body)).Status)
	require.Equal(t, true, b.do(t, "GET", "/v1/me", token, nil).Body["payouts_enabled"])

	sc.FailNext(1, 503)
	_, other := b.newUser(t, "user")
	require.Equal(t, 503, b.do(t, "POST", "/v1/me/payout-account/onboarding", other, nil).Status, "Stripe down: nothing stored")
	require.Equal(t, 401, b.do(t, "POST", "/v1/me/payout-account/onboarding", "", nil).Status)
	off := setupAPI(t)
	_, offToken := off.newUser(t, "user")
	require.Equal(t, 503, off.do(t, "POST", "/v1/me/payout-account/onboarding", offToken, nil).Status, "Stripe Connect off")
}

// Stripe creates the account and the answer is lost: the seller's retry,
// under the same idempotency key, gets that account back, not a second one.
func TestPayoutOnboardingSurvivesALostAnswer(t *testing.T) {
	t.Parallel()
	sc := stripetest.Start(t)
	b := setupAPI(t, func(o *vezahttp.ServerOpts) { o.Stripe, o.PublicBaseURL = sc.Client(), "https://veza.example" })
	_, token := b.newUser(t, "user")
	sc.LoseNext("POST /v1/accounts", 1, fake.Lost502)
	r := b.do(t, "POST", "/v1/me/payout-account/onboarding", token, nil)
	require.Equal(t, 503, r.Status, r.Raw)
	require.Nil(t, b.do(t, "GET", "/v1/me", token, nil).Body["stripe_account_id"], "nothing stored on an unknown outcome")
	r = b.do(t, "POST", "/v1/me/payout-account/onboarding", token, nil)
	require.Equal(t, 200, r.Status, r.Raw)
	require.Equal(t, 2, sc.Calls("POST /v1/accounts"), "the retry reached Stripe, which replayed the saved creation")
	require.Equal(t, "acct_fake00000001", r.Body["stripe_account_id"], "the account Stripe made the first time")
}

// Two account.updated deliveries race while Stripe enables the seller's
// payouts: the first read Stripe just before (disabled), the second just
// after (enabled) and committed first. The older read, written last, must
// not disable the seller again: a change is read again under the seller's
// row lock before it is written. Here the first read Stripe answers is
// that older one; the account is enabled at Stripe and on the row.
func TestStripeAccountUpdatedOlderReadWrittenLastDoesNotWin(t *testing.T) {
	t.Parallel()
	sc := stripetest.Start(t)
	const acct = "acct_1Race00000000"
	sc.PutAccount(acct, true)
	var gets atomic.Int32
	stale := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if r.Method == nethttp.MethodGet && r.URL.Path == "/v1/accounts/"+acct && gets.Add(1) == 1 {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"id":"`+acct+`","object":"account","payouts_enabled":false,"charges_enabled":false}`)
			return
		}
		proxy := httputil.NewSingleHostReverseProxy(must(url.Parse(sc.URL)))
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(stale.Close)
	b := setupAPI(t, func(o *vezahttp.ServerOpts) {
		o.StripeWebhookSecret = stripetest.WebhookSecret
		o.InvalidWebhooksPerMinute = 1 << 30
		o.Stripe = stripeconnect.New(stripetest.SecretKey, stale.URL, nil)
	})
	seller, token := b.newUser(t, "seller")
	_, err := b.pool.Exec(context.Background(), `UPDATE users SET stripe_account_id = $2, payouts_enabled = true WHERE id = $1`, seller.ID, acct)
	require.NoError(t, err)

	body := stripetest.ConnectEvent("evt_race1", "account.updated", acct, map[string]any{"id": acct, "payouts_enabled": false})
	r := b.deliverStripe(t, body, stripetest.SignWebhook(stripetest.WebhookSecret, body))
	require.Equal(t, 200, r.Status, r.Raw)
	require.Equal(t, true, b.do(t, "GET", "/v1/me", token, nil).Body["payouts_enabled"], "Stripe's current word stays")
	require.EqualValues(t, 2, gets.Load(), "the change was read again before it was written")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
