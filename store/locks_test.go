package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	veza "github.com/veza/backend"
	"github.com/veza/backend/store"
	"github.com/veza/backend/store/dbtest"
)

// A payout's share lock on its order: the order's other payouts take it at
// the same time, a status change waits for it.
func TestOrderShareLockLetsPayoutsThroughAndHoldsRefunds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t)
	var orderID uuid.UUID
	require.NoError(t, pool.QueryRow(ctx, `WITH u AS (INSERT INTO users (email, password_hash) VALUES ('b@example.test', 'h') RETURNING id)
		INSERT INTO orders (buyer_id, amount, currency, payment_id) SELECT id, 100, 'EUR', 'p_lock' FROM u RETURNING id`).Scan(&orderID))

	holdOrderShare(t, pool, orderID)

	tryInTx := func(sql string) error {
		return inTxWithLockTimeout(ctx, pool, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, sql, orderID)
			return err
		})
	}
	require.NoError(t, inTxWithLockTimeout(ctx, pool, func(tx pgx.Tx) error {
		_, err := store.GetOrderSummaryForShare(ctx, tx, orderID)
		return err
	}), "a sibling payout does not wait")

	var pgErr *pgconn.PgError
	err := tryInTx(`SELECT 1 FROM orders WHERE id = $1 FOR UPDATE`)
	require.ErrorAs(t, err, &pgErr, "a refund's lock waits")
	require.Equal(t, "55P03", pgErr.Code, "lock_not_available")
	err = tryInTx(`UPDATE orders SET status = 'refund_pending' WHERE id = $1`)
	require.ErrorAs(t, err, &pgErr, "so does a plain status update")
	require.Equal(t, "55P03", pgErr.Code)
}

// holdOrderShare holds an order FOR SHARE, as a sibling payout does, until
// the test ends.
func holdOrderShare(t *testing.T, pool *pgxpool.Pool, orderID uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	holder, err := pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = holder.Rollback(ctx) })
	_, err = store.GetOrderSummaryForShare(ctx, holder, orderID)
	require.NoError(t, err)
}

// inTxWithLockTimeout runs fn in a transaction that gives up waiting for a
// lock after 200 ms (SQLSTATE 55P03).
func inTxWithLockTimeout(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '200ms'`); err != nil {
			return err
		}
		return fn(tx)
	})
}

// guardFixture makes a completed order with one pending transfer.
func guardFixture(t *testing.T, pool *pgxpool.Pool) (orderID, transferID uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, pool.QueryRow(ctx, `WITH u AS (INSERT INTO users (email, password_hash) VALUES ('s@example.test', 'h') RETURNING id),
		o AS (INSERT INTO orders (buyer_id, amount, currency, payment_id, status) SELECT id, 100, 'EUR', 'p_guard', 'completed' FROM u RETURNING id)
		INSERT INTO seller_transfers (order_id, seller_id, amount, platform_fee, currency) SELECT o.id, u.id, 90, 10, 'EUR' FROM o, u
		RETURNING order_id, id`).Scan(&orderID, &transferID))
	return orderID, transferID
}

var completeUnlessRefunded = store.TransferUpdate{StripeTransferID: ptr("tr_guard"), UnlessOrderIn: []veza.OrderStatus{veza.OrderRefunded}}

func ptr(s string) *string { return &s }

// A payout records its transfer in one statement: it moves the transfer
// while the order is not refunded, and it locks the order before the
// transfer, the refund path's order, so the two cannot deadlock.
func TestGuardedTransferMoveLocksTheOrderFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t)
	orderID, transferID := guardFixture(t, pool)

	// A refund holds the order: the guarded move waits on the order row,
	// and meanwhile holds no lock on the transfer.
	refund, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer refund.Rollback(ctx)
	_, err = refund.Exec(ctx, `SELECT 1 FROM orders WHERE id = $1 FOR UPDATE`, orderID)
	require.NoError(t, err)
	moved := make(chan error, 1)
	go func() {
		moved <- store.TransitionTransfer(ctx, pool, transferID, veza.TransferPending, veza.TransferCompleted, completeUnlessRefunded)
	}()
	require.Eventually(t, func() bool {
		var waiting bool
		require.NoError(t, pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'UPDATE seller_transfers t SET%')`).Scan(&waiting))
		return waiting
	}, 10*time.Second, 10*time.Millisecond, "the move waits for the refund's order lock")
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT 1 FROM seller_transfers WHERE id = $1 FOR UPDATE NOWAIT`, transferID)
		return err
	}), "the waiting move holds no lock on the transfer")

	// The refund settles: the order is refunded, the transfer not moved.
	_, err = refund.Exec(ctx, `UPDATE orders SET status = 'refunded' WHERE id = $1`, orderID)
	require.NoError(t, err)
	require.NoError(t, refund.Commit(ctx))
	require.ErrorIs(t, <-moved, veza.ErrStaleState)
	tr, err := store.GetTransfer(ctx, pool, transferID)
	require.NoError(t, err)
	require.Equal(t, veza.TransferPending, tr.Status)
	require.Nil(t, tr.StripeTransferID)
}

func TestGuardedTransferMovePassesSiblingShareLocks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t)
	orderID, transferID := guardFixture(t, pool)

	holdOrderShare(t, pool, orderID)

	require.NoError(t, inTxWithLockTimeout(ctx, pool, func(tx pgx.Tx) error {
		return store.TransitionTransfer(ctx, tx, transferID, veza.TransferPending, veza.TransferCompleted, completeUnlessRefunded)
	}), "a sibling payout's share lock does not hold it")
	tr, err := store.GetTransfer(ctx, pool, transferID)
	require.NoError(t, err)
	require.Equal(t, veza.TransferCompleted, tr.Status)
	require.Equal(t, "tr_guard", *tr.StripeTransferID)
}
