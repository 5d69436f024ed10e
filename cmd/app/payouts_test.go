package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/hyperswitch/hyperswitchtest"
)

// seller registers a seller with a Stripe Connect account and a track.
func (s *stack) seller(t *testing.T, price int64) (uuid.UUID, uuid.UUID, string) {
	t.Helper()
	id, token := s.account(t, uuid.NewString()[:8]+"@sellers.test")
	acct := "acct_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
	s.stripe.PutAccount(acct, true) // connected to the platform, onboarded
	status, body := s.request(t, "PUT", "/v1/me/payout-account", token, nil, map[string]string{"stripe_account_id": acct, "current_password": "password 123"})
	require.Equal(t, 200, status, body)
	return id, s.track(t, id, price), acct
}

func (s *stack) buy(t *testing.T, token string, tracks ...uuid.UUID) (orderID, paymentID string, amount int64) {
	t.Helper()
	ids := make([]string, len(tracks))
	for i, tr := range tracks {
		ids[i] = tr.String()
	}
	status, body := s.request(t, "POST", "/v1/orders", token, map[string]string{"Idempotency-Key": uuid.NewString()}, map[string]any{"track_ids": ids})
	require.Equal(t, 201, status, body)
	o := body["order"].(map[string]any)
	return o["id"].(string), o["payment_id"].(string), int64(o["amount"].(float64))
}

func (s *stack) paid(t *testing.T, paymentID string, amount int64) {
	t.Helper()
	s.hs.SetPaymentStatus(paymentID, "succeeded")
	body := hyperswitchtest.WebhookBody("evt_pay_"+paymentID, "payment_succeeded", map[string]any{"payment_id": paymentID, "status": "succeeded", "amount": amount, "currency": "EUR"})
	require.Equal(t, 200, s.webhook(t, body))
}

type transferRow struct {
	Seller, Status string
	Amount, Fee    int64
	StripeID       *string
}

func (s *stack) transfers(t *testing.T, orderID string) []transferRow {
	t.Helper()
	rows, err := s.db.Query(context.Background(), `SELECT seller_id::text, status, amount, platform_fee, stripe_transfer_id FROM seller_transfers WHERE order_id = $1 ORDER BY amount`, orderID)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (transferRow, error) {
		var tr transferRow
		err := r.Scan(&tr.Seller, &tr.Status, &tr.Amount, &tr.Fee, &tr.StripeID)
		return tr, err
	})
	require.NoError(t, err)
	return out
}

func allStatus(rows []transferRow, status string) bool {
	for _, r := range rows {
		if r.Status != status {
			return false
		}
	}
	return len(rows) > 0
}

// TestPayoutsAndRefundEndToEnd: two sellers in one order → payment webhook →
// two transfers at the fake Stripe whose amounts and fees add up to the
// order exactly → refund → refund_succeeded webhook → both reversed.
func TestPayoutsAndRefundEndToEnd(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	_, track1, acct1 := s.seller(t, 1299)
	_, track2, acct2 := s.seller(t, 705)
	_, buyer := s.account(t, "buyer@example.test")

	orderID, paymentID, amount := s.buy(t, buyer, track1, track2)
	require.EqualValues(t, 2004, amount)
	s.paid(t, paymentID, amount)

	require.Eventually(t, func() bool { return allStatus(s.transfers(t, orderID), "completed") }, 30*time.Second, 50*time.Millisecond)
	rows := s.transfers(t, orderID)
	require.Len(t, rows, 2)
	var sum int64
	for _, r := range rows {
		sum += r.Amount + r.Fee
	}
	require.Equal(t, amount, sum, "seller amounts + platform fee = order amount, to the cent")
	require.Equal(t, transferRow{Seller: rows[0].Seller, Status: "completed", Amount: 635, Fee: 70, StripeID: rows[0].StripeID}, rows[0])
	require.Equal(t, transferRow{Seller: rows[1].Seller, Status: "completed", Amount: 1170, Fee: 129, StripeID: rows[1].StripeID}, rows[1])

	atStripe := s.stripe.Transfers()
	require.Len(t, atStripe, 2)
	byDest := map[string]int64{}
	for _, tr := range atStripe {
		byDest[tr.Destination] = tr.Amount
		require.Equal(t, orderID, tr.TransferGroup)
	}
	require.Equal(t, map[string]int64{acct1: 1170, acct2: 635}, byDest)
	require.Zero(t, s.stripe.MissingKeys())

	// Refund: phase 1 over HTTP, phase 2 by job at Hyperswitch, outcome by webhook.
	status, body := s.request(t, "POST", "/v1/orders/"+orderID+"/refund", buyer, nil, map[string]string{"reason": "changed my mind"})
	require.Equal(t, 202, status, body)
	refundID := body["refund"].(map[string]any)["id"].(string)
	pspRefundID := "veza_ref_" + refundID
	require.Eventually(t, func() bool { _, ok := s.hs.Refund(pspRefundID); return ok }, 20*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool {
		return s.count(t, `SELECT count(*) FROM refunds WHERE id = $1 AND hyperswitch_refund_id = $2`, refundID, pspRefundID) == 1
	}, 10*time.Second, 50*time.Millisecond)

	s.hs.SetRefundStatus(pspRefundID, "succeeded", nil)
	event := hyperswitchtest.WebhookBody("evt_refund_1", "refund_succeeded", map[string]any{"refund_id": pspRefundID, "payment_id": paymentID, "status": "succeeded", "amount": amount, "currency": "EUR"})
	require.Equal(t, 200, s.webhook(t, event))

	require.Eventually(t, func() bool { return allStatus(s.transfers(t, orderID), "reversed") }, 30*time.Second, 50*time.Millisecond)
	require.Len(t, s.stripe.Reversals(), 2)
	for _, tr := range s.stripe.Transfers() {
		require.True(t, tr.Reversed)
	}
	status, body = s.request(t, "GET", "/v1/orders/"+orderID, buyer, nil, nil)
	require.Equal(t, 200, status)
	require.Equal(t, "refunded", body["status"])
	require.Equal(t, "succeeded", body["refunds"].([]any)[0].(map[string]any)["status"])
	require.Equal(t, 1, s.count(t, `SELECT count(*) FROM river_job WHERE kind = 'email' AND args->>'template' = 'refund_confirmation'`))
	require.Equal(t, 1, s.count(t, `SELECT count(*) FROM river_job WHERE kind = 'email' AND args->>'template' = 'purchase_receipt'`))
}

