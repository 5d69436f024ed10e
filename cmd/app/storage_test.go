package main

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/veza/backend/storage/storagetest"
	"github.com/veza/backend/store/dbtest"
)

func TestMigrateStorageCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := dbtest.URL(t)
	pool := dbtest.PoolFor(t, dbURL)
	_, err := pool.Exec(ctx, `WITH u AS (INSERT INTO users (email, password_hash) VALUES ('a@b.test', 'h') RETURNING id)
		INSERT INTO tracks (owner_id, title, price_cents, currency, storage_key) SELECT id, 't' || g, 1, 'EUR', 'tracks/x/' || g FROM u, generate_series(1, 3) g`)
	require.NoError(t, err)

	err = run(ctx, []string{"app", "migrate-storage"}, envOf(map[string]string{"DATABASE_URL": dbURL}), io.Discard, io.Discard)
	require.ErrorContains(t, err, "AWS_S3_ENABLED")

	s3 := storagetest.Start(t)
	env := envOf(map[string]string{"DATABASE_URL": dbURL, "AWS_S3_ENABLED": "true", "AWS_S3_ENDPOINT": s3.Endpoint, "AWS_S3_BUCKET": "veza"})
	var out bytes.Buffer
	require.NoError(t, run(ctx, []string{"app", "migrate-storage"}, env, &out, io.Discard))
	require.Contains(t, out.String(), "enqueued 3 track migration jobs")
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'migrate_track_storage'`).Scan(&n))
	require.Equal(t, 3, n, "only enqueued: the CLI copies nothing")

	var ue *usageError
	require.ErrorAs(t, run(ctx, []string{"app", "migrate-storage", "--now"}, env, io.Discard, io.Discard), &ue)
}
