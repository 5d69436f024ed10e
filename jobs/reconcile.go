package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/veza/backend"
	"github.com/veza/backend/config"
	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/ingest"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/obs"
	"github.com/veza/backend/settle"
	"github.com/veza/backend/store"
)

// Reconciliation repairs rows whose outcome never arrived: a PSP that never
// called back, or data from before this system. A sweep only finds rows and
// enqueues one job per row (unique while one is queued), so a backlog drains
// over runs and is visible in River UI. Stuck orders and refunds are read
// from Hyperswitch and fed to the same dispatcher as webhooks (a
// process-event job); its terminal-state guards make replays harmless.

// Reconciler holds the sweep's settings (RECONCILE_*).
type Reconciler struct {
	DB          *store.DB
	Hyperswitch *hyperswitch.Client // nil when disabled: per-row jobs are cancelled
	Settle      *settle.Settler
	Inserter    settle.Inserter
	Settings    config.ReconcileConfig
	Logger      zerolog.Logger
	// Metrics counts what each row job did (nil: off).
	Metrics *obs.Metrics
}

// A failed order is read again, at most every FailedOrderRecheck, while it
// failed less than FailedOrderWindow ago: Hyperswitch lets a failed payment
// be retried on the same payment_id, and when that retry's success never
// arrives by webhook, the read finds it. The window is the one its buyer
// keeps streaming in (store's streamableOrders); the pace keeps the cost
// at 4 reads a day per failed order.
const (
	FailedOrderWindow  = 30 * 24 * time.Hour
	FailedOrderRecheck = 6 * time.Hour
)

// ReconcileSweepWorker finds up to BatchLimit rows of each class and
// enqueues their jobs.
type ReconcileSweepWorker struct {
	river.WorkerDefaults[jobargs.ReconcileSweepArgs]
	*Reconciler
}

func (w *ReconcileSweepWorker) Work(ctx context.Context, job *river.Job[jobargs.ReconcileSweepArgs]) error {
	pool := w.DB.Primary()
	s := w.Settings
	orders, err := store.StuckOrders(ctx, pool, s.OrderStuckAfter, s.BatchLimit)
	if err != nil {
		return fmt.Errorf("error finding stuck orders: %w", err)
	}
	failed, err := store.FailedOrdersToRecheck(ctx, pool, FailedOrderWindow, FailedOrderRecheck, s.BatchLimit)
	if err != nil {
		return fmt.Errorf("error finding failed orders to read again: %w", err)
	}
	stuck, err := store.StuckRefunds(ctx, pool, s.RefundStuckAfter, s.BatchLimit)
	if err != nil {
		return fmt.Errorf("error finding stuck refunds: %w", err)
	}
	orphans, err := store.OrphanRefunds(ctx, pool, s.RefundOrphanAfter, s.BatchLimit)
	if err != nil {
		return fmt.Errorf("error finding orphan refunds: %w", err)
	}
	disputes, err := store.StuckDisputes(ctx, pool, s.DisputeStuckAfter, s.BatchLimit)
	if err != nil {
		return fmt.Errorf("error finding stuck disputes: %w", err)
	}
	params := make([]river.InsertManyParams, 0, len(orders)+len(failed)+len(stuck)+len(orphans)+len(disputes))
	for _, id := range append(orders, failed...) {
		params = append(params, river.InsertManyParams{Args: jobargs.ReconcileOrderArgs{OrderID: id}})
	}
	for _, id := range append(stuck, orphans...) {
		params = append(params, river.InsertManyParams{Args: jobargs.ReconcileRefundArgs{RefundID: id}})
	}
	for _, id := range disputes {
		params = append(params, river.InsertManyParams{Args: jobargs.ReconcileDisputeArgs{DisputeID: id}})
	}
	if len(params) > 0 {
		err := w.DB.InTx(ctx, func(tx pgx.Tx) error {
			_, err := w.Inserter.InsertManyTx(ctx, tx, params)
			return err
		})
		if err != nil {
			return fmt.Errorf("error enqueueing reconcile jobs: %w", err)
		}
	}
	w.Logger.Info().Ctx(ctx).Str("component", "reconcile").Int("stuck_orders", len(orders)).Int("failed_orders", len(failed)).Int("stuck_refunds", len(stuck)).
		Int("orphan_refunds", len(orphans)).Int("stuck_disputes", len(disputes)).Msg("reconcile sweep enqueued row jobs")
	return nil
}