// TestPayoutSurvivesStripeOutage: Stripe answers 503 to the first payout
// attempts; River retries with TRANSFER_* backoff and the transfer completes
// once Stripe is back, with exactly one transfer at Stripe.
func TestPayoutSurvivesStripeOutage(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	_, attempts := s.payoutAfterRefusals(t, func() { s.stripe.FailNext(2, 503) }, "503")
	require.Equal(t, 3, attempts)
}

// payoutAfterRefusals pays an order of one track while refuse makes Stripe
// refuse the first two payout calls (what names the refusal), waits for
// its transfer to complete, checks it is the one transfer at Stripe after
// three calls, and returns the order and the payout job's attempt.
func (s *stack) payoutAfterRefusals(t *testing.T, refuse func(), what string) (orderID string, attempts int) {
	t.Helper()
	_, track, _ := s.seller(t, 1000)
	_, buyer := s.account(t, "buyer@example.test")
	orderID, paymentID, amount := s.buy(t, buyer, track)
	refuse()
	s.paid(t, paymentID, amount)

	require.Eventually(t, func() bool { return allStatus(s.transfers(t, orderID), "completed") }, 30*time.Second, 50*time.Millisecond)
	require.Len(t, s.stripe.Transfers(), 1)
	require.Equal(t, 3, s.stripe.Calls("POST /v1/transfers"), "two refused with %s, one accepted", what)
	require.NoError(t, s.db.QueryRow(context.Background(), `SELECT attempt FROM river_job WHERE kind = 'seller_payout'`).Scan(&attempts))
	return orderID, attempts
}

// TestStripeRateLimitKeepsAttempts: Stripe answers 429 to the first payout
// calls. The 429 blocks the shared bucket, the job snoozes instead of
// retrying, and the transfer completes with its first attempt, never
// marked failed nor retried on its row.
func TestStripeRateLimitKeepsAttempts(t *testing.T) {
	t.Parallel()
	// A paced job comes back after MaxWait plus up to MaxWait of jitter.
	s := startStack(t, map[string]string{"RATE_LIMIT_MAX_WAIT": "1s"})
	require.True(t, s.payoutPacedTwice(t, func() { s.stripe.FailNext(2, 429) }, "429"), "the 429 blocked the shared bucket")
}

