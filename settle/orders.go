package settle

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	veza "github.com/veza/backend"
	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/mail"
	"github.com/veza/backend/store"
)

// CompletePaidOrder completes the pending order of a payment paid in full
// (its amount and currency): the order moves to completed with the PSP's
// status, each seller gets a transfer (their items minus the platform fee)
// and a payout job, and the buyer a receipt, all in tx. Anything else (no
// pending order for that payment, another amount) is veza.ErrStaleState and
// changes nothing.
func (s *Settler) CompletePaidOrder(ctx context.Context, tx pgx.Tx, ins Inserter, p hyperswitch.EventObject) (*store.Order, error) {
	order, err := store.CompletePaidOrder(ctx, tx, p.PaymentID, p.Amount, p.Currency, p.Status)
	if err != nil {
		return nil, err
	}
	return order, s.paid(ctx, tx, ins, order)
}

// orderPaid is what a completed order implies: one transfer per seller
// with its payout job, and the receipt, in one batch (one round trip).
func (s *Settler) orderPaid(ctx context.Context, tx pgx.Tx, ins Inserter, order *store.Order) error {
	transfers, err := store.InsertTransfers(ctx, tx, order.ID, order.Currency, s.shares(order))
	if err != nil {
		return err
	}
	batch := []river.InsertManyParams{{Args: jobargs.EmailArgs{Template: mail.TemplatePurchaseReceipt, UserID: order.BuyerID, OrderID: &order.ID}}}
	for _, t := range transfers {
		batch = append(batch, s.Jobs.PayoutJob(t.ID))
	}
	if _, err := ins.InsertManyTx(ctx, tx, batch); err != nil {
		return fmt.Errorf("error enqueueing the receipt and payouts of order %s: %w", order.ID, err)
	}
	return nil
}

// shares is one transfer per seller of the order: their items' gross minus
// the platform fee, in the order sellers first appear. A seller whose net is
// zero gets none.
func (s *Settler) shares(order *store.Order) []store.NewTransfer {
	gross := map[uuid.UUID]int64{}
	var sellers []uuid.UUID
	for _, it := range order.Items {
		if _, ok := gross[it.SellerID]; !ok {
			sellers = append(sellers, it.SellerID)
		}
		gross[it.SellerID] += it.Amount
	}
	var shares []store.NewTransfer
	for _, seller := range sellers {
		share := veza.SplitShare(gross[seller], s.FeeBPS)
		if share.Net > 0 {
			shares = append(shares, store.NewTransfer{SellerID: seller, Amount: share.Net, Fee: share.Fee})
		}
	}
	return shares
}

// paymentCloses are the payment events that close a pending order.
var paymentCloses = map[string]veza.OrderStatus{
	"payment_failed":    veza.OrderFailed,
	"payment_cancelled": veza.OrderCancelled,
	"payment_expired":   veza.OrderExpired,
}

// applyPayment applies a payment_* event (every type in PSP.md has an
// outcome here):
//   - succeeded, and captured: the money was taken (paymentTaken);
//   - failed, cancelled, expired: a pending order closes;
//   - cancelled_post_capture: the money went back to the buyer;
//   - processing, action_required, authorized, ...: the status is recorded.
func (s *Settler) applyPayment(ctx context.Context, tx pgx.Tx, ins Inserter, ev jobargs.ProcessEventArgs) (string, error) {
	obj := ev.Object
	if ev.EventType == "payment_succeeded" && (obj.AmountReceived == nil || *obj.AmountReceived == obj.Amount) {
		// The common case in one statement: a pending order paid in full.
		_, err := s.CompletePaidOrder(ctx, tx, ins, obj)
		if err == nil {
			return store.ResultOK, nil
		}
		if !errors.Is(err, veza.ErrStaleState) {
			return "", err
		}
	}
	order, err := store.GetOrderByPaymentIDForUpdate(ctx, tx, obj.PaymentID)
	if errors.Is(err, store.ErrNotFound) {
		s.Logger.Warn().Ctx(ctx).Str("event_id", ev.EventID).Str("payment_id", obj.PaymentID).Msg("event for an unknown payment")
		return store.ResultSkipped, nil
	}
	if err != nil {
		return "", err
	}
	switch {
	case ev.EventType == "payment_captured" && obj.Status == "partially_captured_and_capturable":
		// More may still be captured: not the payment's last word.
		return store.ResultSkipped, s.recordStatus(ctx, tx, order, obj.Status)
	case ev.EventType == "payment_succeeded" || ev.EventType == "payment_captured":
		return s.paymentTaken(ctx, tx, ins, ev, order)
	case ev.EventType == "payment_cancelled_post_capture":
		return s.paymentReturned(ctx, tx, ins, ev, order)
	}
	if to, closes := paymentCloses[ev.EventType]; closes && order.Status == veza.OrderPending {
		if err := store.TransitionOrderWithPayment(ctx, tx, order.ID, veza.OrderPending, to, obj.Status); err != nil {
			return "", err
		}
		if to == veza.OrderExpired {
			// The key that created it may make a new order.
			return store.ResultOK, store.ReleaseOrderKeys(ctx, tx, order.ID)
		}
		return store.ResultOK, nil
	}
	// Intermediate statuses, or an order that moved on (terminal states
	// never move again): only the PSP's status is recorded.
	return store.ResultSkipped, s.recordStatus(ctx, tx, order, obj.Status)
}

