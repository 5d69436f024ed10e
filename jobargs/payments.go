package jobargs

import (
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"

	"github.com/veza/backend/hyperswitch"
)

// ProcessEventArgs is one Hyperswitch event to apply: from a webhook (LogID
// and LogReceivedAt name its log row: the log is partitioned by
// received_at) or synthesised by reconciliation. Args hold the few object
// fields the dispatcher reads, never the raw payload.
type ProcessEventArgs struct {
	EventID       string                  `json:"event_id" river:"unique"`
	EventType     string                  `json:"event_type"`
	LogID         *uuid.UUID              `json:"log_id,omitempty"`
	LogReceivedAt *time.Time              `json:"log_received_at,omitempty"`
	Object        hyperswitch.EventObject `json:"object"`
}

func (ProcessEventArgs) Kind() string { return "hyperswitch_event" }

// InsertOpts: the job is unique per event id through the hyperswitch_events
// table, written in the same transaction as the job (webhooks and synthetic
// reconcile events alike), which also outlives River's job retention.
// River's own unique insert would do the same work twice, and its key
// building is a visible share of webhook ingest's CPU.
func (ProcessEventArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueEvents, MaxAttempts: 15}
}

// PayoutArgs pays one seller_transfers row. Insert it with Policy.PayoutJob.
type PayoutArgs struct {
	TransferID uuid.UUID `json:"transfer_id" river:"unique"`
}

func (PayoutArgs) Kind() string { return "seller_payout" }

// InsertOpts: no River uniqueness on the hot path: every insert follows a
// guarded state change (the transfer's creation, failed → pending), so one
// job per round is already certain, and River's unique insert costs a
// visible share of settlement. The safety net, which follows no such
// change, inserts with Unique.
func (PayoutArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueStripe}
}

// ReversalArgs takes back a completed transfer. Insert it with
// Policy.ReversalJob.
type ReversalArgs struct {
	TransferID uuid.UUID `json:"transfer_id" river:"unique"`
}

func (ReversalArgs) Kind() string { return "transfer_reversal" }

// InsertOpts: inserted only with the completed → reversal_pending
// transition (see PayoutArgs.InsertOpts); the safety net adds uniqueness.
func (ReversalArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueStripe}
}

// SubmitRefundArgs is phase 2 of a refund: create it at Hyperswitch.
type SubmitRefundArgs struct {
	RefundID uuid.UUID `json:"refund_id" river:"unique"`
}

func (SubmitRefundArgs) Kind() string { return "submit_refund" }

func (SubmitRefundArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueHyperswitch, Priority: PriorityLive, MaxAttempts: 12, UniqueOpts: OneLiveJob}
}

// EmailArgs asks for one email. Args are visible to operators in River UI, so
// they carry ids only: never a token, a password or a hash. For link-bearing
// mails TokenID names an email_tokens row; the worker mints the secret when
// it sends and stores only its hash.
type EmailArgs struct {
	Template string     `json:"template"`
	UserID   uuid.UUID  `json:"user_id"`
	TokenID  *uuid.UUID `json:"token_id,omitempty"`
	OrderID  *uuid.UUID `json:"order_id,omitempty"`
	RefundID *uuid.UUID `json:"refund_id,omitempty"`
}

func (EmailArgs) Kind() string { return "email" }

// EmailMaxAttempts spans about a day with the email worker's backoff: an
// SMTP outage shorter than that loses no mail.
const EmailMaxAttempts = 12

func (EmailArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueEmail, MaxAttempts: EmailMaxAttempts}
}
