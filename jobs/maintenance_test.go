package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	veza "github.com/veza/backend"
	"github.com/veza/backend/config"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/jobs"
	"github.com/veza/backend/store"
	"github.com/veza/backend/store/dbtest"
)

// logs inserts n webhook log rows (and their events) received age ago.
func insertLogs(t *testing.T, db *store.DB, n int, age time.Duration) {
	t.Helper()
	_, err := db.Primary().Exec(context.Background(), `WITH l AS (
			INSERT INTO hyperswitch_webhook_log (request_id, signature_valid, event_id, payload, processing_result, received_at)
			SELECT 'r', true, gen_random_uuid()::text, '{}', 'ok', now() - make_interval(secs => $2) FROM generate_series(1, $1)
			RETURNING event_id, received_at)
		INSERT INTO hyperswitch_events (event_id, event_type, received_at) SELECT event_id, 'payment_succeeded', received_at FROM l`,
		n, age.Seconds())
	require.NoError(t, err)
}

func countRows(t *testing.T, db *store.DB, table string) int {
	t.Helper()
	var n int
	require.NoError(t, db.Primary().QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n))
	return n
}

func cleanupJob() *river.Job[jobargs.WebhookLogCleanupArgs] {
	return job(jobargs.WebhookLogCleanupArgs{}, 1, 5)
}

func TestCleanupDeletesOnlyExpiredRows(t *testing.T) {
	t.Parallel()
	db := store.New(dbtest.Pool(t), nil)
	insertLogs(t, db, 25, 31*24*time.Hour)
	insertLogs(t, db, 7, 29*24*time.Hour)
	w := &jobs.WebhookLogCleanupWorker{DB: db, RetentionDays: 30, BatchSize: 10, Pause: time.Millisecond, Logger: zerolog.Nop()}
	require.NoError(t, w.Work(context.Background(), cleanupJob()))
	require.Equal(t, 7, countRows(t, db, "hyperswitch_webhook_log"))
	require.Equal(t, 7, countRows(t, db, "hyperswitch_events"))

	// Nothing expired: a no-op.
	require.NoError(t, w.Work(context.Background(), cleanupJob()))
	require.Equal(t, 7, countRows(t, db, "hyperswitch_webhook_log"))
}

func TestCleanupZeroOrNegativeRetentionMeansNinetyDays(t *testing.T) {
	t.Parallel()
	for _, days := range []int{0, -5} {
		db := store.New(dbtest.Pool(t), nil)
		insertLogs(t, db, 3, 91*24*time.Hour)
		insertLogs(t, db, 4, 89*24*time.Hour)
		w := &jobs.WebhookLogCleanupWorker{DB: db, RetentionDays: days, Pause: time.Millisecond, Logger: zerolog.Nop()}
		require.NoError(t, w.Work(context.Background(), cleanupJob()))
		require.Equal(t, 4, countRows(t, db, "hyperswitch_webhook_log"), "retention %d", days)
	}
}

func TestCleanupStopsBetweenBatchesWhenCancelled(t *testing.T) {
	t.Parallel()
	db := store.New(dbtest.Pool(t), nil)
	insertLogs(t, db, 35, 100*24*time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	w := &jobs.WebhookLogCleanupWorker{DB: db, RetentionDays: 30, BatchSize: 10, Pause: time.Hour, Logger: zerolog.Nop()}
	done := make(chan error, 1)
	go func() { done <- w.Work(ctx, cleanupJob()) }()
	require.Eventually(t, func() bool { return countRows(t, db, "hyperswitch_webhook_log") == 25 }, 10*time.Second, 5*time.Millisecond)
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("did not stop promptly")
	}
	require.Less(t, time.Since(start), 5*time.Second)
	require.Equal(t, 25, countRows(t, db, "hyperswitch_webhook_log"), "stopped after one batch")
}

