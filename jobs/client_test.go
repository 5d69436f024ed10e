package jobs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/config"
	"github.com/veza/backend/jobs"
	"github.com/veza/backend/store"
	"github.com/veza/backend/store/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// noteArgs is a test job: it records that it ran on the row it names.
type noteArgs struct {
	NoteID int64 `json:"note_id"`
}

func (noteArgs) Kind() string { return "test_note" }

type noteWorker struct {
	river.WorkerDefaults[noteArgs]
	pool *pgxpool.Pool
}

func (w *noteWorker) Work(ctx context.Context, job *river.Job[noteArgs]) error {
	_, err := w.pool.Exec(ctx, `UPDATE test_notes SET worked = true WHERE id = $1`, job.Args.NoteID)
	return err
}

func riverConfig() config.RiverConfig {
	cfg, _ := config.Load(func(string) string { return "" })
	rc := cfg.River
	rc.FetchCooldown = 10 * time.Millisecond
	rc.FetchPollInterval = 50 * time.Millisecond
	return rc
}

// TestTransactionalEnqueue proves the rule that shapes the service: a state
// change and its job commit together or not at all.
func TestTransactionalEnqueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t)
	db := store.New(pool, nil)
	_, err := pool.Exec(ctx, `CREATE TABLE test_notes (id BIGSERIAL PRIMARY KEY, worked BOOLEAN NOT NULL DEFAULT false)`)
	require.NoError(t, err)

	workers := river.NewWorkers()
	river.AddWorker(workers, &noteWorker{pool: pool})
	client, err := jobs.NewClient(pool, jobs.ClientOpts{River: riverConfig(), Logger: zerolog.Nop(), Workers: workers})
	require.NoError(t, err)

	insertNote := func(tx pgx.Tx) (int64, error) {
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO test_notes DEFAULT VALUES RETURNING id`).Scan(&id); err != nil {
			return 0, err
		}
		_, err := client.InsertTx(ctx, tx, noteArgs{NoteID: id}, nil)
		return id, err
	}

	// Rolled back after both inserts: neither the row nor the job remains.
	errBoom := errors.New("boom")
	err = db.InTx(ctx, func(tx pgx.Tx) error {
		if _, err := insertNote(tx); err != nil {
			return err
		}
		return errBoom
	})
	require.ErrorIs(t, err, errBoom)
	var notes, jobsCount int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM test_notes`).Scan(&notes))
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM river_job`).Scan(&jobsCount))
	require.Zero(t, notes)
	require.Zero(t, jobsCount)

	// Committed: both exist, and the job is the one that names the row.
	var noteID int64
	require.NoError(t, db.InTx(ctx, func(tx pgx.Tx) error {
		var err error
		noteID, err = insertNote(tx)
		if err != nil {
			return err
		}
		rivertest.RequireInsertedTx[*riverpgxv5.Driver](ctx, t, tx, &noteArgs{NoteID: noteID}, nil)
		return nil
	}))
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'test_note'`).Scan(&jobsCount))
	require.Equal(t, 1, jobsCount)

	// And the worker runs it.
	events, cancel := client.Subscribe(river.EventKindJobCompleted)
	defer cancel()
	require.NoError(t, client.Start(ctx))
	defer func() { require.NoError(t, client.Stop(context.Background())) }()
	select {
	case ev := <-events:
		require.Equal(t, "test_note", ev.Job.Kind)
	case <-time.After(15 * time.Second):
		t.Fatal("job was not worked")
	}
	var worked bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT worked FROM test_notes WHERE id = $1`, noteID).Scan(&worked))
	require.True(t, worked)
}

// The insert-only client takes the queue settings the working client
// accepts: River refuses a poll interval under the fetch cooldown.
func TestInserterAcceptsTheWorkingClientsSettings(t *testing.T) {
	t.Parallel()
	rc := riverConfig()
	rc.FetchCooldown, rc.FetchPollInterval = 2*time.Second, 3*time.Second
	pool := dbtest.Pool(t)
	_, err := jobs.NewClient(pool, jobs.ClientOpts{River: rc, Logger: zerolog.Nop(), Workers: river.NewWorkers()})
	require.NoError(t, err)
	_, err = jobs.NewInserter(pool, jobs.ClientOpts{River: rc, Logger: zerolog.Nop()})
	require.NoError(t, err)
}

// RIVER_POLL_ONLY (PgBouncer in transaction mode): the client issues no
// LISTEN and still works jobs, found by polling.
func TestPollOnlyListensToNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	listeners := func(pool *pgxpool.Pool) int {
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND query ILIKE 'listen%'`).Scan(&n))
		return n
	}
	for _, pollOnly := range []bool{false, true} {
		pool := dbtest.Pool(t)
		_, err := pool.Exec(ctx, `CREATE TABLE test_notes (id BIGSERIAL PRIMARY KEY, worked BOOLEAN NOT NULL DEFAULT false)`)
		require.NoError(t, err)
		workers := river.NewWorkers()
		river.AddWorker(workers, &noteWorker{pool: pool})
		rc := riverConfig()
		rc.PollOnly = pollOnly
		client, err := jobs.NewClient(pool, jobs.ClientOpts{River: rc, Logger: zerolog.Nop(), Workers: workers})
		require.NoError(t, err)
		require.NoError(t, client.Start(ctx))
		var id int64
		require.NoError(t, pool.QueryRow(ctx, `INSERT INTO test_notes DEFAULT VALUES RETURNING id`).Scan(&id))
		_, err = client.Insert(ctx, noteArgs{NoteID: id}, nil)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			var worked bool
			require.NoError(t, pool.QueryRow(ctx, `SELECT worked FROM test_notes WHERE id = $1`, id).Scan(&worked))
			return worked
		}, 10*time.Second, 20*time.Millisecond, "poll only %v", pollOnly)
		if pollOnly {
			require.Zero(t, listeners(pool), "no LISTEN through a transaction-mode pooler")
		} else {
			require.Eventually(t, func() bool { return listeners(pool) > 0 }, 5*time.Second, 20*time.Millisecond,
				"the check can fail: by default River listens")
		}
		stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		require.NoError(t, client.Stop(stopCtx))
		cancel()
	}
}
