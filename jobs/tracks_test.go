package jobs_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/internal/logtest"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/jobs"
	"github.com/veza/backend/storage"
	"github.com/veza/backend/storage/storagetest"
	"github.com/veza/backend/store"
	"github.com/veza/backend/store/dbtest"
)

type storageBundle struct {
	db     *store.DB
	local  *storage.Local
	s3     *storage.S3
	stores jobs.Stores
	owner  uuid.UUID
	files  map[uuid.UUID][]byte
	logs   *logtest.Buffer
}

func setupStorage(t *testing.T) *storageBundle {
	t.Helper()
	local, err := storage.NewLocal(t.TempDir())
	require.NoError(t, err)
	s3 := storagetest.Start(t).Store(t, "veza-tracks")
	b := &storageBundle{db: store.New(dbtest.Pool(t), nil), local: local, s3: s3, files: map[uuid.UUID][]byte{}, logs: &logtest.Buffer{},
		stores: jobs.Stores{ByName: map[string]storage.Store{storage.BackendLocal: local, storage.BackendS3: s3}, Active: storage.BackendLocal}}
	require.NoError(t, b.db.Primary().QueryRow(context.Background(), `INSERT INTO users (email, password_hash) VALUES ('o@x.test', 'h') RETURNING id`).Scan(&b.owner))
	return b
}

// localTrack stores a file locally and commits its row, as an upload does.
// orderOf is an order in status holding track, bought from its owner.
func (b *storageBundle) orderOf(t *testing.T, status string, track uuid.UUID) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	var order uuid.UUID
	require.NoError(t, b.db.Primary().QueryRow(ctx, `INSERT INTO orders (buyer_id, status, amount, currency, payment_id) VALUES ($1, $2, 100, 'EUR', 'p') RETURNING id`, b.owner, status).Scan(&order))
	_, err := b.db.Primary().Exec(ctx, `INSERT INTO order_items (order_id, track_id, seller_id, amount, currency) VALUES ($1, $2, $3, 100, 'EUR')`, order, track, b.owner)
	require.NoError(t, err)
	return order
}

func (b *storageBundle) localTrack(t *testing.T, size int) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	data := make([]byte, size)
	_, _ = rand.Read(data)
	id := uuid.New()
	key := storage.TrackKey(b.owner.String(), id.String())
	obj, err := b.local.Put(ctx, key, bytes.NewReader(data), 0, "audio/mpeg")
	require.NoError(t, err)
	ct := "audio/mpeg"
	_, err = store.CreateTrack(ctx, b.db.Primary(), store.CreateTrackParams{ID: id, OwnerID: b.owner, Title: "T", PriceCents: 100, Currency: "EUR",
		StorageBackend: storage.BackendLocal, StorageKey: &key, SizeBytes: obj.Size, ContentType: &ct, SHA256: &obj.SHA256})
	require.NoError(t, err)
	b.files[id] = data
	return id
}

func (b *storageBundle) client(t *testing.T) *jobs.Client {
	t.Helper()
	return serviceClient(t, jobs.Deps{DB: b.db, Stores: b.stores, Logger: zerolog.New(b.logs)})
}

func (b *storageBundle) settle(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, b.db.Primary().QueryRow(context.Background(),
			`SELECT count(*) FROM river_job WHERE state IN ('available', 'running', 'retryable', 'scheduled', 'pending')`).Scan(&n))
		return n == 0
	}, 90*time.Second, 50*time.Millisecond, b.logs.String())
}

