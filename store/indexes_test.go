package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	veza "github.com/veza/backend"
	"github.com/veza/backend/store"
	"github.com/veza/backend/store/dbtest"
)

// The safety net's query reaches transfers through the partial index of
// open transfers, even in a generic plan (which cannot read the status
// parameter), so it stays cheap however many completed transfers pile up.
func TestSafetyNetQueryUsesTheOpenTransfersIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t)
	_, transferID := guardFixture(t, pool)
	_, err := pool.Exec(ctx, `UPDATE seller_transfers SET updated_at = now() - interval '1 hour' WHERE id = $1`, transferID)
	require.NoError(t, err)

	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off`)
		require.NoError(t, err)
		ids, err := store.TransfersWithoutJob(ctx, tx, string(veza.TransferPending), "seller_payout", time.Minute, 10)
		require.NoError(t, err)
		require.Len(t, ids, 1)
		var scans int64
		require.NoError(t, tx.QueryRow(ctx, `SELECT pg_stat_get_xact_numscans('seller_transfers_open_idx'::regclass)`).Scan(&scans))
		require.Positive(t, scans, "the query used the partial index")
		return nil
	}))
}