func TestSafetyNetReenqueuesRowsWithoutJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupPay(t, 1000, 800, 600)
	orphanPayout := b.transfer(t, 0)
	reversal := b.paidTransfer(t, 1, true)
	withJob := b.transfer(t, 2)
	_, err := b.db.Primary().Exec(ctx, `UPDATE seller_transfers SET updated_at = now() - interval '1 hour'`)
	require.NoError(t, err)

	cfg, _ := config.Load(func(string) string { return "" })
	client, err := jobs.NewClient(b.db.Primary(), jobs.ClientOpts{Logger: zerolog.Nop(), River: cfg.River})
	require.NoError(t, err)
	// withJob already has its payout job queued.
	_, err = client.Insert(ctx, jobargs.PayoutArgs{TransferID: withJob.ID}, nil)
	require.NoError(t, err)

	worker := &jobs.SafetyNetWorker{DB: b.db, Inserter: b.inserter, Jobs: b.settle.Jobs, Grace: 10 * time.Minute, Limit: 100, Logger: zerolog.Nop()}
	tw := rivertest.NewWorker(t, riverpgxv5.New(b.db.Primary()), &river.Config{}, worker)
	for run := 0; run < 2; run++ { // the second run adds nothing: every row has a live job
		require.NoError(t, b.db.InTx(ctx, func(tx pgx.Tx) error {
			res, err := tw.Work(ctx, t, tx, jobargs.SafetyNetArgs{}, nil)
			if err != nil {
				return err
			}
			require.Equal(t, river.EventKindJobCompleted, res.EventKind)
			return nil
		}))
	}
	require.NoError(t, b.db.InTx(ctx, func(tx pgx.Tx) error {
		rivertest.RequireManyInsertedTx[*riverpgxv5.Driver](ctx, t, tx, []rivertest.ExpectedJob{
			{Args: &jobargs.PayoutArgs{TransferID: withJob.ID}},
			{Args: &jobargs.PayoutArgs{TransferID: orphanPayout.ID}, Opts: &rivertest.RequireInsertedOpts{MaxAttempts: b.settle.Jobs.Payout.MaxAttempts}},
			{Args: &jobargs.ReversalArgs{TransferID: reversal.ID}, Opts: &rivertest.RequireInsertedOpts{MaxAttempts: b.settle.Jobs.Reversal.MaxAttempts}},
		})
		return nil
	}))
	require.Equal(t, veza.TransferPending, b.get(t, orphanPayout.ID).Status)
}

func TestDailyAt(t *testing.T) {
	t.Parallel()
	d := jobs.DailyAt{Hour: 3, Minute: 17}
	at := func(s string) time.Time { v, _ := time.Parse(time.RFC3339, s); return v }
	require.Equal(t, at("2026-11-26T03:17:00Z"), d.Next(at("2026-11-26T01:00:00Z")))
	require.Equal(t, at("2026-11-27T03:17:00Z"), d.Next(at("2026-11-26T03:17:00Z")), "strictly after")
	require.Equal(t, at("2026-11-27T03:17:00Z"), d.Next(at("2026-11-26T22:00:00+02:00").UTC().Add(6*time.Hour)))
	require.Equal(t, at("2027-01-01T03:17:00Z"), d.Next(at("2026-12-31T04:00:00Z")))
}

func TestPeriodicSchedule(t *testing.T) {
	t.Parallel()
	off, _ := config.Load(func(string) string { return "" })
	require.Len(t, jobs.PeriodicJobs(off), 4, "no reconcile sweep without Hyperswitch")
	on, _ := config.Load(func(k string) string {
		return map[string]string{"HYPERSWITCH_ENABLED": "true", "HYPERSWITCH_API_KEY": "k"}[k]
	})
	require.Len(t, jobs.PeriodicJobs(on), 5)
	disabled, _ := config.Load(func(k string) string {
		return map[string]string{"HYPERSWITCH_ENABLED": "true", "HYPERSWITCH_API_KEY": "k", "RECONCILE_WORKER_ENABLED": "false"}[k]
	})
	require.Len(t, jobs.PeriodicJobs(disabled), 4)
}

func dayOf(t time.Time) string { return t.UTC().Format("20060102") }

// The periodic job keeps partitions from yesterday to PartitionsAhead days
// ahead; running it again creates nothing.
func TestPartitionsCreatedAhead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := store.New(dbtest.Pool(t), nil)
	now := time.Now().UTC()
	w := &jobs.WebhookLogPartitionsWorker{DB: db, Logger: zerolog.Nop(), Now: func() time.Time { return now }}
	require.NoError(t, w.Work(ctx, job(jobargs.WebhookLogPartitionsArgs{}, 1, 5)))
	for _, table := range store.LogTables {
		parts, err := store.LogPartitions(ctx, db.Primary(), table)
		require.NoError(t, err)
		for d := -1; d <= jobs.PartitionsAhead; d++ {
			require.Contains(t, parts, table+"_p"+dayOf(now.AddDate(0, 0, d)), "%s day %+d", table, d)
		}
		require.NotContains(t, parts, table+"_p"+dayOf(now.AddDate(0, 0, jobs.PartitionsAhead+1)))
		require.Contains(t, parts, table+"_default")
	}
	n, err := store.EnsureLogPartitions(ctx, db.Primary(), now.AddDate(0, 0, -1), now.AddDate(0, 0, jobs.PartitionsAhead))
	require.NoError(t, err)
	require.Zero(t, n, "idempotent")
}

