package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// StripeWebhook is one Stripe Connect delivery's log row.
type StripeWebhook struct {
	SourceIP         *string
	SignatureValid   bool
	EventID          *string
	EventType        *string
	AccountID        *string
	Payload          string
	PayloadSHA256    *string
	PayloadBytes     *int
	ProcessingResult string
}

// ResultDuplicate marks a redelivery of an event applied already.
const ResultDuplicate = "duplicate"

// InsertStripeWebhook logs a delivery: one row each. A valid one whose
// event id was applied already (Stripe redelivers) is logged as
// 'duplicate' and first is false: the caller applies nothing.
//
// stripe_events is the dedupe authority (the log is partitioned by day and
// cannot hold a unique index on the event id alone); call it in the
// transaction that applies the event.
func InsertStripeWebhook(ctx context.Context, q Querier, w *StripeWebhook) (first bool, err error) {
	result := w.ProcessingResult
	first = true
	if w.SignatureValid && w.EventID != nil {
		tag, err := q.Exec(ctx, `INSERT INTO stripe_events (event_id, event_type) VALUES ($1, $2) ON CONFLICT DO NOTHING`, w.EventID, w.EventType)
		if err != nil {
			return false, fmt.Errorf("error recording a Stripe event: %w", err)
		}
		if first = tag.RowsAffected() == 1; !first {
			result = ResultDuplicate
		}
	}
	if err := logStripeWebhook(ctx, q, w, result); err != nil {
		return false, err
	}
	return first, nil
}

// LogStripeWebhook writes a delivery's log row only: one that was not
// applied and that Stripe will deliver again (its event is not recorded
// as seen, so the redelivery is applied).
func LogStripeWebhook(ctx context.Context, q Querier, w *StripeWebhook) error {
	return logStripeWebhook(ctx, q, w, w.ProcessingResult)
}

func logStripeWebhook(ctx context.Context, q Querier, w *StripeWebhook, result string) error {
	_, err := q.Exec(ctx, `INSERT INTO stripe_webhook_log (source_ip, signature_valid, event_id, event_type, account_id, payload,
			payload_sha256, payload_bytes, processing_result)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		w.SourceIP, w.SignatureValid, w.EventID, w.EventType, w.AccountID, w.Payload, w.PayloadSHA256, w.PayloadBytes, result)
	if err != nil {
		return fmt.Errorf("error logging a Stripe webhook: %w", err)
	}
	return nil
}

// StripeEventSeen reports whether the event was applied already (a
// redelivery), so the caller need not read Stripe for it.
func StripeEventSeen(ctx context.Context, q Querier, eventID string) (bool, error) {
	var seen bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM stripe_events WHERE event_id = $1)`, eventID).Scan(&seen)
	if err != nil {
		return false, fmt.Errorf("error reading a Stripe event: %w", err)
	}
	return seen, nil
}

// LockPayoutsEnabled locks the sellers of a connected account and reads
// what their rows say of it (nil: nothing known yet); found false: no
// seller has it.
func LockPayoutsEnabled(ctx context.Context, tx pgx.Tx, accountID string) (enabled *bool, found bool, err error) {
	rows, err := tx.Query(ctx, `SELECT payouts_enabled FROM users WHERE stripe_account_id = $1 ORDER BY id FOR UPDATE`, accountID)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	for rows.Next() {
		var e *bool
		if err := rows.Scan(&e); err != nil {
			return nil, false, err
		}
		enabled, found = e, true
	}
	return enabled, found, rows.Err()
}

// SetPayoutsEnabled records Stripe's word on a connected account for the
// seller it belongs to; how many sellers have it (0: not ours).
func SetPayoutsEnabled(ctx context.Context, q Querier, accountID string, enabled bool) (int64, error) {
	tag, err := q.Exec(ctx, `UPDATE users SET payouts_enabled = $2, updated_at = now() WHERE stripe_account_id = $1`, accountID, enabled)
	return tag.RowsAffected(), err
}
