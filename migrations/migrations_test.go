package migrations_test

import (
	"context"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/migrations"
	"github.com/veza/backend/store/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

type testBundle struct {
	pool   *pgxpool.Pool
	runner *migrations.Runner
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool := dbtest.PoolFor(t, dbtest.EmptyURL(t))
	runner, err := migrations.NewRunner(pool, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	return &testBundle{pool: pool, runner: runner}
}

// upToBefore migrates up, then reverts label and every migration after it.
func (b *testBundle) upToBefore(t *testing.T, label string) {
	t.Helper()
	ctx := context.Background()
	_, err := b.runner.Up(ctx)
	require.NoError(t, err)
	all, err := migrations.All()
	require.NoError(t, err)
	for i, m := range all {
		if m.Label() == label {
			_, err = b.runner.Down(ctx, migrations.DownOpts{Steps: len(all) - i})
			require.NoError(t, err)
			return
		}
	}
	t.Fatalf("no migration %s", label)
}

func tables(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)
	require.NoError(t, err)
	var names []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		names = append(names, n)
	}
	return names
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)

	st, err := b.runner.Status(ctx)
	require.NoError(t, err)
	require.False(t, st.Current())
	require.Len(t, st.Pending, st.Latest)
	require.ErrorIs(t, b.runner.CheckCurrent(ctx), migrations.ErrBehind)

	applied, err := b.runner.Up(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, applied)
	require.NoError(t, b.runner.CheckCurrent(ctx))
	afterUp := tables(t, b.pool)
	require.Contains(t, afterUp, "users")
	require.Contains(t, afterUp, "river_job")

	// Idempotent: a second up applies nothing.
	again, err := b.runner.Up(ctx)
	require.NoError(t, err)
	require.Empty(t, again)

	// One step down reverts only the newest app migration.
	all, err := migrations.All()
	require.NoError(t, err)
	reverted, err := b.runner.Down(ctx, migrations.DownOpts{})
	require.NoError(t, err)
	require.Equal(t, []string{all[len(all)-1].Label()}, reverted)
	require.ErrorIs(t, b.runner.CheckCurrent(ctx), migrations.ErrBehind)

	// Everything down leaves an empty schema.
	_, err = b.runner.Down(ctx, migrations.DownOpts{All: true})
	require.NoError(t, err)
	require.Empty(t, tables(t, b.pool))

	// And up again restores exactly the same tables.
	_, err = b.runner.Up(ctx)
	require.NoError(t, err)
	require.Equal(t, afterUp, tables(t, b.pool))
	require.NoError(t, b.runner.CheckCurrent(ctx))
}

func TestAheadIsReported(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	_, err := b.runner.Up(ctx)
	require.NoError(t, err)

	// A newer binary applied version 9999.
	_, err = b.pool.Exec(ctx, `INSERT INTO goose_db_version (version_id, is_applied) VALUES (9999, true)`)
	require.NoError(t, err)

	st, err := b.runner.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, []int{9999}, st.Unknown)
	require.Contains(t, st.Describe(), "AHEAD")
	require.ErrorIs(t, b.runner.CheckCurrent(ctx), migrations.ErrAhead)
	_, err = b.runner.Up(ctx)
	require.ErrorIs(t, err, migrations.ErrAhead)
	_, err = b.runner.Down(ctx, migrations.DownOpts{})
	require.ErrorIs(t, err, migrations.ErrAhead)
}

func TestConcurrentUpAppliesOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() { _, err := b.runner.Up(ctx); errs <- err }()
	}
	for range 4 {
		require.NoError(t, <-errs)
	}
	var n int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM goose_db_version WHERE version_id > 0`).Scan(&n))
	all, _ := migrations.All()
	require.Equal(t, len(all), n, "each applied once")
}

func TestEveryMigrationHasBothDirections(t *testing.T) {
	t.Parallel()
	all, err := migrations.All()
	require.NoError(t, err)
	require.NotEmpty(t, all)
	for i, m := range all {
		require.Equal(t, i+1, m.Version, "versions are contiguous from 0001")
		raw, err := fs.ReadFile(os.DirFS("."), m.Label()+".sql")
		require.NoError(t, err)
		up, down, found := strings.Cut(string(raw), "-- +goose Down")
		require.True(t, found, "%s has a down section", m.Label())
		require.True(t, strings.HasPrefix(up, "-- +goose Up"), m.Label())
		require.Contains(t, down, ";", "%s: the down section does something", m.Label())
	}
}

// legacyHead builds what the runner before goose left: today's schema and
// its veza_schema_migrations table (that runner's exact DDL), no goose table.
func legacyHead(t *testing.T, b *testBundle) {
	t.Helper()
	ctx := context.Background()
	_, err := b.runner.Up(ctx)
	require.NoError(t, err)
	all, err := migrations.All()
	require.NoError(t, err)
	_, err = b.runner.Down(ctx, migrations.DownOpts{Steps: len(all) - 7}) // the old runner's head was 0007
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `DROP TABLE goose_db_version;
		CREATE TABLE veza_schema_migrations (
			version    INTEGER PRIMARY KEY,
			name       TEXT NOT NULL,
			applied_at TIMESTAMPTZ NOT NULL DEFAULT now());
		INSERT INTO veza_schema_migrations (version, name) VALUES
			(1, 'accounts'), (2, 'orders_webhooks'), (3, 'payouts_refunds'), (4, 'reconcile'),
			(5, 'track_storage'), (6, 'track_metadata'), (7, 'transfer_open_index')`)
	require.NoError(t, err)
}

func TestDatabaseMigratedByTheOldRunnerUpgradesInPlace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	legacyHead(t, b)
	_, err := b.pool.Exec(ctx, `INSERT INTO users (email, password_hash) VALUES ('kept@example.test', 'h')`)
	require.NoError(t, err)
	before, err := b.runner.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, []int{1, 2, 3, 4, 5, 6, 7}, before.Applied, "the old bookkeeping is read before adoption")

	applied, err := b.runner.Up(ctx)
	require.NoError(t, err)
	all, _ := migrations.All()
	var newer []string
	for _, m := range all[7:] {
		newer = append(newer, m.Label())
	}
	require.Equal(t, newer, applied, "nothing re-applied: only the migrations after the old head")
	require.NoError(t, b.runner.CheckCurrent(ctx))
	var users int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&users))
	require.Equal(t, 1, users)
	var legacy int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM veza_schema_migrations`).Scan(&legacy))
	require.Equal(t, 7, legacy, "the old table stays as it was: the previous release's processes stay ready and a rollback boots")
	st, err := b.runner.Status(ctx)
	require.NoError(t, err)
	require.Len(t, st.Applied, len(all))
	require.Equal(t, []int{1, 2, 3, 4, 5, 6, 7}, st.Applied[:7])

	// And goose owns it from now on: one step down reverts the newest.
	reverted, err := b.runner.Down(ctx, migrations.DownOpts{})
	require.NoError(t, err)
	require.Equal(t, []string{all[len(all)-1].Label()}, reverted)
}

