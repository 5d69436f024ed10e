package settle

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

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
	if obj == "" {
		obj = eventType
	}
	return veza.ParseDisputeStatus(obj)
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
		s.Logger.Warn().Ctx(ctx).Str("event_id", ev.EventID).Str("event_type", ev.EventType).Str("dispute_status", obj.DisputeStatus).
			Msg("dispute event without a dispute id or a known status: skipped")
		return store.ResultSkipped, nil
	}
	order, err := store.GetOrderByPaymentIDForUpdate(ctx, tx, obj.PaymentID)
	if errors.Is(err, store.ErrNotFound) {
		s.Logger.Warn().Ctx(ctx).Str("event_id", ev.EventID).Str("payment_id", obj.PaymentID).Str("dispute_id", obj.DisputeID).Msg("dispute for an unknown payment")
		return store.ResultSkipped, nil
	}
	if err != nil {
		return "", err
	}
	deadline := deadlineOf(obj.ChallengeRequiredBy)
	amount, currency := obj.Amount, obj.Currency
	if amount <= 0 || amount > order.Amount || !strings.EqualFold(currency, order.Currency) {
		// Unreadable, absent, or not this order's money: the chargeback's
		// size is unknown, and the platform is debited whatever it is. It
		// is taken as the whole payment (the usual case), loudly.
		s.Logger.Error().Ctx(ctx).Str("event_id", ev.EventID).Str("dispute_id", obj.DisputeID).Str("order_id", order.ID.String()).
			Int64("amount", amount).Str("currency", currency).Int64("order_amount", order.Amount).Str("order_currency", order.Currency).
			Msg("dispute amount unreadable or not the order's: taken as the whole payment; check it in Hyperswitch's dashboard")
		amount, currency = order.Amount, order.Currency
	}
	d, created, err := store.InsertDispute(ctx, tx, store.NewDispute{DisputeID: obj.DisputeID, OrderID: order.ID, Amount: amount,
		Currency: strings.ToUpper(currency), Stage: obj.DisputeStage, Reason: obj.ConnectorReason, ConnectorDisputeID: obj.ConnectorDisputeID,
		ChallengeRequiredBy: deadline, Status: status})
	if err != nil {
		return "", err
	}
	if !created {
		if d.OrderID != order.ID {
			s.Logger.Error().Ctx(ctx).Str("event_id", ev.EventID).Str("dispute_id", d.DisputeID).Str("order_id", d.OrderID.String()).
				Str("payment_id", obj.PaymentID).Msg("dispute event names another payment than the dispute's: skipped; check it in Hyperswitch's dashboard")
			return store.ResultSkipped, nil
		}
		stage := ""
		if d.Stage != nil {
			stage = *d.Stage
		}
		repeat := d.Status == status && (obj.DisputeStage == "" || obj.DisputeStage == stage)
		if repeat || veza.CheckDisputeMoveAt(stage, d.Status, obj.DisputeStage, status) != nil {
			return store.ResultSkipped, nil // a repeat, or an older event after the outcome
		}
		if !d.Status.Open() && d.Status != status {
			s.Logger.Error().Ctx(ctx).Str("dispute_id", d.DisputeID).Str("order_id", order.ID.String()).Str("from", string(d.Status)).
				Str("to", string(status)).Str("stage", obj.DisputeStage).Msg("dispute moved again at a later stage")
		}
		if err := store.TransitionDispute(ctx, tx, d.ID, stage, d.Status, status, obj.DisputeStage, deadline); err != nil {
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
	log := s.Logger.Error().Ctx(ctx).Str("dispute_id", d.DisputeID).Str("order_id", order.ID.String()).Str("payment_id", order.PaymentID).
		Str("dispute_status", string(d.Status)).Str("order_status", string(order.Status)).Int64("amount", d.Amount).Str("currency", d.Currency)
	switch order.Status {
	case veza.OrderCompleted, veza.OrderDisputed:
	case veza.OrderChargedBack:
		switch {
		case d.Status.Open():
			log.Msg("dispute opened again on a charged-back order (a later stage): nothing held; submit evidence in Hyperswitch's dashboard")
		case d.Status.Lost():
			log.Msg("another dispute lost on a charged-back order: no more money taken back automatically; take the sellers' share back by hand")
		default:
			disputes, err := store.OrderDisputes(ctx, tx, order.ID)
			if err != nil {
				return err
			}
			for _, other := range disputes {
				if other.DisputeID != d.DisputeID && other.Status.Lost() {
					// Its chargeback stands: nothing was taken back for
					// this one, so nothing is owed to the sellers.
					log.Discard()
					s.Logger.Warn().Ctx(ctx).Str("dispute_id", d.DisputeID).Str("lost_dispute_id", other.DisputeID).Str("order_id", order.ID.String()).
						Str("dispute_status", string(d.Status)).Msg("dispute closed in the platform's favour while another dispute of the order is lost: the order stays charged back; nothing to re-pay")
					return nil
				}
			}
			log.Msg("dispute won after the order was charged back: the platform has the money back; the sellers' payouts were taken back and are not re-paid automatically: pay them by hand")
		}
		return nil
	default:
		// Refunded already (a refund or a cancel after capture that landed
		// while disputed, or one the PSP allowed after), not paid, or
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
		s.Logger.Info().Ctx(ctx).Str("dispute_id", d.DisputeID).Str("order_id", order.ID.String()).Str("dispute_status", string(d.Status)).
			Msg("dispute closed in the seller's favour: order completed again, held payouts go out")
		if err := store.TransitionOrder(ctx, tx, order.ID, veza.OrderDisputed, veza.OrderCompleted); err != nil {
			return err
		}
		return s.releaseHeldPayouts(ctx, tx, ins, order.ID)
	}
}

// chargeBack settles a lost dispute in tx: the order is charged back and
// each seller gives back their share of the disputed amount (all they were
// owed when the whole payment is disputed), recorded on the transfer
// (reversal_amount) before anything moves. A completed transfer is
// reversed for it. One not yet paid is closed unpaid by its payout job
// after a look-up at Stripe when its share is all of it; otherwise it is
// paid and then reversed for its share. A payout Stripe makes later (its
// call was in flight, or its answer lost) is reversed for its share when
// recorded (RecordPayout). Each seller taken back is emailed.
func (s *Settler) chargeBack(ctx context.Context, tx pgx.Tx, ins Inserter, order *store.Order, d *store.Dispute) error {
	if err := store.TransitionOrder(ctx, tx, order.ID, order.Status, veza.OrderChargedBack); err != nil {
		return err
	}
	transfers, err := store.OrderTransfersForUpdate(ctx, tx, order.ID)
	if err != nil {
		return err
	}
	// What the sellers were owed: paid, or still to pay.
	var owed []store.Transfer
	var amounts []int64
	for _, t := range transfers {
		switch t.Status {
		case veza.TransferCompleted, veza.TransferPending, veza.TransferFailed:
			owed, amounts = append(owed, t), append(amounts, t.Amount)
		}
	}
	shares := veza.ProportionalShares(amounts, d.Amount, order.Amount)
	var jobs []river.InsertManyParams
	var unpaid []store.Transfer
	emailed := map[string]bool{}
	for i, t := range owed {
		// Written even when it rounds to nothing: an unwritten share reads
		// as "all of it goes back" (NextPayoutStep, RecordPayout).
		if err := store.SetReversalAmount(ctx, tx, t.ID, shares[i]); err != nil {
			return err
		}
		if shares[i] == 0 {
			continue // nothing of it to give back: paid as usual
		}
		if t.Status == veza.TransferCompleted {
			if err := s.StartReversal(ctx, tx, ins, t.ID); err != nil {
				return err
			}
		} else {
			unpaid = append(unpaid, t)
		}
		if !emailed[t.SellerID.String()] {
			emailed[t.SellerID.String()] = true
			jobs = append(jobs, river.InsertManyParams{Args: jobargs.EmailArgs{Template: mail.TemplateChargeback, UserID: t.SellerID, OrderID: &order.ID}})
		}
	}
	// Held payouts get their job first, so takeBackUnpaid sees it live.
	if err := s.releaseHeldPayouts(ctx, tx, ins, order.ID); err != nil {
		return err
	}
	if err := s.takeBackUnpaid(ctx, tx, unpaid, &jobs); err != nil {
		return err
	}
	if len(jobs) == 0 {
		return nil
	}
	_, err = ins.InsertManyTx(ctx, tx, jobs)
	return err
}

// releaseHeldPayouts clears the holds a dispute put on the order's payouts
// and enqueues their payout jobs, in tx: each then pays, or closes unpaid
// after its look-up, as the order's status now says. (Not unique: a held
// payout's last job may still be finishing.)
func (s *Settler) releaseHeldPayouts(ctx context.Context, tx pgx.Tx, ins Inserter, orderID uuid.UUID) error {
	ids, err := store.ReleaseHeldPayouts(ctx, tx, orderID)
	if err != nil {
		return err
	}
	return s.enqueuePayouts(ctx, tx, ins, ids)
}

// enqueuePayouts inserts a payout job for each transfer, in tx (not unique:
// a released payout's last job may still be finishing).
func (s *Settler) enqueuePayouts(ctx context.Context, tx pgx.Tx, ins Inserter, ids []uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	jobs := make([]river.InsertManyParams, len(ids))
	for i, id := range ids {
		jobs[i] = s.Jobs.PayoutJob(id)
	}
	_, err := ins.InsertManyTx(ctx, tx, jobs)
	return err
}

// ReleaseAccountPayouts releases the payouts held for a Stripe account
// whose payouts are now enabled, and enqueues their jobs, in tx.
func (s *Settler) ReleaseAccountPayouts(ctx context.Context, tx pgx.Tx, ins Inserter, accountID string) (int, error) {
	ids, err := store.ReleaseAccountPayouts(ctx, tx, accountID)
	if err != nil {
		return 0, err
	}
	return len(ids), s.enqueuePayouts(ctx, tx, ins, ids)
}

// RepointAccountHeldPayouts moves a seller's account-held payouts to their
// new account and enqueues their jobs, in tx.
func (s *Settler) RepointAccountHeldPayouts(ctx context.Context, tx pgx.Tx, ins Inserter, sellerID uuid.UUID, accountID string) error {
	ids, err := store.RepointAccountHeldPayouts(ctx, tx, sellerID, accountID)
	if err != nil {
		return err
	}
	return s.enqueuePayouts(ctx, tx, ins, ids)
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
		if !disputes[i].Status.Lost() {
			continue
		}
		if err := s.disputeMoney(ctx, tx, ins, order, &disputes[i]); err != nil {
			return err
		}
		// Any other lost one meets a charged-back order, as it would live:
		// said to ops at ERROR, nothing more taken back automatically.
		charged := *order
		charged.Status = veza.OrderChargedBack
		for j := i + 1; j < len(disputes); j++ {
			if disputes[j].Status.Lost() {
				if err := s.disputeMoney(ctx, tx, ins, &charged, &disputes[j]); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for i := range disputes {
		if disputes[i].Status.Open() {
			return s.disputeMoney(ctx, tx, ins, order, &disputes[i])
		}
	}
	return nil
}