// TestStorageMigrationConverges moves 200 local tracks to S3, stopping the
// workers hard in the middle and starting fresh ones; every row ends on s3
// with a verified object, the local files are gone, and a second run
// changes nothing.
func TestStorageMigrationConverges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupStorage(t)
	for i := 0; i < 200; i++ {
		b.localTrack(t, 4<<10+i)
	}
	first := b.client(t)
	n, err := jobs.EnqueueStorageMigration(ctx, first, b.db)
	require.NoError(t, err)
	require.Equal(t, 200, n)
	again, err := jobs.EnqueueStorageMigration(ctx, first, b.db)
	require.NoError(t, err)
	require.Equal(t, 200, again, "asked again while queued")
	var queued int
	require.NoError(t, b.db.Primary().QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'migrate_track_storage'`).Scan(&queued))
	require.Equal(t, 200, queued, "unique per track: nothing doubled")

	require.NoError(t, first.Start(ctx))
	require.Eventually(t, func() bool {
		local, _, err := store.StorageCounts(ctx, b.db.Primary())
		require.NoError(t, err)
		return local <= 150
	}, 60*time.Second, 5*time.Millisecond)
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	require.NoError(t, first.StopAndCancel(stopCtx), "a hard stop mid-run")
	cancel()

	second := b.client(t)
	require.NoError(t, second.Start(ctx))
	t.Cleanup(func() { _ = second.Stop(context.Background()) })
	b.settle(t)

	local, s3, err := store.StorageCounts(ctx, b.db.Primary())
	require.NoError(t, err)
	require.Zero(t, local)
	require.EqualValues(t, 200, s3)
	for id, data := range b.files {
		key := storage.TrackKey(b.owner.String(), id.String())
		f, err := b.s3.Open(ctx, key)
		require.NoError(t, err)
		back, err := io.ReadAll(f)
		f.Close()
		require.NoError(t, err)
		require.True(t, bytes.Equal(data, back), "object of %s verified", id)
		_, err = b.local.Stat(ctx, key)
		require.ErrorIs(t, err, storage.ErrNotFound, "local file removed")
	}

	n, err = jobs.EnqueueStorageMigration(ctx, second, b.db)
	require.NoError(t, err)
	require.Zero(t, n, "a second run has nothing to do")
}

func TestMigrationRefusesACorruptLocalFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupStorage(t)
	id := b.localTrack(t, 1000)
	path, err := b.local.Path(storage.TrackKey(b.owner.String(), id.String()))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, []byte("bit rot"), 0o600))
	w := &jobs.MigrateTrackWorker{DB: b.db, Stores: b.stores, Logger: zerolog.Nop()}
	err = w.Work(ctx, job(jobargs.MigrateTrackArgs{TrackID: id}, 1, 10))
	require.ErrorContains(t, err, "does not match its recorded sha256")
	tr, err := store.GetTrack(ctx, b.db.Primary(), id)
	require.NoError(t, err)
	require.Equal(t, storage.BackendLocal, tr.StorageBackend, "the row stays local")
}

func TestOrphanCleanup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupStorage(t)
	kept := b.localTrack(t, 100)
	old := time.Now().Add(-48 * time.Hour)
	put := func(key string, age time.Time) string {
		_, err := b.local.Put(ctx, key, bytes.NewReader([]byte("x")), 0, "")
		require.NoError(t, err)
		p, _ := b.local.Path(key)
		require.NoError(t, os.Chtimes(p, age, age))
		return p
	}
	orphan := put("tracks/"+b.owner.String()+"/"+uuid.NewString(), old)
	young := put("tracks/"+b.owner.String()+"/"+uuid.NewString(), time.Now())
	partial := filepath.Join(filepath.Dir(orphan), storage.TempPrefix+"123")
	require.NoError(t, os.WriteFile(partial, []byte("half"), 0o600))
	require.NoError(t, os.Chtimes(partial, old, old))
	keptPath, _ := b.local.Path(storage.TrackKey(b.owner.String(), kept.String()))
	require.NoError(t, os.Chtimes(keptPath, old, old))

	w := &jobs.OrphanCleanupWorker{DB: b.db, Stores: b.stores, Grace: 24 * time.Hour, Logger: zerolog.Nop()}
	require.NoError(t, w.Work(ctx, job(jobargs.OrphanCleanupArgs{}, 1, 3)))
	for path, want := range map[string]bool{orphan: false, partial: false, young: true, keptPath: true} {
		_, err := os.Stat(path)
		require.Equal(t, want, err == nil, path)
	}
	var n int
	require.NoError(t, b.db.Primary().QueryRow(ctx, `SELECT count(*) FROM tracks`).Scan(&n))
	require.Equal(t, 1, n, "rows are never touched")
}

// A deleted track's file stays while an order that a buyer paid for (or is
// paying, or disputes) references it; once none does, it goes.
func TestDeletedTrackFileKeptForItsBuyers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupStorage(t)
	pool := b.db.Primary()
	bought := b.localTrack(t, 100)
	unsold := b.localTrack(t, 100)
	order := b.orderOf(t, "completed", bought)
	_, err := pool.Exec(ctx, `UPDATE tracks SET deleted_at = now() WHERE id IN ($1, $2)`, bought, unsold)
	require.NoError(t, err)
	path := func(id uuid.UUID) string {
		p, _ := b.local.Path(storage.TrackKey(b.owner.String(), id.String()))
		old := time.Now().Add(-48 * time.Hour)
		_ = os.Chtimes(p, old, old)
		return p
	}
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	boughtPath, unsoldPath := path(bought), path(unsold)

	del := &jobs.DeleteObjectWorker{DB: b.db, Stores: b.stores}
	for _, id := range []uuid.UUID{bought, unsold} {
		require.NoError(t, del.Work(ctx, job(jobargs.DeleteObjectArgs{Backend: storage.BackendLocal, Key: storage.TrackKey(b.owner.String(), id.String())}, 1, 3)))
	}
	require.True(t, exists(boughtPath), "a buyer of a completed order still streams it")
	require.False(t, exists(unsoldPath))

	sweep := &jobs.OrphanCleanupWorker{DB: b.db, Stores: b.stores, Grace: 24 * time.Hour, Logger: zerolog.Nop()}
	require.NoError(t, sweep.Work(ctx, job(jobargs.OrphanCleanupArgs{}, 1, 3)))
	require.True(t, exists(boughtPath), "the orphan sweep keeps it too")

	_, err = pool.Exec(ctx, `UPDATE orders SET status = 'refunded' WHERE id = $1`, order)
	require.NoError(t, err)
	require.NoError(t, sweep.Work(ctx, job(jobargs.OrphanCleanupArgs{}, 1, 3)))
	require.False(t, exists(boughtPath), "no buyer left: removed")
}

// A failed order can still be completed by a retry at the provider: the
// file of a deleted track it holds is kept (for 30 days).
func TestDeletedTrackFileKeptForAFailedOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupStorage(t)
	pool := b.db.Primary()
	id := b.localTrack(t, 100)
	order := b.orderOf(t, "failed", id)
	_, err := pool.Exec(ctx, `UPDATE tracks SET deleted_at = now() WHERE id = $1`, id)
	require.NoError(t, err)
	key := storage.TrackKey(b.owner.String(), id.String())
	p, _ := b.local.Path(key)
	del := &jobs.DeleteObjectWorker{DB: b.db, Stores: b.stores}
	require.NoError(t, del.Work(ctx, job(jobargs.DeleteObjectArgs{Backend: storage.BackendLocal, Key: key}, 1, 3)))
	_, err = os.Stat(p)
	require.NoError(t, err, "kept: a retry may still complete the order")
	_, err = pool.Exec(ctx, `UPDATE orders SET updated_at = now() - interval '31 days' WHERE id = $1`, order)
	require.NoError(t, err)
	require.NoError(t, del.Work(ctx, job(jobargs.DeleteObjectArgs{Backend: storage.BackendLocal, Key: key}, 1, 3)))
	_, err = os.Stat(p)
	require.True(t, os.IsNotExist(err), "a month later it is gone")
}

// A deleted track its buyers still stream moves to S3 with the others
// (or decommissioning the local disk would cut them off); a deleted one
// nobody needs is not counted as left to migrate.
func TestStorageMigrationMovesDeletedTracksBuyersNeed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupStorage(t)
	pool := b.db.Primary()
	bought, unsold := b.localTrack(t, 100), b.localTrack(t, 100)
	b.orderOf(t, "completed", bought)
	_, err := pool.Exec(ctx, `UPDATE tracks SET deleted_at = now() WHERE id IN ($1, $2)`, bought, unsold)
	require.NoError(t, err)

	c := b.client(t)
	n, err := jobs.EnqueueStorageMigration(ctx, c, b.db)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the bought one")
	require.NoError(t, c.Start(ctx))
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	b.settle(t)
	local, s3, err := store.StorageCounts(ctx, pool)
	require.NoError(t, err)
	require.Zero(t, local, "done: nothing a buyer needs is left on local disk")
	require.EqualValues(t, 1, s3)
	_, err = b.s3.Stat(ctx, storage.TrackKey(b.owner.String(), bought.String()))
	require.NoError(t, err, "the buyer's file is in S3")
}
