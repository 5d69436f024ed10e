// Package hyperswitchtest is a stateful fake of Hyperswitch's API on an
// httptest server, speaking its wire format (../shared/PSP.md): api-key
// auth, merchant-chosen payment_id/refund_id, HE_01 on duplicates, HE_02
// 404 for an unknown id, its error envelope; a refund routed to Stripe
// fails unless its reason is one Stripe takes. Tests move payments through
// every status (a failed payment retried to success, a partial capture,
// expiry, a cancel after capture) and refunds (pending, review, succeeded,
// failed) and disputes (opened, challenged, won, lost, ...: DisputeResponse
// with its string amount), make it fail before doing anything (FailNext) or do the work
// and lose the answer (LoseNext: 502, reset, HTML 200, timeout), slow it
// down, and build signed webhook deliveries.
package hyperswitchtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/internal/fake"
)

// APIKey is the key the fake accepts.
const APIKey = "snd_test_api_key"

// Server is the fake. Its controls (FailNext, SetLatency, Calls,
// MaxInFlight) count calls by "METHOD /first-segment", e.g.
// "POST /payments".
type Server struct {
	URL string
	fake.Controls

	mu       sync.Mutex
	payments map[string]*hyperswitch.Payment
	refunds  map[string]*hyperswitch.Refund
	disputes map[string]*Dispute
	// connectorErrors: refund creates left to fail at the connector.
	connectorErrors int
	// connectorPayments, connectorRefunds: statuses the connector reached
	// that Hyperswitch has not heard of (the connector's webhook to it was
	// lost, the buyer never came back from 3-D Secure). A plain read
	// answers Hyperswitch's cached state; only force_sync=true asks the
	// connector, and stores what it says.
	connectorPayments map[string]string
	connectorRefunds  map[string]string
	// unsent: refunds whose connector call failed (CE_06). Hyperswitch
	// holds no connector refund id for them, so a force_sync read cannot
	// ask the connector, and no webhook will come.
	unsent map[string]bool
	// accountMissing: the merchant connector account was deleted (an
	// operator re-creating the Stripe connector). Every call that needs
	// the connector answers HE_02 about the account, not the object.
	accountMissing bool
}

// RemoveConnectorAccount deletes the merchant connector account: creates
// and force_sync reads answer 404 HE_02 "Merchant connector account does
// not exist in our records" (MerchantConnectorAccountNotFound) until
// RestoreConnectorAccount. Plain reads still answer the cached state.
func (s *Server) RemoveConnectorAccount() { s.setAccountMissing(true) }

// RestoreConnectorAccount undoes RemoveConnectorAccount.
func (s *Server) RestoreConnectorAccount() { s.setAccountMissing(false) }

func (s *Server) setAccountMissing(v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accountMissing = v
}

// Start runs the fake until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s, stop := New()
	t.Cleanup(stop)
	return s
}

// New runs the fake until stop is called (benchmarks, tools).
func New() (*Server, func()) {
	s := NewHandler("")
	srv := httptest.NewServer(s)
	s.URL = srv.URL
	return s, srv.Close
}

// NewHandler is the fake without a server of its own, served by ServeHTTP
// wherever it is mounted at url (the development sandbox).
func NewHandler(url string) *Server {
	return &Server{URL: url, payments: map[string]*hyperswitch.Payment{}, refunds: map[string]*hyperswitch.Refund{}, disputes: map[string]*Dispute{},
		connectorPayments: map[string]string{}, connectorRefunds: map[string]string{}, unsent: map[string]bool{}}
}

// ServeHTTP answers a call as Hyperswitch would (paths relative to URL).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.serve(w, r) }

// State is what the fake holds, for a sandbox that keeps it across
// restarts (Snapshot, Restore).
type State struct {
	Payments map[string]*hyperswitch.Payment `json:"payments"`
	Refunds  map[string]*hyperswitch.Refund  `json:"refunds"`
	Disputes map[string]*Dispute             `json:"disputes"`
}

