package http_test

import (
	"crypto/sha256"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	vezahttp "github.com/veza/backend/http"
)

func orderBody(ids ...string) map[string]any { return map[string]any{"track_ids": ids} }

func TestCreateOrder(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	seller1, _ := b.newUser(t, "seller")
	seller2, _ := b.newUser(t, "seller")
	_, buyer := b.newUser(t, "user")
	t1 := b.newTrack(t, seller1, 999, "EUR")
	t2 := b.newTrack(t, seller2, 1500, "EUR")

	r := b.do(t, "POST", "/v1/orders", buyer, orderBody(t1.ID.String()))
	require.Equal(t, 400, r.Status)
	require.Equal(t, "idempotency_key_required", r.errorCode())

	key := map[string]string{"Idempotency-Key": "order-key-1"}
	first := b.doWith(t, "POST", "/v1/orders", buyer, orderBody(t1.ID.String(), t2.ID.String()), key)
	require.Equal(t, 201, first.Status, first.Raw)
	order := first.Body["order"].(map[string]any)
	require.Equal(t, "pending", order["status"])
	require.EqualValues(t, 2499, order["amount"])
	require.Equal(t, "EUR", order["currency"])
	require.Equal(t, "veza_ord_"+order["id"].(string), order["payment_id"])
	require.Len(t, order["items"], 2)
	require.NotEmpty(t, first.Body["client_secret"])
	pay, ok := b.hs.Payment(order["payment_id"].(string))
	require.True(t, ok)
	require.EqualValues(t, 2499, pay.Amount)

	// Same key and body: the first answer, nothing new.
	again := b.doWith(t, "POST", "/v1/orders", buyer, orderBody(t1.ID.String(), t2.ID.String()), key)
	require.Equal(t, 201, again.Status)
	require.JSONEq(t, first.Raw, again.Raw)
	require.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM orders`))
	require.Equal(t, 1, b.hs.Calls("POST /payments"))

	// Same key, other body: 422.
	other := b.doWith(t, "POST", "/v1/orders", buyer, orderBody(t1.ID.String()), key)
	require.Equal(t, 422, other.Status)
	require.Equal(t, "idempotency_key_reused", other.errorCode())

	// The same key of another user is another key.
	_, buyer2 := b.newUser(t, "user")
	r = b.doWith(t, "POST", "/v1/orders", buyer2, orderBody(t1.ID.String()), key)
	require.Equal(t, 201, r.Status)
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM orders`))
}

func TestCreateOrderBadInput(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	seller, sellerToken := b.newUser(t, "seller")
	_, buyer := b.newUser(t, "user")
	eur := b.newTrack(t, seller, 999, "EUR")
	usd := b.newTrack(t, seller, 999, "USD")
	deleted := b.newTrack(t, seller, 999, "EUR")
	_, err := b.pool.Exec(t.Context(), `UPDATE tracks SET deleted_at = now() WHERE id = $1`, deleted.ID)
	require.NoError(t, err)

	many := make([]string, 51)
	for i := range many {
		many[i] = eur.ID.String()
	}
	cases := []struct {
		name, token string
		body        any
		status      int
		code        string
	}{
		{"no tracks", buyer, orderBody(), 422, "validation_failed"},
		{"not a uuid", buyer, orderBody("42"), 422, "validation_failed"},
		{"sql in id", buyer, orderBody("'; DROP TABLE orders; --"), 422, "validation_failed"},
		{"duplicate", buyer, orderBody(eur.ID.String(), eur.ID.String()), 422, "validation_failed"},
		{"too many", buyer, orderBody(many...), 422, "validation_failed"},
		{"unknown track", buyer, orderBody("7b0e4f5c-3f6a-4a53-9d0b-2f0b1d6d2a11"), 422, "track_unavailable"},
		{"deleted track", buyer, orderBody(deleted.ID.String()), 422, "track_unavailable"},
		{"own track", sellerToken, orderBody(eur.ID.String()), 422, "own_track"},
		{"mixed currency", buyer, orderBody(eur.ID.String(), usd.ID.String()), 422, "mixed_currency"},
		{"wrong type", buyer, `{"track_ids":"all"}`, 400, "invalid_json"},
		{"unknown field", buyer, `{"track_ids":[],"amount":1}`, 400, "invalid_json"},
		{"anonymous", "", orderBody(eur.ID.String()), 401, "unauthorized"},
	}
	for i, tc := range cases {
		r := b.doWith(t, "POST", "/v1/orders", tc.token, tc.body, map[string]string{"Idempotency-Key": "k" + string(rune('a'+i))})
		require.Equal(t, tc.status, r.Status, "%s: %s", tc.name, r.Raw)
		require.Equal(t, tc.code, r.errorCode(), tc.name)
	}
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM orders`))
	require.Zero(t, b.hs.Calls("POST /payments"))
}

func TestCreateOrderResumesAfterProviderOutage(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	seller, _ := b.newUser(t, "seller")
	_, buyer := b.newUser(t, "user")
	tr := b.newTrack(t, seller, 700, "USD")
	key := map[string]string{"Idempotency-Key": "retry-me"}

	b.hs.FailNext(1, 503)
	r := b.doWith(t, "POST", "/v1/orders", buyer, orderBody(tr.ID.String()), key)
	require.Equal(t, 503, r.Status, r.Raw)
	require.Equal(t, "payment_provider_unavailable", r.errorCode())

	r = b.doWith(t, "POST", "/v1/orders", buyer, orderBody(tr.ID.String()), key)
	require.Equal(t, 201, r.Status, r.Raw)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM orders`), "the retry resumed the same order")
	require.Equal(t, 2, b.hs.Calls("POST /payments"), "one failed call, one that succeeded")
}

