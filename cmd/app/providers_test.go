package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/hyperswitch/hyperswitchtest"
	"github.com/veza/backend/internal/fake"
)

// The providers as they really are (../shared/PSP.md): answers lost after
// the work was done, saved errors replayed for a key, keys forgotten after
// a day, a failed payment retried to success, statuses beyond the happy
// three. Each test ends on the money: what Stripe moved to each seller,
// what Hyperswitch gave back to the buyer.

// sellerNet is what the sellers of an order hold at the fake Stripe: its
// transfers minus their reversals.
func (s *stack) sellerNet(orderID string) int64 {
	var net int64
	reversed := map[string]int64{}
	for _, r := range s.stripe.Reversals() {
		reversed[r.Transfer] += r.Amount
	}
	for _, tr := range s.stripe.Transfers() {
		if tr.TransferGroup == orderID {
			net += tr.Amount - reversed[tr.ID]
		}
	}
	return net
}

// transfersAtStripe counts an order's transfers at the fake Stripe.
func (s *stack) transfersAtStripe(orderID string) int {
	n := 0
	for _, tr := range s.stripe.Transfers() {
		if tr.TransferGroup == orderID {
			n++
		}
	}
	return n
}

// pendingOrder is an order of one track from a new seller, by a new buyer.
func (s *stack) pendingOrder(t *testing.T, price int64) (orderID, paymentID string, amount int64, buyer string) {
	t.Helper()
	_, track, _ := s.seller(t, price)
	_, buyer = s.account(t, uuid.NewString()[:8]+"@buyers.test")
	orderID, paymentID, amount = s.buy(t, buyer, track)
	return orderID, paymentID, amount, buyer
}

// paidOrder is a pendingOrder, paid by webhook.
func (s *stack) paidOrder(t *testing.T, price int64) (orderID, paymentID, buyer string) {
	t.Helper()
	orderID, paymentID, amount, buyer := s.pendingOrder(t, price)
	s.paid(t, paymentID, amount)
	return orderID, paymentID, buyer
}

// paidOut is paidOrder once its payouts are completed: the state a refund
// or a dispute starts from.
func (s *stack) paidOut(t *testing.T, price int64) (orderID, paymentID, buyer string) {
	t.Helper()
	orderID, paymentID, buyer = s.paidOrder(t, price)
	s.eventually(t, func() bool { return allStatus(s.transfers(t, orderID), "completed") }, s.state(t, orderID))
	return orderID, paymentID, buyer
}

// refund asks for a refund over the API and waits until Hyperswitch has it
// (the submit job's answer may be lost: the fake's records say).
func (s *stack) refund(t *testing.T, buyer, orderID string) (refundID, pspRefundID string) {
	t.Helper()
	status, body := s.request(t, "POST", "/v1/orders/"+orderID+"/refund", buyer, nil, map[string]string{"reason": "changed my mind"})
	require.Equal(t, 202, status, body)
	refundID = body["refund"].(map[string]any)["id"].(string)
	pspRefundID = "veza_ref_" + refundID
	require.Eventually(t, func() bool { _, ok := s.hs.Refund(pspRefundID); return ok }, 20*time.Second, 50*time.Millisecond)
	return refundID, pspRefundID
}

// refundSucceeds settles the refund at Hyperswitch and delivers its webhook.
func (s *stack) refundSucceeds(t *testing.T, pspRefundID string) {
	t.Helper()
	s.hs.SetRefundStatus(pspRefundID, "succeeded", nil)
	rf, _ := s.hs.Refund(pspRefundID)
	body := hyperswitchtest.WebhookBody("evt_"+pspRefundID, "refund_succeeded", map[string]any{"refund_id": pspRefundID,
		"payment_id": rf.PaymentID, "status": "succeeded", "amount": rf.Amount, "currency": rf.Currency})
	require.Equal(t, 200, s.webhook(t, body))
}

func (s *stack) paymentEvent(t *testing.T, eventType, paymentID string, object map[string]any) {
	t.Helper()
	object["payment_id"] = paymentID
	require.Equal(t, 200, s.webhook(t, hyperswitchtest.WebhookBody("evt_"+uuid.NewString(), eventType, object)))
}

