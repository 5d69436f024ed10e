package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"strconv"
	"strings"

	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/hyperswitch/hyperswitchtest"
	"github.com/veza/backend/stripeconnect/stripetest"
)

// errFinal: the object is in a state its provider never moves it out of.
var errFinal = errors.New("final state")

// paymentEvents is the webhook Hyperswitch sends when a payment reaches a
// status (crates/router/src/types/transformers.rs); statuses absent here
// send none.
var paymentEvents = map[string]string{
	"succeeded": "payment_succeeded", "failed": "payment_failed", "processing": "payment_processing",
	"cancelled": "payment_cancelled", "cancelled_post_capture": "payment_cancelled_post_capture",
	"expired": "payment_expired", "requires_customer_action": "action_required",
	"requires_merchant_action": "action_required", "requires_capture": "payment_authorized",
	"partially_captured": "payment_captured", "partially_captured_and_capturable": "payment_captured",
	"partially_authorized_and_requires_capture": "payment_partially_authorized",
	"requires_payment_method":                   "", "requires_confirmation": "", "conflicted": "",
}

// disputeStatuses are Hyperswitch's dispute_status values; true: final.
var disputeStatuses = map[string]bool{
	"dispute_opened": false, "dispute_challenged": false, "dispute_won": true, "dispute_lost": true,
	"dispute_accepted": true, "dispute_expired": true, "dispute_cancelled": true,
}

// Handler serves everything under Path: the providers' APIs the service
// calls, and the controls a developer (or `app sandbox pay`) uses.
func (s *Sandbox) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(Path+"/hyperswitch/", s.saving(http.StripPrefix(Path+"/hyperswitch", s.hs), nil))
	mux.Handle(Path+"/stripe/v1/", s.saving(http.StripPrefix(Path+"/stripe", s.st), s.reversalEvents))
	mux.HandleFunc("GET "+Path+"/stripe/onboarding/{account}", s.handleOnboarding)
	mux.HandleFunc("GET "+Path+"/stripe/transfers", s.handleTransfers)
	mux.HandleFunc("POST "+Path+"/payments/{id}/complete", s.handleCompletePayment)
	mux.HandleFunc("POST "+Path+"/payments/{id}/dispute", s.handleDispute)
	mux.HandleFunc("POST "+Path+"/refunds/{id}/complete", s.handleCompleteRefund)
	mux.HandleFunc("GET "+Path+"/emails", s.handleEmails)
	mux.HandleFunc(Path+"/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such sandbox endpoint: "+r.Method+" "+r.URL.Path+" (see API.md, section Sandbox)")
	})
	// Mounted behind Fiber, requests come through http's stdHandler: their
	// strings are the sandbox's own to keep (idempotency keys, ids).
	return mux
}

// saving persists the simulators' state after every call that may change
// it, with the webhooks the call caused (events, which may be nil) in the
// same transaction.
func (s *Sandbox) saving(next http.Handler, events func() []event) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r)
		if r.Method == http.MethodGet {
			return
		}
		var evs []event
		if events != nil {
			evs = events()
		}
		if err := s.commit(context.WithoutCancel(r.Context()), evs...); err != nil {
			s.opts.Logger.Error().Err(err).Msg("sandbox: state not saved")
		}
	})
}

// reversalEvents is a transfer.reversed for each reversal not announced
// yet, as Stripe sends. Reversals are only appended: each is announced
// once, whichever concurrent call sees it first.
func (s *Sandbox) reversalEvents() []event {
	s.mu.Lock()
	all := s.st.Reversals()
	fresh := all[min(s.reversalsSent, len(all)):]
	s.reversalsSent = len(all)
	s.mu.Unlock()
	out := make([]event, 0, len(fresh))
	for _, rev := range fresh {
		tr, _ := s.st.Transfer(rev.Transfer)
		id := eventID("evt")
		out = append(out, event{"stripe", id, "transfer.reversed", stripetest.ConnectEvent(id, "transfer.reversed", "", tr)})
	}
	return out
}

// decode reads a control body strictly: unknown fields are refused.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	// JSON only: a browser must ask (CORS preflight) before it may send
	// that, so a foreign web page cannot drive the controls.
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send the body as JSON, with Content-Type: application/json")
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_json", "the body must be a JSON object with only the documented fields: "+err.Error())
		return false
	}
	return true
}

func (s *Sandbox) handleCompletePayment(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Status string `json:"status"`
	}
	if !decode(w, r, &body) {
		return
	}
	p, event, err := s.CompletePayment(r.Context(), r.PathValue("id"), body.Status)
	s.answer(w, err, map[string]any{"payment": p, "event_type": event})
}

// answer writes a control's result or its error.
func (s *Sandbox) answer(w http.ResponseWriter, err error, ok any) {
	var ce *controlError
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, ok)
	case errors.As(err, &ce):
		writeError(w, ce.status, ce.code, ce.msg)
	default:
		s.opts.Logger.Error().Err(err).Msg("sandbox: control failed")
		writeError(w, http.StatusInternalServerError, "internal", "the sandbox could not do it; see the service log")
	}
}

