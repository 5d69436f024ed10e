package settle

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/veza/backend"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/mail"
	"github.com/veza/backend/store"
)

// ErrOrderDisputed: a refund is refused while the order's payment is
// disputed (a chargeback and a refund would pay the buyer back twice).
var ErrOrderDisputed = veza.Errorf(veza.KindConflict, "order_disputed", "the order's payment is disputed: no refund while the dispute is open")

// disputeStatusOf reads a dispute's status from its object (dispute_status,
// e.g. "dispute_won"), or from the event type when the object lacks it.
func disputeStatusOf(obj, eventType string) veza.DisputeStatus {
	raw := obj
	if raw == "" {
		raw = eventType
	}
	st := veza.DisputeStatus(strings.TrimPrefix(raw, "dispute_"))
	switch st {
	case veza.DisputeOpened, veza.DisputeChallenged, veza.DisputeWon, veza.DisputeLost, veza.DisputeAccepted,
		veza.DisputeCancelled, veza.DisputeExpired:
		return st
	}
	return ""
}

// deadlineOf parses challenge_required_by (ISO 8601, with or without a
// zone; Hyperswitch writes UTC); nil when absent or unreadable.
func deadlineOf(s string) *time.Time {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			t = t.UTC()
			return &t
		}
	}
	return nil
}

// applyDispute applies a dispute_* event: the dispute row (created in the
// status of the first event seen, as events come out of order), then what
// its status means for the order and its money.
func (s *Settler) applyDispute(ctx context.Context, tx pgx.Tx, ins Inserter, ev jobargs.ProcessEventArgs) (string, error) {
	obj := ev.Object
	status := disputeStatusOf(obj.DisputeStatus, ev.EventType)
	if status == "" || obj.DisputeID == "" {
		s.Logger.Warn().Str("event_id", ev.EventID).Str("event_type", ev.EventType).Str("dispute_status", obj.DisputeStatus).
			Msg("dispute event without a dispute id or a known status: skipped")
		return store.ResultSkipped, nil
	}
	order, err := store.GetOrderByPaymentIDForUpdate(ctx, tx, obj.PaymentID)
	if errors.Is(err, store.ErrNotFound) {
		s.Logger.Warn().Str("event_id", ev.EventID).Str("payment_id", obj.PaymentID).Str("dispute_id", obj.DisputeID).Msg("dispute for an unknown payment")
		return store.ResultSkipped, nil
	}
	if err != nil {
		return "", err
	}
	deadline := deadlineOf(obj.ChallengeRequiredBy)
	d, created, err := store.InsertDispute(ctx, tx, store.NewDispute{DisputeID: obj.DisputeID, OrderID: order.ID, Amount: obj.Amount,
		Currency: obj.Currency, Stage: obj.DisputeStage, Reason: obj.ConnectorReason, ConnectorDisputeID: obj.ConnectorDisputeID,
		ChallengeRequiredBy: deadline, Status: status})
	if err != nil {
		return "", err
	}
	if !created {
		if d.Status == status || veza.CheckDisputeMove(d.Status, status) != nil {
			return store.ResultSkipped, nil // a repeat, or an older event after the outcome
		}
		if err := store.TransitionDispute(ctx, tx, d.ID, d.Status, status, obj.DisputeStage, deadline); err != nil {
			return "", err
		}
		d.Status = status
	}
	return store.ResultOK, s.disputeMoney(ctx, tx, ins, order, d)
}

// disputeMoney is what a dispute's status means for its order: open, the
// order is disputed (refunds refused, payouts held); won, cancelled or
// expired, it is completed again; lost or accepted, it is charged back.
func (s *Settler) disputeMoney(ctx context.Context, tx pgx.Tx, ins Inserter, order *store.Order, d *store.Dispute) error {
	log := s.Logger.Error().Str("dispute_id", d.DisputeID).Str("order_id", order.ID.String()).Str("payment_id", order.PaymentID).
		Str("dispute_status", string(d.Status)).Str("order_status", string(order.Status)).Int64("amount", d.Amount).Str("currency", d.Currency)
	switch order.Status {
	case veza.OrderCompleted, veza.OrderDisputed:
	default:
		// Refunded already (the PSP should not allow it), not paid, or
		// charged back by another dispute: no money moves here.
		log.Msg("dispute on an order that is not completed: recorded, no money moved; check it in Hyperswitch's dashboard")
		return nil
	}
	switch {
	case d.Status.Open():
		if order.Status == veza.OrderDisputed {
			return nil
		}
		deadline := "none given"
		if d.ChallengeRequiredBy != nil {
			deadline = d.ChallengeRequiredBy.Format(time.RFC3339)
		}
		log.Str("challenge_required_by", deadline).
			Msg("dispute opened: refunds refused and payouts held; submit evidence in Hyperswitch's dashboard before the deadline")
		return store.TransitionOrder(ctx, tx, order.ID, veza.OrderCompleted, veza.OrderDisputed)
	case d.Status.Lost():
		log.Msg("dispute lost: order charged back; the sellers' payouts are taken back for the disputed amount")
		return s.chargeBack(ctx, tx, ins, order, d)
	default:
		if order.Status != veza.OrderDisputed {
			return nil
		}
		open, err := store.OrderHasOpenDispute(ctx, tx, order.ID, d.ID)
		if err != nil || open {
			return err
		}
		s.Logger.Info().Str("dispute_id", d.DisputeID).Str("order_id", order.ID.String()).Str("dispute_status", string(d.Status)).
			Msg("dispute closed in the seller's favour: order completed again, held payouts go out")
		if err := store.TransitionOrder(ctx, tx, order.ID, veza.OrderDisputed, veza.OrderCompleted); err != nil {
			return err
		}
		return s.wakeHeldPayouts(ctx, tx, ins, order.ID)
	}
}

