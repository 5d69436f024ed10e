package store_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/store"
	"github.com/veza/backend/store/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func TestWorkersHaveTheirOwnPool(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := store.Open(ctx, store.Opts{URL: dbtest.URL(t), MaxConns: 7, WorkerMaxConns: 3})
	require.NoError(t, err)
	workers := db.Workers()
	require.NotSame(t, db.Primary(), workers.Primary())
	require.EqualValues(t, 7, db.Primary().Config().MaxConns)
	require.EqualValues(t, 3, workers.Primary().Config().MaxConns)
	require.Same(t, db.ForRead(), db.Primary(), "no read URL: reads go to the primary")
	var name string
	require.NoError(t, workers.InTx(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT current_setting('application_name')`).Scan(&name)
	}))
	require.Equal(t, "veza-workers", name, "told apart in pg_stat_activity")

	db.Close()
	require.Error(t, workers.Ping(ctx), "Close closes the worker pool too")
}

func TestWorkersShareThePoolWhenNotSized(t *testing.T) {
	t.Parallel()
	db, err := store.Open(context.Background(), store.Opts{URL: dbtest.URL(t), MaxConns: 4})
	require.NoError(t, err)
	defer db.Close()
	require.Same(t, db, db.Workers())
}