func TestGetOrder(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	seller, _ := b.newUser(t, "seller")
	_, buyer := b.newUser(t, "user")
	_, stranger := b.newUser(t, "user")
	tr := b.newTrack(t, seller, 300, "EUR")
	created := b.doWith(t, "POST", "/v1/orders", buyer, orderBody(tr.ID.String()), map[string]string{"Idempotency-Key": "g"})
	require.Equal(t, 201, created.Status)
	id := created.Body["order"].(map[string]any)["id"].(string)

	r := b.do(t, "GET", "/v1/orders/"+id, buyer, nil)
	require.Equal(t, 200, r.Status)
	require.Equal(t, "pending", r.Body["status"])
	require.Equal(t, []any{}, r.Body["refunds"])
	require.Len(t, r.Body["items"], 1)

	require.Equal(t, 404, b.do(t, "GET", "/v1/orders/"+id, stranger, nil).Status, "not disclosed to others")
	require.Equal(t, 404, b.do(t, "GET", "/v1/orders/not-a-uuid", buyer, nil).Status)
	require.Equal(t, 401, b.do(t, "GET", "/v1/orders/"+id, "", nil).Status)
}

func TestOrdersNeedPayments(t *testing.T) {
	t.Parallel()
	b := setupAPI(t, func(o *vezahttp.ServerOpts) { o.Hyperswitch = nil })
	_, buyer := b.newUser(t, "user")
	r := b.doWith(t, "POST", "/v1/orders", buyer, orderBody("7b0e4f5c-3f6a-4a53-9d0b-2f0b1d6d2a11"), map[string]string{"Idempotency-Key": "x"})
	require.Equal(t, 503, r.Status)
	require.Equal(t, "payments_unavailable", r.errorCode())

	// Input is checked first (API.md): a newcomer without provider keys
	// learns what is wrong with the request before the 503.
	for _, c := range []struct {
		name, body, key string
		status          int
		code            string
	}{
		{"no key", `{"track_ids":["7b0e4f5c-3f6a-4a53-9d0b-2f0b1d6d2a11"]}`, "", 400, "idempotency_key_required"},
		{"malformed", `{"track_ids":[`, "k1", 400, "invalid_json"},
		{"unknown field", `{"track_ids":["7b0e4f5c-3f6a-4a53-9d0b-2f0b1d6d2a11"],"x":1}`, "k2", 400, "invalid_json"},
		{"no tracks", `{"track_ids":[]}`, "k3", 422, ""},
	} {
		headers := map[string]string{}
		if c.key != "" {
			headers["Idempotency-Key"] = c.key
		}
		r := b.doWith(t, "POST", "/v1/orders", buyer, c.body, headers)
		require.Equal(t, c.status, r.Status, "%s: %s", c.name, r.Raw)
		if c.code != "" {
			require.Equal(t, c.code, r.errorCode(), c.name)
		}
	}
	r = b.doWith(t, "POST", "/v1/orders/7b0e4f5c-3f6a-4a53-9d0b-2f0b1d6d2a11/refund", buyer, `{"reason":`, nil)
	require.Equal(t, 400, r.Status, "a refund's malformed body too: %s", r.Raw)
}

