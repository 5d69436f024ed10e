package http_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/auth"
	vezahttp "github.com/veza/backend/http"
	"github.com/veza/backend/riverui"
	"github.com/veza/backend/store"
	"github.com/veza/backend/stripeconnect/stripetest"
)

// mintToken does what the email worker does: gives the newest token row of
// that purpose a known secret, as if the user opened the mail.
func (b *apiBundle) mintToken(t *testing.T, email, purpose string) string {
	t.Helper()
	ctx := context.Background()
	var id uuid.UUID
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT t.id FROM email_tokens t JOIN users u ON u.id = t.user_id
		WHERE u.email = $1 AND t.purpose = $2 AND t.used_at IS NULL ORDER BY t.created_at DESC LIMIT 1`, email, purpose).Scan(&id))
	raw, hash, err := auth.NewToken()
	require.NoError(t, err)
	_, err = store.MintEmailToken(ctx, b.pool, id, purpose, hash)
	require.NoError(t, err)
	return raw
}

func (b *apiBundle) register(t *testing.T, email, password string) {
	t.Helper()
	r := b.do(t, "POST", "/v1/auth/register", "", map[string]string{"email": email, "password": password})
	require.Equal(t, 201, r.Status, r.Raw)
}

func (b *apiBundle) login(t *testing.T, email, password string) string {
	t.Helper()
	r := b.do(t, "POST", "/v1/auth/login", "", map[string]string{"email": email, "password": password})
	require.Equal(t, 200, r.Status, r.Raw)
	return r.Body["token"].(string)
}

func TestRegister(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	r := b.do(t, "POST", "/v1/auth/register", "", map[string]string{"email": "  Ana@Example.TEST ", "password": "correct horse"})
	require.Equal(t, 201, r.Status, r.Raw)
	user := r.Body["user"].(map[string]any)
	require.Equal(t, "ana@example.test", user["email"])
	require.Equal(t, false, user["email_verified"])
	require.NotEmpty(t, user["id"])
	require.NotContains(t, r.Raw, "password")

	// The verification email job was enqueued with the user, by id only.
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'email' AND args->>'template' = 'verify_email' AND args->>'user_id' = $1`, user["id"]))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM email_tokens WHERE token_hash IS NULL`))

	r = b.do(t, "POST", "/v1/auth/register", "", map[string]string{"email": "ana@example.test", "password": "another one"})
	require.Equal(t, 409, r.Status)
	require.Equal(t, "email_taken", r.errorCode())
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM users`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job`))
}

// TestBadInputChangesNothing: each bad request answers in the API error
// shape with the right status and writes no row and no job.
func TestBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	b.register(t, "taken@example.test", "password1")
	cases := []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"malformed json", "/v1/auth/register", `{"email": "a@b.test", "password": `, 400, "invalid_json"},
		{"not an object", "/v1/auth/register", `["a@b.test"]`, 400, "invalid_json"},
		{"empty body", "/v1/auth/register", ``, 400, "invalid_json"},
		{"unknown field", "/v1/auth/register", `{"email":"a@b.test","password":"password1","role":"admin"}`, 400, "invalid_json"},
		{"trailing data", "/v1/auth/register", `{"email":"a@b.test","password":"password1"} {}`, 400, "invalid_json"},
		{"wrong type", "/v1/auth/register", `{"email":42,"password":"password1"}`, 400, "invalid_json"},
		{"invalid email", "/v1/auth/register", `{"email":"not-an-email","password":"password1"}`, 422, "validation_failed"},
		{"display-name email", "/v1/auth/register", `{"email":"Ana <a@b.test>","password":"password1"}`, 422, "validation_failed"},
		{"short password", "/v1/auth/register", `{"email":"a@b.test","password":"short"}`, 422, "validation_failed"},
		{"short unicode password", "/v1/auth/register", `{"email":"a@b.test","password":"ééééééé"}`, 422, "validation_failed"},
		{"huge password", "/v1/auth/register", fmt.Sprintf(`{"email":"a@b.test","password":%q}`, strings.Repeat("p", 5000)), 422, "validation_failed"},
		{"duplicate email", "/v1/auth/register", `{"email":"TAKEN@example.test","password":"password1"}`, 409, "email_taken"},
		{"unknown token", "/v1/auth/verify", `{"token":"nope"}`, 400, "invalid_token"},
		{"empty token", "/v1/auth/verify", `{"token":""}`, 400, "invalid_token"},
		{"reset bad email", "/v1/auth/password-reset", `{"email":"@@"}`, 422, "validation_failed"},
		{"reset confirm unknown token", "/v1/auth/password-reset/confirm", `{"token":"nope","password":"password2"}`, 400, "invalid_token"},
		{"reset confirm short password", "/v1/auth/password-reset/confirm", `{"token":"nope","password":"x"}`, 422, "validation_failed"},
	}
	for _, tc := range cases {
		r := b.do(t, "POST", tc.path, "", tc.body)
		require.Equal(t, tc.status, r.Status, "%s: %s", tc.name, r.Raw)
		require.Equal(t, tc.code, r.errorCode(), "%s: %s", tc.name, r.Raw)
		msg, _ := r.Body["error"].(map[string]any)["message"].(string)
		require.NotEmpty(t, msg, tc.name)
	}
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM users`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM email_tokens`))
}

// TestTenMegabyteBodyIs413 announces a 10 MB body and sends only its start:
// the server answers 413 from the Content-Length alone, before reading it.
func TestTenMegabyteBodyIs413(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	base := httptestListener(t, b.app.App())
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	// fasthttp reads the first 8 KB before handing a large body over.
	_, err = fmt.Fprintf(conn, "POST /v1/auth/register HTTP/1.1\r\nHost: veza\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"email\":\"a@b.test\",\"password\":\"%s", 10<<20, strings.Repeat("p", 16<<10))
	require.NoError(t, err)
	resp, err := nethttp.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	require.Equal(t, 413, resp.StatusCode)
	require.Contains(t, string(raw), `"code":"body_too_large"`)
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM users`))
}