// paymentEvents maps a Hyperswitch payment status to the event its webhook
// would carry (crates/router/src/types/transformers.rs); other statuses
// (processing, requires_*, ...) are not final for a pending order and feed
// nothing.
var paymentEvents = map[string]string{
	"succeeded":                         "payment_succeeded",
	"failed":                            "payment_failed",
	"cancelled":                         "payment_cancelled",
	"cancelled_post_capture":            "payment_cancelled_post_capture",
	"expired":                           "payment_expired",
	"partially_captured":                "payment_captured",
	"partially_captured_and_capturable": "payment_captured",
}

// ReconcileOrderWorker reads a stuck order's payment and feeds its status to
// the dispatcher as a synthetic event.
type ReconcileOrderWorker struct {
	river.WorkerDefaults[jobargs.ReconcileOrderArgs]
	*Reconciler
}

func (w *ReconcileOrderWorker) Work(ctx context.Context, job *river.Job[jobargs.ReconcileOrderArgs]) error {
	if w.Hyperswitch == nil {
		return river.JobCancel(errors.New("hyperswitch is not enabled: nothing to reconcile against"))
	}
	pool := w.DB.Primary()
	order, err := store.GetOrderSummary(ctx, pool, job.Args.OrderID)
	if errors.Is(err, store.ErrNotFound) {
		return river.JobCancel(fmt.Errorf("order %s does not exist", job.Args.OrderID))
	}
	if err != nil {
		return err
	}
	log := w.Logger.With().Ctx(ctx).Str("component", "reconcile").Str("order_id", order.ID.String()).
		Dur("stuck_for", time.Since(order.CreatedAt)).Logger()
	// A failed order is read too: a manual retry at Hyperswitch may have
	// taken the money on the same payment_id (the sweep's failed class).
	recheck := order.Status == veza.OrderFailed
	if (order.Status != veza.OrderPending && !recheck) || order.PaymentID == "" {
		w.Metrics.Reconcile("order", "nothing")
		log.Info().Str("status", string(order.Status)).Msg("reconcile: order needs nothing (terminal or no payment id)")
		return nil
	}
	if err := store.MarkOrderReconciled(ctx, pool, order.ID); err != nil {
		return err
	}
	payment, err := w.Hyperswitch.SyncPayment(ctx, order.PaymentID)
	if recheck && hyperswitch.IsPaymentNotFound(err) {
		// Its create was refused: Hyperswitch never knew the payment.
		w.Metrics.Reconcile("order", "nothing")
		log.Info().Msg("reconcile: failed order's payment is unknown to Hyperswitch")
		return nil
	}
	if !recheck && hyperswitch.IsPaymentNotFound(err) && time.Since(order.CreatedAt) >= w.Settings.OrderStuckAfter {
		// Its create never reached Hyperswitch (our bucket, a network
		// error, a bad key answered 503 and the buyer went away), and it
		// is stuck: Hyperswitch's word is that there is no payment. It
		// fails, so the sweep stops reading it; a payment made later
		// under its id (the client resuming with its key) still completes
		// it, as a failed order's success with its price does. A younger
		// order's create may still be on its way.
		ferr := w.DB.InTx(ctx, func(tx pgx.Tx) error {
			return store.TransitionOrder(ctx, tx, order.ID, veza.OrderPending, veza.OrderFailed)
		})
		if ferr != nil && !errors.Is(ferr, veza.ErrStaleState) {
			return ferr
		}
		w.Metrics.Reconcile("order", "synced")
		log.Warn().Msg("reconcile: Hyperswitch has no payment for this order (HE_02): order failed; a payment made later under its id still completes it")
		return nil
	}
	if err != nil {
		// Left untouched for the next sweep.
		if d, ok := Paced(err); ok {
			return river.JobSnooze(d) // our pace toward Hyperswitch: read it soon, not next sweep
		}
		w.Metrics.Reconcile("order", "read_failed")
		log.Warn().Err(err).Msg("reconcile: could not read the payment; will retry next sweep")
		return nil
	}
	eventType, final := paymentEvents[payment.Status]
	if recheck && !hyperswitch.PaymentTookMoney(payment.Status) {
		// Only money taken moves a failed order: its whole price completes
		// it; a part or another amount (a manual retry at Hyperswitch) is
		// fed like its lost webhook, and settle refunds it. The event id
		// holds one feed per status.
		w.Metrics.Reconcile("order", "not_final")
		log.Info().Str("psp_status", payment.Status).Msg("reconcile: failed order's payment still not taken")
		return nil
	}
	if recheck && !tookThePrice(payment, order) {
		// An automatic refund dealt with this money already, whatever its
		// outcome: succeeded or on its way (the part capture that failed
		// the order), or failed, whose ERROR asked an operator to pay the
		// buyer by hand; a second one could pay the buyer twice.
		// (Settle's autoRefund decides under the order's lock; this read
		// spares the feed.)
		refunds, err := store.OrderRefundSummary(ctx, pool, order)
		if err != nil {
			return err
		}
		if refunds.Automatic {
			w.Metrics.Reconcile("order", "nothing")
			log.Info().Str("psp_status", payment.Status).
				Msg("reconcile: failed order's payment took another amount, which its automatic refund dealt with")
			return nil
		}
	}
	if !final {
		w.Metrics.Reconcile("order", "not_final")
		switch {
		case payment.Status == "conflicted" || payment.Status == "requires_merchant_action":
			// Hyperswitch will not move it by itself: a person must.
			log.Error().Str("psp_status", payment.Status).
				Msg("reconcile: a stuck payment needs a person at Hyperswitch (conflicted: it and the connector disagree; requires_merchant_action: the merchant must act): resolve it in Hyperswitch's dashboard; the order stays pending until its outcome arrives")
		case !hyperswitch.PaymentWaiting(payment.Status):
			log.Warn().Str("psp_status", payment.Status).
				Msg("reconcile: a payment status this service does not know: the order stays pending; check the payment in Hyperswitch's dashboard")
		default:
			log.Info().Str("psp_status", payment.Status).Msg("reconcile: payment still not final")
		}
		return nil
	}
	args := jobargs.ProcessEventArgs{
		EventID:   "reconcile:" + order.PaymentID + ":" + payment.Status,
		EventType: eventType,
		Object: hyperswitch.EventObject{PaymentID: payment.PaymentID, Status: payment.Status, Amount: payment.Amount,
			AmountReceived: payment.AmountReceived, Currency: payment.Currency, ErrorMessage: payment.ErrorMessage},
	}
	if err := w.enqueueEvent(ctx, args); err != nil {
		return err
	}
	w.Metrics.Reconcile("order", "synced")
	log.Info().Str("status_synced", payment.Status).Str("event_type", eventType).Msg("reconcile: order synced from the PSP")
	return nil
}