func (s *stack) dbStatus(t *testing.T, table, id string) string {
	t.Helper()
	var st string
	require.NoError(t, s.db.QueryRow(context.Background(), `SELECT status FROM `+table+` WHERE id = $1`, id).Scan(&st))
	return st
}

// admin is an operator's token, made with `app user create-admin`.
func (s *stack) admin(t *testing.T) string {
	t.Helper()
	email := uuid.NewString()[:8] + "@ops.test"
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"app", "user", "create-admin", "--email", email, "--password", "operator pw 1"},
		envOf(map[string]string{"DATABASE_URL": s.url}), &out, io.Discard))
	status, body := postJSON(t, s.base+"/v1/auth/login", "", map[string]string{"email": email, "password": "operator pw 1"})
	require.Equal(t, 200, status, body)
	return body["token"].(string)
}

const settleWithin = 30 * time.Second

// eventually waits up to settleWithin for cond; on timeout it fails with
// what describe says then (testify's messages are evaluated up front).
func (s *stack) eventually(t *testing.T, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(settleWithin)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not settled after %s: %s", settleWithin, describe())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// state describes an order's rows for a failure message.
func (s *stack) state(t *testing.T, orderID string) func() string {
	return func() string {
		var order string
		_ = s.db.QueryRow(context.Background(), `SELECT status FROM orders WHERE id = $1`, orderID).Scan(&order)
		return fmt.Sprintf("order %s; transfers %+v; sellers net %d at Stripe in %d transfers", order, s.transfers(t, orderID), s.sellerNet(orderID), s.transfersAtStripe(orderID))
	}
}

// A payout whose every answer is lost: Stripe made the transfer. When the
// buyer is then refunded, the seller must not keep the money.
func TestLostPayoutAnswerThenRefundNetsZero(t *testing.T) {
	t.Parallel()
	s := startStack(t, map[string]string{"TRANSFER_MAX_ATTEMPTS": "2"})
	s.stripe.LoseNext("POST /v1/transfers", 2, fake.Lost502) // both attempts: the transfer, then its replay
	orderID, _, buyer := s.paidOrder(t, 1000)
	require.Eventually(t, func() bool {
		return s.transfersAtStripe(orderID) == 1 && s.count(t, `SELECT count(*) FROM river_job WHERE kind = 'seller_payout' AND state IN ('available', 'running', 'retryable', 'scheduled')`) == 0
	},
		settleWithin, 50*time.Millisecond)

	_, psp := s.refund(t, buyer, orderID)
	s.refundSucceeds(t, psp)
	s.eventually(t, func() bool { return s.sellerNet(orderID) == 0 }, s.state(t, orderID))
	require.Equal(t, 1, s.transfersAtStripe(orderID))
}

// A payout whose every answer is lost, and the look-up after its last
// attempt too: a failed row is never looked at again by itself, so the
// look-up is asked again until Stripe answers, and finds the transfer.
func TestLostPayoutAnswersAndLookUpPayOnce(t *testing.T) {
	t.Parallel()
	s := startStack(t, map[string]string{"TRANSFER_MAX_ATTEMPTS": "2"})
	s.stripe.LoseNext("POST /v1/transfers", 2, fake.Lost502) // both attempts: the transfer, then its replay
	s.stripe.LoseNext("GET /v1/transfers", 1, fake.Lost502)  // and the look-up when they run out
	orderID, _, _ := s.paidOrder(t, 1000)
	s.eventually(t, func() bool { return allStatus(s.transfers(t, orderID), "completed") }, s.state(t, orderID))
	require.Equal(t, 1, s.transfersAtStripe(orderID), "Stripe made it, once")
	require.EqualValues(t, 900, s.sellerNet(orderID))
}

// An operator retries, a day later, a payout failed while Stripe had made
// it (a row failed by an earlier version, or a listing that missed it):
// the key is forgotten by then, and a new transfer would pay the seller
// twice. The retry's new round looks up first.
func TestAdminRetryAfterADayDoesNotPayTwice(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	orderID, _, _ := s.paidOut(t, 1000)
	require.Equal(t, 1, s.transfersAtStripe(orderID))
	_, err := s.db.Exec(context.Background(), `UPDATE seller_transfers SET status = 'failed', stripe_transfer_id = NULL,
		error_message = 'Stripe lists no transfer after 30 attempts' WHERE order_id = $1`, orderID)
	require.NoError(t, err)

	s.stripe.Advance(25 * time.Hour)
	var transferID string
	require.NoError(t, s.db.QueryRow(context.Background(), `SELECT id::text FROM seller_transfers WHERE order_id = $1`, orderID).Scan(&transferID))
	status, body := s.request(t, "POST", "/admin/transfers/"+transferID+"/retry", s.admin(t), nil, nil)
	require.Equal(t, 202, status, body)
	s.eventually(t, func() bool { return allStatus(s.transfers(t, orderID), "completed") }, s.state(t, orderID))
	require.Equal(t, 1, s.transfersAtStripe(orderID), "paid once")
	require.EqualValues(t, 900, s.sellerNet(orderID))
}

// A reversal whose first request ends in a 500 that Stripe saved under its
// key: retrying with that key only replays the 500.
func TestSavedReversalErrorDoesNotLeaveTheSellerPaid(t *testing.T) {
	t.Parallel()
	s := startStack(t, map[string]string{"REVERSAL_MAX_RETRIES": "2"})
	orderID, _, buyer := s.paidOut(t, 1000)
	s.stripe.SaveErrorNext("POST reversals", 1, 500)
	_, psp := s.refund(t, buyer, orderID)
	s.refundSucceeds(t, psp)
	s.eventually(t, func() bool { return allStatus(s.transfers(t, orderID), "reversed") }, s.state(t, orderID))
	require.Zero(t, s.sellerNet(orderID))
}

// A platform balance not yet available (balance_insufficient) heals with
// time: the payout waits for it, it does not fail for good.
func TestPayoutWaitsForThePlatformBalance(t *testing.T) {
	t.Parallel()
	s := startStack(t, map[string]string{"TRANSFER_BALANCE_WAIT": "1s"})
	s.stripe.SetBalanceAvailable(false)
	orderID, _, _ := s.paidOrder(t, 1000)
	s.eventually(t, func() bool { return s.stripe.Calls("POST /v1/transfers") >= 2 }, s.state(t, orderID))
	require.Zero(t, s.transfersAtStripe(orderID))
	s.stripe.SetBalanceAvailable(true)
	s.eventually(t, func() bool { return allStatus(s.transfers(t, orderID), "completed") }, s.state(t, orderID))
	require.Equal(t, 1, s.transfersAtStripe(orderID))
}

// Hyperswitch made the refund but a proxy answered with an HTML page: the
// refund is not failed, and its real outcome settles the order.
func TestUndecodableRefundAnswerIsNotAFailure(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	orderID, _, buyer := s.paidOut(t, 1000)
	s.hs.LoseNext("POST /refunds", 1, fake.LostHTML200)
	refundID, psp := s.refund(t, buyer, orderID)
	s.refundSucceeds(t, psp)
	s.eventually(t, func() bool { return s.dbStatus(t, "refunds", refundID) == "succeeded" }, s.state(t, orderID))
	s.eventually(t, func() bool { return s.sellerNet(orderID) == 0 }, s.state(t, orderID))
	require.Equal(t, "refunded", s.orderStatus(t, buyer, orderID))
}

// submitSettled waits until the refund's submit is answered for good: it
// has its PSP id, or it is no longer pending. It returns the refund's
// status and PSP id then.
func (s *stack) submitSettled(t *testing.T, orderID, refundID string) (status, pspID string) {
	t.Helper()
	var id *string
	s.eventually(t, func() bool {
		require.NoError(t, s.db.QueryRow(context.Background(), `SELECT status, hyperswitch_refund_id FROM refunds WHERE id = $1`, refundID).Scan(&status, &id))
		return status != "pending" || id != nil
	}, s.state(t, orderID))
	if id != nil {
		pspID = *id
	}
	return status, pspID
}

// Hyperswitch made the refund and the answer was lost. The retry is
// refused for its amount: Hyperswitch checks the amount against the
// refunds it has before its "already exists". A refusal is read back by
// our refund_id before it is believed: the refund is not failed, and the
// order keeps waiting for its outcome, even if no webhook ever comes.
func TestRefundRetryRefusedForItsAmountIsReadBack(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	orderID, _, buyer := s.paidOut(t, 1000)
	s.hs.LoseNext("POST /refunds", 1, fake.Lost502)
	refundID, psp := s.refund(t, buyer, orderID)

	status, pspID := s.submitSettled(t, orderID, refundID)
	require.Equal(t, "pending", status, "Hyperswitch holds this refund: it did not fail")
	require.Equal(t, psp, pspID)
	require.GreaterOrEqual(t, s.hs.Calls("POST /refunds"), 2, "the lost answer was retried")
	require.Equal(t, "refund_pending", s.orderStatus(t, buyer, orderID))
	require.Len(t, s.hs.Refunds(), 1)

	s.refundSucceeds(t, psp)
	s.eventually(t, func() bool { return s.sellerNet(orderID) == 0 }, s.state(t, orderID))
	require.Equal(t, "refunded", s.orderStatus(t, buyer, orderID))
}

// The connector timed out: Hyperswitch keeps its refund pending, with no
// connector id, and answers 400 CE_06. That is no word on the refund: it
// stays pending, and a reconcile read (which cannot sync it at the
// connector) leaves it so; the runbook has ops look at the connector.
func TestRefundConnectorErrorIsNotAFailure(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	orderID, _, buyer := s.paidOut(t, 1000)
	s.hs.RefundConnectorErrorNext(1)
	refundID, psp := s.refund(t, buyer, orderID)

	status, pspID := s.submitSettled(t, orderID, refundID)
	require.Equal(t, "pending", status)
	require.Equal(t, psp, pspID)
	require.Equal(t, "refund_pending", s.orderStatus(t, buyer, orderID))

	s.hs.SetConnectorRefundStatus(psp, "succeeded") // Hyperswitch cannot learn it
	code, body := s.request(t, "POST", "/admin/reconcile", s.admin(t), nil, map[string]string{"refund_id": refundID})
	require.Equal(t, 202, code, body)
	s.eventually(t, func() bool {
		var done int
		require.NoError(t, s.db.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = 'reconcile_refund' AND state = 'completed' AND args->>'refund_id' = $1`, refundID).Scan(&done))
		return done == 1
	}, s.state(t, orderID))
	require.Equal(t, "pending", s.dbStatus(t, "refunds", refundID), "not failed, and not settled on a word Hyperswitch does not have")
	require.Equal(t, "refund_pending", s.orderStatus(t, buyer, orderID))
}

// A refund Hyperswitch refuses, with no refund under our refund_id, is
// failed: the read-back found none (HE_02), which is Hyperswitch's word.
func TestRefundRefusedWithNoRefundFails(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	orderID, paymentID, buyer := s.paidOut(t, 1000)
	// Refunded elsewhere (the dashboard) meanwhile: nothing is left to refund.
	s.hs.PutRefund(hyperswitch.Refund{RefundID: "ref_dashboard", PaymentID: paymentID, Amount: 1000, Currency: "EUR", Status: "succeeded"})
	status, body := s.request(t, "POST", "/v1/orders/"+orderID+"/refund", buyer, nil, map[string]string{"reason": "changed my mind"})
	require.Equal(t, 202, status, body)
	refundID := body["refund"].(map[string]any)["id"].(string)

	got, pspID := s.submitSettled(t, orderID, refundID)
	require.Equal(t, "failed", got)
	require.Empty(t, pspID)
	require.Equal(t, 1, s.hs.Calls("GET /refunds"), "the refusal was read back once")
	require.Equal(t, "completed", s.orderStatus(t, buyer, orderID))
}

// A refund with no PSP id whose submission was lost is read at Hyperswitch
// by our own refund_id before the sweep calls it an orphan.
func TestOrphanSweepReadsOurRefundIDFirst(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	orderID, paymentID, buyer := s.paidOut(t, 1000)
	// The refund reached Hyperswitch, our bookkeeping of it did not.
	var refundID string
	require.NoError(t, s.db.QueryRow(context.Background(), `WITH o AS (UPDATE orders SET status = 'refund_pending' WHERE id = $1 RETURNING id, amount, currency)
		INSERT INTO refunds (order_id, amount, currency, created_at) SELECT id, amount, currency, now() - interval '1 hour' FROM o RETURNING id::text`, orderID).Scan(&refundID))
	s.hs.PutRefund(hyperswitch.Refund{RefundID: "veza_ref_" + refundID, PaymentID: paymentID, Amount: 1000, Currency: "EUR", Status: "succeeded"})

	status, body := s.request(t, "POST", "/admin/reconcile", s.admin(t), nil, map[string]string{"refund_id": refundID})
	require.Equal(t, 202, status, body)
	s.eventually(t, func() bool { return s.dbStatus(t, "refunds", refundID) != "pending" }, s.state(t, orderID))
	require.Equal(t, "succeeded", s.dbStatus(t, "refunds", refundID))
	s.eventually(t, func() bool { return s.sellerNet(orderID) == 0 }, s.state(t, orderID))
	require.Equal(t, "refunded", s.orderStatus(t, buyer, orderID))
}

// Hyperswitch lets a failed payment be retried on the same payment_id: its
// success completes the order the failure closed.
func TestPaymentRetriedAfterFailureCompletesTheOrder(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	orderID, paymentID, amount, buyer := s.pendingOrder(t, 1000)
	s.hs.SetPaymentStatus(paymentID, "failed")
	s.paymentEvent(t, "payment_failed", paymentID, map[string]any{"status": "failed", "amount": amount, "currency": "EUR"})
	s.eventually(t, func() bool { return s.orderStatus(t, buyer, orderID) == "failed" }, s.state(t, orderID))

	s.paid(t, paymentID, amount)
	s.eventually(t, func() bool { return s.orderStatus(t, buyer, orderID) == "completed" }, s.state(t, orderID))
	s.eventually(t, func() bool { return allStatus(s.transfers(t, orderID), "completed") }, s.state(t, orderID))
	require.EqualValues(t, 900, s.sellerNet(orderID))
}

// A partial capture charged the buyer less than the order: the order is not
// completed and what was captured goes back to the buyer.
func TestPartialCaptureIsRefunded(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	orderID, paymentID, amount, buyer := s.pendingOrder(t, 1000)
	s.hs.Capture(paymentID, 600)
	s.paymentEvent(t, "payment_captured", paymentID, map[string]any{"status": "partially_captured", "amount": amount, "amount_received": 600, "currency": "EUR"})
	require.Eventually(t, func() bool {
		for _, rf := range s.hs.Refunds() {
			if rf.PaymentID == paymentID && rf.Amount == 600 {
				return true
			}
		}
		return false
	}, settleWithin, 50*time.Millisecond, "the captured 600 is refunded")
	require.NotEqual(t, "pending", s.orderStatus(t, buyer, orderID))
	require.NotEqual(t, "completed", s.orderStatus(t, buyer, orderID))
	require.Zero(t, s.transfersAtStripe(orderID), "no seller is paid for an order not paid in full")
}

// A cancel after capture gave the money back to the buyer: the sellers are
// taken back as for a refund.
func TestCancelAfterCaptureReversesThePayouts(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	orderID, paymentID, buyer := s.paidOut(t, 1000)
	s.hs.SetPaymentStatus(paymentID, "cancelled_post_capture")
	s.paymentEvent(t, "payment_cancelled_post_capture", paymentID, map[string]any{"status": "cancelled_post_capture", "amount": 1000, "currency": "EUR"})
	s.eventually(t, func() bool { return s.sellerNet(orderID) == 0 }, s.state(t, orderID))
	require.Equal(t, "refunded", s.orderStatus(t, buyer, orderID))
}

// An expired payment closes its order for good.
func TestExpiredPaymentClosesTheOrder(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	orderID, paymentID, amount, buyer := s.pendingOrder(t, 1000)
	s.hs.SetPaymentStatus(paymentID, "expired")
	s.paymentEvent(t, "payment_expired", paymentID, map[string]any{"status": "expired", "amount": amount, "currency": "EUR"})
	s.eventually(t, func() bool { return s.orderStatus(t, buyer, orderID) == "expired" }, s.state(t, orderID))
}

// A 404 without resource_missing is a wrong URL (a misconfigured base or
// proxy), not Stripe saying the transfer does not exist: the reversal is
// retried, not closed for good.
func TestReversalA404WithoutResourceMissingIsRetried(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	orderID, _, buyer := s.paidOut(t, 1000)
	s.stripe.FailNext(2, 404)
	_, psp := s.refund(t, buyer, orderID)
	s.refundSucceeds(t, psp)
	s.eventually(t, func() bool { return allStatus(s.transfers(t, orderID), "reversed") }, s.state(t, orderID))
	require.Zero(t, s.sellerNet(orderID))
}

// The refund settles while the payout's Stripe call is still on its way:
// the look-up finds nothing yet, and the transfer Stripe then makes must
// still be taken back.
func TestRefundWhilePayoutIsInFlightNetsZero(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	s.stripe.SetLatency(3 * time.Second)
	orderID, _, buyer := s.paidOrder(t, 1000)
	s.eventually(t, func() bool { return s.stripe.Calls("POST /v1/transfers") == 1 }, s.state(t, orderID))
	s.stripe.SetLatency(0)
	_, psp := s.refund(t, buyer, orderID)
	s.refundSucceeds(t, psp)
	s.eventually(t, func() bool { return s.transfersAtStripe(orderID) == 1 && s.sellerNet(orderID) == 0 }, s.state(t, orderID))
	s.eventually(t, func() bool { return allStatus(s.transfers(t, orderID), "reversed") }, s.state(t, orderID))
}

// A payout whose first request ended in a 500 Stripe saved under its key:
// the same key would replay it for a day; a new round pays now.
func TestSavedPayoutErrorIsNotReplayedForADay(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	s.stripe.SaveErrorNext("POST /v1/transfers", 1, 500)
	orderID, _, _ := s.paidOut(t, 1000)
	require.Equal(t, 1, s.transfersAtStripe(orderID))
}

// Pacing meets a lost answer, on every money call that changed: Stripe
// answers 429 to the payout, then does the transfer and loses the answer;
// Hyperswitch answers 429 to the refund; Stripe answers 429 to the
// reversal, then reverses and answers with a proxy's page. Each 429 only
// delays; each lost answer is found by its replay or read-back: one
// transfer, one reversal, the seller nets zero, nothing closed as failed.
func TestRateLimitedThenLostAnswersPayAndReverseOnce(t *testing.T) {
	t.Parallel()
	s := startStack(t, map[string]string{"RATE_LIMIT_MAX_WAIT": "1s"})
	orderID, paymentID, amount, buyer := s.pendingOrder(t, 1000)
	s.stripe.FailNext(1, 429)
	s.stripe.LoseNext("POST /v1/transfers", 1, fake.Lost502)
	s.paid(t, paymentID, amount)
	s.eventually(t, func() bool { return allStatus(s.transfers(t, orderID), "completed") }, s.state(t, orderID))
	require.Equal(t, 1, s.transfersAtStripe(orderID), "the lost answer's replay adopted the transfer")

	s.hs.FailNext(1, 429)
	_, psp := s.refund(t, buyer, orderID)
	s.stripe.FailNext(1, 429)
	s.stripe.LoseNext("POST reversals", 1, fake.LostHTML200)
	s.refundSucceeds(t, psp)
	s.eventually(t, func() bool { return allStatus(s.transfers(t, orderID), "reversed") }, s.state(t, orderID))
	require.Zero(t, s.sellerNet(orderID))
	require.Len(t, s.stripe.Reversals(), 1, "reversed once")
	require.Equal(t, 1, s.transfersAtStripe(orderID))
	require.Equal(t, "refunded", s.orderStatus(t, buyer, orderID))
	require.Zero(t, s.count(t, `SELECT count(*) FROM seller_transfers WHERE order_id = $1 AND status IN ('failed', 'permanently_failed', 'reversal_failed')`, orderID))
	require.Zero(t, s.count(t, `SELECT count(*) FROM refunds WHERE order_id = $1 AND status = 'failed'`, orderID))
	require.Zero(t, s.count(t, `SELECT count(*) FROM river_job WHERE state = 'discarded'`))
	require.Equal(t, 3, s.stripe.Calls("POST /v1/transfers"), "429, the lost one, its replay")
	require.GreaterOrEqual(t, s.stripe.Calls("POST reversals"), 2, "429, then the lost one")
	require.GreaterOrEqual(t, s.hs.Calls("POST /refunds"), 2, "429, then the refund")
}
