package settle

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	veza "github.com/veza/backend"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/mail"
	"github.com/veza/backend/store"
)

// Errors a refund request is refused with.
var (
	// ErrOrderNotFound: no such order, or not the caller's (an order's
	// existence is not disclosed to others).
	ErrOrderNotFound = veza.Errorf(veza.KindNotFound, "not_found", "order not found")
	// ErrNotRefundable: only a completed order can be refunded.
	ErrNotRefundable = veza.Errorf(veza.KindConflict, "order_not_refundable", "only a completed order can be refunded")
	// ErrRefundWindowClosed: the order completed longer ago than
	// REFUND_WINDOW.
	ErrRefundWindowClosed = veza.Errorf(veza.KindConflict, "refund_window_closed", "the refund window of this order has closed")
)

// RefundRequest is a buyer asking for their money back.
type RefundRequest struct {
	OrderID, BuyerID uuid.UUID
	Reason           *string
}

// RequestRefund is phase 1 of a refund: the refund row (pending, no PSP id),
// the order completed → refund_pending, and the job that submits it to
// Hyperswitch, in tx. A second request finds the order no longer completed:
// the status machine makes the call idempotent.
func (s *Settler) RequestRefund(ctx context.Context, tx pgx.Tx, ins Inserter, req RefundRequest) (*store.Refund, error) {
	order, err := store.GetOrderSummaryForUpdate(ctx, tx, req.OrderID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && order.BuyerID != req.BuyerID) {
		return nil, ErrOrderNotFound
	}
	if err != nil {
		return nil, err
	}
	if order.Status == veza.OrderDisputed {
		return nil, ErrOrderDisputed
	}
	if order.Status != veza.OrderCompleted {
		return nil, ErrNotRefundable
	}
	if s.RefundWindow > 0 && order.CompletedAt != nil && time.Since(*order.CompletedAt) > s.RefundWindow {
		return nil, ErrRefundWindowClosed
	}
	refund, err := store.CreateRefund(ctx, tx, order.ID, order.Amount, order.Currency, req.Reason)
	if err != nil {
		return nil, err
	}
	if err := store.TransitionOrder(ctx, tx, order.ID, veza.OrderCompleted, veza.OrderRefundPending); err != nil {
		return nil, err
	}
	if _, err := ins.InsertTx(ctx, tx, jobargs.SubmitRefundArgs{RefundID: refund.ID}, nil); err != nil {
		return nil, err
	}
	return refund, nil
}

// SettleRefund applies a refund's success, in tx: the refund succeeded
// (from pending, or repaired from failed when the provider reports a
// success for a refund we had given up on), the order refunded with every
// payout taken back, and the confirmation email. The buyer's refund
// completes whatever Stripe's health: reversals are jobs of their own. An
// automatic refund of an order that was never completed moves no order.
func (s *Settler) SettleRefund(ctx context.Context, tx pgx.Tx, ins Inserter, refund *store.Refund) error {
	order, err := store.GetOrderSummaryForUpdate(ctx, tx, refund.OrderID)
	if err != nil {
		return err
	}
	if err := store.TransitionRefund(ctx, tx, refund.ID, refund.Status, veza.RefundSucceeded, nil); err != nil {
		return err
	}
	log := s.Logger.Error().Ctx(ctx).Str("refund_id", refund.ID.String()).Str("order_id", order.ID.String()).Str("order_status", string(order.Status))
	twice, err := s.refundedBefore(ctx, tx, order, refund)
	if err != nil {
		return err
	}
	switch {
	case len(twice) > 0:
		// A refund we had failed on Hyperswitch's word succeeded after all,
		// beside the one the buyer asked for next.
		log.Strs("other_refund_ids", twice).Int64("refund_amount", refund.Amount).Int64("order_amount", order.Amount).
			Msg("refund succeeded on an order another refund already repaid: the buyer has this order's money back twice; ask the buyer for it back or write it off (the sellers were taken back once)")
	case refund.Status == veza.RefundFailed && !refund.Automatic && order.Status == veza.OrderChargedBack:
		log.Int64("refund_amount", refund.Amount).
			Msg("a refund we had marked failed succeeded at the provider after the order was charged back: the buyer has the money twice; unpaid payouts are closed, and paid ones gave back only the disputed share: take the rest of the paid ones back by hand at Stripe")
	case refund.Status == veza.RefundFailed:
		log.Msg("a refund we had marked failed succeeded at the provider: repaired; the order is refunded and its payouts taken back")
	default:
		log.Discard()
	}
	if !refund.Automatic { // an automatic one is money the order never accounted for: no order moves
		if _, err := s.repaid(ctx, tx, ins, order, ""); err != nil {
			return err
		}
	}
	_, err = ins.InsertTx(ctx, tx, jobargs.EmailArgs{Template: mail.TemplateRefundConfirmation, UserID: order.BuyerID, OrderID: &order.ID, RefundID: &refund.ID}, nil)
	return err
}

