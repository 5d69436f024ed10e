package hyperswitch

import (
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
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

// Event is Hyperswitch's outgoing webhook (OutgoingWebhook in
// crates/api_models/src/webhooks.rs).
type Event struct {
	MerchantID string       `json:"merchant_id"`
	EventID    string       `json:"event_id"`
	EventType  string       `json:"event_type"`
	Content    EventContent `json:"content"`
	Timestamp  string       `json:"timestamp"`
}

// EventContent wraps the payment, refund, dispute (or other) object.
type EventContent struct {
	Type   string      `json:"type"`
	Object EventObject `json:"object"`
}

// EventObject holds the fields of a payment, refund or dispute object the
// service acts on. It decodes leniently: unknown fields, and fields of a
// type we do not expect, are ignored (a signed delivery is never refused
// for a field the service does not need), and an amount may be a number or
// a string of minor units (a dispute's is a string).
type EventObject struct {
	PaymentID string `json:"payment_id"`
	RefundID  string `json:"refund_id,omitempty"`
	Status    string `json:"status"`
	Amount    int64  `json:"amount"`
	// AmountReceived is what was captured (payments; null before).
	AmountReceived *int64  `json:"amount_received,omitempty"`
	Currency       string  `json:"currency"`
	ErrorMessage   *string `json:"error_message,omitempty"`

	// Disputes (DisputeResponse, crates/api_models/src/disputes.rs).
	DisputeID           string `json:"dispute_id,omitempty"`
	DisputeStatus       string `json:"dispute_status,omitempty"`
	DisputeStage        string `json:"dispute_stage,omitempty"`
	ConnectorDisputeID  string `json:"connector_dispute_id,omitempty"`
	ConnectorStatus     string `json:"connector_status,omitempty"`
	ConnectorReason     string `json:"connector_reason,omitempty"`
	ChallengeRequiredBy string `json:"challenge_required_by,omitempty"`
}

// UnmarshalJSON decodes leniently (see EventObject).
func (o *EventObject) UnmarshalJSON(raw []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		*o = EventObject{} // not an object: nothing we act on
		return nil
	}
	str := func(name string) string {
		var s string
		_ = json.Unmarshal(fields[name], &s)
		return s
	}
	*o = EventObject{
		PaymentID: str("payment_id"), RefundID: str("refund_id"), Status: str("status"), Currency: str("currency"),
		DisputeID: str("dispute_id"), DisputeStatus: str("dispute_status"), DisputeStage: str("dispute_stage"),
		ConnectorDisputeID: str("connector_dispute_id"), ConnectorStatus: str("connector_status"),
		ConnectorReason: str("connector_reason"), ChallengeRequiredBy: str("challenge_required_by"),
	}
	// An id or stage longer than the column we keep it in is none of
	// Hyperswitch's (our ids are 45 bytes, its dispute ids far shorter):
	// read as absent, the event matches nothing, instead of failing its
	// job on every attempt.
	for _, f := range []struct {
		v   *string
		max int
	}{{&o.PaymentID, 64}, {&o.RefundID, 64}, {&o.DisputeID, 128}, {&o.DisputeStage, 32}} {
		if len(*f.v) > f.max {
			*f.v = ""
		}
	}
	o.Amount, _ = minorUnits(fields["amount"])
	if v, ok := minorUnits(fields["amount_received"]); ok {
		o.AmountReceived = &v
	}
	if msg := str("error_message"); msg != "" {
		o.ErrorMessage = &msg
	}
	return nil
}

// minorUnits reads an amount: a JSON integer, or a string of digits.
func minorUnits(raw json.RawMessage) (int64, bool) {
	var n int64
	if json.Unmarshal(raw, &n) == nil && len(raw) > 0 && string(raw) != "null" {
		return n, true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil {
			return v, true
		}
	}
	return 0, false
}

// ParseEvent decodes a webhook body. What it requires is what the service
// stores and keys on: an event id (at most 128 bytes) and type (at most
// 64), as strings without NUL, which JSON may escape (\u0000) but
// PostgreSQL's TEXT refuses: such an event could never be stored, only
// redelivered. Every other field is optional and read leniently: an id or
// status holding a NUL is read as absent, free text (an error message, a
// dispute's reason) loses its NULs.
func ParseEvent(body []byte) (*Event, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, err
	}
	var ev Event
	if json.Unmarshal(top["event_id"], &ev.EventID) != nil || json.Unmarshal(top["event_type"], &ev.EventType) != nil {
		return nil, errors.New("event_id and event_type must be strings")
	}
	_ = json.Unmarshal(top["merchant_id"], &ev.MerchantID)
	_ = json.Unmarshal(top["timestamp"], &ev.Timestamp)
	var content map[string]json.RawMessage
	if json.Unmarshal(top["content"], &content) == nil {
		_ = json.Unmarshal(content["type"], &ev.Content.Type)
		_ = ev.Content.Object.UnmarshalJSON(content["object"])
	}
	o := &ev.Content.Object
	switch {
	case ev.EventID == "" || ev.EventType == "":
		return nil, errors.New("event_id and event_type are required")
	case len(ev.EventID) > 128:
		return nil, errors.New("event_id is over 128 bytes")
	case len(ev.EventType) > 64:
		return nil, errors.New("event_type is over 64 bytes")
	case strings.ContainsRune(ev.EventID+ev.EventType, 0):
		return nil, errors.New("event_id or event_type contains a NUL character")
	}
	// An id or status with a NUL can be none of ours, and PostgreSQL could
	// not store it: it is read as absent (the event then matches nothing
	// and is skipped), so a signed delivery is still answered 200.
	for _, f := range []*string{&o.PaymentID, &o.RefundID, &o.DisputeID, &o.Status, &o.Currency, &o.DisputeStatus, &o.DisputeStage} {
		if strings.ContainsRune(*f, 0) {
			*f = ""
		}
	}
	if o.ErrorMessage != nil {
		msg := strings.ReplaceAll(*o.ErrorMessage, "\x00", "")
		o.ErrorMessage = &msg
	}
	for _, f := range []*string{&o.ConnectorDisputeID, &o.ConnectorStatus, &o.ConnectorReason, &o.ChallengeRequiredBy} {
		*f = strings.ReplaceAll(*f, "\x00", "")
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