// tookThePrice: the payment took all of the order's price, in its currency.
func tookThePrice(p *hyperswitch.Payment, order *store.Order) bool {
	received := p.Amount
	if p.AmountReceived != nil {
		received = *p.AmountReceived
	}
	return p.Status == "succeeded" && p.Amount == order.Amount && received == order.Amount && strings.EqualFold(p.Currency, order.Currency)
}

// RefundPendingTooLong: a refund still pending at Hyperswitch this long
// after it was requested is logged at ERROR by every reconcile read.
const RefundPendingTooLong = 24 * time.Hour

var refundEvents = map[string]string{
	"succeeded": "refund_succeeded",
	"failed":    "refund_failed",
}

// ReconcileRefundWorker syncs a stuck refund from the PSP, or fails an
// orphan (a refund that never reached the PSP).
type ReconcileRefundWorker struct {
	river.WorkerDefaults[jobargs.ReconcileRefundArgs]
	*Reconciler
}

func (w *ReconcileRefundWorker) Work(ctx context.Context, job *river.Job[jobargs.ReconcileRefundArgs]) error {
	pool := w.DB.Primary()
	refund, err := store.GetRefund(ctx, pool, job.Args.RefundID)
	if errors.Is(err, store.ErrNotFound) {
		return river.JobCancel(fmt.Errorf("refund %s does not exist", job.Args.RefundID))
	}
	if err != nil {
		return err
	}
	log := w.Logger.With().Ctx(ctx).Str("component", "reconcile").Str("refund_id", refund.ID.String()).
		Str("order_id", refund.OrderID.String()).Dur("stuck_for", time.Since(refund.CreatedAt)).Logger()
	if refund.Status != veza.RefundPending {
		w.Metrics.Reconcile("refund", "nothing")
		log.Info().Str("status", string(refund.Status)).Msg("reconcile: refund needs nothing (terminal)")
		return nil
	}
	if err := store.MarkRefundReconciled(ctx, pool, refund.ID); err != nil {
		return err
	}

	if refund.HyperswitchRefundID == nil {
		return w.orphan(ctx, refund, log)
	}
	if w.Hyperswitch == nil {
		return river.JobCancel(errors.New("hyperswitch is not enabled: nothing to reconcile against"))
	}
	psp, err := w.Hyperswitch.SyncRefund(ctx, *refund.HyperswitchRefundID)
	if err != nil {
		if d, ok := Paced(err); ok {
			return river.JobSnooze(d) // our pace toward Hyperswitch: read it soon, not next sweep
		}
		w.Metrics.Reconcile("refund", "read_failed")
		log.Warn().Err(err).Msg("reconcile: could not read the refund; will retry next sweep")
		return nil
	}
	return w.sync(ctx, refund, psp, log)
}

