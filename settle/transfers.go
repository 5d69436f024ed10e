package settle

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	veza "github.com/veza/backend"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/store"
)

// ReasonRefundedBeforePayout is the error message of a transfer closed
// unpaid because its order was refunded first.
const ReasonRefundedBeforePayout = "order refunded before payout; not paid"

// ReasonChargedBackBeforePayout: the order's dispute was lost first.
const ReasonChargedBackBeforePayout = "order charged back (dispute lost) before payout; not paid"

// StartReversal moves a completed transfer to reversal_pending (a new round
// of retries) and enqueues its reversal job, in tx.
func (s *Settler) StartReversal(ctx context.Context, tx pgx.Tx, ins Inserter, transferID uuid.UUID) error {
	if err := store.TransitionTransfer(ctx, tx, transferID, veza.TransferCompleted, veza.TransferReversalPending, store.TransferUpdate{ResetRetries: true}); err != nil {
		return err
	}
	if _, err := ins.InsertManyTx(ctx, tx, []river.InsertManyParams{s.Jobs.ReversalJob(transferID)}); err != nil {
		return fmt.Errorf("error enqueueing the reversal of transfer %s: %w", transferID, err)
	}
	return nil
}

// CloseUnpaid closes a transfer that must not be paid (its order was
// refunded): pending → failed → permanently_failed, or failed →
// permanently_failed, in tx. Other states are left alone.
func (s *Settler) CloseUnpaid(ctx context.Context, tx pgx.Tx, transferID uuid.UUID, reason string) error {
	t, err := store.GetTransferForUpdate(ctx, tx, transferID)
	if err != nil {
		return err
	}
	switch t.Status {
	case veza.TransferPending:
		if err := store.TransitionTransfer(ctx, tx, transferID, veza.TransferPending, veza.TransferFailed, store.TransferUpdate{ErrorMessage: &reason}); err != nil {
			return err
		}
		fallthrough
	case veza.TransferFailed:
		return store.TransitionTransfer(ctx, tx, transferID, veza.TransferFailed, veza.TransferPermanentlyFailed, store.TransferUpdate{ErrorMessage: &reason})
	}
	return nil
}

// RetryTransfer is an operator's retry, in tx, of a transfer waiting for
// one: a failed payout (failed → pending) or a reversal whose retries ran
// out (reversal_failed → reversal_pending). Either starts a new round: its
// job first looks at Stripe for what earlier rounds did, then sends a new
// key, so a retry a day later cannot pay or reverse twice. A payout planned
// while its seller had no account takes the seller's account now. It
// returns the job's id and the status the transfer moved to (pending, or
// reversal_pending); a 409 transfer_not_retryable for any other state.
func (s *Settler) RetryTransfer(ctx context.Context, tx pgx.Tx, ins Inserter, transferID uuid.UUID) (int64, veza.TransferStatus, error) {
	t, err := store.GetTransferForUpdate(ctx, tx, transferID)
	if err != nil {
		return 0, "", err
	}
	var job river.InsertManyParams
	var to veza.TransferStatus
	switch t.Status {
	case veza.TransferFailed:
		if err := store.SetTransferDestination(ctx, tx, t.ID); err != nil {
			return 0, "", err
		}
		to = veza.TransferPending
		if err := store.TransitionTransfer(ctx, tx, t.ID, veza.TransferFailed, to,
			store.TransferUpdate{ResetRetries: true, NextPayoutRound: true}); err != nil {
			return 0, "", err
		}
		job = s.Jobs.PayoutJob(t.ID)
	case veza.TransferReversalFailed:
		to = veza.TransferReversalPending
		if err := store.TransitionTransfer(ctx, tx, t.ID, veza.TransferReversalFailed, to,
			store.TransferUpdate{ResetRetries: true, NextReversalRound: true}); err != nil {
			return 0, "", err
		}
		job = s.Jobs.ReversalJob(t.ID)
	default:
		return 0, "", veza.Errorf(veza.KindConflict, "transfer_not_retryable",
			"only a failed payout or a reversal_failed transfer can be retried; this one is %s", t.Status)
	}
	res, err := ins.InsertManyTx(ctx, tx, []river.InsertManyParams{jobargs.Unique(job)})
	if err != nil {
		return 0, "", err
	}
	return res[0].Job.ID, to, nil
}

