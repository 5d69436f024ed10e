// Package hyperswitch is the client of Hyperswitch's payments API: create
// and read payments and refunds, read disputes, plus webhook parsing and
// signature verification.
//
// Hyperswitch has no idempotency header: the merchant chooses payment_id and
// refund_id. The client refuses to create either without one (a retried
// call must never be able to charge or refund twice) and treats Hyperswitch's
// "already exists" answer (HE_01) as "read it back".
package hyperswitch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Payment is what we read of a Hyperswitch payment.
type Payment struct {
	PaymentID  string `json:"payment_id"`
	MerchantID string `json:"merchant_id,omitempty"`
	Status     string `json:"status"`
	Amount     int64  `json:"amount"`
	// AmountReceived is what was captured (null before any capture).
	AmountReceived *int64  `json:"amount_received"`
	Currency       string  `json:"currency"`
	ClientSecret   string  `json:"client_secret,omitempty"`
	ErrorMessage   *string `json:"error_message,omitempty"`
	// Metadata is any JSON: what we set is strings, but an operator's
	// update_metadata may add numbers, lists or objects.
	Metadata map[string]any `json:"metadata,omitempty"`
}

// Refund is what we read of a Hyperswitch refund.
type Refund struct {
	RefundID     string  `json:"refund_id"`
	PaymentID    string  `json:"payment_id"`
	Amount       int64   `json:"amount"`
	Currency     string  `json:"currency"`
	Status       string  `json:"status"`
	Reason       *string `json:"reason,omitempty"`
	ErrorMessage *string `json:"error_message,omitempty"`
}

