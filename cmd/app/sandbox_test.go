package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/store/dbtest"
)

// startSandbox runs `app serve` as `make run` does: development, no
// provider configured, so the sandbox simulates both.
func startSandbox(t *testing.T, dbURL string, extra ...map[string]string) *stack {
	t.Helper()
	env := baseEnv(t, dbURL)
	for _, m := range extra {
		for k, v := range m {
			env[k] = v
		}
	}
	delete(env, "SANDBOX_ENABLED") // the default: on in development without providers
	for k, v := range map[string]string{
		// the auth rate limit stays at its development default: seed twice
		// and the walkthrough fit in it
		"SANDBOX_REFUND_DELAY": "300ms", "RIVER_FETCH_COOLDOWN": "10ms",
		"TRACK_STORAGE_DIR": t.TempDir(), // seed uploads
	} {
		env[k] = v
	}
	r := start(t, env)
	conn, err := pgx.Connect(context.Background(), dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return &stack{running: r, url: dbURL, db: conn}
}

// cli runs one subcommand in-process and returns its output.
func cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := run(ctx, append([]string{"app"}, args...), envOf(nil), &out, &errOut)
	return out.String() + errOut.String(), err
}

// buyerOrder seeds, logs the demo buyer in and orders one of Ada's tracks.
func buyerOrder(t *testing.T, s *stack) (token, orderID, paymentID string) {
	t.Helper()
	out, err := cli(t, "seed", "--api", s.base)
	require.NoError(t, err, out)
	require.Contains(t, out, "ada.seller@example.com")
	status, body := s.request(t, "POST", "/v1/auth/login", "", nil, map[string]string{"email": "cy.buyer@example.com", "password": seedPassword})
	require.Equal(t, 200, status, body)
	token = body["token"].(string)
	status, body = s.request(t, "GET", "/v1/tracks?q=Morning", "", nil, nil)
	require.Equal(t, 200, status, body)
	trackID := body["tracks"].([]any)[0].(map[string]any)["id"].(string)
	status, body = s.request(t, "POST", "/v1/orders", token, map[string]string{"Idempotency-Key": "order-" + t.Name()}, map[string]any{"track_ids": []string{trackID}})
	require.Equal(t, 201, status, body)
	order := body["order"].(map[string]any)
	return token, order["id"].(string), order["payment_id"].(string)
}

func waitStatus(t *testing.T, s *stack, token, orderID, want string) {
	t.Helper()
	require.Eventually(t, func() bool { return s.orderStatus(t, token, orderID) == want }, 20*time.Second, 50*time.Millisecond,
		"order %s never became %s (is %s); logs:\n%s", orderID, want, s.orderStatus(t, token, orderID), s.logs.String())
}

type sandboxTransfers struct {
	Transfers []struct {
		ID             string `json:"id"`
		Destination    string `json:"destination"`
		TransferGroup  string `json:"transfer_group"`
		Amount         int64  `json:"amount"`
		AmountReversed int64  `json:"amount_reversed"`
		Reversed       bool   `json:"reversed"`
	}
	Reversals []struct {
		ID, Transfer string
		Amount       int64
	}
}

// The buyer pays in the sandbox, the seller is paid at the simulated
// Stripe, the refund settles by itself and the transfer is reversed: the
// same states as with the real providers' webhooks.
func TestSandboxPurchaseRefundReversal(t *testing.T) {
	t.Parallel()
	s := startSandbox(t, dbtest.URL(t))
	token, orderID, paymentID := buyerOrder(t, s)

	out, err := cli(t, "sandbox", "pay", orderID, "--api", s.base)
	require.NoError(t, err, out)
	require.Contains(t, out, "payment "+paymentID+" is succeeded; Hyperswitch (simulated) sends payment_succeeded")
	waitStatus(t, s, token, orderID, "completed")

	var moved sandboxTransfers
	require.Eventually(t, func() bool {
		s.getJSON(t, "/sandbox/stripe/transfers", &moved)
		return len(moved.Transfers) == 1
	}, 20*time.Second, 50*time.Millisecond)
	var acct string
	require.NoError(t, s.db.QueryRow(context.Background(), `SELECT stripe_account_id FROM users WHERE email = 'ada.seller@example.com'`).Scan(&acct))
	require.Equal(t, acct, moved.Transfers[0].Destination, "Ada is paid")
	require.Equal(t, orderID, moved.Transfers[0].TransferGroup)
	require.Eventually(t, func() bool {
		return s.count(t, `SELECT count(*) FROM seller_transfers WHERE status = 'completed'`) == 1
	},
		10*time.Second, 50*time.Millisecond, "the service records the payout")

	status, body := s.request(t, "POST", "/v1/orders/"+orderID+"/refund", token, nil, map[string]string{"reason": "changed my mind"})
	require.Equal(t, 202, status, body)
	waitStatus(t, s, token, orderID, "refunded")
	require.Eventually(t, func() bool {
		s.getJSON(t, "/sandbox/stripe/transfers", &moved)
		return len(moved.Reversals) == 1
	}, 20*time.Second, 50*time.Millisecond)
	require.True(t, moved.Transfers[0].Reversed)
	require.Equal(t, moved.Transfers[0].Amount, moved.Reversals[0].Amount, "the seller's whole share is taken back")
	require.Eventually(t, func() bool { return s.count(t, `SELECT count(*) FROM seller_transfers WHERE status = 'reversed'`) == 1 },
		10*time.Second, 50*time.Millisecond, "the service records the reversal")
}