// Snapshot is the fake's objects as JSON.
func (s *Server) Snapshot() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return json.Marshal(State{Payments: s.payments, Refunds: s.refunds, Disputes: s.disputes})
}

// Restore replaces the fake's objects with a Snapshot's.
func (s *Server) Restore(snapshot []byte) error {
	st := State{}
	if err := json.Unmarshal(snapshot, &st); err != nil {
		return fmt.Errorf("hyperswitchtest: restore: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.payments, s.refunds, s.disputes = st.Payments, st.Refunds, st.Disputes
	if s.payments == nil {
		s.payments = map[string]*hyperswitch.Payment{}
	}
	if s.refunds == nil {
		s.refunds = map[string]*hyperswitch.Refund{}
	}
	if s.disputes == nil {
		s.disputes = map[string]*Dispute{}
	}
	return nil
}

// Client returns a real client pointed at the fake.
func (s *Server) Client() *hyperswitch.Client { return hyperswitch.New(s.URL, APIKey, nil) }

// The fake's maps, read under its lock (Restore replaces them).
func paymentsOf(s *Server) map[string]*hyperswitch.Payment { return s.payments }
func refundsOf(s *Server) map[string]*hyperswitch.Refund   { return s.refunds }
func disputesOf(s *Server) map[string]*Dispute             { return s.disputes }

// copyOf reads one stored object under the lock and returns a copy.
func copyOf[T any](s *Server, of func(*Server) map[string]*T, id string) (T, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := of(s)[id]
	if !ok {
		var zero T
		return zero, false
	}
	return *v, true
}

// copiesOf returns copies of every object of a map, under the lock.
func copiesOf[T any](s *Server, of func(*Server) map[string]*T) []T {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]T, 0, len(of(s)))
	for _, v := range of(s) {
		out = append(out, *v)
	}
	return out
}

// Payment returns a copy of a stored payment.
func (s *Server) Payment(id string) (hyperswitch.Payment, bool) { return copyOf(s, paymentsOf, id) }

// Payments returns copies of every payment.
func (s *Server) Payments() []hyperswitch.Payment { return copiesOf(s, paymentsOf) }

// PutPayment stores (or replaces) a payment, e.g. one created before the test.
func (s *Server) PutPayment(p hyperswitch.Payment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.payments[p.PaymentID] = &p
}

// SetPaymentStatus moves a payment to any IntentStatus (as the customer
// confirming it, a manual retry of a failed payment, an expiry or a cancel
// would); succeeded captures the whole amount.
func (s *Server) SetPaymentStatus(id, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setPaymentStatus(id, status)
}

// UpdateMetadata replaces a payment's metadata, as a merchant's POST
// /payments/{id}/update_metadata does: any JSON, not only strings.
func (s *Server) UpdateMetadata(id string, metadata map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.payments[id]; ok {
		p.Metadata = metadata
	}
}

func stringsToAny(m map[string]string) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// SetConnectorPaymentStatus moves a payment at the connector only:
// Hyperswitch keeps answering its cached status until a force_sync read.
func (s *Server) SetConnectorPaymentStatus(id, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connectorPayments[id] = status
}

// SetConnectorRefundStatus moves a refund at the connector only (see
// SetConnectorPaymentStatus).
func (s *Server) SetConnectorRefundStatus(id, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connectorRefunds[id] = status
}

// forceSync is a force_sync=true read: Hyperswitch asks the connector and
// stores its status.
func (s *Server) forceSync(r *http.Request, kind, id string) {
	if r.URL.Query().Get("force_sync") != "true" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch kind {
	case "payments":
		// Hyperswitch asks the connector only while the payment is in a
		// status the connector may still move (should_call_connector).
		p, known := s.payments[id]
		if st, ok := s.connectorPayments[id]; ok && known && syncedStatuses[p.Status] {
			s.setPaymentStatus(id, st)
			delete(s.connectorPayments, id)
		}
	case "refunds":
		if st, ok := s.connectorRefunds[id]; ok && !s.unsent[id] {
			if rf, ok := s.refunds[id]; ok {
				rf.Status = st
			}
			delete(s.connectorRefunds, id)
		}
	}
}

