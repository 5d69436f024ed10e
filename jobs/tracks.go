package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/settle"
	"github.com/veza/backend/storage"
	"github.com/veza/backend/store"
)

// Stores are the configured storage backends by name; s3 is absent when
// AWS_S3_ENABLED is off. Active receives new uploads.
type Stores struct {
	ByName map[string]storage.Store
	Active string
}

// Get returns the named backend or an error naming the missing setting.
func (s Stores) Get(name string) (storage.Store, error) {
	st, ok := s.ByName[name]
	if !ok {
		return nil, fmt.Errorf("storage backend %q is not configured (AWS_S3_ENABLED / TRACK_STORAGE_BACKEND)", name)
	}
	return st, nil
}

// DeleteObjectWorker deletes; deleting a missing object is success.
type DeleteObjectWorker struct {
	river.WorkerDefaults[jobargs.DeleteObjectArgs]
	DB     *store.DB
	Stores Stores
}

func (w *DeleteObjectWorker) Work(ctx context.Context, job *river.Job[jobargs.DeleteObjectArgs]) error {
	st, err := w.Stores.Get(job.Args.Backend)
	if err != nil {
		return err
	}
	// A deleted track's file stays while a buyer's order needs it; the
	// orphan sweep removes it once none does.
	known, err := store.KnownKeys(ctx, w.DB.Primary(), job.Args.Backend, []string{job.Args.Key})
	if err != nil || known[job.Args.Key] {
		return err
	}
	return st.Delete(ctx, job.Args.Key)
}

// MigrateTrackWorker copies the file to S3, verifies size and sha256 by
// reading the copy back, then flips the row to s3 and enqueues the local
// file's removal in one transaction. Re-running is safe at every step: the
// copy is idempotent (same key) and the flip is guarded by the old backend.
type MigrateTrackWorker struct {
	river.WorkerDefaults[jobargs.MigrateTrackArgs]
	DB       *store.DB
	Stores   Stores
	Inserter settle.Inserter
	Logger   zerolog.Logger
}

func (w *MigrateTrackWorker) Timeout(*river.Job[jobargs.MigrateTrackArgs]) time.Duration {
	return 30 * time.Minute
}

func (w *MigrateTrackWorker) Work(ctx context.Context, job *river.Job[jobargs.MigrateTrackArgs]) error {
	local, err := w.Stores.Get(storage.BackendLocal)
	if err != nil {
		return err
	}
	s3, err := w.Stores.Get(storage.BackendS3)
	if err != nil {
		return river.JobCancel(err)
	}
	// Deleted tracks too: LocalTracks enqueued it because buyers still
	// stream it.
	t, err := store.GetTrackEvenDeleted(ctx, w.DB.Primary(), job.Args.TrackID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if t.StorageBackend != storage.BackendLocal || t.StorageKey == nil {
		return nil // already migrated
	}
	key := *t.StorageKey

	want := ""
	if t.SHA256 != nil {
		want = *t.SHA256
	}
	f, err := local.Open(ctx, key)
	if err != nil {
		return fmt.Errorf("opening local file %s: %w", key, err)
	}
	contentType := "application/octet-stream"
	if t.ContentType != nil {
		contentType = *t.ContentType
	}
	obj, err := s3.Put(ctx, key, f, 0, contentType)
	f.Close()
	if err != nil {
		return fmt.Errorf("copying %s to s3: %w", key, err)
	}
	if want == "" {
		want = obj.SHA256 // legacy row without a checksum: the local file is the truth
	}
	if obj.SHA256 != want {
		return fmt.Errorf("the local file of %s does not match its recorded sha256: not migrating", t.ID)
	}

	// Verify by reading the copy back.
	rf, err := s3.Open(ctx, key)
	if err != nil {
		return fmt.Errorf("reading back %s from s3: %w", key, err)
	}
	got, size, err := storage.SHA256Of(rf)
	rf.Close()
	if err != nil {
		return fmt.Errorf("reading back %s from s3: %w", key, err)
	}
	if got != want || size != obj.Size {
		return fmt.Errorf("s3 copy of %s does not verify (sha256 %s vs %s, %d vs %d bytes)", key, got, want, size, obj.Size)
	}

	var flipped bool
	err = w.DB.InTx(ctx, func(tx pgx.Tx) error {
		if flipped, err = store.FlipTrackToS3(ctx, tx, t.ID, want); err != nil || !flipped {
			return err
		}
		if t.SizeBytes == 0 {
			if err := store.SetTrackChecksum(ctx, tx, t.ID, want, size); err != nil {
				return err
			}
		}
		_, err := w.Inserter.InsertTx(ctx, tx, jobargs.DeleteObjectArgs{Backend: storage.BackendLocal, Key: key}, nil)
		return err
	})
	if err != nil {
		return err
	}
	if flipped {
		w.Logger.Info().Ctx(ctx).Str("track_id", t.ID.String()).Int64("size_bytes", size).Msg("track migrated to s3")
	}
	return nil
}

// EnqueueStorageMigration enqueues one migration job per local track (unique
// per track, so re-running doubles nothing) and returns how many it asked
// for. The CLI and the admin endpoint share it.
func EnqueueStorageMigration(ctx context.Context, ins settle.Inserter, db *store.DB) (int, error) {
	total := 0
	after := uuid.Nil
	for {
		ids, err := store.LocalTracks(ctx, db.Primary(), after, 1000)
		if err != nil {
			return total, err
		}
		if len(ids) == 0 {
			return total, nil
		}
		params := make([]river.InsertManyParams, len(ids))
		for i, id := range ids {
			params[i] = river.InsertManyParams{Args: jobargs.MigrateTrackArgs{TrackID: id}}
		}
		err = db.InTx(ctx, func(tx pgx.Tx) error {
			_, err := ins.InsertManyTx(ctx, tx, params)
			return err
		})
		if err != nil {
			return total, err
		}
		total += len(ids)
		after = ids[len(ids)-1]
	}
}

// OrphanCleanupWorker lists the active backend's tracks/ prefix and removes
// objects older than Grace with no live row of that backend (an upload whose
// commit failed and whose cleanup did not run, a partial local upload). It
// never touches rows.
type OrphanCleanupWorker struct {
	river.WorkerDefaults[jobargs.OrphanCleanupArgs]
	DB     *store.DB
	Stores Stores
	Grace  time.Duration
	Logger zerolog.Logger
}

func (w *OrphanCleanupWorker) Timeout(*river.Job[jobargs.OrphanCleanupArgs]) time.Duration {
	return time.Hour
}

func (w *OrphanCleanupWorker) Work(ctx context.Context, job *river.Job[jobargs.OrphanCleanupArgs]) error {
	st, err := w.Stores.Get(w.Stores.Active)
	if err != nil {
		return err
	}
	cutoff := time.Now().Add(-w.Grace)
	var batch []string
	removed := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		known, err := store.KnownKeys(ctx, w.DB.Primary(), st.Name(), batch)
		if err != nil {
			return err
		}
		for _, key := range batch {
			if known[key] {
				continue
			}
			if err := st.Delete(ctx, key); err != nil {
				return err
			}
			removed++
		}
		batch = batch[:0]
		return nil
	}
	err = st.List(ctx, "tracks/", func(o storage.Object) error {
		if o.UpdatedAt.After(cutoff) {
			return nil
		}
		batch = append(batch, o.Key)
		if len(batch) == 500 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if removed > 0 {
		w.Logger.Warn().Ctx(ctx).Int("removed", removed).Str("backend", st.Name()).Msg("orphan objects removed")
	}
	return err
}