// Retryable are the statuses an operator may retry.
var Retryable = []veza.TransferStatus{veza.TransferFailed, veza.TransferReversalFailed}

// RetryTransfers retries every transfer in status (one of Retryable), up to
// limit of them, in tx, and returns how many: after an outage.
func (s *Settler) RetryTransfers(ctx context.Context, tx pgx.Tx, ins Inserter, status veza.TransferStatus, limit int) (int, error) {
	ids, err := store.TransferIDsInStatus(ctx, tx, status, limit)
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		if _, _, err := s.RetryTransfer(ctx, tx, ins, id); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

// FailPayout moves a pending transfer to failed, where it waits for an
// operator (POST /admin/transfers/{id}/retry). A transfer that moved
// meanwhile is left alone.
func (s *Settler) FailPayout(ctx context.Context, tx pgx.Tx, transferID uuid.UUID, reason string) error {
	err := store.TransitionTransfer(ctx, tx, transferID, veza.TransferPending, veza.TransferFailed, store.TransferUpdate{ErrorMessage: &reason})
	if errors.Is(err, veza.ErrStaleState) {
		return nil
	}
	return err
}

// RecordPayout records the transfer Stripe made for a pending row, or one a
// look-up found for a failed row (an attempt whose answer was lost). The
// common case is one statement with no transaction around it: completed
// unless the order is refunded or charged back. It share-locks the order before the
// transfer, as the refund path locks them, so the two never deadlock and it
// sees any refund that committed meanwhile; a share lock, because the
// order's other payouts, back from Stripe at the same moment, need not wait
// for this one. When the refund won the race while Stripe was paying, the
// transfer is recorded and its reversal started in one transaction.
func (s *Settler) RecordPayout(ctx context.Context, db *store.DB, ins Inserter, t *store.Transfer, stripeTransferID string) error {
	clear := ""
	done := store.TransferUpdate{StripeTransferID: &stripeTransferID, ErrorMessage: &clear}
	guarded := done
	guarded.UnlessOrderIn = takenBack
	err := store.TransitionTransfer(ctx, db.Primary(), t.ID, t.Status, veza.TransferCompleted, guarded)
	if !errors.Is(err, veza.ErrStaleState) {
		return err
	}
	return db.InTx(ctx, func(tx pgx.Tx) error {
		// The same lock order as above. This transaction never writes the
		// order row, so two share holders cannot deadlock by upgrading.
		order, err := store.GetOrderSummaryForShare(ctx, tx, t.OrderID)
		if err != nil {
			return err
		}
		now, err := store.GetTransferForUpdate(ctx, tx, t.ID)
		if err != nil {
			return err
		}
		switch now.Status {
		case veza.TransferPending, veza.TransferFailed:
		case veza.TransferPermanentlyFailed:
			// Closed unpaid (a look-up found nothing while this call was still
			// on its way), yet Stripe made it: Stripe's word wins.
			s.Logger.Error().Ctx(ctx).Str("transfer_id", t.ID.String()).Str("order_id", t.OrderID.String()).Str("stripe_transfer_id", stripeTransferID).
				Msg("a transfer closed unpaid was made at Stripe: repaired to completed, and reversed if its order was refunded")
		default:
			if now.StripeTransferID != nil && *now.StripeTransferID == stripeTransferID {
				return nil // recorded already (a rescued duplicate of this job)
			}
			s.Logger.Error().Ctx(ctx).Str("transfer_id", t.ID.String()).Str("status", string(now.Status)).Str("stripe_transfer_id", stripeTransferID).
				Msg("Stripe made a second transfer for a payout already recorded: the seller was paid twice; reverse this one at Stripe")
			return nil
		}
		if err := store.TransitionTransfer(ctx, tx, t.ID, now.Status, veza.TransferCompleted, done); err != nil {
			return err
		}
		if slices.Contains(takenBack, order.Status) && !shareOfNothing(now) {
			// Refunded or charged back while Stripe was paying: taken back,
			// all of it or the dispute's share (reversal_amount).
			return s.StartReversal(ctx, tx, ins, t.ID)
		}
		return nil
	})
}

// takenBack are the order statuses whose payouts, once made, are reversed.
var takenBack = []veza.OrderStatus{veza.OrderRefunded, veza.OrderChargedBack}

// FinishReversal closes a reversal_pending transfer: reversed (with Stripe's
// reversal id when there is one) or permanently_failed, with msg for ops. A
// transfer that moved meanwhile is left alone.
func (s *Settler) FinishReversal(ctx context.Context, tx pgx.Tx, transferID uuid.UUID, to veza.TransferStatus, reversalID *string, msg string) error {
	err := store.TransitionTransfer(ctx, tx, transferID, veza.TransferReversalPending, to, store.TransferUpdate{StripeReversalID: reversalID, ErrorMessage: &msg})
	if errors.Is(err, veza.ErrStaleState) {
		return nil
	}
	return err
}

// PayoutStep is what a payout job does with its transfer now.
type PayoutStep int

const (
	// PayoutSend: call Stripe.
	PayoutSend PayoutStep = iota
	// PayoutDone: the transfer is no longer pending; nothing to do.
	PayoutDone
	// PayoutWait: the order's refund is in flight; its outcome decides.
	PayoutWait
	// PayoutCloseUnpaid: the order was refunded first; never pay.
	PayoutCloseUnpaid
	// PayoutHold: it cannot be sent until an operator acts (the reason
	// says what to do); it waits in failed, not in a retry loop.
	PayoutHold
	// PayoutWaitAccount: Stripe says the seller's account cannot receive
	// payouts yet; it waits until account.updated says it can.
	PayoutWaitAccount
)

// shareOfNothing: a lost dispute's share of this transfer rounded to
// nothing (reversal_amount 0, written only on a charged-back order's
// transfers): it is paid in full and never reversed.
func shareOfNothing(t *store.Transfer) bool {
	return t.ReversalAmount != nil && *t.ReversalAmount == 0
}

// NextPayoutStep decides from what the payout job read (the transfer, its
// order's status) and whether Stripe Connect is on.
func NextPayoutStep(v *store.PayoutView, stripeEnabled bool) (PayoutStep, string) {
	t := v.Transfer
	retry := "then POST /admin/transfers/" + t.ID.String() + "/retry"
	switch {
	case (t.Status == veza.TransferPending || t.Status == veza.TransferFailed) && v.OrderStatus == veza.OrderRefunded:
		// Closed unpaid only after a look-up at Stripe finds no transfer.
		return PayoutCloseUnpaid, ReasonRefundedBeforePayout
	case (t.Status == veza.TransferPending || t.Status == veza.TransferFailed) && v.OrderStatus == veza.OrderChargedBack &&
		(t.ReversalAmount == nil || *t.ReversalAmount >= t.Amount):
		// All of it goes back: never pay. (A share of it is paid, then
		// reversed for the share when recorded.)
		return PayoutCloseUnpaid, ReasonChargedBackBeforePayout
	case t.Status != veza.TransferPending:
		return PayoutDone, ""
	case v.OrderStatus == veza.OrderRefundPending || v.OrderStatus == veza.OrderDisputed:
		// The refund's or the dispute's outcome decides.
		return PayoutWait, ""
	case !stripeEnabled:
		return PayoutHold, "Stripe Connect is not enabled (STRIPE_CONNECT_ENABLED): enable it, " + retry
	case t.Destination == nil:
		return PayoutHold, "seller had no Stripe Connect account when the order was paid: set it (PUT /v1/me/payout-account), " + retry
	case v.PayoutsDisabled:
		return PayoutWaitAccount, ""
	}
	return PayoutSend, ""
}