// A declined payment fails the order; the buyer's manual retry succeeds it
// (Hyperswitch allows a new attempt on a failed payment).
func TestSandboxDeclineThenRetry(t *testing.T) {
	t.Parallel()
	s := startSandbox(t, dbtest.URL(t))
	token, orderID, _ := buyerOrder(t, s)
	out, err := cli(t, "seed", "--api", s.base)
	require.NoError(t, err, "seed again: %s", out)
	require.Equal(t, 3, s.count(t, `SELECT count(*) FROM users`), "seed is idempotent")
	require.Equal(t, 4, s.count(t, `SELECT count(*) FROM tracks`))
	require.Equal(t, 2, s.count(t, `SELECT count(*) FROM users WHERE stripe_account_id IS NOT NULL AND email_verified_at IS NOT NULL`))

	out, err = cli(t, "sandbox", "pay", orderID, "--status", "failed", "--api", s.base)
	require.NoError(t, err, out)
	require.Contains(t, out, "sends payment_failed")
	waitStatus(t, s, token, orderID, "failed")

	out, err = cli(t, "sandbox", "pay", orderID, "--status", "bogus", "--api", s.base)
	require.ErrorContains(t, err, "invalid_status", out)
	out, err = cli(t, "sandbox", "pay", "no-such-order", "--api", s.base)
	require.ErrorContains(t, err, "404 not_found", out)

	out, err = cli(t, "sandbox", "pay", orderID, "--api", s.base)
	require.NoError(t, err, out)
	waitStatus(t, s, token, orderID, "completed")
	out, err = cli(t, "sandbox", "pay", orderID, "--status", "failed", "--api", s.base)
	require.ErrorContains(t, err, "payment_final", "a succeeded payment does not fail afterwards: %s", out)
}

// A dispute lost in the sandbox charges the order back, as the real
// dispute webhooks do.
func TestSandboxDisputeLost(t *testing.T) {
	t.Parallel()
	s := startSandbox(t, dbtest.URL(t))
	token, orderID, paymentID := buyerOrder(t, s)
	_, err := cli(t, "sandbox", "pay", orderID, "--api", s.base)
	require.NoError(t, err)
	waitStatus(t, s, token, orderID, "completed")

	status, body := s.request(t, "POST", "/sandbox/payments/"+paymentID+"/dispute", "", nil, map[string]string{"status": "dispute_opened"})
	require.Equal(t, 200, status, body)
	waitStatus(t, s, token, orderID, "disputed")
	status, body = s.request(t, "POST", "/v1/orders/"+orderID+"/refund", token, nil, map[string]string{"reason": "x"})
	require.Equal(t, 409, status, body)
	status, body = s.request(t, "POST", "/sandbox/payments/"+paymentID+"/dispute", "", nil, map[string]string{"status": "dispute_lost"})
	require.Equal(t, 200, status, body)
	require.Equal(t, "dispute_lost", body["dispute"].(map[string]any)["dispute_status"])
	waitStatus(t, s, token, orderID, "charged_back")

	status, body = s.request(t, "POST", "/sandbox/payments/"+paymentID+"/dispute", "", nil, map[string]any{"status": "dispute_won", "extra": 1})
	require.Equal(t, 400, status, "unknown fields are refused: %v", body)
}

func (s *stack) getJSON(t *testing.T, path string, out any) {
	t.Helper()
	resp, err := http.Get(s.base + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	require.Equal(t, 200, resp.StatusCode, string(raw))
	require.NoError(t, json.Unmarshal(raw, out), string(raw))
}

// Staging and production refuse to boot with the sandbox on.
func TestSandboxRefusedOutsideDevelopment(t *testing.T) {
	t.Parallel()
	for _, env := range []string{"staging", "production"} {
		e := baseEnv(t, dbtest.URL(t))
		e["APP_ENV"], e["SANDBOX_ENABLED"] = env, "true"
		err := run(context.Background(), []string{"app", "serve"}, envOf(e), io.Discard, io.Discard)
		require.Error(t, err, env)
		require.True(t, strings.Contains(err.Error(), "SANDBOX_ENABLED") && strings.Contains(err.Error(), "development only"), "%s: %v", env, err)
	}
}

// Without a running sandbox the CLI says what it needs instead of failing
// obscurely; a service without the sandbox answers its controls 404.
func TestSandboxCLIWithoutASandbox(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	out, err := cli(t, "seed", "--api", "http://"+addr)
	require.Error(t, err, out)
	require.Contains(t, err.Error(), "seed needs a running sandbox")

	s := start(t, baseEnv(t, dbtest.URL(t))) // SANDBOX_ENABLED=false
	_, err = cli(t, "sandbox", "pay", "ord_1", "--api", s.base)
	require.ErrorContains(t, err, "404")
	_, err = cli(t, "seed", "--api", s.base)
	require.ErrorContains(t, err, "seed needs a running sandbox")
}

// A demo login taken with another password stops seed with what to do,
// and changes nothing of that account.
func TestSeedRefusesATakenDemoLogin(t *testing.T) {
	t.Parallel()
	s := startSandbox(t, dbtest.URL(t))
	status, body := s.request(t, "POST", "/v1/auth/register", "", nil, map[string]string{"email": "ada.seller@example.com", "password": "someone else's"})
	require.Equal(t, 201, status, body)
	out, err := cli(t, "seed", "--api", s.base)
	require.Error(t, err, out)
	require.Contains(t, err.Error(), "exists with another password")
	status, _ = s.request(t, "POST", "/v1/auth/login", "", nil, map[string]string{"email": "ada.seller@example.com", "password": "someone else's"})
	require.Equal(t, 200, status, "the account keeps its password")
	require.Zero(t, s.count(t, `SELECT count(*) FROM tracks`))
}