// A delivery whose day has no partition yet (the clock past midnight before
// the job ran) is stored in the default partition, and moves into its
// day's partition when that is created: nothing refused, nothing lost.
func TestDeliveryWithoutItsPartitionIsStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := store.New(dbtest.Pool(t), nil)
	midnight := time.Now().UTC().AddDate(0, 0, 10).Truncate(24 * time.Hour)
	for _, at := range []time.Time{midnight, midnight.Add(time.Millisecond), midnight.Add(-time.Millisecond)} {
		_, err := db.Primary().Exec(ctx, `INSERT INTO hyperswitch_webhook_log (request_id, signature_valid, payload, processing_result, received_at)
			VALUES ('late', true, '{}', 'ok', $1)`, at)
		require.NoError(t, err, "stored at %s", at)
	}
	_, err := db.Primary().Exec(ctx, `INSERT INTO stripe_webhook_log (signature_valid, payload, processing_result, received_at) VALUES (true, '{}', 'ok', $1)`, midnight)
	require.NoError(t, err)
	require.Equal(t, 3, countRows(t, db, "hyperswitch_webhook_log_default"))

	n, err := store.EnsureLogPartitions(ctx, db.Primary(), midnight, midnight)
	require.NoError(t, err)
	require.Equal(t, 2, n, "one per log")
	require.Equal(t, 2, countRows(t, db, "hyperswitch_webhook_log_p"+dayOf(midnight)), "the day's two rows moved in")
	require.Equal(t, 1, countRows(t, db, "hyperswitch_webhook_log_default"), "the previous day's stays until its partition exists")
	require.Equal(t, 1, countRows(t, db, "stripe_webhook_log_p"+dayOf(midnight)))
	require.Equal(t, 3, countRows(t, db, "hyperswitch_webhook_log"))
}

// Retention drops whole partitions of days before the cutoff's day, keeps
// the cutoff's day whole (rows up to a day past retention), deletes the
// default partition's expired rows, and keeps event ids for their own
// retention.
func TestCleanupDropsOnlyWholeExpiredPartitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := store.New(dbtest.Pool(t), nil)
	now := time.Now().UTC()
	cutoff := now.AddDate(0, 0, -30)
	_, err := store.EnsureLogPartitions(ctx, db.Primary(), now.AddDate(0, 0, -40), now)
	require.NoError(t, err)
	insertLogs(t, db, 6, 35*24*time.Hour)        // partition 35 days ago: dropped
	insertLogs(t, db, 4, 29*24*time.Hour)        // kept
	cutoffDay := cutoff.Truncate(24 * time.Hour) // the cutoff's day
	_, err = db.Primary().Exec(ctx, `INSERT INTO hyperswitch_webhook_log (request_id, signature_valid, payload, processing_result, received_at)
		VALUES ('cutoff-day', true, '{}', 'ok', $1)`, cutoffDay.Add(time.Minute))
	require.NoError(t, err)
	_, err = db.Primary().Exec(ctx, `INSERT INTO hyperswitch_webhook_log (request_id, signature_valid, payload, processing_result, received_at)
		VALUES ('default-old', true, '{}', 'ok', now() - interval '100 days')`)
	require.NoError(t, err)
	require.Equal(t, 1, countRows(t, db, "hyperswitch_webhook_log_default"))
	dropped := "hyperswitch_webhook_log_p" + dayOf(now.AddDate(0, 0, -35))

	w := &jobs.WebhookLogCleanupWorker{DB: db, RetentionDays: 30, EventRetentionDays: 32, BatchSize: 10, Pause: time.Millisecond, Logger: zerolog.Nop()}
	require.NoError(t, w.Work(ctx, cleanupJob()))
	parts, err := store.LogPartitions(ctx, db.Primary(), "hyperswitch_webhook_log")
	require.NoError(t, err)
	require.NotContains(t, parts, dropped)
	require.NotContains(t, parts, "hyperswitch_webhook_log_p"+dayOf(cutoff.AddDate(0, 0, -1)))
	require.Contains(t, parts, "hyperswitch_webhook_log_p"+dayOf(cutoff), "the cutoff's day is kept whole")
	require.Equal(t, 1, countRows(t, db, "hyperswitch_webhook_log WHERE request_id = 'cutoff-day'"))
	require.Zero(t, countRows(t, db, "hyperswitch_webhook_log_default"), "expired rows of the default partition are deleted")
	require.Equal(t, 5, countRows(t, db, "hyperswitch_webhook_log"))
	require.Equal(t, 4, countRows(t, db, "hyperswitch_events"), "events older than 32 days go, on their own retention")

	stripeParts, err := store.LogPartitions(ctx, db.Primary(), "stripe_webhook_log")
	require.NoError(t, err)
	require.NotContains(t, stripeParts, "stripe_webhook_log_p"+dayOf(now.AddDate(0, 0, -35)), "Stripe's log too")
}