// refundedBefore lists the order's other succeeded refunds when, with
// refund, they return more than the order's amount.
func (s *Settler) refundedBefore(ctx context.Context, tx pgx.Tx, order *store.Order, refund *store.Refund) ([]string, error) {
	refunds, err := store.OrderRefunds(ctx, tx, order.ID)
	if err != nil {
		return nil, err
	}
	var ids []string
	back := refund.Amount
	for _, r := range refunds {
		if r.ID != refund.ID && r.Status == veza.RefundSucceeded {
			ids = append(ids, r.ID.String())
			back += r.Amount
		}
	}
	if back <= order.Amount {
		return nil, nil
	}
	return ids, nil
}

// repaid settles, in tx, an order whose buyer has all of its money back (a
// refund, a cancel after capture, a refund made outside Veza): completed,
// refund_pending or disputed, it is refunded (pspStatus, when set, is
// recorded with the move; a dispute's outcome then moves no money);
// charged back, it stays so. Either way its payouts are taken back. false:
// the order is in no state to be repaid (not paid, refunded already) and
// nothing moved.
func (s *Settler) repaid(ctx context.Context, tx pgx.Tx, ins Inserter, order *store.Order, pspStatus string) (bool, error) {
	switch order.Status {
	case veza.OrderCompleted, veza.OrderRefundPending, veza.OrderDisputed:
		var err error
		if pspStatus == "" {
			err = store.TransitionOrder(ctx, tx, order.ID, order.Status, veza.OrderRefunded)
		} else {
			err = store.TransitionOrderWithPayment(ctx, tx, order.ID, order.Status, veza.OrderRefunded, pspStatus)
		}
		if err != nil {
			return false, err
		}
	case veza.OrderChargedBack:
	default:
		return false, nil
	}
	return true, s.takeBackPayouts(ctx, tx, ins, order)
}

// takeBackPayouts undoes the payouts of an order whose money went back to
// the buyer, in tx; order is as it was before (its status decides):
//   - a completed transfer is reversed;
//   - a pending or failed one gets a payout job, which looks at Stripe for
//     a transfer an attempt may have made (its answer lost) and reverses
//     it, or closes the row unpaid when Stripe lists none;
//   - on a charged-back order, reversals of the disputed share are made or
//     under way already (their amount does not change in flight: the rest
//     is an operator's), and an unpaid transfer, which owed only its share,
//     now owes all of it (reversal_amount = amount) before its job runs.
func (s *Settler) takeBackPayouts(ctx context.Context, tx pgx.Tx, ins Inserter, order *store.Order) error {
	transfers, err := store.OrderTransfersForUpdate(ctx, tx, order.ID)
	if err != nil {
		return err
	}
	chargedBack := order.Status == veza.OrderChargedBack
	for _, t := range transfers {
		switch {
		case t.Status == veza.TransferCompleted && !chargedBack:
			if err := s.StartReversal(ctx, tx, ins, t.ID); err != nil {
				return err
			}
		case (t.Status == veza.TransferFailed || t.Status == veza.TransferPending) && chargedBack:
			if err := store.SetReversalAmount(ctx, tx, t.ID, t.Amount); err != nil {
				return err
			}
		}
	}
	var look []river.InsertManyParams
	if err := s.takeBackUnpaid(ctx, tx, transfers, &look); err != nil || len(look) == 0 {
		return err
	}
	_, err = ins.InsertManyTx(ctx, tx, look)
	return err
}

