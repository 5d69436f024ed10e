package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// writableTables are counted before and after hostile input: nothing may
// change.
var writableTables = []string{"users", "sessions", "email_tokens", "tracks", "orders", "order_items", "idempotency_keys",
	"refunds", "seller_transfers", "hyperswitch_events", "river_job"}

func (b *apiBundle) snapshot(t testing.TB) map[string]int {
	out := map[string]int{}
	for _, table := range writableTables {
		var n int
		require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n))
		out[table] = n
	}
	return out
}

// hostileValues are strings and numbers an attacker or a broken client
// sends: wrong types, huge numbers, negatives, unicode edge cases, SQL and
// path metacharacters.
var hostileValues = []any{
	nil, true, 0, -1, -99999999999999, 1e308, json.Number("1e999999"), 18446744073709551616.0,
	"", " ", "\u0000", "a\u0000b", "\u202Eevil", "\uFEFF", "😀🎵", strings.Repeat("ä", 2000),
	"'; DROP TABLE users; --", "\" OR 1=1 --", "%", "_", "\\", "../../etc/passwd", "${jndi:ldap://x}", "<script>alert(1)</script>",
	[]any{}, []any{1, "2", nil}, map[string]any{}, map[string]any{"$gt": ""},
}

// TestHostileInputs sends every hostile value in every field of every JSON
// body, plus hostile query strings and path ids: each answer is a 4xx in
// the API error shape, and nothing is written.
func TestHostileInputs(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	_, token := b.newUser(t, "user")
	_, admin := b.newUser(t, "admin")
	before := b.snapshot(t)

	bodies := []struct {
		method, path, token string
		fields              []string
		headers             map[string]string
	}{
		{"POST", "/v1/auth/register", "", []string{"email", "password"}, nil},
		{"POST", "/v1/auth/verify", "", []string{"token"}, nil},
		{"POST", "/v1/auth/login", "", []string{"email", "password"}, nil},
		{"POST", "/v1/auth/password-reset", "", []string{"email"}, nil},
		{"POST", "/v1/auth/password-reset/confirm", "", []string{"token", "password"}, nil},
		{"PUT", "/v1/me/payout-account", token, []string{"stripe_account_id"}, nil},
		{"POST", "/v1/orders", token, []string{"track_ids"}, map[string]string{"Idempotency-Key": "hostile"}},
		{"POST", "/v1/orders/7b0e4f5c-3f6a-4a53-9d0b-2f0b1d6d2a11/refund", token, []string{"reason"}, nil},
		{"POST", "/admin/reconcile", admin, []string{"order_id", "refund_id"}, nil},
	}
	tried := 0
	check := func(label string, r response) {
		t.Helper()
		tried++
		require.True(t, r.Status >= 400 && r.Status < 500, "%s: status %d: %s", label, r.Status, r.Raw)
		require.NotEmpty(t, r.errorCode(), "%s: the API error shape: %s", label, r.Raw)
		require.NotContains(t, r.Raw, "goroutine ")
		require.NotContains(t, r.Raw, ".go:")
	}
	for _, ep := range bodies {
		for _, field := range ep.fields {
			for i, v := range hostileValues {
				body := map[string]any{}
				for _, f := range ep.fields {
					body[f] = "x"
				}
				body[field] = v
				raw, err := json.Marshal(body)
				if err != nil { // json.Number that is not JSON: send it raw
					raw = []byte(fmt.Sprintf(`{%q: %v}`, field, v))
				}
				headers := ep.headers
				if headers != nil {
					headers = map[string]string{"Idempotency-Key": fmt.Sprintf("hostile-%s-%d", field, i)}
				}
				check(fmt.Sprintf("%s %s %s=%v", ep.method, ep.path, field, v), b.doWith(t, ep.method, ep.path, ep.token, string(raw), headers))
			}
		}
		for _, raw := range []string{`{`, `[]`, `"x"`, `null`, `{"a":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`, "\xff\xfe", `{} {}`} {
			check(fmt.Sprintf("%s %s raw %.20q", ep.method, ep.path, raw), b.doWith(t, ep.method, ep.path, ep.token, raw, ep.headers))
		}
	}

	for _, q := range []string{"limit=-1", "limit=0", "limit=1e10", "limit=99999999999999999999", "limit=abc", "cursor=%00", "cursor=" + strings.Repeat("A", 500),
		"q=" + url.QueryEscape(strings.Repeat("x", 300)), "q=%ff%fe"} {
		check("GET /v1/tracks?"+q, b.do(t, "GET", "/v1/tracks?"+q, "", nil))
	}
	for _, q := range []string{"limit=-5", "limit=1000000", "signature_valid=1", "signature_valid=%27"} {
		check("GET /admin/webhooks?"+q, b.do(t, "GET", "/admin/webhooks?"+q, admin, nil))
	}
	for _, q := range []string{"status=" + url.QueryEscape("opened' OR '1'='1"), "status=%00", "limit=0", "limit=1e10"} {
		check("GET /admin/disputes?"+q, b.do(t, "GET", "/admin/disputes?"+q, admin, nil))
	}
	check("GET /admin/webhooks?event_type=%00", b.do(t, "GET", "/admin/webhooks?event_type=%00", admin, nil))
	check("GET /admin/webhooks?event_type=%ff", b.do(t, "GET", "/admin/webhooks?event_type=%ff%fe", admin, nil))
	check("GET /admin/transfers?status=...", b.do(t, "GET", "/admin/transfers?status="+url.QueryEscape("failed' OR '1'='1"), admin, nil))
	for _, id := range []string{"1", "-1", "null", "%27%20OR%201%3D1", "7b0e4f5c-3f6a-4a53-9d0b-2f0b1d6d2a1", strings.Repeat("f", 300), "%E2%80%AE"} {
		check("GET /v1/orders/"+id, b.do(t, "GET", "/v1/orders/"+id, token, nil))
		check("GET /v1/tracks/"+id, b.do(t, "GET", "/v1/tracks/"+id, "", nil))
		check("GET /v1/tracks/"+id+"/stream", b.do(t, "GET", "/v1/tracks/"+id+"/stream", token, nil))
		check("POST /admin/transfers/"+id+"/retry", b.do(t, "POST", "/admin/transfers/"+id+"/retry", admin, nil))
	}

	require.Equal(t, before, b.snapshot(t), "hostile input wrote nothing")
	t.Logf("hostile inputs: %d requests, all 4xx in the API error shape, nothing written", tried)
}