// syncedStatuses are the payment statuses a force_sync read asks the
// connector about (crates/router: should_call_connector, PaymentStatus).
var syncedStatuses = map[string]bool{
	"processing": true, "requires_customer_action": true, "requires_merchant_action": true, "requires_capture": true,
	"partially_captured": true, "partially_captured_and_capturable": true,
}

func (s *Server) setPaymentStatus(id, status string) {
	if p, ok := s.payments[id]; ok {
		p.Status = status
		if status == "succeeded" {
			received := p.Amount
			p.AmountReceived = &received
		}
	}
}

// Capture captures received of a payment: all of it succeeds it, less is
// partially_captured.
func (s *Server) Capture(id string, received int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.payments[id]; ok {
		p.AmountReceived = &received
		p.Status = "succeeded"
		if received < p.Amount {
			p.Status = "partially_captured"
		}
	}
}

// stripeRefundReasons are the reasons a refund routed to Stripe may carry.
var stripeRefundReasons = map[string]bool{"duplicate": true, "fraudulent": true, "requested_by_customer": true}

// Refund returns a copy of a stored refund.
func (s *Server) Refund(id string) (hyperswitch.Refund, bool) { return copyOf(s, refundsOf, id) }

// Refunds returns copies of every refund.
func (s *Server) Refunds() []hyperswitch.Refund { return copiesOf(s, refundsOf) }

// PutRefund stores (or replaces) a refund.
func (s *Server) PutRefund(r hyperswitch.Refund) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refunds[r.RefundID] = &r
}

// SetRefundStatus moves a refund, with an error message for failures.
func (s *Server) SetRefundStatus(id, status string, errMsg *string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.refunds[id]; ok {
		r.Status, r.ErrorMessage = status, errMsg
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"type": typ, "code": code, "message": msg}})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	fail, done := s.Begin(r.Method + " /" + parts[0])
	defer done()
	s.Wait()

	if r.Header.Get("api-key") != APIKey {
		writeError(w, http.StatusUnauthorized, "invalid_request", "IR_01", "API key not provided or invalid API key used")
		return
	}
	if fail == http.StatusTooManyRequests {
		// Over the merchant's limit: refused before anything executes.
		w.Header().Set("Retry-After", "1")
		writeError(w, fail, "rate_limit", "HE_00", "Too many requests")
		return
	}
	if fail != 0 {
		writeError(w, fail, "server_not_available", "HE_00", "Something went wrong")
		return
	}

	s.mu.Lock()
	missing := s.accountMissing && (r.Method == http.MethodPost || r.URL.Query().Get("force_sync") == "true")
	s.mu.Unlock()
	if missing {
		writeError(w, http.StatusNotFound, "invalid_request", "HE_02", "Merchant connector account does not exist in our records")
		return
	}

	// The work is done, then the answer may be lost on its way back.
	rec := httptest.NewRecorder()
	s.route(rec, r, parts)
	s.Deliver(w, rec, s.Loss(r.Method+" /"+parts[0]))
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, parts []string) {
	switch {
	case r.Method == http.MethodPost && len(parts) == 1 && parts[0] == "payments":
		s.createPayment(w, r)
	case r.Method == http.MethodGet && len(parts) == 2 && parts[0] == "payments":
		s.forceSync(r, parts[0], parts[1])
		if p, ok := s.Payment(parts[1]); ok {
			writeJSON(w, http.StatusOK, p)
		} else {
			writeError(w, http.StatusNotFound, "invalid_request", "HE_02", "Payment does not exist in our records")
		}
	case r.Method == http.MethodPost && len(parts) == 1 && parts[0] == "refunds":
		s.createRefund(w, r)
	case r.Method == http.MethodGet && len(parts) == 2 && parts[0] == "refunds":
		s.forceSync(r, parts[0], parts[1])
		if rf, ok := s.Refund(parts[1]); ok {
			writeJSON(w, http.StatusOK, rf)
		} else {
			writeError(w, http.StatusNotFound, "invalid_request", "HE_02", "Refund does not exist in our records")
		}
	case r.Method == http.MethodGet && len(parts) == 2 && parts[0] == "disputes":
		if d, ok := s.Dispute(parts[1]); ok {
			writeJSON(w, http.StatusOK, d)
		} else {
			writeError(w, http.StatusNotFound, "invalid_request", "HE_04", "Dispute does not exist in our records")
		}
	default:
		writeError(w, http.StatusNotFound, "invalid_request", "IR_02", "Unrecognized request URL")
	}
}

