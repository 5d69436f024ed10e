package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	veza "github.com/veza/backend"
	"github.com/veza/backend/hyperswitch/hyperswitchtest"
	"github.com/veza/backend/stripeconnect/stripetest"
)

// Disputes as Hyperswitch sends them (the fake's DisputeResponse bodies:
// amount a string, status in dispute_status), end to end: each test ends
// on what Stripe moved to each seller and what the buyer may still do.

// disputeEvent delivers the dispute's webhook in its current status at
// the fake and returns the body (to deliver it again, or late).
func (s *stack) disputeEvent(t *testing.T, disputeID string) []byte {
	t.Helper()
	body := s.hs.DisputeWebhook("evt_"+uuid.NewString(), disputeID)
	require.Equal(t, 200, s.webhook(t, body), string(body))
	return body
}

// stream is what GET /v1/tracks/{id}/stream answers the token: its status
// and error code. Tracks made in SQL have no file: access granted shows as
// 404 file_missing, access refused as 403 forbidden.
func (s *stack) stream(t *testing.T, token string, track uuid.UUID) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.base+"/v1/tracks/"+track.String()+"/stream", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Error.Code
}

// paidTwoSellers is an order of two tracks from two sellers (nets 1170 and
// 635 of 2004), paid, with both payouts completed at Stripe.
func (s *stack) paidTwoSellers(t *testing.T) (orderID, paymentID, buyer string, tracks []uuid.UUID) {
	t.Helper()
	_, track1, _ := s.seller(t, 1299)
	_, track2, _ := s.seller(t, 705)
	_, buyer = s.account(t, uuid.NewString()[:8]+"@buyers.test")
	orderID, paymentID, amount := s.buy(t, buyer, track1, track2)
	s.paid(t, paymentID, amount)
	s.eventually(t, func() bool { return allStatus(s.transfers(t, orderID), "completed") }, s.state(t, orderID))
	require.EqualValues(t, 1805, s.sellerNet(orderID))
	return orderID, paymentID, buyer, []uuid.UUID{track1, track2}
}

// disputeRow is the dispute's row ("" before its first event is applied).
func (s *stack) disputeRow(t *testing.T, disputeID string) (status string, amount int64) {
	t.Helper()
	err := s.db.QueryRow(context.Background(), `SELECT status, amount FROM disputes WHERE dispute_id = $1`, disputeID).Scan(&status, &amount)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0
	}
	require.NoError(t, err)
	return status, amount
}

// Opened: the buyer cannot also be refunded, and a payout not yet sent is
// held (its job waits, no attempt used). Won: the held payout goes out.
func TestDisputeOpenedHoldsThePayoutUntilWon(t *testing.T) {
	t.Parallel()
	s := startStack(t, map[string]string{"TRANSFER_BALANCE_WAIT": "1s"})
	s.stripe.SetBalanceAvailable(false) // the payout cannot go out yet
	orderID, paymentID, buyer := s.paidOrder(t, 1000)
	s.eventually(t, func() bool { return s.stripe.Calls("POST /v1/transfers") >= 1 }, s.state(t, orderID))

	d := s.hs.OpenDispute(paymentID, 0)
	require.Equal(t, "1000", d.Amount, "the wire format: a string of minor units")
	s.disputeEvent(t, d.DisputeID)
	s.eventually(t, func() bool { return s.orderStatus(t, buyer, orderID) == "disputed" }, s.state(t, orderID))
	status, amount := s.disputeRow(t, d.DisputeID)
	require.Equal(t, "opened", status)
	require.EqualValues(t, 1000, amount)

	code, body := s.request(t, "POST", "/v1/orders/"+orderID+"/refund", buyer, nil, map[string]string{"reason": "changed my mind"})
	require.Equal(t, 409, code, body)
	require.Equal(t, "order_disputed", body["error"].(map[string]any)["code"])

	// The balance is back, but the dispute holds the payout.
	s.stripe.SetBalanceAvailable(true)
	s.eventually(t, func() bool {
		return s.count(t, `SELECT count(*) FROM seller_transfers WHERE order_id = $1 AND held_at IS NOT NULL`, orderID) == 1
	}, s.state(t, orderID))
	s.eventually(t, func() bool {
		return s.count(t, `SELECT count(*) FROM river_job WHERE kind = 'seller_payout' AND state NOT IN ('completed', 'cancelled', 'discarded')`) == 0
	}, s.state(t, orderID))
	time.Sleep(2 * time.Second)
	require.Zero(t, s.transfersAtStripe(orderID), "held while disputed")
	require.Equal(t, 1, s.count(t, `SELECT count(*) FROM seller_transfers WHERE order_id = $1 AND error_message LIKE 'held: %'`, orderID), "ops see why")
	require.Equal(t, "pending", s.transfers(t, orderID)[0].Status)
	require.Zero(t, s.count(t, `SELECT retry_count FROM seller_transfers WHERE order_id = $1`, orderID), "holding uses no attempt")

	admin := s.admin(t)
	code, body = s.request(t, "GET", "/admin/disputes?status=opened", admin, nil, nil)
	require.Equal(t, 200, code)
	listed := body["disputes"].([]any)
	require.Len(t, listed, 1)
	require.Equal(t, d.DisputeID, listed[0].(map[string]any)["dispute_id"])
	require.NotNil(t, listed[0].(map[string]any)["challenge_required_by"])
	require.Contains(t, s.logs.String(), "dispute opened: refunds refused and payouts held")

	s.hs.SetDisputeStatus(d.DisputeID, "dispute_challenged")
	s.disputeEvent(t, d.DisputeID)
	s.hs.SetDisputeStatus(d.DisputeID, "dispute_won")
	s.disputeEvent(t, d.DisputeID)
	s.eventually(t, func() bool { return s.sellerNet(orderID) == 900 }, s.state(t, orderID))
	require.Equal(t, "completed", s.orderStatus(t, buyer, orderID))
	status, _ = s.disputeRow(t, d.DisputeID)
	require.Equal(t, "won", status)
}