// sync feeds a refund's status read from Hyperswitch to the dispatcher.
func (w *ReconcileRefundWorker) sync(ctx context.Context, refund *store.Refund, psp *hyperswitch.Refund, log zerolog.Logger) error {
	if _, final := refundEvents[psp.Status]; !final {
		w.Metrics.Reconcile("refund", "not_final")
		if age := time.Since(refund.CreatedAt); age > RefundPendingTooLong {
			// A connector timeout (400 CE_06 on the submit) leaves
			// Hyperswitch's refund pending with no connector id: no sync
			// moves it and no webhook comes. Only a look at the connector
			// tells whether the buyer got the money.
			log.Error().Str("psp_status", psp.Status).Dur("pending_for", age).
				Str("hyperswitch_refund_id", psp.RefundID).Str("payment_id", psp.PaymentID).
				Msg("reconcile: refund still pending at Hyperswitch; check it at the connector before refunding by hand")
			return nil
		}
		log.Info().Str("psp_status", psp.Status).Msg("reconcile: refund still not final")
		return nil
	}
	if err := w.DB.InTx(ctx, func(tx pgx.Tx) error { return feedRefund(ctx, tx, w.Inserter, "reconcile", psp) }); err != nil {
		return err
	}
	w.Metrics.Reconcile("refund", "synced")
	log.Info().Str("status_synced", psp.Status).Msg("reconcile: refund synced from the PSP")
	return nil
}