func (s *Server) createPayment(w http.ResponseWriter, r *http.Request) {
	var p hyperswitch.CreatePaymentParams
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "IR_06", "Json deserialize error")
		return
	}
	if p.Amount <= 0 || len(p.Currency) != 3 {
		writeError(w, http.StatusBadRequest, "invalid_request", "IR_05", "amount and currency are required")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.PaymentID == "" {
		// Real Hyperswitch would mint one: the duplicate-charge hazard the
		// client refuses to create. Record it loudly.
		p.PaymentID = fmt.Sprintf("pay_generated_%d", len(s.payments)+1)
	}
	if _, exists := s.payments[p.PaymentID]; exists {
		writeError(w, http.StatusBadRequest, "invalid_request", "HE_01", "The payment with the specified payment_id already exists in our records")
		return
	}
	pay := &hyperswitch.Payment{
		PaymentID: p.PaymentID, MerchantID: "merchant_veza", Status: "requires_payment_method",
		Amount: p.Amount, Currency: p.Currency, ClientSecret: p.PaymentID + "_secret_" + fmt.Sprint(time.Now().UnixNano()),
		Metadata: stringsToAny(p.Metadata),
	}
	s.payments[p.PaymentID] = pay
	writeJSON(w, http.StatusOK, pay)
}

func (s *Server) createRefund(w http.ResponseWriter, r *http.Request) {
	var p hyperswitch.CreateRefundParams
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields() // Hyperswitch refuses unknown fields here
	if err := dec.Decode(&p); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "IR_06", "Json deserialize error: "+err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pay, ok := s.payments[p.PaymentID]
	if !ok {
		writeError(w, http.StatusNotFound, "invalid_request", "HE_02", "Payment does not exist in our records")
		return
	}
	if p.RefundID == "" {
		p.RefundID = fmt.Sprintf("ref_generated_%d", len(s.refunds)+1)
	}
	captured := pay.Amount
	if pay.AmountReceived != nil {
		captured = *pay.AmountReceived
	}
	if pay.Status != "succeeded" && pay.Status != "partially_captured" && pay.Status != "partially_captured_and_capturable" {
		writeError(w, http.StatusBadRequest, "invalid_request", "IR_14", "This Payment could not be refund because it has a status of "+pay.Status)
		return
	}
	amount := p.Amount
	if amount == 0 {
		amount = captured
	}
	var refunded int64
	for _, rf := range s.refunds {
		if rf.PaymentID == p.PaymentID && rf.Status != "failed" {
			refunded += rf.Amount
		}
	}
	// Hyperswitch checks the amount against every refund not failed before
	// it inserts (validate_and_create_refund): a repeat of a refund that
	// took the whole amount is refused for its amount, and only a repeat
	// that still fits reaches the insert's "already exists".
	if amount > captured-refunded {
		writeError(w, http.StatusBadRequest, "invalid_request", "IR_13", "The refund amount exceeds the amount captured")
		return
	}
	if _, exists := s.refunds[p.RefundID]; exists {
		writeError(w, http.StatusBadRequest, "invalid_request", "HE_01", "Duplicate refund request. Refund already attempted with the refund ID")
		return
	}
	ref := &hyperswitch.Refund{RefundID: p.RefundID, PaymentID: p.PaymentID, Amount: amount, Currency: pay.Currency, Status: "pending"}
	if p.Reason != "" {
		reason := p.Reason
		ref.Reason = &reason
		if !stripeRefundReasons[reason] {
			// The connector (Stripe) refuses the reason: the refund exists
			// and failed.
			msg := "Invalid reason: must be one of duplicate, fraudulent, requested_by_customer"
			ref.Status, ref.ErrorMessage = "failed", &msg
		}
	}
	s.refunds[p.RefundID] = ref
	if s.connectorErrors > 0 {
		// The connector call failed (a timeout): Hyperswitch returns before
		// it updates its refund (trigger_refund_to_gateway), which stays
		// pending with no connector id, and answers an error.
		s.connectorErrors--
		s.unsent[p.RefundID] = true
		writeError(w, http.StatusBadRequest, "invalid_request", "CE_06", "Refund failed while processing with connector. Retry refund")
		return
	}
	writeJSON(w, http.StatusOK, ref)
}