// takeBackUnpaid adds to jobs a payout job for each transfer of a refunded
// or charged-back order that was not paid (pending, failed): it looks at
// Stripe for a transfer an attempt made anyway (its answer lost) and
// reverses it, or closes the row unpaid. A row whose own payout job is
// still alive (perhaps mid-call at Stripe) is left to it: a second job
// could close the row while that call is on its way.
func (s *Settler) takeBackUnpaid(ctx context.Context, tx pgx.Tx, transfers []store.Transfer, jobs *[]river.InsertManyParams) error {
	for _, t := range transfers {
		if t.Status != veza.TransferFailed && t.Status != veza.TransferPending {
			continue
		}
		live, err := store.HasLiveJob(ctx, tx, jobargs.PayoutArgs{}.Kind(), "transfer_id", t.ID)
		if err != nil {
			return err
		}
		if !live {
			*jobs = append(*jobs, jobargs.Unique(s.Jobs.PayoutJob(t.ID)))
		}
	}
	return nil
}

// FailRefund marks a pending refund failed (msg kept for ops) on the
// provider's word, in tx. A buyer's refund puts its order back to
// completed; an automatic one leaves the order and is logged at ERROR: the
// money must be returned by hand.
func (s *Settler) FailRefund(ctx context.Context, tx pgx.Tx, ins Inserter, refund *store.Refund, msg string) error {
	if err := store.TransitionRefund(ctx, tx, refund.ID, veza.RefundPending, veza.RefundFailed, &msg); err != nil {
		return err
	}
	if refund.Automatic {
		s.Logger.Error().Ctx(ctx).Str("refund_id", refund.ID.String()).Str("order_id", refund.OrderID.String()).Int64("amount", refund.Amount).
			Str("currency", refund.Currency).Str("error", msg).Msg("automatic refund failed at the provider: return the money to the buyer by hand")
		return nil
	}
	err := store.TransitionOrder(ctx, tx, refund.OrderID, veza.OrderRefundPending, veza.OrderCompleted)
	if errors.Is(err, veza.ErrStaleState) {
		// The order moved on meanwhile (its money went back another way: a
		// cancel after capture, a repaired refund): the refund closes alone.
		s.Logger.Warn().Ctx(ctx).Str("refund_id", refund.ID.String()).Str("order_id", refund.OrderID.String()).
			Msg("refund failed for an order that is no longer refund_pending: order left as it is")
		return nil
	}
	if err != nil {
		return err
	}
	return s.reapplyDisputes(ctx, tx, ins, refund.OrderID)
}

// outsideRefund applies a refund event whose refund_id we did not make: a
// refund created in Hyperswitch's dashboard or API (our logs send
// operators there), under an id Hyperswitch generated. Only its success
// moves money: all of the order's amount, in its currency, settles the
// order as a refund does (order refunded, payouts taken back); part of it
// is an operator's, said at ERROR, as sharing a part among sellers is a
// decision of theirs. A replay finds the order refunded and moves nothing.
func (s *Settler) outsideRefund(ctx context.Context, tx pgx.Tx, ins Inserter, ev jobargs.ProcessEventArgs) (string, error) {
	obj := ev.Object
	if ev.EventType != "refund_succeeded" {
		s.Logger.Info().Ctx(ctx).Str("event_id", ev.EventID).Str("psp_refund_id", obj.RefundID).Str("event_type", ev.EventType).
			Msg("refund event for a refund made outside Veza: nothing moves until it succeeds")
		return store.ResultSkipped, nil
	}
	order, err := store.GetOrderByPaymentIDForUpdate(ctx, tx, obj.PaymentID)
	if errors.Is(err, store.ErrNotFound) {
		s.Logger.Warn().Ctx(ctx).Str("event_id", ev.EventID).Str("psp_refund_id", obj.RefundID).Str("payment_id", obj.PaymentID).
			Msg("refund event for a refund we did not create, on an unknown payment")
		return store.ResultSkipped, nil
	}
	if err != nil {
		return "", err
	}
	log := s.Logger.Error().Ctx(ctx).Str("event_id", ev.EventID).Str("psp_refund_id", obj.RefundID).Str("order_id", order.ID.String()).
		Str("payment_id", order.PaymentID).Str("order_status", string(order.Status)).Int64("refund_amount", obj.Amount).
		Str("refund_currency", obj.Currency).Int64("order_amount", order.Amount).Str("currency", order.Currency)
	if order.Status == veza.OrderRefunded {
		log.Discard()
		return store.ResultSkipped, nil // a replay, or the order's money went back already
	}
	if obj.Amount == order.Amount && strings.EqualFold(obj.Currency, order.Currency) &&
		(order.Status == veza.OrderPending || order.Status == veza.OrderFailed) {
		// Taken while the order read pending (its success lost or late) or
		// failed (a manual retry), and given back: the success that comes
		// after (a redelivery, reconcile reading a payment that stays
		// succeeded) must pay no seller. The refund goes on the order's
		// record, where paymentTaken finds the money back; a pending order
		// is cancelled, as a cancel after capture cancels it.
		why := fmt.Sprintf("outside Veza: refund %s made at Hyperswitch for all of order %s before it completed", obj.RefundID, order.ID)
		if _, err := store.RecordOutsideRefund(ctx, tx, order.ID, obj.Amount, order.Currency, obj.RefundID, why); err != nil {
			return "", err
		}
		if order.Status == veza.OrderPending {
			if err := store.TransitionOrder(ctx, tx, order.ID, veza.OrderPending, veza.OrderCancelled); err != nil {
				return "", err
			}
		}
		s.Logger.Warn().Ctx(ctx).Str("event_id", ev.EventID).Str("psp_refund_id", obj.RefundID).Str("order_id", order.ID.String()).
			Str("payment_id", order.PaymentID).Str("order_status", string(order.Status)).Int64("refund_amount", obj.Amount).
			Msg("refund made outside Veza for all of an order that never completed: refund recorded, no seller will be paid")
		return store.ResultOK, nil
	}
	if obj.Amount == order.Amount && strings.EqualFold(obj.Currency, order.Currency) {
		moved, err := s.repaid(ctx, tx, ins, order, "")
		switch {
		case err != nil:
			return "", err
		case moved && order.Status == veza.OrderChargedBack:
			log.Msg("refund made outside Veza succeeded for all of a charged-back order: the buyer has the money twice; unpaid payouts are closed, and paid ones gave back only the disputed share: take the rest of the paid ones back by hand at Stripe")
			return store.ResultOK, nil
		case moved:
			log.Msg("refund made outside Veza succeeded for all of the order: order refunded, payouts taken back")
			return store.ResultOK, nil
		}
	}
	log.Msg("refund made outside Veza succeeded for part of the order (or on an order in this state): no payout is taken back automatically; take the sellers' share of it back by hand at Stripe")
	return store.ResultSkipped, nil
}