// chargeBack settles a lost dispute in tx: the order is charged back; each
// completed transfer is reversed for its share of the disputed amount (all
// of it when the whole payment is disputed); transfers not yet paid are
// closed unpaid by their payout job after a look-up at Stripe; each seller
// taken back is emailed.
func (s *Settler) chargeBack(ctx context.Context, tx pgx.Tx, ins Inserter, order *store.Order, d *store.Dispute) error {
	if err := store.TransitionOrder(ctx, tx, order.ID, order.Status, veza.OrderChargedBack); err != nil {
		return err
	}
	transfers, err := store.OrderTransfersForUpdate(ctx, tx, order.ID)
	if err != nil {
		return err
	}
	var paid []store.Transfer
	var amounts []int64
	for _, t := range transfers {
		if t.Status == veza.TransferCompleted {
			paid, amounts = append(paid, t), append(amounts, t.Amount)
		}
	}
	shares := veza.ProportionalShares(amounts, d.Amount, order.Amount)
	var jobs []river.InsertManyParams
	emailed := map[string]bool{}
	for i, t := range paid {
		if shares[i] == 0 {
			continue
		}
		if shares[i] < t.Amount {
			if err := store.SetReversalAmount(ctx, tx, t.ID, shares[i]); err != nil {
				return err
			}
		}
		if err := s.StartReversal(ctx, tx, ins, t.ID); err != nil {
			return err
		}
		if !emailed[t.SellerID.String()] {
			emailed[t.SellerID.String()] = true
			jobs = append(jobs, river.InsertManyParams{Args: jobargs.EmailArgs{Template: mail.TemplateChargeback, UserID: t.SellerID, OrderID: &order.ID}})
		}
	}
	if err := s.takeBackUnpaid(ctx, tx, transfers, &jobs); err != nil {
		return err
	}
	if err := s.wakeHeldPayouts(ctx, tx, ins, order.ID); err != nil {
		return err // held payouts close unpaid now, not after their snooze
	}
	if len(jobs) == 0 {
		return nil
	}
	_, err = ins.InsertManyTx(ctx, tx, jobs)
	return err
}

// Waker makes a waiting job run now, in tx (river.Client.JobRetryTx).
type Waker interface {
	JobRetryTx(ctx context.Context, tx pgx.Tx, id int64) (*rivertype.JobRow, error)
}

// wakeHeldPayouts makes the payout jobs a dispute held (snoozed) run now.
// An inserter that cannot wake jobs leaves them to their snooze.
func (s *Settler) wakeHeldPayouts(ctx context.Context, tx pgx.Tx, ins Inserter, orderID uuid.UUID) error {
	w, ok := ins.(Waker)
	if !ok {
		return nil
	}
	ids, err := store.HeldPayoutJobs(ctx, tx, orderID)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := w.JobRetryTx(ctx, tx, id); err != nil {
			return err
		}
	}
	return nil
}

// reapplyDisputes answers, in tx, the disputes recorded while an order was
// not completed (a refund was pending) once it is completed again (the
// refund failed): a lost one charges it back, an open one disputes it.
func (s *Settler) reapplyDisputes(ctx context.Context, tx pgx.Tx, ins Inserter, orderID uuid.UUID) error {
	disputes, err := store.OrderDisputes(ctx, tx, orderID)
	if err != nil || len(disputes) == 0 {
		return err
	}
	order, err := store.GetOrderSummaryForUpdate(ctx, tx, orderID)
	if err != nil {
		return err
	}
	for i := range disputes {
		if disputes[i].Status.Lost() {
			return s.disputeMoney(ctx, tx, ins, order, &disputes[i])
		}
	}
	for i := range disputes {
		if disputes[i].Status.Open() {
			return s.disputeMoney(ctx, tx, ins, order, &disputes[i])
		}
	}
	return nil
}