// CreatePaymentParams creates an unconfirmed payment the frontend confirms
// with the client secret.
type CreatePaymentParams struct {
	PaymentID   string            `json:"payment_id"`
	Amount      int64             `json:"amount"`
	Currency    string            `json:"currency"`
	Confirm     bool              `json:"confirm"`
	CaptureMode string            `json:"capture_method,omitempty"`
	Description string            `json:"description,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

// CreateRefundParams refunds (part of) a payment.
type CreateRefundParams struct {
	RefundID   string `json:"refund_id"`
	PaymentID  string `json:"payment_id"`
	Amount     int64  `json:"amount"`
	Reason     string `json:"reason,omitempty"`
	RefundType string `json:"refund_type,omitempty"`
}

// Error is an error answer from Hyperswitch (or the network, or a proxy).
type Error struct {
	HTTPStatus int    // 0 for a network error
	Type       string `json:"type"`
	Code       string `json:"code"`
	Message    string `json:"message"`
	// Undecodable: a success status whose body is not Hyperswitch's JSON
	// (a proxy's HTML page). The call may well have been done.
	Undecodable bool
	// Unconfirmed: a refusal whose read-back failed without saying the
	// object is missing. The outcome is unknown.
	Unconfirmed bool
	cause       error
}

func (e *Error) Error() string {
	switch {
	case e.HTTPStatus == 0:
		return fmt.Sprintf("hyperswitch: network error: %v", e.cause)
	case e.Undecodable:
		return fmt.Sprintf("hyperswitch: %d with an answer that is not Hyperswitch's JSON (outcome unknown): %v", e.HTTPStatus, e.cause)
	case e.Unconfirmed:
		return fmt.Sprintf("hyperswitch: outcome unknown: %v", e.cause)
	}
	return fmt.Sprintf("hyperswitch: %d %s %s: %s", e.HTTPStatus, e.Type, e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.cause }

// Transient reports whether the outcome is unknown and asking again may
// tell: network errors, undecodable answers, 408, 429, 5xx, and any error
// that is not Hyperswitch's own envelope (a proxy's page).
func (e *Error) Transient() bool {
	return e.HTTPStatus == 0 || e.Undecodable || e.Unconfirmed || e.Code == "" || e.Code == codeWrongURL || e.HTTPStatus == http.StatusRequestTimeout ||
		e.HTTPStatus == http.StatusTooManyRequests || e.HTTPStatus >= 500 ||
		// Our key refused, or an object of our configuration missing (a
		// connector account): a configuration error, not the provider's
		// word on the payment or refund.
		e.HTTPStatus == http.StatusUnauthorized || e.HTTPStatus == http.StatusForbidden || e.otherNotFound()
}

// IsTransient reports whether err is a Hyperswitch error worth retrying.
func IsTransient(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Transient()
}

// IsPaymentNotFound reports whether Hyperswitch said the payment does not
// exist: code HE_02 (HTTP 404; 400 in older versions) with its
// PaymentNotFound message. HE_02 is also the code of a missing merchant
// connector account, merchant account, profile or config key
// (ApiErrorResponse in hyperswitch_domain_models): those are configuration
// errors that say nothing about the payment, and a 404 without HE_02 (a
// wrong URL, IR_02) says nothing either. Should Hyperswitch ever reword the
// message, no read concludes "does not exist" and orders wait, logged:
// the safe side.
func IsPaymentNotFound(err error) bool { return notFound(err, "Payment does not exist") }

// IsRefundNotFound is IsPaymentNotFound for a refund (RefundNotFound).
func IsRefundNotFound(err error) bool { return notFound(err, "Refund does not exist") }

func notFound(err error, message string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == codeNotFound && strings.HasPrefix(e.Message, message)
}

// otherNotFound is an HE_02 about neither a payment nor a refund: some
// object of our configuration is missing at Hyperswitch.
func (e *Error) otherNotFound() bool {
	return e.Code == codeNotFound && !strings.HasPrefix(e.Message, "Payment does not exist") &&
		!strings.HasPrefix(e.Message, "Refund does not exist")
}

// codeNotFound is Hyperswitch's "does not exist in our records".
const codeNotFound = "HE_02"

// codeWrongURL is "Unrecognized request URL": a configuration error
// (HYPERSWITCH_BASE_URL), not the provider's word on anything.
const codeWrongURL = "IR_02"

// codeDuplicate is Hyperswitch's "already exists" error code.
const codeDuplicate = "HE_01"

// ErrMissingIdentity is returned, before any network call, when a create
// call lacks the merchant-chosen id that makes it idempotent.
var ErrMissingIdentity = errors.New("hyperswitch: refusing to create without our idempotency id (payment_id / refund_id)")

// Client calls Hyperswitch with the api-key header.
type Client struct {
	baseURL string
	apiKey  string
	http    *http.Client
}

// DefaultHTTPClient is the client New uses when given none: it keeps
// connections open for many concurrent workers (net/http keeps only 2 idle
// per host by default) and bounds each call to 15 s.
func DefaultHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 128
	return &http.Client{Timeout: 15 * time.Second, Transport: tr}
}

// New returns a client. Calls time out after 15s unless httpClient says
// otherwise.
func New(baseURL, apiKey string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = DefaultHTTPClient()
	}
	return &Client{baseURL: strings.TrimRight(baseURL, "/"), apiKey: apiKey, http: httpClient}
}

// CreatePayment creates the payment, or reads it back when a previous
// attempt already created it.
func (c *Client) CreatePayment(ctx context.Context, p CreatePaymentParams) (*Payment, error) {
	if p.PaymentID == "" {
		return nil, ErrMissingIdentity
	}
	var out Payment
	err := c.do(ctx, http.MethodPost, "/payments", p, &out)
	if isDuplicate(err) {
		return c.GetPayment(ctx, p.PaymentID)
	}
	if err == nil {
		err = notOurs("POST /payments", p.PaymentID, out.PaymentID)
	}
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// notOurs: a 2xx that answers another object than the one asked for (a
// proxy's cache, a mix-up) says nothing of ours: an unknown outcome.
func notOurs(call, asked, answered string) error {
	if asked == answered {
		return nil
	}
	return &Error{HTTPStatus: http.StatusOK, Undecodable: true, cause: fmt.Errorf("%s for %s answered %q", call, asked, answered)}
}

// GetPayment reads a payment (with its client secret).
func (c *Client) GetPayment(ctx context.Context, paymentID string) (*Payment, error) {
	return getOurs(ctx, c, "payments", paymentID, "", paymentIDOf)
}

// getOurs reads /kind/id(query): an answer naming another object is not
// ours (notOurs).
func getOurs[T any](ctx context.Context, c *Client, kind, id, query string, idOf func(*T) string) (*T, error) {
	out, err := get[T](ctx, c, "/"+kind+"/"+url.PathEscape(id)+query)
	if err == nil {
		err = notOurs("GET /"+kind, id, idOf(out))
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

func paymentIDOf(p *Payment) string { return p.PaymentID }
func refundIDOf(r *Refund) string   { return r.RefundID }

// SyncPayment reads a payment with force_sync=true: Hyperswitch asks the
// connector instead of answering its cached state, which stays behind when
// the connector's word never reached it (a buyer who did not come back
// from 3-D Secure). Reconcile reads this way; it costs a connector call.
func (c *Client) SyncPayment(ctx context.Context, paymentID string) (*Payment, error) {
	return getOurs(ctx, c, "payments", paymentID, forceSync, paymentIDOf)
}

// SyncRefund reads a refund with force_sync=true (see SyncPayment).
func (c *Client) SyncRefund(ctx context.Context, refundID string) (*Refund, error) {
	return getOurs(ctx, c, "refunds", refundID, forceSync, refundIDOf)
}

// forceSync asks Hyperswitch to read the connector, not its cache.
const forceSync = "?force_sync=true"

// CreateRefund creates the refund, or reads it back when it exists.
//
// A refusal is Hyperswitch's word on this request, not on the refund, so
// it is read back by our refund_id before it is believed. A repeat of a
// refund that went through (its first answer lost) is refused for its
// amount, 400 IR_13, where it took the whole payment: Hyperswitch checks
// the amount against the refunds it has before its "already exists". A
// connector timeout answers 400 CE_06 with Hyperswitch's refund kept
// pending. Only a read-back that finds no refund (HE_02) lets the refusal
// stand; a read-back that fails otherwise leaves the outcome unknown.
func (c *Client) CreateRefund(ctx context.Context, p CreateRefundParams) (*Refund, error) {
	if p.RefundID == "" || p.PaymentID == "" {
		return nil, ErrMissingIdentity
	}
	var out Refund
	err := c.do(ctx, http.MethodPost, "/refunds", p, &out)
	if err == nil {
		if err := notOurs("POST /refunds", p.RefundID, out.RefundID); err != nil {
			return nil, err
		}
		return &out, nil
	}
	var refused *Error
	if !errors.As(err, &refused) || refused.Transient() {
		return nil, err // the outcome is unknown: the caller asks again
	}
	got, readErr := c.GetRefund(ctx, p.RefundID)
	switch {
	case readErr == nil:
		return got, nil
	case IsRefundNotFound(readErr):
		return nil, err
	case IsTransient(readErr):
		return nil, readErr
	}
	return nil, &Error{HTTPStatus: refused.HTTPStatus, Unconfirmed: true,
		cause: fmt.Errorf("refund %s refused (%v) and not read back: %w", p.RefundID, err, readErr)}
}

// GetRefund reads a refund.
func (c *Client) GetRefund(ctx context.Context, refundID string) (*Refund, error) {
	return getOurs(ctx, c, "refunds", refundID, "", refundIDOf)
}

// get reads one object at path.
func get[T any](ctx context.Context, c *Client, path string) (*T, error) {
	var out T
	if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetDispute reads a dispute (GET /disputes/{dispute_id}). The answer is a
// DisputeResponse, decoded as leniently as a webhook's object (amount is a
// string of minor units, the status is dispute_status), so a reconcile
// read feeds the same code path as a delivery.
func (c *Client) GetDispute(ctx context.Context, disputeID string) (*EventObject, error) {
	return get[EventObject](ctx, c, "/disputes/"+url.PathEscape(disputeID))
}

func isDuplicate(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == codeDuplicate
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var reader io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		reader = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, reader)
	if err != nil {
		return err
	}
	req.Header.Set("api-key", c.apiKey)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &Error{cause: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return &Error{cause: err}
	}
	if resp.StatusCode >= 300 {
		e := &Error{HTTPStatus: resp.StatusCode}
		var envelope struct {
			Error *Error `json:"error"`
		}
		if json.Unmarshal(raw, &envelope) == nil && envelope.Error != nil {
			e.Type, e.Code, e.Message = envelope.Error.Type, envelope.Error.Code, envelope.Error.Message
		} else {
			e.Message = http.StatusText(resp.StatusCode)
		}
		return e
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return &Error{HTTPStatus: resp.StatusCode, Undecodable: true, cause: fmt.Errorf("decoding %s %s: %w", method, path, err)}
	}
	if a, ok := out.(answer); ok {
		if id, status := a.answered(); id == "" || status == "" {
			// JSON, but not the object (`{}` from a gateway, null, a
			// list): the call may well have been done.
			return &Error{HTTPStatus: resp.StatusCode, Undecodable: true, cause: fmt.Errorf("%s %s answered without an id or a status", method, path)}
		}
	}
	return nil
}

// answer is an object whose id and status every real answer carries.
type answer interface{ answered() (id, status string) }

func (p *Payment) answered() (string, string) { return p.PaymentID, p.Status }
func (r *Refund) answered() (string, string)  { return r.RefundID, r.Status }