func TestVerifyWorksExactlyOnce(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	b.register(t, "ana@example.test", "password1")
	token := b.mintToken(t, "ana@example.test", store.PurposeVerifyEmail)

	r := b.do(t, "POST", "/v1/auth/verify", "", map[string]string{"token": token})
	require.Equal(t, 200, r.Status, r.Raw)
	require.Equal(t, true, r.Body["user"].(map[string]any)["email_verified"])

	r = b.do(t, "POST", "/v1/auth/verify", "", map[string]string{"token": token})
	require.Equal(t, 400, r.Status)
	require.Equal(t, "invalid_token", r.errorCode())

	// A reset token is not a verification token.
	b.do(t, "POST", "/v1/auth/password-reset", "", map[string]string{"email": "ana@example.test"})
	reset := b.mintToken(t, "ana@example.test", store.PurposePasswordReset)
	r = b.do(t, "POST", "/v1/auth/verify", "", map[string]string{"token": reset})
	require.Equal(t, 400, r.Status)
}

func TestExpiredTokenIsRefused(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	b.register(t, "old@example.test", "password1")
	token := b.mintToken(t, "old@example.test", store.PurposeVerifyEmail)
	_, err := b.pool.Exec(context.Background(), `UPDATE email_tokens SET expires_at = now() - interval '1 second'`)
	require.NoError(t, err)
	r := b.do(t, "POST", "/v1/auth/verify", "", map[string]string{"token": token})
	require.Equal(t, 400, r.Status)
	require.Equal(t, "invalid_token", r.errorCode())
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM users WHERE email_verified_at IS NOT NULL`))
}

func TestLoginMeLogout(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	b.register(t, "ana@example.test", "password1")

	for _, creds := range []map[string]string{
		{"email": "ana@example.test", "password": "password2"},
		{"email": "nobody@example.test", "password": "password1"},
		{"email": "ana@example.test", "password": "short"},
	} {
		r := b.do(t, "POST", "/v1/auth/login", "", creds)
		require.Equal(t, 401, r.Status, r.Raw)
		require.Equal(t, "invalid_credentials", r.errorCode())
	}

	token := b.login(t, "ANA@example.test", "password1")
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM sessions WHERE token_hash = $1::bytea`, []byte(token)), "stored hashed, never raw")

	r := b.do(t, "GET", "/v1/me", token, nil)
	require.Equal(t, 200, r.Status)
	require.Equal(t, "ana@example.test", r.Body["email"])
	require.Equal(t, "user", r.Body["role"])
	require.Nil(t, r.Body["stripe_account_id"])
	require.Contains(t, r.Body, "email_verified")

	for _, bad := range []string{"", "garbage", token + "x"} {
		r = b.do(t, "GET", "/v1/me", bad, nil)
		require.Equal(t, 401, r.Status)
		require.Equal(t, "unauthorized", r.errorCode())
	}

	r = b.do(t, "POST", "/v1/auth/logout", token, nil)
	require.Equal(t, 204, r.Status)
	r = b.do(t, "GET", "/v1/me", token, nil)
	require.Equal(t, 401, r.Status, "the token stops working")
	r = b.do(t, "POST", "/v1/auth/logout", token, nil)
	require.Equal(t, 401, r.Status)
}