// applyRefund applies a refund_* event to the refund row our refund_id
// names.
func (s *Settler) applyRefund(ctx context.Context, tx pgx.Tx, ins Inserter, ev jobargs.ProcessEventArgs) (string, error) {
	obj := ev.Object
	if obj.RefundID == "" {
		// Hyperswitch always names the refund (ParseEvent reads one no
		// column could hold as absent): not a refund made outside Veza.
		s.Logger.Error().Ctx(ctx).Str("event_id", ev.EventID).Str("payment_id", obj.PaymentID).Str("event_type", ev.EventType).
			Msg("refund event without a refund_id (or one no column holds): skipped; look the payment's refunds up in Hyperswitch's dashboard")
		return store.ResultSkipped, nil
	}
	id, ok := store.RefundRowID(obj.RefundID)
	if !ok {
		// A row may hold an id of another form (recorded from Hyperswitch's
		// answer): it is ours all the same.
		recorded, err := store.RefundIDByPSPID(ctx, tx, obj.RefundID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return "", err
		}
		id, ok = recorded, err == nil
	}
	if !ok {
		return s.outsideRefund(ctx, tx, ins, ev)
	}
	refund, err := store.GetRefundForUpdate(ctx, tx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.ResultSkipped, nil
	}
	if err != nil {
		return "", err
	}
	if refund.HyperswitchRefundID == nil {
		// The webhook beat the submit job's bookkeeping: record the id.
		if err := store.SetRefundPSPID(ctx, tx, refund.ID, obj.RefundID); err != nil {
			return "", err
		}
	}
	switch {
	case ev.EventType == "refund_succeeded" && (refund.Status == veza.RefundPending || refund.Status == veza.RefundFailed):
		return store.ResultOK, s.SettleRefund(ctx, tx, ins, refund)
	case ev.EventType == "refund_failed" && refund.Status == veza.RefundPending:
		msg := "refund failed at the payment provider (no message)"
		if obj.ErrorMessage != nil {
			msg = *obj.ErrorMessage
		}
		return store.ResultOK, s.FailRefund(ctx, tx, ins, refund, msg)
	}
	return store.ResultSkipped, nil // terminal: a late or repeated event
}
