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
	"github.com/veza/backend/store/storetest"
)

// Every transfer reader stamps the row with the database's clock (ReadAt),
// the clock its key marks are written on: a key's age never depends on the
// app's clock. A Transfer not read from the database has no known age.
func TestTransferReadersStampTheDatabaseClock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t)
	db := store.New(pool, nil)
	dbNow := func() time.Time {
		var at time.Time
		require.NoError(t, pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&at))
		return at
	}
	before := dbNow()
	var created, locked *store.Transfer
	var ofOrder []store.Transfer
	require.NoError(t, db.InTx(ctx, func(tx pgx.Tx) error {
		order := storetest.CompletedOrder(t, tx, 1000)
		created = order.Transfer(t, tx, 0, veza.TransferPending)
		var err error
		if locked, err = store.GetTransferForUpdate(ctx, tx, created.ID); err != nil {
			return err
		}
		ofOrder, err = store.OrderTransfersForUpdate(ctx, tx, order.ID)
		return err
	}))
	read, err := store.GetTransfer(ctx, db.Primary(), created.ID)
	require.NoError(t, err)
	view, err := store.GetPayoutView(ctx, db.Primary(), created.ID)
	require.NoError(t, err)
	listed, err := store.ListTransfers(ctx, db.Primary(), nil, 10)
	require.NoError(t, err)
	require.Len(t, ofOrder, 1)
	require.NotEmpty(t, listed)
	after := dbNow()

	for name, tr := range map[string]*store.Transfer{"InsertTransfers": created, "GetTransferForUpdate": locked,
		"OrderTransfersForUpdate": &ofOrder[0], "GetTransfer": read, "GetPayoutView": view.Transfer, "ListTransfers": &listed[0]} {
		require.False(t, tr.ReadAt.Before(before) || tr.ReadAt.After(after), "%s: ReadAt %s outside the database's %s..%s", name, tr.ReadAt, before, after)
		age, known := tr.KeyAge(tr.ReadAt.Add(-time.Minute))
		require.True(t, known, name)
		require.Equal(t, time.Minute, age, name)
	}
	_, known := (&store.Transfer{}).KeyAge(time.Now())
	require.False(t, known, "no ReadAt: not read from the database")
}