func TestPasswordResetAnswersAlike(t *testing.T) {
	t.Parallel()
	b := setupAPI(t, func(o *vezahttp.ServerOpts) { o.ResetResponseFloor = 150 * time.Millisecond })
	b.register(t, "ana@example.test", "password1")

	start := time.Now()
	known := b.do(t, "POST", "/v1/auth/password-reset", "", map[string]string{"email": "ana@example.test"})
	require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)
	start = time.Now()
	unknown := b.do(t, "POST", "/v1/auth/password-reset", "", map[string]string{"email": "ghost@example.test"})
	require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond, "the floor applies when no account exists too")

	require.Equal(t, 202, known.Status)
	require.Equal(t, known.Status, unknown.Status)
	require.Equal(t, known.Raw, unknown.Raw)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE args->>'template' = 'password_reset'`))
}

func TestPasswordResetConfirm(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	b.register(t, "ana@example.test", "password1")
	s1 := b.login(t, "ana@example.test", "password1")
	s2 := b.login(t, "ana@example.test", "password1")

	b.do(t, "POST", "/v1/auth/password-reset", "", map[string]string{"email": "ana@example.test"})
	older := b.mintToken(t, "ana@example.test", store.PurposePasswordReset)
	// A second request supersedes the first link.
	b.do(t, "POST", "/v1/auth/password-reset", "", map[string]string{"email": "ana@example.test"})
	token := b.mintToken(t, "ana@example.test", store.PurposePasswordReset)
	r := b.do(t, "POST", "/v1/auth/password-reset/confirm", "", map[string]string{"token": older, "password": "password2"})
	require.Equal(t, 400, r.Status)

	r = b.do(t, "POST", "/v1/auth/password-reset/confirm", "", map[string]string{"token": token, "password": "new password 2"})
	require.Equal(t, 200, r.Status, r.Raw)

	for _, s := range []string{s1, s2} {
		require.Equal(t, 401, b.do(t, "GET", "/v1/me", s, nil).Status, "every session is revoked")
	}
	require.Equal(t, 401, b.do(t, "POST", "/v1/auth/login", "", map[string]string{"email": "ana@example.test", "password": "password1"}).Status)
	b.login(t, "ana@example.test", "new password 2")

	r = b.do(t, "POST", "/v1/auth/password-reset/confirm", "", map[string]string{"token": token, "password": "third password"})
	require.Equal(t, 400, r.Status, "single use")
}

func TestPayoutAccount(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	b.register(t, "seller@example.test", "password1")
	token := b.login(t, "seller@example.test", "password1")

	for _, bad := range []string{`{"stripe_account_id":"nope","current_password":"password1"}`, `{"stripe_account_id":"acct_","current_password":"password1"}`,
		`{"stripe_account_id":"acct_1; DROP TABLE users","current_password":"password1"}`, `{}`, `{"stripe_account_id":"acct_1Nv0FGQ9RKHgCVdK"}`} {
		r := b.do(t, "PUT", "/v1/me/payout-account", token, bad)
		require.Equal(t, 422, r.Status, bad)
	}
	require.Equal(t, 401, b.do(t, "PUT", "/v1/me/payout-account", "", `{"stripe_account_id":"acct_1"}`).Status)

	// A stolen session is not enough: the password is asked again.
	r := b.do(t, "PUT", "/v1/me/payout-account", token, map[string]string{"stripe_account_id": "acct_1Thief00000000", "current_password": "guess"})
	require.Equal(t, 401, r.Status, r.Raw)
	require.Equal(t, "invalid_credentials", r.errorCode())
	require.Zero(t, b.count(t, `SELECT count(*) FROM users WHERE stripe_account_id IS NOT NULL`))
	require.Zero(t, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'email' AND args->>'template' = 'payout_account_changed'`))

	r = b.do(t, "PUT", "/v1/me/payout-account", token, map[string]string{"stripe_account_id": "acct_1Nv0FGQ9RKHgCVdK", "current_password": "password1"})
	require.Equal(t, 200, r.Status, r.Raw+b.logs.String())
	require.Equal(t, "seller", r.Body["role"])
	require.Equal(t, "acct_1Nv0FGQ9RKHgCVdK", r.Body["stripe_account_id"])
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'email' AND args->>'template' = 'payout_account_changed'`),
		"the seller is told about every change")
}

func TestAuthRoutesAreRateLimited(t *testing.T) {
	t.Parallel()
	b := setupAPI(t, func(o *vezahttp.ServerOpts) { o.AuthRateLimitPerMinute = 3 })
	var last response
	for i := 0; i < 4; i++ {
		last = b.do(t, "POST", "/v1/auth/login", "", map[string]string{"email": "a@b.test", "password": "password1"})
	}
	require.Equal(t, 429, last.Status)
	require.Equal(t, "rate_limited", last.errorCode())
	require.NotEmpty(t, last.Header.Get("Retry-After"))
	// Other /v1 routes still answer under the looser limit.
	require.Equal(t, 401, b.do(t, "GET", "/v1/me", "", nil).Status)
}

func TestAdminCanBeCreatedInStore(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	b.register(t, "boss@example.test", "password1")
	ctx := context.Background()
	var created bool
	require.NoError(t, b.db.InTx(ctx, func(tx pgx.Tx) error {
		var err error
		_, created, err = store.UpsertAdmin(ctx, tx, "boss@example.test", "ignored-hash")
		return err
	}))
	require.False(t, created)
	token := b.login(t, "boss@example.test", "password1")
	require.Equal(t, "admin", b.do(t, "GET", "/v1/me", token, nil).Body["role"])
}

// Behind a load balancer (TRUSTED_PROXIES), each client gets its own rate
// limit and the webhook log records the client, read as the rightmost
// X-Forwarded-For entry that is not a trusted proxy: what a client writes
// to the left of it is not believed. From an untrusted peer the header is
// ignored altogether.
func TestClientAddressBehindTrustedProxies(t *testing.T) {
	t.Parallel()
	login := func(b *apiBundle, xff string) int {
		t.Helper()
		return b.doWith(t, "POST", "/v1/auth/login", "", map[string]string{"email": "a@b.test", "password": "password1"},
			map[string]string{"X-Forwarded-For": xff}).Status
	}
	t.Run("trusted balancer", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t, func(o *vezahttp.ServerOpts) {
			o.AuthRateLimitPerMinute = 2
			o.TrustedProxies = []string{"0.0.0.0/32", "10.0.0.0/8"} // app.Test's peer, and an inner proxy
		})
		require.NotEqual(t, 429, login(b, "203.0.113.7"))
		require.NotEqual(t, 429, login(b, "203.0.113.7"))
		require.Equal(t, 429, login(b, "203.0.113.7"), "the client's own limit")
		require.NotEqual(t, 429, login(b, "198.51.100.9"), "another client behind the same balancer is not limited")
		require.Equal(t, 429, login(b, "6.6.6.6, 203.0.113.7"), "a spoofed entry to the left is not believed")
		require.Equal(t, 429, login(b, "203.0.113.7, 10.1.2.3"), "trusted hops on the right are skipped")

		body := []byte(`{"probe":1}`)
		b.deliver(t, body, "forged", "X-Forwarded-For", "6.6.6.6, 192.0.2.44")
		var ip string
		require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT source_ip FROM hyperswitch_webhook_log`).Scan(&ip))
		require.Equal(t, "192.0.2.44", ip)
	})
	t.Run("no trusted proxies", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t, func(o *vezahttp.ServerOpts) { o.AuthRateLimitPerMinute = 2 })
		login(b, "203.0.113.1")
		login(b, "203.0.113.2")
		require.Equal(t, 429, login(b, "203.0.113.3"), "a forged X-Forwarded-For does not buy a new limit")
		b.deliver(t, []byte(`{"probe":1}`), "forged", "X-Forwarded-For", "192.0.2.44")
		var ip string
		require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT source_ip FROM hyperswitch_webhook_log`).Scan(&ip))
		require.NotEqual(t, "192.0.2.44", ip, "the peer, not the header")
	})
}

// Argon2 holds 19 MiB per hash: past MaxConcurrentHashes at once, password
// routes answer 503 with Retry-After instead of queueing unbounded memory.
func TestPasswordHashingIsCapped(t *testing.T) {
	t.Parallel()
	b := setupAPI(t, func(o *vezahttp.ServerOpts) { o.MaxConcurrentHashes = 2 })
	release := b.app.HoldHashSlots(2)
	for path, body := range map[string]map[string]string{
		"/v1/auth/login":                  {"email": "a@b.test", "password": "password1"},
		"/v1/auth/register":               {"email": "new@b.test", "password": "password 123"},
		"/v1/auth/password-reset/confirm": {"token": "t", "password": "password 123"},
	} {
		r := b.do(t, "POST", path, "", body)
		require.Equal(t, 503, r.Status, path)
		require.Equal(t, "busy", r.errorCode(), path)
		require.Equal(t, "1", r.Header.Get("Retry-After"), path)
	}
	require.Zero(t, b.count(t, `SELECT count(*) FROM users WHERE email = 'new@b.test'`), "nothing half-done")
	release()
	require.Equal(t, 201, b.do(t, "POST", "/v1/auth/register", "", map[string]string{"email": "new@b.test", "password": "password 123"}).Status)
	require.Equal(t, 401, b.do(t, "POST", "/v1/auth/login", "", map[string]string{"email": "a@b.test", "password": "password1"}).Status)
}

// A user lists their live sessions and ends one (a lost laptop): its token
// stops working at once; nobody else's session can be seen or ended.
func TestSessionsListedAndRevokedByTheirOwner(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	b.register(t, "multi@example.test", "password1")
	login := func() string {
		r := b.do(t, "POST", "/v1/auth/login", "", map[string]string{"email": "multi@example.test", "password": "password1"})
		require.Equal(t, 200, r.Status, r.Raw)
		return r.Body["token"].(string)
	}
	laptop, phone := login(), login()
	_, other := b.newUser(t, "user")

	r := b.do(t, "GET", "/v1/me/sessions", phone, nil)
	require.Equal(t, 200, r.Status, r.Raw)
	sessions := r.Body["sessions"].([]any)
	require.Len(t, sessions, 2)
	var laptopID string
	for _, s := range sessions {
		m := s.(map[string]any)
		require.NotEmpty(t, m["created_at"])
		require.NotEmpty(t, m["expires_at"])
		require.NotContains(t, m, "token_hash")
		if m["current"] == false {
			laptopID = m["id"].(string)
		}
	}
	require.NotEmpty(t, laptopID, "one is this session, the other is not")
	require.NotContains(t, r.Raw, laptop)

	require.Equal(t, 404, b.do(t, "DELETE", "/v1/me/sessions/"+laptopID, other, nil).Status, "not theirs")
	require.Equal(t, 404, b.do(t, "DELETE", "/v1/me/sessions/not-a-uuid", phone, nil).Status)
	require.Equal(t, 200, b.do(t, "GET", "/v1/me", laptop, nil).Status)
	require.Equal(t, 204, b.do(t, "DELETE", "/v1/me/sessions/"+laptopID, phone, nil).Status)
	require.Equal(t, 401, b.do(t, "GET", "/v1/me", laptop, nil).Status, "the laptop is logged out")
	require.Equal(t, 404, b.do(t, "DELETE", "/v1/me/sessions/"+laptopID, phone, nil).Status, "ended already")
	require.Len(t, b.do(t, "GET", "/v1/me/sessions", phone, nil).Body["sessions"], 1)
	require.Equal(t, 401, b.do(t, "GET", "/v1/me/sessions", "", nil).Status)
}

// With Stripe Connect on, a linked account must be one Stripe knows as
// connected to the platform.
func TestPayoutAccountIsCheckedAtStripe(t *testing.T) {
	t.Parallel()
	sc := stripetest.Start(t)
	b := setupAPI(t, func(o *vezahttp.ServerOpts) { o.Stripe = sc.Client() })
	b.register(t, "linked@example.test", "password1")
	token := b.login(t, "linked@example.test", "password1")
	put := func(acct string) response {
		return b.do(t, "PUT", "/v1/me/payout-account", token, map[string]string{"stripe_account_id": acct, "current_password": "password1"})
	}
	r := put("acct_1NotOurs0000000")
	require.Equal(t, 422, r.Status, r.Raw)
	require.Contains(t, r.Raw, "stripe_account_id")
	sc.PutAccount("acct_1Connected00000", true)
	r = put("acct_1Connected00000")
	require.Equal(t, 200, r.Status)
	require.Equal(t, true, r.Body["payouts_enabled"], "Stripe's word, recorded at link time")
	sc.PutAccount("acct_1NotReady000000", false)
	r = put("acct_1NotReady000000")
	require.Equal(t, 200, r.Status)
	require.Equal(t, false, r.Body["payouts_enabled"], "its payouts wait until account.updated enables them")
	sc.FailNext(1, 503)
	r = put("acct_1Connected00000")
	require.Equal(t, 503, r.Status, "Stripe down: retry later, nothing changed")
	require.Equal(t, "stripe_unavailable", r.errorCode())
}

// The review's bypasses: a proxy adding its own X-Forwarded-For line, a
// client duplicating the header the server passes to River UI, IPv6
// clients rotating through their /64.
func TestClientAddressCannotBeForged(t *testing.T) {
	t.Parallel()
	ok := nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) { w.WriteHeader(200) })
	b := setupAPI(t, func(o *vezahttp.ServerOpts) {
		o.AuthRateLimitPerMinute = 2
		o.TrustedProxies = []string{"0.0.0.0/32"}
		o.RiverUI = riverui.BasicAuth(ok, "ops", "pw")
	})
	send := func(method, path string, header nethttp.Header, body string) int {
		t.Helper()
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header = header
		req.Header.Set("Content-Type", "application/json")
		resp, err := b.app.App().Test(req, -1)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	login := func(lines ...string) int {
		h := nethttp.Header{}
		for _, l := range lines {
			h.Add("X-Forwarded-For", l)
		}
		return send("POST", "/v1/auth/login", h, `{"email":"a@b.test","password":"password1"}`)
	}
	// The client's own line first, the balancer's line (the real client) last.
	require.NotEqual(t, 429, login("1.1.1.1", "203.0.113.7"))
	require.NotEqual(t, 429, login("2.2.2.2", "203.0.113.7"))
	require.Equal(t, 429, login("3.3.3.3", "203.0.113.7"), "the forged first line buys no new limit")
	// An IPv6 client counts as its /64.
	require.NotEqual(t, 429, login("2001:db8:1:2::1"))
	require.NotEqual(t, 429, login("2001:db8:1:2::2"))
	require.Equal(t, 429, login("2001:db8:1:2::3"), "rotating addresses in one /64")
	require.NotEqual(t, 429, login("203.0.113.99:4711"), "ip:port is read as the ip")

	// River UI: ten wrong passwords, each with a forged copy of the header
	// the server passes, are still one client.
	for i := range riverui.FailedLoginsPerMinute {
		h := nethttp.Header{}
		h.Add(riverui.ClientHeader, fmt.Sprint("10.9.9.", i))
		h.Add(riverui.ClientHeader, fmt.Sprint("10.8.8.", i))
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("ops:guess")))
		require.Equal(t, 401, send("GET", "/riverui/", h, ""), "attempt %d", i)
	}
	h := nethttp.Header{}
	h.Add(riverui.ClientHeader, "10.7.7.7")
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("ops:guess")))
	require.Equal(t, 429, send("GET", "/riverui/", h, ""), "throttled as the real client")
}
