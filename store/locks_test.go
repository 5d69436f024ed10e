package store_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

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

	holder, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer holder.Rollback(ctx)
	_, err = store.GetOrderSummaryForShare(ctx, holder, orderID)
	require.NoError(t, err)

	tryInTx := func(sql string) error {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '200ms'`); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, sql, orderID)
			return err
		})
	}
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '200ms'`); err != nil {
			return err
		}
		_, err := store.GetOrderSummaryForShare(ctx, tx, orderID)
		return err
	}), "a sibling payout does not wait")

	var pgErr *pgconn.PgError
	err = tryInTx(`SELECT 1 FROM orders WHERE id = $1 FOR UPDATE`)
	require.ErrorAs(t, err, &pgErr, "a refund's lock waits")
	require.Equal(t, "55P03", pgErr.Code, "lock_not_available")
	err = tryInTx(`UPDATE orders SET status = 'refund_pending' WHERE id = $1`)
	require.ErrorAs(t, err, &pgErr, "so does a plain status update")
	require.Equal(t, "55P03", pgErr.Code)
}
