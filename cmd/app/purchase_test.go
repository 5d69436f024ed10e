package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/hyperswitch/hyperswitchtest"
	"github.com/veza/backend/internal/servicetest"
	"github.com/veza/backend/mail/mailtest"
	"github.com/veza/backend/store/dbtest"
	"github.com/veza/backend/stripeconnect/stripetest"
)

const testWebhookSecret = "whsec_e2e_hash_key"

type stack struct {
	*running
	url    string
	db     *pgx.Conn
	hs     *hyperswitchtest.Server
	stripe *stripetest.Server
	smtp   *mailtest.Server
}

// startStack runs the service with its workers against a fake Hyperswitch
// and an in-process SMTP server.
func startStack(t *testing.T, extra map[string]string) *stack {
	t.Helper()
	hs := hyperswitchtest.Start(t)
	sc := stripetest.Start(t)
	smtp := mailtest.Start(t, "127.0.0.1:0")
	dbURL := dbtest.URL(t)
	env := baseEnv(t, dbURL)
	for k, v := range servicetest.FakeEnv(hs, sc, smtp, testWebhookSecret) {
		env[k] = v
	}
	for k, v := range map[string]string{
		"TRANSFER_BACKOFF_BASE": "1s", "TRANSFER_BACKOFF_MAX": "2s", "REVERSAL_BACKOFF_BASE": "1s", "REVERSAL_BACKOFF_MAX": "2s",
		"REVERSAL_KEY_SETTLE":  "1s",
		"RIVER_FETCH_COOLDOWN": "10ms", "RATE_LIMIT_AUTH_PER_MINUTE": "1000",
	} {
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	r := start(t, env)
	conn, err := pgx.Connect(context.Background(), dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return &stack{running: r, url: dbURL, db: conn, hs: hs, stripe: sc, smtp: smtp}
}

func (s *stack) dbURL() string { return s.url }

// account registers and logs in through the API.
func (s *stack) account(t *testing.T, email string) (uuid.UUID, string) {
	t.Helper()
	status, body := postJSON(t, s.base+"/v1/auth/register", "", map[string]string{"email": email, "password": "password 123"})
	require.Equal(t, 201, status, body)
	status, body = postJSON(t, s.base+"/v1/auth/login", "", map[string]string{"email": email, "password": "password 123"})
	require.Equal(t, 200, status, body)
	id := uuid.MustParse(body["user"].(map[string]any)["id"].(string))
	return id, body["token"].(string)
}

func (s *stack) track(t *testing.T, owner uuid.UUID, price int64) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	require.NoError(t, s.db.QueryRow(context.Background(), `INSERT INTO tracks (owner_id, title, price_cents, currency) VALUES ($1, 'Track', $2, 'EUR') RETURNING id`, owner, price).Scan(&id))
	return id
}

func (s *stack) request(t *testing.T, method, path, token string, headers map[string]string, body any) (int, map[string]any) {
	t.Helper()
	var reader io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		reader = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.base+path, reader)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

func (s *stack) webhook(t *testing.T, body []byte) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.base+"/webhooks/hyperswitch", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(hyperswitch.SignatureHeader, hyperswitch.Sign(testWebhookSecret, body))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func (s *stack) orderStatus(t *testing.T, token, id string) string {
	t.Helper()
	status, body := s.request(t, "GET", "/v1/orders/"+id, token, nil, nil)
	require.Equal(t, 200, status)
	return body["status"].(string)
}

func (s *stack) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, s.db.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func TestPurchaseThroughWebhook(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	seller, _ := s.account(t, "seller@example.test")
	_, buyer := s.account(t, "buyer@example.test")
	trackID := s.track(t, seller, 1299)

	status, body := s.request(t, "POST", "/v1/orders", buyer, map[string]string{"Idempotency-Key": "buy-1"}, map[string]any{"track_ids": []string{trackID.String()}})
	require.Equal(t, 201, status, body)
	order := body["order"].(map[string]any)
	orderID, paymentID := order["id"].(string), order["payment_id"].(string)
	require.NotEmpty(t, body["client_secret"])

	// The buyer confirms at Hyperswitch; Hyperswitch posts payment_succeeded.
	s.hs.SetPaymentStatus(paymentID, "succeeded")
	event := hyperswitchtest.WebhookBody("evt_paid_1", "payment_succeeded", map[string]any{"payment_id": paymentID, "status": "succeeded", "amount": 1299, "currency": "EUR"})
	require.Equal(t, 200, s.webhook(t, event))
	require.Eventually(t, func() bool { return s.orderStatus(t, buyer, orderID) == "completed" }, 20*time.Second, 50*time.Millisecond)

	// The receipt is mailed (2 verification mails came first).
	msgs := s.smtp.WaitFor(t, 3, 20*time.Second)
	var receipt *mailtest.Message
	for i := range msgs {
		if msgs[i].Subject == "Your Veza receipt for order "+orderID {
			receipt = &msgs[i]
		}
	}
	require.NotNil(t, receipt, "receipt mail")
	require.Contains(t, receipt.Text, "12.99 EUR")
	require.Eventually(t, func() bool {
		return s.count(t, `SELECT count(*) FROM hyperswitch_webhook_log WHERE event_id = 'evt_paid_1' AND processing_result = 'ok'`) == 1
	}, 10*time.Second, 50*time.Millisecond)

	// The same event five times at once: five log rows, processed once.
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); require.Equal(t, 200, s.webhook(t, event)) }()
	}
	wg.Wait()
	require.Equal(t, 6, s.count(t, `SELECT count(*) FROM hyperswitch_webhook_log WHERE event_id = 'evt_paid_1'`))
	require.Equal(t, 5, s.count(t, `SELECT count(*) FROM hyperswitch_webhook_log WHERE event_id = 'evt_paid_1' AND processing_result = 'skipped'`))
	require.Equal(t, 1, s.count(t, `SELECT count(*) FROM river_job WHERE kind = 'hyperswitch_event'`))
	require.Equal(t, 1, s.count(t, `SELECT count(*) FROM river_job WHERE kind = 'email' AND args->>'template' = 'purchase_receipt'`))

	// A late payment_failed does not undo the success.
	failed := hyperswitchtest.WebhookBody("evt_failed_late", "payment_failed", map[string]any{"payment_id": paymentID, "status": "failed", "amount": 1299, "currency": "EUR"})
	require.Equal(t, 200, s.webhook(t, failed))
	require.Eventually(t, func() bool {
		return s.count(t, `SELECT count(*) FROM hyperswitch_webhook_log WHERE event_id = 'evt_failed_late' AND processing_result = 'skipped'`) == 1
	}, 10*time.Second, 50*time.Millisecond)
	require.Equal(t, "completed", s.orderStatus(t, buyer, orderID))

	var orderStatus string
	require.NoError(t, s.db.QueryRow(context.Background(), `SELECT status FROM orders WHERE id = $1`, orderID).Scan(&orderStatus))
	require.Equal(t, "completed", orderStatus)
}