func TestConcurrentUpgradeOfAnOldDatabaseAdoptsOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	legacyHead(t, b)
	errs := make(chan error, 3)
	for range 3 {
		go func() { _, err := b.runner.Up(ctx); errs <- err }()
	}
	for range 3 {
		require.NoError(t, <-errs)
	}
	var n int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM goose_db_version`).Scan(&n))
	all, _ := migrations.All()
	require.Equal(t, len(all)+1, n, "version 0 and each migration, once")
}

// The down steps that would lose data refuse, with a message naming what to
// do, and leave the migration applied; once the data is fixed they run.
func TestGuardedDownStepsRefuseUntilTheDataIsSafe(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		label        string
		unsafe, safe string // SQL that makes reverting lose data, and its fix
		refusal      string
		columns      []string // on tracks: kept while refused, gone after
	}{{
		label: "0004_reconcile",
		unsafe: `WITH u AS (INSERT INTO users (email, password_hash) VALUES ('a@b.test', 'h') RETURNING id)
			INSERT INTO orders (buyer_id, amount, currency, payment_id) SELECT id, 100, 'EUR', NULL FROM u`,
		safe:    `UPDATE orders SET payment_id = 'legacy-1'`,
		refusal: "refusing to revert 0004_reconcile: 1 orders have no payment_id",
	}, {
		label: "0005_track_storage",
		unsafe: `WITH u AS (INSERT INTO users (email, password_hash) VALUES ('a@b.test', 'h') RETURNING id)
			INSERT INTO tracks (owner_id, title, price_cents, currency, storage_backend, storage_key) SELECT id, 't', 1, 'EUR', 's3', 'tracks/a/b' FROM u`,
		safe:    `UPDATE tracks SET storage_backend = 'local'`,
		refusal: "refusing to revert 0005_track_storage: 1 tracks are stored in s3",
		columns: []string{"storage_backend", "storage_key"},
	}, {
		label: "0009_disputes",
		unsafe: `WITH u AS (INSERT INTO users (email, password_hash) VALUES ('a@b.test', 'h') RETURNING id),
			o AS (INSERT INTO orders (buyer_id, amount, currency, payment_id, status) SELECT id, 100, 'EUR', 'p1', 'refunded' FROM u RETURNING id)
			INSERT INTO disputes (dispute_id, order_id, amount, currency, status) SELECT 'dp_1', id, 100, 'EUR', 'lost' FROM o`,
		safe:    `DELETE FROM disputes`,
		refusal: "refusing to revert 0009_disputes: 1 disputes are recorded",
	}, {
		label: "0009_disputes",
		unsafe: `WITH u AS (INSERT INTO users (email, password_hash) VALUES ('a@b.test', 'h') RETURNING id)
			INSERT INTO orders (buyer_id, amount, currency, payment_id, status) SELECT id, 100, 'EUR', 'p1', 'charged_back' FROM u`,
		safe:    `UPDATE orders SET status = 'refunded'`,
		refusal: "refusing to revert 0009_disputes: 1 orders are disputed or charged back",
	}, {
		label: "0015_dispute_share_of_nothing",
		unsafe: `WITH u AS (INSERT INTO users (email, password_hash, role) VALUES ('a@b.test', 'h', 'seller') RETURNING id),
			o AS (INSERT INTO orders (buyer_id, amount, currency, payment_id, status) SELECT id, 100, 'EUR', 'p1', 'charged_back' FROM u RETURNING id, buyer_id)
			INSERT INTO seller_transfers (order_id, seller_id, amount, platform_fee, currency, reversal_amount) SELECT id, buyer_id, 90, 10, 'EUR', 0 FROM o`,
		safe:    `DELETE FROM seller_transfers`,
		refusal: "refusing to revert 0015_dispute_share_of_nothing: 1 transfers have a dispute share of nothing",
	}} {
		t.Run(tc.label, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := setup(t)
			_, err := b.runner.Up(ctx)
			require.NoError(t, err)
			all, _ := migrations.All()
			i := slices.IndexFunc(all, func(m migrations.Migration) bool { return m.Label() == tc.label })
			require.GreaterOrEqual(t, i, 0)
			steps := len(all) - i // this one and everything after it
			columns := func() int {
				var n int
				require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns WHERE table_name = 'tracks' AND column_name = ANY($1)`, tc.columns).Scan(&n))
				return n
			}
			_, err = b.pool.Exec(ctx, tc.unsafe)
			require.NoError(t, err)

			_, err = b.runner.Down(ctx, migrations.DownOpts{Steps: steps})
			require.ErrorContains(t, err, tc.refusal)
			st, err := b.runner.Status(ctx)
			require.NoError(t, err)
			require.Contains(t, st.Applied, all[i].Version, "not reverted")
			require.Equal(t, len(tc.columns), columns())

			_, err = b.pool.Exec(ctx, tc.safe)
			require.NoError(t, err)
			_, err = b.runner.Down(ctx, migrations.DownOpts{Steps: steps})
			require.NoError(t, err)
			require.Zero(t, columns(), "dropped")
		})
	}
}

func TestTrackStorageDownDropsItsIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	b.upToBefore(t, "0005_track_storage")
	var idx int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE indexname = 'tracks_storage_backend_s3_idx'`).Scan(&idx))
	require.Zero(t, idx)
}

// A runner waits for the migration lock as long as another holds it (the
// previous release's runner took the same key), then runs.
func TestRunnerWaitsForTheMigrationLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	holder, err := b.pool.Acquire(ctx)
	require.NoError(t, err)
	defer holder.Release()
	const vezaMig = 0x7665_7a61_2d6d_6967
	_, err = holder.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(vezaMig))
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() { _, err := b.runner.Up(ctx); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("up ran while another runner held the lock: %v", err)
	case <-time.After(1500 * time.Millisecond):
	}
	_, err = holder.Exec(ctx, `SELECT pg_advisory_unlock($1)`, int64(vezaMig))
	require.NoError(t, err)
	require.NoError(t, <-done)
	require.NoError(t, b.runner.CheckCurrent(ctx))
}

// 0014 converts the webhook logs in place, rows present: nothing lost,
// each row in its day's partition, the queries still on their indexes,
// Stripe's dedupe moved to stripe_events; its down step restores plain
// tables with every row.
func TestWebhookLogPartitioningKeepsEveryRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	b.upToBefore(t, "0014_webhook_log_partitions")

	// 0013's plain tables: 40 days of deliveries, invalid ones too, and a
	// Stripe event applied once then redelivered.
	_, err := b.pool.Exec(ctx, `