// RefundConnectorErrorNext makes the next n refund creates fail at the
// connector: the refund is stored pending and the answer is 400 CE_06.
func (s *Server) RefundConnectorErrorNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connectorErrors = n
}

// Dispute is Hyperswitch's DisputeResponse on the wire
// (crates/api_models/src/disputes.rs): the amount is a string of minor
// units, the status is dispute_status, times are ISO 8601 without a zone
// (PrimitiveDateTime), and there are fields the service never reads.
type Dispute struct {
	DisputeID           string  `json:"dispute_id"`
	PaymentID           string  `json:"payment_id"`
	AttemptID           string  `json:"attempt_id"`
	Amount              string  `json:"amount"`
	Currency            string  `json:"currency"`
	DisputeStage        string  `json:"dispute_stage"`
	DisputeStatus       string  `json:"dispute_status"`
	Connector           string  `json:"connector"`
	ConnectorStatus     string  `json:"connector_status"`
	ConnectorDisputeID  string  `json:"connector_dispute_id"`
	ConnectorReason     *string `json:"connector_reason"`
	ConnectorReasonCode *string `json:"connector_reason_code"`
	ChallengeRequiredBy *string `json:"challenge_required_by"`
	ConnectorCreatedAt  *string `json:"connector_created_at"`
	ConnectorUpdatedAt  *string `json:"connector_updated_at"`
	CreatedAt           string  `json:"created_at"`
	ProfileID           *string `json:"profile_id"`
	MerchantConnectorID *string `json:"merchant_connector_id"`
	IsAlreadyRefunded   bool    `json:"is_already_refunded"`
	AdditionalDetails   any     `json:"additional_details"`
}

// primitiveTime is how Hyperswitch writes a PrimitiveDateTime.
func primitiveTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// stripeDisputeStatus is what Stripe (the connector) calls each status.
var stripeDisputeStatus = map[string]string{
	"dispute_opened": "needs_response", "dispute_challenged": "under_review", "dispute_won": "won",
	"dispute_lost": "lost", "dispute_accepted": "lost", "dispute_expired": "lost", "dispute_cancelled": "warning_closed",
}

