package dbtest_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/store/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func TestDatabasesAreIsolated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := dbtest.Pool(t), dbtest.Pool(t)
	_, err := a.Exec(ctx, `INSERT INTO users (email, password_hash) VALUES ('a@x.test', 'h')`)
	require.NoError(t, err)
	var n int
	require.NoError(t, b.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&n))
	require.Zero(t, n)
}

// TestEphemeralCluster exercises the initdb/pg_ctl path even when the suite
// runs on TEST_DATABASE_URL.
func TestEphemeralCluster(t *testing.T) {
	t.Parallel()
	initdb, err := dbtest.FindPGBinary("initdb")
	if err != nil {
		t.Skip("no initdb on this machine")
	}
	c, err := dbtest.StartCluster(initdb)
	require.NoError(t, err)
	url := c.URL
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	var one int
	require.NoError(t, conn.QueryRow(ctx, `SELECT 1`).Scan(&one))
	require.Equal(t, 1, one)
	conn.Close(ctx)
	c.Stop()
	_, err = os.Stat(c.Dir)
	require.True(t, os.IsNotExist(err), "cluster directory removed")
	_, err = pgx.Connect(ctx, url)
	require.Error(t, err, "server stopped")
}
