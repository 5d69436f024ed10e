package hyperswitch

import (
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
)

// SignatureHeader carries hex(HMAC-SHA512(raw body, payment response hash key)).
const SignatureHeader = "X-Webhook-Signature-512"

// Sign returns the signature Hyperswitch sends for body.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha512.New, []byte(secret))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// VerifySignature checks the header against the raw body in constant time.
// An empty secret never verifies.
func VerifySignature(secret string, body []byte, header string) bool {
	if secret == "" || header == "" {
		return false
	}
	got, err := hex.DecodeString(strings.TrimSpace(header))
	if err != nil {
		return false
	}
	mac := hmac.New(sha512.New, []byte(secret))
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// Event is Hyperswitch's outgoing webhook.
type Event struct {
	MerchantID string       `json:"merchant_id"`
	EventID    string       `json:"event_id"`
	EventType  string       `json:"event_type"`
	Content    EventContent `json:"content"`
	Timestamp  string       `json:"timestamp"`
}

// EventContent wraps the payment, refund or dispute object.
type EventContent struct {
	Type   string      `json:"type"`
	Object EventObject `json:"object"`
}

// EventObject holds the fields of a payment or refund object the service
// acts on; unknown fields are ignored.
type EventObject struct {
	PaymentID string `json:"payment_id"`
	RefundID  string `json:"refund_id,omitempty"`
	DisputeID string `json:"dispute_id,omitempty"`
	Status    string `json:"status"`
	Amount    int64  `json:"amount"`
	// AmountReceived is what was captured (payments; null before).
	AmountReceived *int64  `json:"amount_received,omitempty"`
	Currency       string  `json:"currency"`
	ErrorMessage   *string `json:"error_message,omitempty"`
}

// ParseEvent decodes a webhook body and checks what the service stores of
// it: an event id (at most 128 bytes) and type (at most 64), and no NUL in
// any field kept, which JSON may escape (\u0000) but PostgreSQL's TEXT and
// JSONB refuse: such an event could never be stored, only redelivered.
func ParseEvent(body []byte) (*Event, error) {
	var ev Event
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, err
	}
	o := ev.Content.Object
	switch {
	case ev.EventID == "" || ev.EventType == "":
		return nil, errors.New("event_id and event_type are required")
	case len(ev.EventID) > 128:
		return nil, errors.New("event_id is over 128 bytes")
	case len(ev.EventType) > 64:
		return nil, errors.New("event_type is over 64 bytes")
	case strings.ContainsRune(ev.EventID+ev.EventType+o.PaymentID+o.RefundID+o.DisputeID+o.Status+o.Currency, 0),
		o.ErrorMessage != nil && strings.ContainsRune(*o.ErrorMessage, 0):
		return nil, errors.New("event contains a NUL character")
	}
	return &ev, nil
}

// EventTypeOf extracts event_type from a body that may be malformed or
// unsigned, for the forensic log; "" when it cannot.
func EventTypeOf(body []byte) string {
	var probe struct {
		EventType any `json:"event_type"`
	}
	if json.Unmarshal(body, &probe) != nil {
		return ""
	}
	s, _ := probe.EventType.(string)
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}
