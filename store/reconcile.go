package store

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

func collectIDs(rows pgx.Rows, err error) ([]uuid.UUID, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
}

// StuckOrders returns pending orders with a payment id older than
// olderThan, those reconciled longest ago (or never) first.
func StuckOrders(ctx context.Context, q Querier, olderThan time.Duration, limit int) ([]uuid.UUID, error) {
	return collectIDs(q.Query(ctx, `SELECT id FROM orders
		WHERE status = 'pending' AND payment_id IS NOT NULL AND created_at < now() - make_interval(secs => $1)
		ORDER BY reconciled_at NULLS FIRST, created_at LIMIT $2`, olderThan.Seconds(), limit))
}

// FailedOrdersToRecheck returns failed orders with a payment id that
// failed (updated_at) within window and were not read in the last every,
// those reconciled longest ago (or never) first: a manual retry of the
// payment at Hyperswitch can still take the money.
func FailedOrdersToRecheck(ctx context.Context, q Querier, window, every time.Duration, limit int) ([]uuid.UUID, error) {
	return collectIDs(q.Query(ctx, `SELECT id FROM orders
		WHERE status = 'failed' AND payment_id IS NOT NULL AND updated_at > now() - make_interval(secs => $1)
		  AND (reconciled_at IS NULL OR reconciled_at < now() - make_interval(secs => $2))
		ORDER BY reconciled_at NULLS FIRST, updated_at LIMIT $3`, window.Seconds(), every.Seconds(), limit))
}

// StuckRefunds returns pending refunds that reached the PSP (they have its
// id) and are older than olderThan.
func StuckRefunds(ctx context.Context, q Querier, olderThan time.Duration, limit int) ([]uuid.UUID, error) {
	return collectIDs(q.Query(ctx, `SELECT id FROM refunds
		WHERE status = 'pending' AND hyperswitch_refund_id IS NOT NULL AND created_at < now() - make_interval(secs => $1)
		ORDER BY reconciled_at NULLS FIRST, created_at LIMIT $2`, olderThan.Seconds(), limit))
}

// OrphanRefunds returns pending refunds that never reached the PSP (no id)
// and are older than olderThan.
func OrphanRefunds(ctx context.Context, q Querier, olderThan time.Duration, limit int) ([]uuid.UUID, error) {
	return collectIDs(q.Query(ctx, `SELECT id FROM refunds
		WHERE status = 'pending' AND hyperswitch_refund_id IS NULL AND created_at < now() - make_interval(secs => $1)
		ORDER BY reconciled_at NULLS FIRST, created_at LIMIT $2`, olderThan.Seconds(), limit))
}

// MarkOrderReconciled records that an order was just looked at.
func MarkOrderReconciled(ctx context.Context, q Querier, id uuid.UUID) error {
	_, err := q.Exec(ctx, `UPDATE orders SET reconciled_at = now() WHERE id = $1`, id)
	return err
}

// MarkRefundReconciled records that a refund was just looked at.
func MarkRefundReconciled(ctx context.Context, q Querier, id uuid.UUID) error {
	_, err := q.Exec(ctx, `UPDATE refunds SET reconciled_at = now() WHERE id = $1`, id)
	return err
}

// liveJobStates are River's states of a job that will still run.
const liveJobStates = `('available', 'pending', 'running', 'retryable', 'scheduled')`

// HasLiveJob reports whether a job of kind whose args[argKey] = id will
// still run.
func HasLiveJob(ctx context.Context, q Querier, kind, argKey string, id uuid.UUID) (bool, error) {
	var exists bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM river_job WHERE kind = $1 AND args->>$2 = $3 AND state IN `+liveJobStates+`)`,
		kind, argKey, id.String()).Scan(&exists)
	return exists, err
}

// openTransferStatuses is the predicate of seller_transfers_open_idx. A
// query by status repeats it, so that a generic plan, which cannot read $1,
// still proves the partial index applies.
const openTransferStatuses = `('pending', 'failed', 'reversal_pending', 'reversal_failed')`

// TransfersWithoutJob returns transfers in status (an open one: pending,
// failed or reversal_pending), unchanged for longer than olderThan, that
// have no live job of kind: rows from before this system, or whose job was
// discarded by hand.
func TransfersWithoutJob(ctx context.Context, q Querier, status, kind string, olderThan time.Duration, limit int) ([]uuid.UUID, error) {
	return collectIDs(q.Query(ctx, `SELECT t.id FROM seller_transfers t
		WHERE t.status = $1 AND t.status IN `+openTransferStatuses+` AND t.updated_at < now() - make_interval(secs => $3)
		AND t.held_at IS NULL -- held by a dispute: its outcome enqueues the job
		AND NOT EXISTS (SELECT 1 FROM river_job j WHERE j.kind = $2 AND j.args->>'transfer_id' = t.id::text AND j.state IN `+liveJobStates+`)
		ORDER BY t.updated_at LIMIT $4`, status, kind, olderThan.Seconds(), limit))
}