type controlError struct {
	status    int
	code, msg string
}

func (e *controlError) Error() string { return e.msg }

// payment finds a payment by its id or its order's (the service puts the
// order id in the payment's metadata).
func (s *Sandbox) payment(id string) (hyperswitch.Payment, bool) {
	if p, ok := s.hs.Payment(id); ok {
		return p, true
	}
	for _, p := range s.hs.Payments() {
		if p.Metadata["order_id"] == id {
			return p, true
		}
	}
	return hyperswitch.Payment{}, false
}

// CompletePayment moves a payment as the buyer and the connector would
// (status: any IntentStatus; failed can be retried to succeeded, as
// Hyperswitch allows a manual retry), then sends its webhook. It returns
// the payment and the event type sent ("" when the status sends none).
func (s *Sandbox) CompletePayment(ctx context.Context, id, status string) (hyperswitch.Payment, string, error) {
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	ev, known := paymentEvents[status]
	if !known {
		return hyperswitch.Payment{}, "", &controlError{http.StatusUnprocessableEntity, "invalid_status",
			fmt.Sprintf("status %q is not a Hyperswitch payment status (succeeded, failed, processing, requires_customer_action, cancelled, expired, ...)", status)}
	}
	p, ok := s.payment(id)
	if !ok {
		return p, "", &controlError{http.StatusNotFound, "not_found", "no payment " + id + " in the sandbox (give the order's id or its payment_id)"}
	}
	id = p.PaymentID
	switch {
	case p.Status == status:
		return p, "", nil // nothing moves, nothing is sent
	case p.Status == "cancelled" || p.Status == "expired" || p.Status == "cancelled_post_capture",
		(p.Status == "succeeded" || p.Status == "partially_captured") && status != "cancelled_post_capture":
		return p, "", &controlError{http.StatusConflict, "payment_final",
			fmt.Sprintf("payment %s is %s; Hyperswitch moves it no further (refund or dispute it instead)", id, p.Status)}
	}
	p.Status, p.ErrorMessage = status, nil
	switch status {
	case "succeeded":
		received := p.Amount
		p.AmountReceived = &received
	case "partially_captured", "partially_captured_and_capturable":
		received := p.Amount / 2
		p.AmountReceived = &received
	case "failed":
		msg := "Your card was declined. (sandbox)"
		p.ErrorMessage = &msg
	}
	s.hs.PutPayment(p)
	var events []event
	if ev != "" {
		id := eventID("evt")
		events = append(events, event{"hyperswitch", id, ev, hyperswitchtest.WebhookBody(id, ev, p)})
	}
	return p, ev, s.commit(ctx, events...)
}

func (s *Sandbox) handleCompleteRefund(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Status string `json:"status"`
	}
	if !decode(w, r, &body) {
		return
	}
	rf, err := s.completeRefund(r.Context(), r.PathValue("id"), body.Status)
	s.answer(w, err, map[string]any{"refund": rf})
}

// completeRefund settles a pending (or in review) refund and sends its
// webhook.
func (s *Sandbox) completeRefund(ctx context.Context, id, status string) (hyperswitch.Refund, error) {
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	if status != "succeeded" && status != "failed" {
		return hyperswitch.Refund{}, &controlError{http.StatusUnprocessableEntity, "invalid_status", `status must be "succeeded" or "failed"`}
	}
	rf, ok := s.hs.Refund(id)
	if !ok {
		return rf, &controlError{http.StatusNotFound, "not_found", "no refund " + id + " in the sandbox"}
	}
	if rf.Status != "pending" && rf.Status != "review" {
		return rf, fmt.Errorf("%w: %w", errFinal, &controlError{http.StatusConflict, "refund_final", fmt.Sprintf("refund %s is already %s", id, rf.Status)})
	}
	var msg *string
	if status == "failed" {
		m := "The connector declined the refund. (sandbox)"
		msg = &m
	}
	s.hs.SetRefundStatus(id, status, msg)
	rf, _ = s.hs.Refund(id)
	ev := eventID("evt")
	return rf, s.commit(ctx, event{"hyperswitch", ev, "refund_" + status, hyperswitchtest.WebhookBody(ev, "refund_"+status, rf)})
}

func (s *Sandbox) handleDispute(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Status string `json:"status"`
		Amount int64  `json:"amount"`
	}
	if !decode(w, r, &body) {
		return
	}
	d, err := s.Dispute(r.Context(), r.PathValue("id"), body.Status, body.Amount)
	s.answer(w, err, map[string]any{"dispute": d})
}