// orphan handles a pending refund with no PSP id, once its submit job is
// gone (one still retrying through an outage could race a refund the PSP is
// about to make). Its submission's answer may have been lost: it is read at
// Hyperswitch by our own refund_id first, and synced when found. Only
// Hyperswitch's word that it does not know that id (HE_02) fails it.
func (w *ReconcileRefundWorker) orphan(ctx context.Context, refund *store.Refund, log zerolog.Logger) error {
	if time.Since(refund.CreatedAt) < w.Settings.RefundOrphanAfter {
		w.Metrics.Reconcile("refund", "not_final")
		log.Info().Msg("reconcile: refund not yet submitted, too recent to call an orphan")
		return nil
	}
	live, err := store.HasLiveJob(ctx, w.DB.Primary(), jobargs.SubmitRefundArgs{}.Kind(), "refund_id", refund.ID)
	if err != nil {
		return err
	}
	if live {
		w.Metrics.Reconcile("refund", "not_final")
		log.Info().Msg("reconcile: refund submission still being retried; not an orphan")
		return nil
	}
	if w.Hyperswitch == nil {
		w.Metrics.Reconcile("refund", "read_failed")
		log.Warn().Msg("reconcile: hyperswitch is not enabled: the orphan refund cannot be read; left pending")
		return nil
	}
	psp, err := w.Hyperswitch.SyncRefund(ctx, store.RefundIDFor(refund.ID))
	switch {
	case err == nil:
		if err := store.SetRefundPSPID(ctx, w.DB.Primary(), refund.ID, psp.RefundID); err != nil {
			return err
		}
		w.Metrics.Reconcile("refund", "orphan_found")
		log.Warn().Str("psp_status", psp.Status).Msg("reconcile: refund found at the PSP by our refund_id (its submission's answer was lost)")
		return w.sync(ctx, refund, psp, log)
	case !hyperswitch.IsRefundNotFound(err):
		if d, ok := Paced(err); ok {
			return river.JobSnooze(d) // our pace toward Hyperswitch: read it soon, not next sweep
		}
		w.Metrics.Reconcile("refund", "read_failed")
		log.Warn().Err(err).Msg("reconcile: could not read the orphan refund; will retry next sweep")
		return nil
	}
	msg := "orphan: the payment provider does not know this refund (HE_02); the order is completed again"
	err = w.DB.InTx(ctx, func(tx pgx.Tx) error { return w.Settle.FailRefund(ctx, tx, w.Inserter, refund, msg) })
	if errors.Is(err, veza.ErrStaleState) {
		return nil // settled meanwhile
	}
	if err != nil {
		return err
	}
	w.Metrics.Reconcile("refund", "orphan_failed")
	log.Error().Str("status_synced", string(veza.RefundFailed)).Msg("reconcile: orphan refund failed and its order rolled back to completed")
	return nil
}

// ReconcileDisputeWorker reads an open dispute at Hyperswitch and, when its
// status moved, feeds it to the dispatcher as a synthetic dispute event:
// the same code path as a delivery, so a lost dispute_lost webhook still
// charges the order back.
type ReconcileDisputeWorker struct {
	river.WorkerDefaults[jobargs.ReconcileDisputeArgs]
	*Reconciler
}