// Keys stored before the idempotent middleware hashed the JSON of the
// track ids alone: a client retrying across that deploy still gets its
// first answer, and a key that resumes an order still resumes it.
func TestCreateOrderKeysFromBeforeTheMiddlewareStillReplay(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	seller, _ := b.newUser(t, "seller")
	buyer, token := b.newUser(t, "user")
	tr := b.newTrack(t, seller, 999, "EUR")
	ids, _ := json.Marshal([]string{tr.ID.String()})
	legacy := sha256.Sum256(ids)
	_, err := b.pool.Exec(t.Context(), `INSERT INTO idempotency_keys (user_id, key, request_hash, response_status, response_body)
		VALUES ($1, 'before-deploy', $2, 201, '{"order":{"id":"from-before"}}')`, buyer.ID, legacy[:])
	require.NoError(t, err)

	r := b.doWith(t, "POST", "/v1/orders", token, orderBody(tr.ID.String()), map[string]string{"Idempotency-Key": "before-deploy"})
	require.Equal(t, 201, r.Status, r.Raw)
	require.Equal(t, "true", r.Header.Get("Idempotent-Replayed"))
	require.JSONEq(t, `{"order":{"id":"from-before"}}`, r.Raw)
	require.Zero(t, b.count(t, `SELECT count(*) FROM orders`))
}

// Payments not configured is a 503 after the request's own checks, and
// claims no key.
func TestOrdersWithoutPaymentsClaimNoKey(t *testing.T) {
	t.Parallel()
	b := setupAPI(t, func(o *vezahttp.ServerOpts) { o.Hyperswitch = nil })
	_, buyer := b.newUser(t, "user")
	r := b.doWith(t, "POST", "/v1/orders", buyer, `{"track_ids":"all"}`, map[string]string{"Idempotency-Key": "x"})
	require.Equal(t, 400, r.Status, "malformed input first")
	r = b.do(t, "POST", "/v1/orders", buyer, orderBody("7b0e4f5c-3f6a-4a53-9d0b-2f0b1d6d2a11"))
	require.Equal(t, "idempotency_key_required", r.errorCode(), "a missing key first")
	r = b.doWith(t, "POST", "/v1/orders", buyer, orderBody("7b0e4f5c-3f6a-4a53-9d0b-2f0b1d6d2a11"), map[string]string{"Idempotency-Key": "x"})
	require.Equal(t, 503, r.Status)
	require.Zero(t, b.count(t, `SELECT count(*) FROM idempotency_keys`))
}

// An Idempotency-Key must be text: bytes that are not UTF-8 (or control
// characters) are a 400 before anything is claimed, not a 500 from
// PostgreSQL refusing them.
func TestIdempotencyKeyMustBeText(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	seller, _ := b.newUser(t, "seller")
	_, token := b.newUser(t, "user")
	tr := b.newTrack(t, seller, 999, "EUR")
	for _, key := range []string{"\xff\xfe", "caf\xe9", "a\x7fb", "a\tb"} {
		r := b.doWith(t, "POST", "/v1/orders", token, orderBody(tr.ID.String()), map[string]string{"Idempotency-Key": key})
		require.Equal(t, 400, r.Status, "%q: %s", key, r.Raw)
		require.Equal(t, "invalid_idempotency_key", r.errorCode(), "%q", key)
	}
	require.Zero(t, b.count(t, `SELECT count(*) FROM idempotency_keys`))
	require.Zero(t, b.count(t, `SELECT count(*) FROM orders`))
	r := b.doWith(t, "POST", "/v1/orders", token, orderBody(tr.ID.String()), map[string]string{"Idempotency-Key": "café-order-1"})
	require.Equal(t, 201, r.Status, "UTF-8 text is a key: %s", r.Raw)
}