// Dispute opens a dispute on a captured payment (amount 0: all of it) or
// moves its open one to status, sending each step's webhook; a closing
// status on a payment with no open dispute opens one first, as the
// connector would have.
func (s *Sandbox) Dispute(ctx context.Context, paymentID, status string, amount int64) (hyperswitchtest.Dispute, error) {
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	_, known := disputeStatuses[status]
	if !known {
		return hyperswitchtest.Dispute{}, &controlError{http.StatusUnprocessableEntity, "invalid_status",
			fmt.Sprintf("status %q is not a dispute_status (dispute_opened, dispute_challenged, dispute_won, dispute_lost, dispute_accepted, dispute_expired, dispute_cancelled)", status)}
	}
	p, ok := s.payment(paymentID)
	if !ok {
		return hyperswitchtest.Dispute{}, &controlError{http.StatusNotFound, "not_found", "no payment " + paymentID + " in the sandbox (give the order's id or its payment_id)"}
	}
	paymentID = p.PaymentID
	if p.Status != "succeeded" && p.Status != "partially_captured" {
		return hyperswitchtest.Dispute{}, &controlError{http.StatusConflict, "payment_not_captured", "only a captured payment can be disputed; " + paymentID + " is " + p.Status}
	}
	captured := p.Amount
	if p.AmountReceived != nil {
		captured = *p.AmountReceived
	}
	if amount < 0 || amount > captured {
		return hyperswitchtest.Dispute{}, &controlError{http.StatusUnprocessableEntity, "invalid_amount", fmt.Sprintf("amount must be between 1 and %d (0: all)", captured)}
	}
	var open *hyperswitchtest.Dispute
	for _, d := range s.hs.Disputes() {
		if d.PaymentID == paymentID && !disputeStatuses[d.DisputeStatus] {
			open = &d
			break
		}
	}
	opened := false
	switch {
	case open == nil:
		d := s.hs.OpenDispute(paymentID, amount)
		open, opened = &d, true
		if status == "dispute_opened" {
			break
		}
		fallthrough
	default:
		if status == "dispute_opened" {
			return *open, &controlError{http.StatusConflict, "dispute_open", "payment " + paymentID + " already has an open dispute, " + open.DisputeID}
		}
		d := s.hs.SetDisputeStatus(open.DisputeID, status)
		open = &d
	}
	// The opening's webhook first, then the move's (delivery order is not
	// kept by Hyperswitch either; the service reads the dispute when in doubt).
	var events []event
	if opened && status != "dispute_opened" {
		first := *open
		first.DisputeStatus, first.ConnectorStatus = "dispute_opened", "needs_response"
		ev := eventID("evt")
		events = append(events, event{"hyperswitch", ev, "dispute_opened", hyperswitchtest.WebhookBody(ev, "dispute_opened", first)})
	}
	ev := eventID("evt")
	events = append(events, event{"hyperswitch", ev, open.DisputeStatus, s.hs.DisputeWebhook(ev, open.DisputeID)})
	return *open, s.commit(ctx, events...)
}

// handleOnboarding is the page an onboarding link leads to: opening it is
// the seller finishing Stripe's onboarding.
func (s *Sandbox) handleOnboarding(w http.ResponseWriter, r *http.Request) {
	acct := r.PathValue("account")
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	a, ok := s.st.CompleteOnboarding(acct)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, "<!doctype html><title>Sandbox Stripe</title><p>No connected account %s in the sandbox.</p>\n", html.EscapeString(acct))
		return
	}
	ev := eventID("evt")
	if err := s.commit(context.WithoutCancel(r.Context()), event{"stripe", ev, "account.updated", stripetest.ConnectEvent(ev, "account.updated", acct, a)}); err != nil {
		s.answer(w, err, nil)
		return
	}
	fmt.Fprintf(w, "<!doctype html><title>Sandbox Stripe</title><h1>Onboarding complete</h1>"+
		"<p>Account %s: details submitted, payouts enabled. Stripe now sends <code>account.updated</code> to the service.</p>\n", html.EscapeString(acct))
}

type transferView struct {
	ID             string `json:"id"`
	Amount         int64  `json:"amount"`
	Currency       string `json:"currency"`
	Destination    string `json:"destination"`
	TransferGroup  string `json:"transfer_group"`
	AmountReversed int64  `json:"amount_reversed"`
	Reversed       bool   `json:"reversed"`
}

type reversalView struct {
	ID       string `json:"id"`
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
	Transfer string `json:"transfer"`
}

// handleTransfers shows what Stripe moved: transfers and reversals.
func (s *Sandbox) handleTransfers(w http.ResponseWriter, r *http.Request) {
	out := struct {
		Transfers []transferView `json:"transfers"`
		Reversals []reversalView `json:"reversals"`
	}{Transfers: []transferView{}, Reversals: []reversalView{}}
	for _, t := range s.st.Transfers() {
		out.Transfers = append(out.Transfers, transferView{t.ID, t.Amount, t.Currency, t.Destination, t.TransferGroup, t.AmountReversed, t.Reversed})
	}
	for _, rv := range s.st.Reversals() {
		out.Reversals = append(out.Reversals, reversalView{rv.ID, rv.Amount, rv.Currency, rv.Transfer})
	}
	writeJSON(w, http.StatusOK, out)
}

// handleEmails is the development inbox: ?to= filters by recipient,
// newest first.
func (s *Sandbox) handleEmails(w http.ResponseWriter, r *http.Request) {
	limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
	if err != nil || limit <= 0 || limit > 100 {
		limit = 20
	}
	emails, err := ListEmails(r.Context(), s.opts.DB, r.URL.Query().Get("to"), limit)
	s.answer(w, err, map[string]any{"emails": emails})
}
