package veza

import (
	"errors"
	"fmt"
	"strings"
)

// ErrStaleState is returned when a guarded transition finds the row in
// another status than expected: a concurrent writer won, or the caller acted
// on an old read. Callers recognise it with errors.Is and usually treat it as
// "nothing to do".
var ErrStaleState = errors.New("stale state: the row is no longer in the expected status")

// ErrInvalidTransition is returned for a move the status machine forbids;
// it is a bug in the caller, never retried.
var ErrInvalidTransition = errors.New("invalid status transition")

// OrderStatus is an order's state. Terminal states never move again.
type OrderStatus string

const (
	OrderPending   OrderStatus = "pending"
	OrderCompleted OrderStatus = "completed"
	OrderFailed    OrderStatus = "failed"
	OrderCancelled OrderStatus = "cancelled"
	OrderExpired   OrderStatus = "expired"
	// OrderDisputed: the buyer disputes the payment; refunds are refused
	// and payouts not yet sent wait for the outcome.
	OrderDisputed OrderStatus = "disputed"
	// OrderChargedBack: the dispute was lost (or accepted): the buyer has
	// the money back through the card network.
	OrderChargedBack   OrderStatus = "charged_back"
	OrderRefundPending OrderStatus = "refund_pending"
	OrderRefunded      OrderStatus = "refunded"
)

var orderMoves = map[OrderStatus][]OrderStatus{
	OrderPending: {OrderCompleted, OrderFailed, OrderCancelled, OrderExpired},
	// Only the provider's success for this order's payment, with its
	// amount (a manual retry at Hyperswitch), completes a failed order.
	OrderFailed: {OrderCompleted},
	// refunded straight from completed: the money went back without our
	// refund (a cancel after capture), or a refund we had failed succeeded.
	OrderCompleted: {OrderRefundPending, OrderRefunded, OrderDisputed,
		OrderChargedBack}, // charged back with no "opened" seen first: events come out of order
	OrderDisputed: {OrderCompleted, OrderChargedBack,
		OrderRefunded}, // the buyer got the money back: a refund we had failed, a cancel after capture, a refund made outside Veza
	OrderRefundPending: {OrderRefunded, OrderCompleted}, // a failed refund rolls back
}

// CheckOrderMove returns nil when from → to is allowed.
func CheckOrderMove(from, to OrderStatus) error { return checkMove(orderMoves, from, to) }

// RefundStatus is a refund's state.
type RefundStatus string

const (
	RefundPending   RefundStatus = "pending"
	RefundSucceeded RefundStatus = "succeeded"
	RefundFailed    RefundStatus = "failed"
)

var refundMoves = map[RefundStatus][]RefundStatus{
	RefundPending: {RefundSucceeded, RefundFailed},
	// The provider reports a success for a refund we had given up on: the
	// contradiction is repaired, loudly.
	RefundFailed: {RefundSucceeded},
}

// CheckRefundMove returns nil when from → to is allowed.
func CheckRefundMove(from, to RefundStatus) error { return checkMove(refundMoves, from, to) }

// TransferStatus is a seller transfer's state (SPEC §2).
type TransferStatus string

const (
	TransferPending           TransferStatus = "pending"
	TransferCompleted         TransferStatus = "completed"
	TransferFailed            TransferStatus = "failed"
	TransferPermanentlyFailed TransferStatus = "permanently_failed"
	TransferReversalPending   TransferStatus = "reversal_pending"
	TransferReversed          TransferStatus = "reversed"
	// TransferReversalFailed: the reversal's retries ran out; an operator
	// retries it (POST /admin/transfers/{id}/retry).
	TransferReversalFailed TransferStatus = "reversal_failed"
)

var transferMoves = map[TransferStatus][]TransferStatus{
	TransferPending: {TransferCompleted, TransferFailed},
	// completed from failed: a look-up at Stripe found the transfer an
	// earlier attempt made (its answer was lost).
	TransferFailed: {TransferPending, TransferCompleted, TransferPermanentlyFailed},
	// A transfer closed unpaid that Stripe made after all (its call was on
	// its way when the look-up found nothing): repaired, loudly.
	TransferPermanentlyFailed: {TransferCompleted},
	TransferCompleted:         {TransferReversalPending},
	TransferReversalPending:   {TransferReversed, TransferReversalFailed, TransferPermanentlyFailed},
	TransferReversalFailed:    {TransferReversalPending, TransferReversed},
}