// payoutPacedTwice pays an order while refuse makes Stripe refuse its
// first two payout calls without executing them (what names the refusal),
// checks the job used no attempt and its row recorded no failure, and
// reports whether the shared Stripe bucket was blocked in the last minute.
func (s *stack) payoutPacedTwice(t *testing.T, refuse func(), what string) (bucketBlocked bool) {
	t.Helper()
	orderID, attempts := s.payoutAfterRefusals(t, refuse, what)
	require.Equal(t, 1, attempts, "pacing uses no attempt (%s)", what)
	var retries int
	var errMsg *string
	require.NoError(t, s.db.QueryRow(context.Background(), `SELECT retry_count, error_message FROM seller_transfers WHERE order_id = $1`, orderID).Scan(&retries, &errMsg))
	require.Zero(t, retries)
	require.Nil(t, errMsg, "nothing recorded as a failure")
	return s.count(t, `SELECT count(*) FROM provider_rate_limits WHERE provider = 'stripe' AND blocked_until > now() - interval '1 minute'`) == 1
}

// TestStripeLockTimeoutLeavesTheBucketOpen: Stripe answers 429
// lock_timeout (another request holds the object) to the first payout
// calls. Like a rate limit it was not executed, so the job snoozes and
// keeps its attempts; unlike one it says nothing about the pace, so the
// shared bucket is not blocked and no other payout waits for it.
func TestStripeLockTimeoutLeavesTheBucketOpen(t *testing.T) {
	t.Parallel()
	s := startStack(t, map[string]string{"RATE_LIMIT_MAX_WAIT": "1s"})
	require.False(t, s.payoutPacedTwice(t, func() { s.stripe.LockTimeoutNext("POST /v1/transfers", 2) }, "lock_timeout"),
		"a lock_timeout does not block the shared bucket")
}

// TestPacedPaymentCreationSaysWhen: with Hyperswitch's bucket empty, an
// order's payment is not created and the buyer gets 503 with Retry-After;
// the same Idempotency-Key later succeeds.
func TestPacedPaymentCreationSaysWhen(t *testing.T) {
	t.Parallel()
	s := startStack(t, map[string]string{"HYPERSWITCH_RATE_LIMIT": "1", "HYPERSWITCH_RATE_BURST": "1", "RATE_LIMIT_MAX_WAIT": "0s"})
	_, track, _ := s.seller(t, 500)
	_, buyer := s.account(t, "buyer@example.test")
	s.buy(t, buyer, track) // takes the one token
	req, err := http.NewRequest("POST", s.base+"/v1/orders", strings.NewReader(`{"track_ids":["`+track.String()+`"]}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+buyer)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "paced-1")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 503, resp.StatusCode)
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	calls := s.hs.Calls("POST /payments")
	require.Equal(t, 1, calls, "the paced call was not made")

	time.Sleep(1100 * time.Millisecond)
	status, body := s.request(t, "POST", "/v1/orders", buyer, map[string]string{"Idempotency-Key": "paced-1"}, map[string]any{"track_ids": []string{track.String()}})
	require.Equal(t, 201, status, body)
}

// TestSlowStripeDoesNotDelayOrderCompletion: Stripe answers after 30 s
// (its client's timeout: every payout's outcome is unknown) and holds every
// worker of the stripe queue; paid orders still complete at once, on their
// own queue. With one shared queue (as before issue 19) the second order
// waited behind the first one's payouts.
func TestSlowStripeDoesNotDelayOrderCompletion(t *testing.T) {
	t.Parallel()
	s := startStack(t, map[string]string{"RIVER_WORKERS_STRIPE": "2", "RIVER_WORKERS_EVENTS": "2", "SHUTDOWN_TIMEOUT": "1s"})
	_, trackA, _ := s.seller(t, 1000)
	_, trackB, _ := s.seller(t, 700)
	s.stripe.SetLatency(30 * time.Second)

	const n = 6
	var orders []string
	for i := 0; i < n; i++ {
		_, buyer := s.account(t, fmt.Sprintf("brownout%d@example.test", i))
		orderID, paymentID, amount := s.buy(t, buyer, trackA, trackB)
		s.paid(t, paymentID, amount)
		orders = append(orders, orderID)
	}
	completed := func() int {
		return s.count(t, `SELECT count(*) FROM orders WHERE id = ANY($1::uuid[]) AND status = 'completed'`, orders)
	}
	// Well under Stripe's 30 s: order completion waits on no Stripe call.
	require.Eventually(t, func() bool { return completed() == n }, 10*time.Second, 50*time.Millisecond, "completed: %d of %d", completed(), n)
	require.Equal(t, 2, s.stripe.Calls("POST /v1/transfers"), "the two stripe workers are held by Stripe meanwhile")
	require.Zero(t, s.count(t, `SELECT count(*) FROM seller_transfers WHERE order_id = ANY($1::uuid[]) AND status IN ('completed', 'failed')`, orders),
		"no payout decided while Stripe has not answered")
}