// OpenDispute opens a dispute on a payment for amount (0: all that was
// captured), as the connector reports it: stage "dispute", status
// dispute_opened, evidence due in 7 days, reason "fraudulent".
func (s *Server) OpenDispute(paymentID string, amount int64) Dispute {
	s.mu.Lock()
	defer s.mu.Unlock()
	pay, ok := s.payments[paymentID]
	if !ok {
		panic("hyperswitchtest: OpenDispute on unknown payment " + paymentID)
	}
	if amount == 0 {
		amount = pay.Amount
		if pay.AmountReceived != nil {
			amount = *pay.AmountReceived
		}
	}
	n := len(s.disputes) + 1
	now := time.Now()
	reason, code, due, created := "fraudulent", "10.4", primitiveTime(now.Add(7*24*time.Hour)), primitiveTime(now)
	profile, mca := "pro_veza", "mca_stripe"
	d := &Dispute{
		DisputeID: fmt.Sprintf("dp_%s_%d", paymentID, n), PaymentID: paymentID, AttemptID: paymentID + "_1",
		Amount: fmt.Sprint(amount), Currency: pay.Currency, DisputeStage: "dispute", DisputeStatus: "dispute_opened",
		Connector: "stripe", ConnectorStatus: "needs_response", ConnectorDisputeID: fmt.Sprintf("dp_stripe_%d", n),
		ConnectorReason: &reason, ConnectorReasonCode: &code, ChallengeRequiredBy: &due,
		ConnectorCreatedAt: &created, ConnectorUpdatedAt: &created, CreatedAt: created,
		ProfileID: &profile, MerchantConnectorID: &mca,
		AdditionalDetails: map[string]any{"network": "visa", "score": 0.93},
	}
	s.disputes[d.DisputeID] = d
	return *d
}

// Disputes returns copies of every dispute.
func (s *Server) Disputes() []Dispute { return copiesOf(s, disputesOf) }

// Dispute returns a copy of a dispute.
func (s *Server) Dispute(id string) (Dispute, bool) { return copyOf(s, disputesOf, id) }

// SetDisputeStatus moves a dispute (dispute_challenged, dispute_won, ...)
// and returns it; the stage moves to pre_arbitration when asked.
func (s *Server) SetDisputeStatus(id, status string) Dispute {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.disputes[id]
	if !ok {
		panic("hyperswitchtest: SetDisputeStatus on unknown dispute " + id)
	}
	updated := primitiveTime(time.Now())
	d.DisputeStatus, d.ConnectorStatus, d.ConnectorUpdatedAt = status, stripeDisputeStatus[status], &updated
	if status == "dispute_lost" {
		var refunded int64
		for _, rf := range s.refunds {
			if rf.PaymentID == d.PaymentID && rf.Status == "succeeded" {
				refunded += rf.Amount
			}
		}
		amount, _ := strconv.ParseInt(d.Amount, 10, 64)
		captured := s.payments[d.PaymentID].Amount
		if r := s.payments[d.PaymentID].AmountReceived; r != nil {
			captured = *r
		}
		d.IsAlreadyRefunded = amount+refunded > captured
	}
	return *d
}

// DisputeWebhook is the body Hyperswitch posts for a dispute in its
// current status (event type = dispute_status).
func (s *Server) DisputeWebhook(eventID, disputeID string) []byte {
	d, ok := s.Dispute(disputeID)
	if !ok {
		panic("hyperswitchtest: DisputeWebhook on unknown dispute " + disputeID)
	}
	return WebhookBody(eventID, d.DisputeStatus, d)
}

// WebhookBody builds the body Hyperswitch posts for an event.
func WebhookBody(eventID, eventType string, object any) []byte {
	contentType := "payment_details"
	if strings.HasPrefix(eventType, "refund_") {
		contentType = "refund_details"
	} else if strings.HasPrefix(eventType, "dispute_") {
		contentType = "dispute_details"
	}
	body, _ := json.Marshal(map[string]any{
		"merchant_id":           "merchant_veza",
		"processor_merchant_id": "merchant_veza",
		"event_id":              eventID,
		"event_type":            eventType,
		"content":               map[string]any{"type": contentType, "object": object},
		"timestamp":             time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
	})
	return body
}