// CheckTransferMove returns nil when from → to is allowed.
func CheckTransferMove(from, to TransferStatus) error { return checkMove(transferMoves, from, to) }

func checkMove[S ~string](moves map[S][]S, from, to S) error {
	for _, allowed := range moves[from] {
		if allowed == to {
			return nil
		}
	}
	return fmt.Errorf("%w: %s → %s", ErrInvalidTransition, from, to)
}

// DisputeStatus is a dispute's state: Hyperswitch's dispute_status without
// its "dispute_" prefix.
type DisputeStatus string

const (
	DisputeOpened     DisputeStatus = "opened"
	DisputeChallenged DisputeStatus = "challenged"
	DisputeWon        DisputeStatus = "won"
	DisputeLost       DisputeStatus = "lost"
	DisputeAccepted   DisputeStatus = "accepted"
	DisputeCancelled  DisputeStatus = "cancelled"
	DisputeExpired    DisputeStatus = "expired"
)

var disputeMoves = map[DisputeStatus][]DisputeStatus{
	DisputeOpened:     {DisputeChallenged, DisputeWon, DisputeLost, DisputeAccepted, DisputeCancelled, DisputeExpired},
	DisputeChallenged: {DisputeWon, DisputeLost, DisputeCancelled, DisputeExpired},
}

// CheckDisputeMove returns nil when from → to is allowed.
func CheckDisputeMove(from, to DisputeStatus) error { return checkMove(disputeMoves, from, to) }

// ParseDisputeStatus reads Hyperswitch's dispute_status ("dispute_won");
// "" for one we do not know.
func ParseDisputeStatus(raw string) DisputeStatus {
	if st := DisputeStatus(strings.TrimPrefix(raw, "dispute_")); st.Known() {
		return st
	}
	return ""
}

// Known reports whether s is one of the statuses above.
func (s DisputeStatus) Known() bool {
	switch s {
	case DisputeOpened, DisputeChallenged, DisputeWon, DisputeLost, DisputeAccepted, DisputeCancelled, DisputeExpired:
		return true
	}
	return false
}

// Open reports whether the dispute still awaits its outcome.
func (s DisputeStatus) Open() bool { return s == DisputeOpened || s == DisputeChallenged }

// Lost reports whether the chargeback stands: lost, accepted, or expired
// (the connectors that report it, Checkout, Braintree, Airwallex, mean
// that the deadline to respond passed: the buyer keeps the money).
func (s DisputeStatus) Lost() bool {
	return s == DisputeLost || s == DisputeAccepted || s == DisputeExpired
}

// disputeStageRank orders Hyperswitch's dispute stages, which move one way:
// pre_dispute → dispute → pre_arbitration (0: absent or unknown).
func disputeStageRank(stage string) int {
	switch stage {
	case "pre_dispute":
		return 1
	case "dispute":
		return 2
	case "pre_arbitration":
		return 3
	}
	return 0
}

// CheckDisputeMoveAt is CheckDisputeMove with stages, as Hyperswitch
// validates them (validate_dispute_stage_and_dispute_status,
// crates/router/src/core/utils.rs): within a stage the status machine
// holds and outcomes are terminal; a later stage starts over, so a won or
// lost dispute may open again in pre-arbitration; an earlier stage is an
// old event. An absent or unknown stage counts as the same stage.
func CheckDisputeMoveAt(fromStage string, from DisputeStatus, toStage string, to DisputeStatus) error {
	fr, tr := disputeStageRank(fromStage), disputeStageRank(toStage)
	switch {
	case fr == 0 || tr == 0 || fr == tr:
		return CheckDisputeMove(from, to)
	case tr > fr:
		if !to.Known() {
			return fmt.Errorf("%w: %s → %s", ErrInvalidTransition, from, to)
		}
		return nil
	}
	return fmt.Errorf("%w: %s (%s) → %s (%s): an earlier stage", ErrInvalidTransition, from, fromStage, to, toStage)
}
