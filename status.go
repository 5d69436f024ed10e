package veza

import (
	"errors"
	"fmt"
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
	OrderPending       OrderStatus = "pending"
	OrderCompleted     OrderStatus = "completed"
	OrderFailed        OrderStatus = "failed"
	OrderCancelled     OrderStatus = "cancelled"
	OrderRefundPending OrderStatus = "refund_pending"
	OrderRefunded      OrderStatus = "refunded"
)

var orderMoves = map[OrderStatus][]OrderStatus{
	OrderPending:       {OrderCompleted, OrderFailed, OrderCancelled},
	OrderCompleted:     {OrderRefundPending},
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
)

var transferMoves = map[TransferStatus][]TransferStatus{
	TransferPending:         {TransferCompleted, TransferFailed},
	TransferFailed:          {TransferPending, TransferPermanentlyFailed},
	TransferCompleted:       {TransferReversalPending},
	TransferReversalPending: {TransferReversed, TransferPermanentlyFailed},
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