// recordStatus records the payment's status when it is its newer word
// (hyperswitch.PaymentSupersedes; the order is read under its row lock).
func (s *Settler) recordStatus(ctx context.Context, tx pgx.Tx, order *store.Order, status string) error {
	current := ""
	if order.PaymentStatus != nil {
		current = *order.PaymentStatus
	}
	if !hyperswitch.PaymentSupersedes(current, status) {
		return nil
	}
	return store.SetOrderPaymentStatus(ctx, tx, order.ID, status)
}

// paymentTaken applies the provider's word that money was taken: all of
// the order's amount completes a pending order, or a failed one (a manual
// retry at Hyperswitch succeeded after a failure). Anything else holds
// money the buyer must get back: a capture of part of the amount, another
// amount or currency, a payment on an order already closed. That money is
// refunded automatically and logged at ERROR.
func (s *Settler) paymentTaken(ctx context.Context, tx pgx.Tx, ins Inserter, ev jobargs.ProcessEventArgs, order *store.Order) (string, error) {
	obj := ev.Object
	received := obj.Amount
	if obj.AmountReceived != nil {
		received = *obj.AmountReceived
	}
	inFull := received == order.Amount && strings.EqualFold(obj.Currency, order.Currency)
	log := s.Logger.Error().Ctx(ctx).Str("event_id", ev.EventID).Str("order_id", order.ID.String()).Str("payment_id", order.PaymentID).
		Str("order_status", string(order.Status)).Int64("received", received).Str("received_currency", obj.Currency).
		Int64("order_amount", order.Amount).Str("currency", order.Currency)
	switch {
	case order.Status == veza.OrderPending && inFull:
		if err := store.TransitionOrderWithPayment(ctx, tx, order.ID, veza.OrderPending, veza.OrderCompleted, obj.Status); err != nil {
			return "", err
		}
		return store.ResultOK, s.paid(ctx, tx, ins, order)
	case order.Status == veza.OrderFailed && inFull:
		refunds, err := store.OrderRefundSummary(ctx, tx, order)
		if err != nil {
			return "", err
		}
		if refunds.Back >= order.Amount {
			s.Logger.Warn().Ctx(ctx).Str("event_id", ev.EventID).Str("order_id", order.ID.String()).Str("payment_id", order.PaymentID).
				Msg("payment succeeded on a failed order whose buyer has all of it back already (a refund made outside Veza): order left failed")
			return store.ResultSkipped, s.recordStatus(ctx, tx, order, obj.Status)
		}
		if refunds.AutomaticLive {
			// Its money is already on its way back (a partial capture): the
			// order cannot be completed on top of that.
			log.Msg("payment succeeded on a failed order whose money is being refunded automatically: order left failed; settle it by hand")
			return store.ResultSkipped, nil
		}
		log.Msg("payment succeeded after the order was failed (a retry at the provider): order completed, sellers paid")
		if err := store.TransitionOrderWithPayment(ctx, tx, order.ID, veza.OrderFailed, veza.OrderCompleted, obj.Status); err != nil {
			return "", err
		}
		return store.ResultOK, s.paid(ctx, tx, ins, order)
	case order.Status == veza.OrderCompleted || order.Status == veza.OrderRefundPending || order.Status == veza.OrderRefunded,
		order.Status == veza.OrderDisputed || order.Status == veza.OrderChargedBack:
		// A replay, or a capture event after the success: nothing new. (On
		// a disputed order an automatic refund would pay the buyer twice.)
		return store.ResultSkipped, s.recordStatus(ctx, tx, order, obj.Status)
	}
	if order.Status == veza.OrderCancelled && order.PaymentStatus != nil && *order.PaymentStatus == "cancelled_post_capture" {
		// The cancel after capture came first (events are not ordered):
		// the money is back with the buyer already, and Hyperswitch
		// refuses a refund of a cancelled payment.
		s.Logger.Info().Ctx(ctx).Str("event_id", ev.EventID).Str("order_id", order.ID.String()).Str("payment_id", order.PaymentID).
			Msg("payment success after its cancel after capture: the buyer has the money back; nothing to refund")
		return store.ResultSkipped, nil
	}
	// Money the order does not account for.
	if order.Status == veza.OrderPending {
		if err := store.TransitionOrderWithPayment(ctx, tx, order.ID, veza.OrderPending, veza.OrderFailed, obj.Status); err != nil {
			return "", err
		}
	} else if err := s.recordStatus(ctx, tx, order, obj.Status); err != nil {
		return "", err
	}
	why := fmt.Sprintf("automatic: %d %s taken for order %s (%s, %d %s)", received, obj.Currency, order.ID, order.Status, order.Amount, order.Currency)
	refund, err := s.autoRefund(ctx, tx, ins, order, received, why)
	if err != nil {
		return "", err
	}
	if refund == nil {
		return store.ResultSkipped, nil // refunded already: a replay
	}
	log.Str("refund_id", refund.ID.String()).Msg("payment the order does not account for: refunding it automatically; the buyer is emailed when it settles")
	return store.ResultOK, nil
}