// Lost: every paid seller is taken back in full, the order is charged
// back, the buyer's access ends, each seller is emailed once.
func TestDisputeLostTakesEverySellerBack(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	orderID, paymentID, buyer, tracks := s.paidTwoSellers(t)
	for _, tr := range tracks {
		code, errCode := s.stream(t, buyer, tr)
		require.Equal(t, 404, code)
		require.Equal(t, "file_missing", errCode, "the buyer has access (the file is simply not stored)")
	}
	d := s.hs.OpenDispute(paymentID, 0)
	s.disputeEvent(t, d.DisputeID)
	s.eventually(t, func() bool { return s.orderStatus(t, buyer, orderID) == "disputed" }, s.state(t, orderID))
	code, _ := s.stream(t, buyer, tracks[0])
	require.Equal(t, 404, code, "an open dispute keeps access until its outcome")

	s.hs.SetDisputeStatus(d.DisputeID, "dispute_lost")
	s.disputeEvent(t, d.DisputeID)
	s.eventually(t, func() bool { return s.sellerNet(orderID) == 0 && allStatus(s.transfers(t, orderID), "reversed") }, s.state(t, orderID))
	require.Equal(t, "charged_back", s.orderStatus(t, buyer, orderID))
	require.Len(t, s.stripe.Reversals(), 2)
	for _, tr := range tracks {
		code, errCode := s.stream(t, buyer, tr)
		require.Equal(t, 403, code)
		require.Equal(t, "forbidden", errCode)
	}
	require.Equal(t, 409, func() int {
		code, _ := s.request(t, "POST", "/v1/orders/"+orderID+"/refund", buyer, nil, map[string]string{"reason": "again"})
		return code
	}(), "a charged-back order cannot be refunded too")

	chargebacks := 0
	deadline := time.Now().Add(settleWithin)
	for chargebacks < 2 && time.Now().Before(deadline) {
		chargebacks = 0
		for _, m := range s.smtp.Messages() {
			if strings.HasPrefix(m.Subject, "A chargeback on order") {
				chargebacks++
				require.Contains(t, m.Text, orderID)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.Equal(t, 2, chargebacks, "each seller is emailed once")
}

// Lost for part of the payment: each seller gives back their share of the
// disputed amount, and the shares sum to it exactly.
func TestPartialDisputeLostReversesTheDisputedShare(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	orderID, paymentID, buyer, _ := s.paidTwoSellers(t)
	d := s.hs.OpenDispute(paymentID, 1000) // of 2004
	s.disputeEvent(t, d.DisputeID)
	s.hs.SetDisputeStatus(d.DisputeID, "dispute_lost")
	s.disputeEvent(t, d.DisputeID)
	s.eventually(t, func() bool { return allStatus(s.transfers(t, orderID), "reversed") }, s.state(t, orderID))

	var reversed []int64
	var sum int64
	for _, r := range s.stripe.Reversals() {
		reversed = append(reversed, r.Amount)
		sum += r.Amount
	}
	require.ElementsMatch(t, []int64{584, 317}, reversed, "1170 and 635 times 1000/2004, rounded to the largest remainders")
	require.Equal(t, sum, func() (n int64) {
		for _, v := range veza.ProportionalShares([]int64{1170, 635}, 1000, 2004) {
			n += v
		}
		return n
	}())
	require.EqualValues(t, 901, sum, "the sellers' 1805 of 2004, times 1000/2004, rounded")
	require.EqualValues(t, 1805-901, s.sellerNet(orderID))
	for _, tr := range s.stripe.Transfers() {
		require.False(t, tr.Reversed, "a partial reversal leaves the transfer not fully reversed")
	}
	require.Equal(t, "charged_back", s.orderStatus(t, buyer, orderID))
}

// Deliveries come twice and out of order: an outcome before the opening,
// the same outcome twice. Each dispute ends in its right final state, and
// money moves once.
func TestDisputeEventsDuplicateAndOutOfOrder(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)

	// Won delivered before opened: stays completed, the payouts stay paid.
	wonOrder, wonPayment, wonBuyer := s.paidOut(t, 1000)
	won := s.hs.OpenDispute(wonPayment, 0)
	opened := hyperswitchtest.WebhookBody("evt_open_"+won.DisputeID, "dispute_opened", won)
	s.hs.SetDisputeStatus(won.DisputeID, "dispute_won")
	wonBody := s.disputeEvent(t, won.DisputeID)
	require.Equal(t, 200, s.webhook(t, opened), "the late opening is accepted")
	require.Equal(t, 200, s.webhook(t, wonBody), "and the outcome again")
	time.Sleep(time.Second)
	s.eventually(t, func() bool { st, _ := s.disputeRow(t, won.DisputeID); return st == "won" }, s.state(t, wonOrder))
	require.Equal(t, "completed", s.orderStatus(t, wonBuyer, wonOrder))
	require.EqualValues(t, 900, s.sellerNet(wonOrder))

	// Lost twice (two deliveries, different event ids), then the late
	// opening: charged back once.
	lostOrder, lostPayment, lostBuyer := s.paidOut(t, 1000)
	lost := s.hs.OpenDispute(lostPayment, 0)
	lateOpen := hyperswitchtest.WebhookBody("evt_open_"+lost.DisputeID, "dispute_opened", lost)
	s.hs.SetDisputeStatus(lost.DisputeID, "dispute_lost")
	s.disputeEvent(t, lost.DisputeID)
	s.disputeEvent(t, lost.DisputeID)
	require.Equal(t, 200, s.webhook(t, lateOpen))
	s.eventually(t, func() bool { return s.sellerNet(lostOrder) == 0 && allStatus(s.transfers(t, lostOrder), "reversed") }, s.state(t, lostOrder))
	time.Sleep(time.Second)
	require.Equal(t, "charged_back", s.orderStatus(t, lostBuyer, lostOrder))
	st, _ := s.disputeRow(t, lost.DisputeID)
	require.Equal(t, "lost", st, "terminal: the late opening does not reopen it")
	n := 0
	for _, r := range s.stripe.Reversals() {
		if tr, ok := s.stripe.Transfer(r.Transfer); ok && tr.TransferGroup == lostOrder {
			n++
		}
	}
	require.Equal(t, 1, n, "one reversal")
}

// A dispute on an order already refunded: recorded, no money moved (the
// sellers were already taken back), logged at ERROR for ops.
func TestDisputeOnARefundedOrderMovesNoMoney(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	orderID, paymentID, buyer := s.paidOut(t, 1000)
	_, psp := s.refund(t, buyer, orderID)
	s.refundSucceeds(t, psp)
	s.eventually(t, func() bool { return s.sellerNet(orderID) == 0 && allStatus(s.transfers(t, orderID), "reversed") }, s.state(t, orderID))
	reversals, refunds := len(s.stripe.Reversals()), len(s.hs.Refunds())

	d := s.hs.OpenDispute(paymentID, 0)
	s.disputeEvent(t, d.DisputeID)
	s.hs.SetDisputeStatus(d.DisputeID, "dispute_lost")
	s.disputeEvent(t, d.DisputeID)
	s.eventually(t, func() bool { st, _ := s.disputeRow(t, d.DisputeID); return st == "lost" }, s.state(t, orderID))
	time.Sleep(time.Second)
	require.Equal(t, "refunded", s.orderStatus(t, buyer, orderID))
	require.Equal(t, reversals, len(s.stripe.Reversals()))
	require.Equal(t, refunds, len(s.hs.Refunds()))
	require.Zero(t, s.sellerNet(orderID))
	require.Contains(t, s.logs.String(), "dispute on an order that is not completed: recorded, no money moved")
}

// stripeEvent delivers a signed Connect webhook.
func (s *stack) stripeEvent(t *testing.T, body []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.base+"/webhooks/stripe", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", stripetest.SignWebhook(stripetest.WebhookSecret, body))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
}

// heldForTheSellersAccount is a paid order whose seller's account Stripe
// reports with payouts disabled: its payout held on its row.
func heldForTheSellersAccount(t *testing.T) (s *stack, sellerID uuid.UUID, acct, orderID string) {
	t.Helper()
	s = startStack(t, map[string]string{"STRIPE_WEBHOOK_SECRET": stripetest.WebhookSecret})
	sellerID, track, acct := s.seller(t, 1000)
	s.stripe.PutAccount(acct, false)
	s.stripeEvent(t, stripetest.ConnectEvent("evt_acct_"+acct, "account.updated", acct, s.stripe.AccountObject(acct)))
	_, buyer := s.account(t, uuid.NewString()[:8]+"@buyers.test")
	orderID, paymentID, amount := s.buy(t, buyer, track)
	s.paid(t, paymentID, amount)
	s.eventually(t, func() bool {
		return s.count(t, `SELECT count(*) FROM seller_transfers WHERE order_id = $1 AND held_at IS NOT NULL AND error_message LIKE 'held: the seller''s Stripe account%'`, orderID) == 1
	}, s.state(t, orderID))
	return s, sellerID, acct, orderID
}

// A seller whose Stripe account cannot receive payouts yet is not paid:
// the payout waits on its row, visibly, and goes out when Stripe's
// account.updated says payouts are enabled.
func TestPayoutWaitsForTheSellersAccount(t *testing.T) {
	t.Parallel()
	s, _, acct, orderID := heldForTheSellersAccount(t)
	require.Zero(t, s.transfersAtStripe(orderID), "not paid to an account that cannot receive payouts")

	s.stripe.PutAccount(acct, true)
	s.stripeEvent(t, stripetest.ConnectEvent("evt_acct_2", "account.updated", acct, s.stripe.AccountObject(acct)))
	s.eventually(t, func() bool { return s.sellerNet(orderID) == 900 && allStatus(s.transfers(t, orderID), "completed") }, s.state(t, orderID))
	require.Zero(t, s.count(t, `SELECT count(*) FROM seller_transfers WHERE order_id = $1 AND (held_at IS NOT NULL OR error_message IS NOT NULL)`, orderID),
		"released: no hold, no message left")
}

// A payout held because the seller's account could not receive payouts
// goes to the account the seller links instead (nothing was paid to the
// first), not left held forever.
func TestHeldPayoutFollowsTheSellersNewAccount(t *testing.T) {
	t.Parallel()
	s, sellerID, _, orderID := heldForTheSellersAccount(t)

	var email string
	require.NoError(t, s.db.QueryRow(context.Background(), `SELECT email FROM users WHERE id = $1`, sellerID).Scan(&email))
	status, body := postJSON(t, s.base+"/v1/auth/login", "", map[string]string{"email": email, "password": "password 123"})
	require.Equal(t, 200, status, body)
	newAcct := "acct_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
	s.stripe.PutAccount(newAcct, true)
	code, resp := s.request(t, "PUT", "/v1/me/payout-account", body["token"].(string), nil,
		map[string]string{"stripe_account_id": newAcct, "current_password": "password 123"})
	require.Equal(t, 200, code, resp)
	s.eventually(t, func() bool { return s.sellerNet(orderID) == 900 && allStatus(s.transfers(t, orderID), "completed") }, s.state(t, orderID))
	for _, tr := range s.stripe.Transfers() {
		if tr.TransferGroup == orderID {
			require.Equal(t, newAcct, tr.Destination)
		}
	}
}
