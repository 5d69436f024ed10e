package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/mail/mailtest"
	"github.com/veza/backend/store/dbtest"
)

func postJSON(t *testing.T, url, token string, body any) (int, map[string]any) {
	t.Helper()
	raw, err := json.Marshal(body)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(raw))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(data, &out)
	return resp.StatusCode, out
}

func getMe(t *testing.T, base, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// TestAccountFlowsOverSMTP runs the real service with its workers against
// an SMTP server in the test process: every link is read from a real mail.
func TestAccountFlowsOverSMTP(t *testing.T) {
	t.Parallel()
	smtp := mailtest.Start(t, "127.0.0.1:0")
	dbURL := dbtest.URL(t)
	env := baseEnv(t, dbURL)
	env["SMTP_HOST"] = smtp.Host
	env["SMTP_PORT"] = strconv.Itoa(smtp.Port)
	env["SMTP_TLS"] = "none"
	env["SMTP_FROM"] = "no-reply@veza.test"
	env["PUBLIC_BASE_URL"] = "http://app.veza.test"
	env["RIVER_FETCH_COOLDOWN"] = "10ms"
	env["RATE_LIMIT_AUTH_PER_MINUTE"] = "1000"
	r := start(t, env)

	// Register → the verification mail → its link verifies exactly once.
	status, body := postJSON(t, r.base+"/v1/auth/register", "", map[string]string{"email": "ana@example.test", "password": "first password"})
	require.Equal(t, 201, status, body)
	verifyMail := smtp.WaitFor(t, 1, 20*time.Second)[0]
	require.Equal(t, []string{"ana@example.test"}, verifyMail.To)
	require.Contains(t, verifyMail.Text, "http://app.veza.test/verify-email?token=")
	token, err := url.QueryUnescape(verifyMail.Token())
	require.NoError(t, err)

	status, body = postJSON(t, r.base+"/v1/auth/verify", "", map[string]string{"token": token})
	require.Equal(t, 200, status, body)
	status, body = postJSON(t, r.base+"/v1/auth/verify", "", map[string]string{"token": token})
	require.Equal(t, 400, status)
	require.Equal(t, "invalid_token", body["error"].(map[string]any)["code"])

	// Two sessions, then a password reset through the mailed link.
	status, body = postJSON(t, r.base+"/v1/auth/login", "", map[string]string{"email": "ana@example.test", "password": "first password"})
	require.Equal(t, 200, status)
	session1 := body["token"].(string)
	_, body = postJSON(t, r.base+"/v1/auth/login", "", map[string]string{"email": "ana@example.test", "password": "first password"})
	session2 := body["token"].(string)

	status, _ = postJSON(t, r.base+"/v1/auth/password-reset", "", map[string]string{"email": "ana@example.test"})
	require.Equal(t, 202, status)
	resetMail := smtp.WaitFor(t, 2, 20*time.Second)[1]
	require.Contains(t, resetMail.Text, "http://app.veza.test/reset-password?token=")
	resetToken, err := url.QueryUnescape(resetMail.Token())
	require.NoError(t, err)

	status, body = postJSON(t, r.base+"/v1/auth/password-reset/confirm", "", map[string]string{"token": resetToken, "password": "second password"})
	require.Equal(t, 200, status, body)
	require.Equal(t, 401, getMe(t, r.base, session1))
	require.Equal(t, 401, getMe(t, r.base, session2))
	status, _ = postJSON(t, r.base+"/v1/auth/login", "", map[string]string{"email": "ana@example.test", "password": "first password"})
	require.Equal(t, 401, status, "old password fails")
	status, _ = postJSON(t, r.base+"/v1/auth/login", "", map[string]string{"email": "ana@example.test", "password": "second password"})
	require.Equal(t, 200, status, "new password works")

	// A reset for an unknown account answers alike and sends nothing.
	status, _ = postJSON(t, r.base+"/v1/auth/password-reset", "", map[string]string{"email": "ghost@example.test"})
	require.Equal(t, 202, status)

	// No job args hold a token, a password or a password hash.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT args::text FROM river_job`)
	require.NoError(t, err)
	args, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	var emails int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'email'`).Scan(&emails))
	require.Equal(t, 2, emails)
	var hashes []string
	hrows, err := conn.Query(ctx, `SELECT password_hash FROM users`)
	require.NoError(t, err)
	hashes, err = pgx.CollectRows(hrows, pgx.RowTo[string])
	require.NoError(t, err)
	for _, a := range args {
		for _, secret := range append([]string{token, resetToken, "first password", "second password", "$argon2id$"}, hashes...) {
			require.NotContains(t, a, secret)
		}
	}
	time.Sleep(200 * time.Millisecond)
	require.Len(t, smtp.Messages(), 2, "exactly one mail per request, none for the unknown account")
	// Logs carry no secret either.
	for _, secret := range []string{token, resetToken, "first password", "second password", "test-ui-password"} {
		require.NotContains(t, r.logs.String(), secret)
	}
}

func TestCreateAdminCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := dbtest.URL(t)
	env := envOf(map[string]string{"DATABASE_URL": dbURL})
	var out bytes.Buffer
	require.NoError(t, run(ctx, []string{"app", "user", "create-admin", "--email", "Boss@Example.test", "--password", "admin password"}, env, &out, io.Discard))
	require.Contains(t, out.String(), "created admin boss@example.test")
	out.Reset()
	require.NoError(t, run(ctx, []string{"app", "user", "create-admin", "--email", "boss@example.test", "--password", "other password"}, env, &out, io.Discard))
	require.Contains(t, out.String(), "promoted boss@example.test")

	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	var role string
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*), min(role) FROM users`).Scan(&n, &role))
	require.Equal(t, 1, n)
	require.Equal(t, "admin", role)

	for _, args := range [][]string{
		{"app", "user"},
		{"app", "user", "create-admin", "--email", "nope", "--password", "admin password"},
		{"app", "user", "create-admin", "--email", "a@b.test", "--password", "short"},
	} {
		err := run(ctx, args, env, io.Discard, io.Discard)
		var ue *usageError
		require.ErrorAs(t, err, &ue, strings.Join(args, " "))
	}
}