func (w *ReconcileDisputeWorker) Work(ctx context.Context, job *river.Job[jobargs.ReconcileDisputeArgs]) error {
	if w.Hyperswitch == nil {
		return river.JobCancel(errors.New("hyperswitch is not enabled: nothing to reconcile against"))
	}
	pool := w.DB.Primary()
	d, err := store.GetDispute(ctx, pool, job.Args.DisputeID)
	if errors.Is(err, store.ErrNotFound) {
		return river.JobCancel(fmt.Errorf("dispute %s does not exist", job.Args.DisputeID))
	}
	if err != nil {
		return err
	}
	log := w.Logger.With().Ctx(ctx).Str("component", "reconcile").Str("dispute_id", d.DisputeID).Str("order_id", d.OrderID.String()).
		Dur("open_for", time.Since(d.OpenedAt)).Logger()
	if !d.Status.Open() {
		w.Metrics.Reconcile("dispute", "nothing")
		log.Info().Str("status", string(d.Status)).Msg("reconcile: dispute needs nothing (closed)")
		return nil
	}
	if err := store.MarkDisputeReconciled(ctx, pool, d.ID); err != nil {
		return err
	}
	psp, err := w.Hyperswitch.GetDispute(ctx, d.DisputeID)
	if err != nil {
		if d, ok := Paced(err); ok {
			return river.JobSnooze(d) // our pace toward Hyperswitch: read it soon, not next sweep
		}
		w.Metrics.Reconcile("dispute", "read_failed")
		log.Warn().Err(err).Msg("reconcile: could not read the dispute; will retry next sweep")
		return nil
	}
	status := veza.ParseDisputeStatus(psp.DisputeStatus)
	if status == "" {
		w.Metrics.Reconcile("dispute", "unknown_status")
		log.Error().Str("psp_status", psp.DisputeStatus).Msg("reconcile: Hyperswitch reports a dispute status we do not know; left open: check it in Hyperswitch's dashboard")
		return nil
	}
	stage := ""
	if d.Stage != nil {
		stage = *d.Stage
	}
	if status == d.Status && (psp.DisputeStage == "" || psp.DisputeStage == stage) {
		w.Metrics.Reconcile("dispute", "unchanged")
		log.Info().Str("psp_status", psp.DisputeStatus).Msg("reconcile: dispute unchanged at the PSP")
		return nil
	}
	if psp.DisputeID != "" && psp.DisputeID != d.DisputeID {
		w.Metrics.Reconcile("dispute", "mismatch")
		log.Error().Str("psp_dispute_id", psp.DisputeID).Msg("reconcile: Hyperswitch answered for another dispute: skipped")
		return nil
	}
	if psp.DisputeID == "" {
		psp.DisputeID = d.DisputeID
	}
	if psp.PaymentID == "" {
		order, err := store.GetOrderSummary(ctx, pool, d.OrderID)
		if err != nil {
			return err
		}
		psp.PaymentID = order.PaymentID
	}
	args := jobargs.ProcessEventArgs{
		EventID:   "reconcile:" + d.DisputeID + ":" + psp.DisputeStage + ":" + psp.DisputeStatus,
		EventType: "dispute_" + string(status),
		Object:    *psp,
	}
	if err := w.enqueueEvent(ctx, args); err != nil {
		return err
	}
	w.Metrics.Reconcile("dispute", "synced")
	log.Info().Str("status_synced", psp.DisputeStatus).Msg("reconcile: dispute synced from the PSP")
	return nil
}

// ReconcileRequest is an on-demand reconcile: the whole sweep (both ids
// nil), one order or one refund.
type ReconcileRequest struct {
	OrderID  *uuid.UUID
	RefundID *uuid.UUID
}

// ErrReconcileTargetNotFound is returned when the named row does not exist.
var ErrReconcileTargetNotFound = errors.New("no such order or refund")

// EnqueueReconcile enqueues the jobs of an on-demand reconcile and returns
// their ids; it never does the work itself (CLI and admin endpoint share it).
// A row job already queued is returned, not doubled.
func EnqueueReconcile(ctx context.Context, ins settle.Inserter, db *store.DB, req ReconcileRequest) ([]int64, error) {
	if req.OrderID != nil && req.RefundID != nil {
		return nil, errors.New("name an order or a refund, not both")
	}
	var ids []int64
	err := db.InTx(ctx, func(tx pgx.Tx) error {
		var args river.JobArgs = jobargs.ReconcileSweepArgs{}
		var err error
		switch {
		case req.OrderID != nil:
			args = jobargs.ReconcileOrderArgs{OrderID: *req.OrderID}
			if _, err = store.GetOrderSummary(ctx, tx, *req.OrderID); errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("%w: order %s", ErrReconcileTargetNotFound, req.OrderID)
			}
		case req.RefundID != nil:
			args = jobargs.ReconcileRefundArgs{RefundID: *req.RefundID}
			if _, err = store.GetRefund(ctx, tx, *req.RefundID); errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("%w: refund %s", ErrReconcileTargetNotFound, req.RefundID)
			}
		}
		if err != nil {
			return err
		}
		res, err := ins.InsertTx(ctx, tx, args, nil)
		if err != nil {
			return err
		}
		ids = append(ids, res.Job.ID)
		return nil
	})
	return ids, err
}

// enqueueEvent feeds a synthetic event to the same path as a webhook's.
func (r *Reconciler) enqueueEvent(ctx context.Context, args jobargs.ProcessEventArgs) error {
	return r.DB.InTx(ctx, func(tx pgx.Tx) error {
		_, err := ingest.EnqueueEvent(ctx, tx, r.Inserter, args)
		return err
	})
}
