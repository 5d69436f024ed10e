package settle

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/veza/backend"
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
	transfers, err := store.InsertTransfers(ctx, tx, order.ID, order.Currency, s.shares(order))
	if err != nil {
		return nil, err
	}
	// One batch, one round trip: the receipt and every payout.
	batch := []river.InsertManyParams{{Args: jobargs.EmailArgs{Template: mail.TemplatePurchaseReceipt, UserID: order.BuyerID, OrderID: &order.ID}}}
	for _, t := range transfers {
		batch = append(batch, s.Jobs.PayoutJob(t.ID))
	}
	if _, err := ins.InsertManyTx(ctx, tx, batch); err != nil {
		return nil, fmt.Errorf("error enqueueing the receipt and payouts of order %s: %w", order.ID, err)
	}
	return order, nil
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

// paymentTargets are the payment events that close a pending order.
var paymentTargets = map[string]veza.OrderStatus{
	"payment_succeeded": veza.OrderCompleted,
	"payment_failed":    veza.OrderFailed,
	"payment_cancelled": veza.OrderCancelled,
}

// applyPayment applies a payment_* event. A success for the order's amount
// completes it (CompletePaidOrder); a failure or cancellation closes a
// pending order; anything else only records the PSP's status.
func (s *Settler) applyPayment(ctx context.Context, tx pgx.Tx, ins Inserter, ev jobargs.ProcessEventArgs) (string, error) {
	obj := ev.Object
	if ev.EventType == "payment_succeeded" {
		// The common case in one statement.
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
		s.Logger.Warn().Str("event_id", ev.EventID).Str("payment_id", obj.PaymentID).Msg("event for an unknown payment")
		return store.ResultSkipped, nil
	}
	if err != nil {
		return "", err
	}
	to, closes := paymentTargets[ev.EventType]
	if closes && order.Status == veza.OrderPending && to != veza.OrderCompleted {
		if err := store.TransitionOrderWithPayment(ctx, tx, order.ID, veza.OrderPending, to, obj.Status); err != nil {
			if errors.Is(err, veza.ErrStaleState) {
				return store.ResultSkipped, nil
			}
			return "", err
		}
		return store.ResultOK, nil
	}
	// Intermediate statuses, an order that moved on (terminal states never
	// move again), or a success that is not this order's amount: only the
	// PSP's status is recorded.
	if obj.Status != "" {
		if err := store.SetOrderPaymentStatus(ctx, tx, order.ID, obj.Status); err != nil {
			return "", err
		}
	}
	mismatch := to == veza.OrderCompleted && order.Status == veza.OrderPending &&
		(obj.Amount != order.Amount || !strings.EqualFold(obj.Currency, order.Currency))
	if !mismatch {
		return store.ResultSkipped, nil
	}
	s.Logger.Error().Str("order_id", order.ID.String()).Int64("paid", obj.Amount).Str("paid_currency", obj.Currency).
		Int64("expected", order.Amount).Str("currency", order.Currency).Msg("payment amount does not match the order: not completing it")
	return store.ResultError(fmt.Sprintf("amount mismatch: paid %d %s, order is %d %s", obj.Amount, obj.Currency, order.Amount, order.Currency)), nil
}