INSERT INTO hyperswitch_webhook_log (request_id, signature_valid, event_id, event_type, payload, processing_result, received_at)
	SELECT 'r' || g, g % 5 <> 0, 'evt_' || g, 'payment_succeeded', '{}', 'ok', now() - make_interval(hours => g)
	FROM generate_series(0, 40 * 24) g;
INSERT INTO stripe_webhook_log (signature_valid, event_id, event_type, payload, processing_result, received_at) VALUES
	(true, 'evt_s1', 'account.updated', '{}', 'ok', now() - interval '3 days'),
	(true, 'evt_s1', 'account.updated', '{}', 'duplicate', now() - interval '2 days'),
	(false, NULL, NULL, 'x', 'signature_invalid', now());`)
	require.NoError(t, err)
	count := func(sql string) int {
		var n int
		require.NoError(t, b.pool.QueryRow(ctx, sql).Scan(&n))
		return n
	}
	before := count(`SELECT count(*) FROM hyperswitch_webhook_log`)
	require.Equal(t, 961, before)
	sum := `SELECT sum(hashtext(id::text || received_at::text || request_id || signature_valid::text))::bigint FROM hyperswitch_webhook_log`
	var digest int64
	require.NoError(t, b.pool.QueryRow(ctx, sum).Scan(&digest))

	_, err = b.runner.Up(ctx)
	require.NoError(t, err)
	require.Equal(t, before, count(`SELECT count(*) FROM hyperswitch_webhook_log`))
	var after int64
	require.NoError(t, b.pool.QueryRow(ctx, sum).Scan(&after))
	require.Equal(t, digest, after, "the same rows, values and all")
	require.Zero(t, count(`SELECT count(*) FROM hyperswitch_webhook_log_default`), "every row in its day's partition")
	require.GreaterOrEqual(t, count(`SELECT count(*) FROM pg_inherits WHERE inhparent = 'hyperswitch_webhook_log'::regclass`), 42,
		"41 days of rows, tomorrow, and the default")
	require.Equal(t, 3, count(`SELECT count(*) FROM stripe_webhook_log`))
	require.Equal(t, 1, count(`SELECT count(*) FROM stripe_events WHERE event_id = 'evt_s1'`), "the applied event is the dedupe authority now")

	// The indexes exist on every partition: the forensics query can read
	// the partial index of each and merge them (a few rows per partition
	// here, so the planner is made to prefer indexes).
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `SET LOCAL enable_seqscan = off`)
	require.NoError(t, err)
	rows, err := tx.Query(ctx, `EXPLAIN SELECT id FROM hyperswitch_webhook_log WHERE signature_valid = false ORDER BY received_at DESC LIMIT 50`)
	require.NoError(t, err)
	var lines []string
	for rows.Next() {
		var l string
		require.NoError(t, rows.Scan(&l))
		lines = append(lines, l)
	}
	require.NoError(t, tx.Rollback(ctx))
	full := strings.Join(lines, "\n")
	require.Contains(t, full, "Merge Append", full)
	require.Equal(t, count(`SELECT count(*) FROM pg_inherits WHERE inhparent = 'hyperswitch_webhook_log'::regclass`),
		strings.Count(full, "Index Scan"), "an index scan on every partition:\n%s", full)
	require.NotContains(t, full, "Seq Scan", full)
	require.Equal(t, 2*count(`SELECT count(*) FROM pg_inherits WHERE inhparent = 'hyperswitch_webhook_log'::regclass`),
		count(`SELECT count(*) FROM pg_indexes WHERE tablename LIKE 'hyperswitch_webhook_log_%' AND indexdef NOT LIKE '%(id, received_at)%'`),
		"both indexes (received_at, and the partial one of invalid deliveries) on every partition")

	// Down (0014 and every step after it): plain tables again, every row,
	// Stripe's unique index back.
	all, err := migrations.All()
	require.NoError(t, err)
	i := slices.IndexFunc(all, func(m migrations.Migration) bool { return m.Label() == "0014_webhook_log_partitions" })
	require.GreaterOrEqual(t, i, 0)
	_, err = b.runner.Down(ctx, migrations.DownOpts{Steps: len(all) - i})
	require.NoError(t, err)
	require.Equal(t, before, count(`SELECT count(*) FROM hyperswitch_webhook_log`))
	require.Zero(t, count(`SELECT count(*) FROM pg_inherits WHERE inhparent = 'hyperswitch_webhook_log'::regclass`))
	require.Equal(t, 1, count(`SELECT count(*) FROM pg_indexes WHERE indexname = 'stripe_webhook_log_event_id_key'`))
	require.Zero(t, count(`SELECT count(*) FROM pg_tables WHERE tablename = 'stripe_events'`))
	require.Contains(t, tables(t, b.pool), "hyperswitch_webhook_log")
}

// 0017: a delivery's log row is updated once when its event is processed;
// the partitions leave room on each page so that update stays on its page
// (HOT: no index entry, no new page), and a day's partition made later
// takes the setting from the DEFAULT partition. Stripe's log, never
// updated, packs its pages.
func TestWebhookLogUpdateStaysOnItsPage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	_, err := b.runner.Up(ctx)
	require.NoError(t, err)
	conn, err := b.pool.Acquire(ctx) // one backend: its statistics are read back below
	require.NoError(t, err)
	defer conn.Release()

	_, err = conn.Exec(ctx, `SELECT veza_ensure_day_partition('hyperswitch_webhook_log', current_date + 20),
		veza_ensure_day_partition('stripe_webhook_log', current_date + 20)`)
	require.NoError(t, err)
	options := func(parent string) map[string]string {
		rows, err := conn.Query(ctx, `SELECT c.relname, COALESCE(array_to_string(c.reloptions, ','), '')
			FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass`, parent)
		require.NoError(t, err)
		out := map[string]string{}
		for rows.Next() {
			var name, opts string
			require.NoError(t, rows.Scan(&name, &opts))
			out[name] = opts
		}
		require.NoError(t, rows.Err())
		return out
	}
	hs := options("hyperswitch_webhook_log")
	require.GreaterOrEqual(t, len(hs), 4, "default, today, tomorrow and day +20: %v", hs)
	for name, opts := range hs {
		require.Equal(t, "fillfactor=70", opts, name)
	}
	for name, opts := range options("stripe_webhook_log") {
		require.Empty(t, opts, name)
	}

	// 500 deliveries of a real body's size in the new partition, each
	// updated once afterwards by its own statement, as the event worker
	// does. The updates run in one transaction, so no old version can be
	// pruned meanwhile (what pruning reclaims depends on every open
	// transaction of the database): the HOT ones are those the pages' free
	// space took, about 4 of each page's 11 rows. A packed page takes
	// about none.
	part := "hyperswitch_webhook_log_p" + time.Now().UTC().AddDate(0, 0, 20).Format("20060102")
	_, err = conn.Exec(ctx, `INSERT INTO hyperswitch_webhook_log (request_id, signature_valid, event_id, event_type, payload, processing_result, received_at)
		SELECT 'r' || g, true, 'evt_' || g, 'payment_succeeded', repeat('x', 400), 'pending', (current_date + 20)::timestamptz + make_interval(secs => g)
		FROM generate_series(1, 500) g`)
	require.NoError(t, err)
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	for g := 1; g <= 500; g++ {
		_, err := tx.Exec(ctx, `UPDATE hyperswitch_webhook_log SET processing_result = 'ok', processed_at = now() WHERE event_id = $1`, "evt_"+strconv.Itoa(g))
		require.NoError(t, err)
	}
	var updates, hot int
	require.NoError(t, tx.QueryRow(ctx, `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = $1`, part).Scan(&updates, &hot))
	require.Equal(t, 500, updates)
	require.GreaterOrEqual(t, hot, 150, "at least 30%% of the updates HOT on their page, got %d", hot)
}