// paid plans a completed order's payouts, then applies any dispute recorded
// while it was still pending (deliveries are not ordered).
func (s *Settler) paid(ctx context.Context, tx pgx.Tx, ins Inserter, order *store.Order) error {
	if err := s.orderPaid(ctx, tx, ins, order); err != nil {
		return err
	}
	return s.reapplyDisputes(ctx, tx, ins, order.ID)
}

// autoRefund refunds amount of the order's payment by itself: a refund row
// (automatic) and its submit job, in tx. An order that has an automatic
// refund already, whatever its outcome, gets none (nil): a failed one's
// ERROR asked an operator to return the money by hand, and a second could
// pay the buyer twice. (The caller holds the order's row lock.)
func (s *Settler) autoRefund(ctx context.Context, tx pgx.Tx, ins Inserter, order *store.Order, amount int64, why string) (*store.Refund, error) {
	if amount <= 0 {
		return nil, nil
	}
	if refunds, err := store.OrderRefundSummary(ctx, tx, order); err != nil || refunds.Automatic {
		return nil, err
	}
	refund, err := store.CreateAutomaticRefund(ctx, tx, order.ID, amount, order.Currency, why)
	if err != nil {
		return nil, err
	}
	if _, err := ins.InsertTx(ctx, tx, jobargs.SubmitRefundArgs{RefundID: refund.ID}, nil); err != nil {
		return nil, err
	}
	return refund, nil
}

// paymentReturned applies a cancel after capture: the provider gave the
// money back to the buyer, so it settles like a full refund (order
// refunded, every payout taken back). A pending order is cancelled.
func (s *Settler) paymentReturned(ctx context.Context, tx pgx.Tx, ins Inserter, ev jobargs.ProcessEventArgs, order *store.Order) (string, error) {
	status := ev.Object.Status
	switch order.Status {
	case veza.OrderPending:
		return store.ResultOK, store.TransitionOrderWithPayment(ctx, tx, order.ID, veza.OrderPending, veza.OrderCancelled, status)
	case veza.OrderChargedBack:
		// It stays charged back (repaid): only its status is recorded.
		if _, err := s.repaid(ctx, tx, ins, order, ""); err != nil {
			return "", err
		}
		s.Logger.Error().Ctx(ctx).Str("event_id", ev.EventID).Str("order_id", order.ID.String()).Str("payment_id", order.PaymentID).
			Str("order_status", string(order.Status)).
			Msg("payment cancelled after capture on a charged-back order: the buyer is paid back twice; unpaid payouts are closed, and paid ones gave back only the disputed share: take the rest of the paid ones back by hand at Stripe")
	default:
		moved, err := s.repaid(ctx, tx, ins, order, status)
		if err != nil {
			return "", err
		}
		if !moved {
			break // a terminal order: only its status is recorded
		}
		msg := "payment cancelled after capture: the buyer has the money back; order refunded, payouts taken back"
		if order.Status == veza.OrderDisputed {
			msg += "; the dispute is still open: if it is lost the buyer is paid back twice, settle that with Hyperswitch"
		}
		s.Logger.Error().Ctx(ctx).Str("event_id", ev.EventID).Str("order_id", order.ID.String()).Str("payment_id", order.PaymentID).
			Str("order_status", string(order.Status)).Msg(msg)
		return store.ResultOK, nil
	}
	return store.ResultSkipped, s.recordStatus(ctx, tx, order, status)
}
