// Package agedb fills a migrated database with what a marketplace that has
// run for months holds: orders in every state with their items, transfers,
// refunds and disputes, a webhook log of many days, the dedupe events of
// its retention and a River job table full of finished jobs. The bench's
// aged step and the index tests use it: a query that is cheap on an empty
// database and a sequential scan on this one is a bug.
//
// Everything is generated in PostgreSQL (generate_series), with ids derived
// from the row number (see id), so the tables can be filled by
// separate statements in parallel without joining each other.
package agedb

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/veza/backend/store"
)

// Sizes says how much to preload.
type Sizes struct {
	// Orders spread over Days (two items, two sellers each).
	Orders int
	// LogRows Hyperswitch webhook deliveries spread evenly over Days days
	// before now, plus one more, already expired, day of LogRows/Days rows
	// before them (the day a retention run drops).
	LogRows int
	Days    int
	// EventDays: the dedupe events of the last EventDays days of deliveries
	// (WEBHOOK_EVENT_RETENTION_DAYS), one per three deliveries (the others
	// are redeliveries and invalid ones), and Stripe's, half as many.
	EventDays int
	// Jobs finished River jobs of the last day (River's completed-job
	// retention), of the kinds the payment path inserts.
	Jobs int
	// Parallel statements at once (the machine's cores).
	Parallel int
	// Logf, when set, hears how long each statement took.
	Logf func(format string, args ...any)
}

// Counts is what Preload wrote.
type Counts struct {
	Orders, Items, Transfers, Refunds, Disputes, LogRows, Events, Jobs int64
	Took                                                               time.Duration
}

// States of the generated orders, per thousand (by row number mod 1000):
// most completed, then refunded, failed and the rest; pending ones are
// abandoned checkouts, spread over the whole age like the others.
const orderStatus = `CASE
	WHEN g % 1000 < 900 THEN 'completed'
	WHEN g % 1000 < 940 THEN 'refunded'
	WHEN g % 1000 < 945 THEN 'refund_pending'
	WHEN g % 1000 < 965 THEN 'failed'
	WHEN g % 1000 < 980 THEN 'cancelled'
	WHEN g % 1000 < 990 THEN 'expired'
	WHEN g % 1000 < 995 THEN 'disputed'
	WHEN g % 1000 < 998 THEN 'charged_back'
	ELSE 'pending' END`

// Sellers, buyers and tracks the orders draw from.
const (
	sellers = 1000
	buyers  = 50000
	tracks  = 5000
)

// Kinds of generated ids: id(kind, n) is the uuid kkkkkkkk-0000-4000-8000-nnnnnnnnnnnn
// (hex), so the rows of a table are inserted in their primary key's order
// (an append to the index, not a random page each: a tenth of the preload's
// time). The rows the service writes during a measure get random uuids,
// into these indexes, as in production.
const (
	kSeller = iota + 1
	kBuyer
	kTrack
	kOrder
	kItem
	kTransfer
	kRefund
	kDispute
)

// id is the SQL expression of the generated uuid of kind for the row
// number expression n.
func id(kind int, n string) string {
	return fmt.Sprintf(`(lpad(to_hex(%d), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(%s), 12, '0'))::uuid`, kind, n)
}

// exec runs one statement in its own transaction with the replication
// role "replica" when the role may take it (a superuser, as the tests' and
// the bench's clusters have): triggers, foreign keys' included, do not
// fire, as in pg_restore --disable-triggers. The generated rows are
// consistent by construction, and checking millions of keys one by one
// would be most of the preload.
func exec(ctx context.Context, pool *pgxpool.Pool, sql string, args ...any) (int64, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SAVEPOINT role; SET LOCAL session_replication_role = replica`); err != nil {
		if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT role`); err != nil {
			return 0, err
		}
	}
	tag, err := tx.Exec(ctx, sql, args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), tx.Commit(ctx)
}

// Preload fills the database behind pool. It expects the app's migrations
// and no earlier preload (ids would collide).
func Preload(ctx context.Context, pool *pgxpool.Pool, s Sizes) (Counts, error) {
	start := time.Now()
	var c Counts
	if s.Parallel < 1 {
		s.Parallel = 2
	}
	days := max(s.Days, 1)
	age := fmt.Sprintf("make_interval(secs => %d)", days*86400)

	// People and tracks first: everything else points at them.
	if _, err := pool.Exec(ctx, `INSERT INTO users (id, email, password_hash, role, stripe_account_id, email_verified_at)
		SELECT `+id(kSeller, `g`)+`, 'aged-seller-' || g || '@aged.test', 'h', 'seller', 'acct_aged' || g, now()
		FROM generate_series(0, $1 - 1) g`, sellers); err != nil {
		return c, fmt.Errorf("sellers: %w", err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO users (id, email, password_hash, email_verified_at)
		SELECT `+id(kBuyer, `g`)+`, 'aged-buyer-' || g || '@aged.test', 'h', now()
		FROM generate_series(0, $1 - 1) g`, buyers); err != nil {
		return c, fmt.Errorf("buyers: %w", err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO tracks (id, owner_id, title, price_cents, currency, created_at)
		SELECT `+id(kTrack, `g`)+`, `+id(kSeller, `g % $2`)+`, 'Aged ' || g, 999 + (g % 2) * 501, 'EUR', now() - `+age+`
		FROM generate_series(0, $1 - 1) g`, tracks, sellers); err != nil {
		return c, fmt.Errorf("tracks: %w", err)
	}
	// The log's partitions, the expired day's included.
	now := time.Now()
	if _, err := store.EnsureLogPartitions(ctx, pool, now.AddDate(0, 0, -days-1), now.AddDate(0, 0, 1)); err != nil {
		return c, err
	}

	// Order g: created at now - g/Orders of the age; its two items are
	// tracks g and g+1 (prices 999 and 1500), so it costs 2499.
	created := `now() - ` + age + ` * (g::float8 / $1)`
	orderID := id(kOrder, `g`)
	statements := []struct {
		name string
		sql  string
		args []any
		n    *int64
	}{
		{"orders", `INSERT INTO orders (id, buyer_id, status, amount, currency, payment_id, payment_status, created_at, updated_at, completed_at, reconciled_at)
			SELECT ` + orderID + `, ` + id(kBuyer, `g % `+fmt.Sprint(buyers)) + `, st, 2499, 'EUR', 'aged_pay_' || lpad(g::text, 9, '0'),
				CASE st WHEN 'pending' THEN 'requires_payment_method' WHEN 'failed' THEN 'failed' WHEN 'cancelled' THEN 'cancelled'
					WHEN 'expired' THEN 'expired' ELSE 'succeeded' END,
				c, c + interval '1 minute', CASE WHEN st IN ('pending', 'failed', 'cancelled', 'expired') THEN NULL ELSE c + interval '2 seconds' END,
				CASE WHEN st = 'pending' THEN c + interval '1 hour' END
			FROM (SELECT g, ` + orderStatus + ` AS st, ` + created + ` AS c FROM generate_series(0, $1 - 1) g) o`,
			[]any{s.Orders}, &c.Orders},
		{"order items", `INSERT INTO order_items (id, order_id, track_id, seller_id, amount, currency)
			SELECT ` + id(kItem, `2 * g + k`) + `, ` + orderID + `, ` + id(kTrack, `(g + k) % $2`) + `,
				` + id(kSeller, `((g + k) % $2) % $3`) + `, 999 + ((g + k) % 2) * 501, 'EUR'
			FROM generate_series(0, $1 - 1) g, generate_series(0, 1) k`,
			[]any{s.Orders, tracks, sellers}, &c.Items},
		// Transfers of paid orders: completed (a few failed for good or
		// retrying), reversed for refunded and charged-back orders, being
		// reversed for refunds in flight.
		{"transfers", `INSERT INTO seller_transfers (id, order_id, seller_id, amount, platform_fee, currency, status, stripe_transfer_id, stripe_reversal_id,
				destination, payout_round, payout_key_sent_at, reversal_round, reversal_key_sent_at, retry_count, error_message, created_at, updated_at)
			SELECT ` + id(kTransfer, `2 * g + k`) + `, ` + orderID + `, ` + id(kSeller, `((g + k) % $2) % $3`) + `,
				(999 + ((g + k) % 2) * 501) * 9 / 10, (999 + ((g + k) % 2) * 501) - (999 + ((g + k) % 2) * 501) * 9 / 10, 'EUR', ts,
				CASE WHEN ts IN ('completed', 'reversed', 'reversal_pending') THEN 'tr_aged_' || g || '_' || k END,
				CASE WHEN ts = 'reversed' THEN 'trr_aged_' || g || '_' || k END,
				'acct_aged' || (((g + k) % $2) % $3), 1, c + interval '3 seconds',
				CASE WHEN ts IN ('reversed', 'reversal_pending') THEN 1 ELSE 0 END,
				CASE WHEN ts IN ('reversed', 'reversal_pending') THEN c + interval '1 day' END,
				CASE WHEN ts IN ('failed', 'permanently_failed') THEN 3 ELSE 0 END,
				CASE WHEN ts IN ('failed', 'permanently_failed') THEN 'stripe: account_invalid' END,
				c + interval '2 seconds', c + interval '4 seconds'
			FROM (SELECT g, k, ` + created + ` AS c, CASE
					WHEN st IN ('refunded', 'charged_back') THEN 'reversed'
					WHEN st = 'refund_pending' THEN 'reversal_pending'
					WHEN g % 10000 = 0 THEN 'permanently_failed'
					WHEN g % 10000 = 1 THEN 'failed'
					ELSE 'completed' END AS ts
				FROM (SELECT g, ` + orderStatus + ` AS st FROM generate_series(0, $1 - 1) g) o, generate_series(0, 1) k
				WHERE st IN ('completed', 'refunded', 'refund_pending', 'disputed', 'charged_back')) t`,
			[]any{s.Orders, tracks, sellers}, &c.Transfers},
		// Refunds: succeeded for refunded orders, in flight for
		// refund_pending ones, declined for one completed order in 100.
		{"refunds", `INSERT INTO refunds (id, order_id, status, amount, currency, reason, hyperswitch_refund_id, error_message, created_at, updated_at)
			SELECT ` + id(kRefund, `g`) + `, ` + orderID + `, rs, 2499, 'EUR', 'requested_by_customer', 'aged_ref_' || g,
				CASE WHEN rs = 'failed' THEN 'declined' END, c + interval '1 day', c + interval '1 day 1 minute'
			FROM (SELECT g, ` + created + ` AS c, CASE ` + orderStatus + ` WHEN 'refunded' THEN 'succeeded' WHEN 'refund_pending' THEN 'pending' ELSE 'failed' END AS rs,
					` + orderStatus + ` AS st FROM generate_series(0, $1 - 1) g) o
			WHERE st IN ('refunded', 'refund_pending') OR (st = 'completed' AND g % 100 = 7)`,
			[]any{s.Orders}, &c.Refunds},
		{"disputes", `INSERT INTO disputes (id, dispute_id, order_id, amount, currency, stage, status, reason, opened_at, closed_at, updated_at)
			SELECT ` + id(kDispute, `g`) + `, 'dp_aged_' || g, ` + orderID + `, 2499, 'EUR', 'dispute', CASE st WHEN 'disputed' THEN 'opened' ELSE 'lost' END,
				'fraudulent', c + interval '5 days', CASE WHEN st = 'charged_back' THEN c + interval '20 days' END, c + interval '5 days'
			FROM (SELECT g, ` + orderStatus + ` AS st, ` + created + ` AS c FROM generate_series(0, $1 - 1) g) o
			WHERE st IN ('disputed', 'charged_back')`,
			[]any{s.Orders}, &c.Disputes},
	}
	// The log: a day at a time, each its own statement (into its own
	// partition), oldest (the expired day) first, each a copy of one
	// generated day (agedb_log_day: generating the rows was 40% of the
	// log's time) with its own ids, times and event ids (the payload text
	// is the template's). A realistic
	// delivery is a few hundred bytes of JSON; one in 50 has a bad
	// signature.
	perDay := s.LogRows / days
	if perDay > 0 {
		if _, err := pool.Exec(ctx, `CREATE UNLOGGED TABLE agedb_log_day AS
			SELECT g, make_interval(secs => 86400 * g::float8 / $1) AS off, g % 50 <> 0 AS valid,
				CASE WHEN g % 50 = 0 THEN 'signature_invalid' WHEN g % 3 = 0 THEN 'ok' ELSE 'skipped' END AS result,
				md5(g::text) || md5(g::text) AS sha, length(p) AS bytes, p AS payload
			FROM (SELECT g, '{"merchant_id":"merchant_aged","event_id":"evt_aged_' || g || '","event_type":"payment_succeeded","content":{"type":"payment_details","object":{"payment_id":"aged_pay_' || lpad(g::text, 9, '0') || '","merchant_id":"merchant_aged","status":"succeeded","amount":2499,"net_amount":2499,"amount_received":2499,"currency":"EUR","connector":"stripe","created":"2026-01-01T00:00:00Z"}},"timestamp":"2026-01-01T00:00:00Z"}' AS p
				FROM generate_series(0, $1 - 1) g) t`, perDay); err != nil {
			return c, fmt.Errorf("log template: %w", err)
		}
		defer func() { _, _ = pool.Exec(context.WithoutCancel(ctx), `DROP TABLE IF EXISTS agedb_log_day`) }()
	}
	for d := days; d >= 0 && perDay > 0; d-- {
		// Day d is the 24 h before now - d days; the expired one (d =
		// Days) is the whole UTC day before those, so a retention of Days
		// drops exactly its partition.
		base := `now() - make_interval(days => $1::int)`
		if d == days {
			base = `(date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') - make_interval(days => $1::int) - interval '1 microsecond'`
		}
		statements = append(statements, struct {
			name string
			sql  string
			args []any
			n    *int64
		}{fmt.Sprintf("log day -%d", d), `INSERT INTO hyperswitch_webhook_log (id, received_at, request_id, source_ip, user_agent, signature_valid,
				event_id, event_type, payload, processing_result, processed_at, payload_sha256, payload_bytes)
			SELECT (lpad(to_hex(9), 8, '0') || '-' || lpad(to_hex($1::int), 4, '0') || '-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid,
				r, 'aged-' || $1::int || '-' || g, '203.0.113.7', 'Hyperswitch', valid, 'evt_aged_' || $1::int || '_' || g, 'payment_succeeded', payload,
				result, r + interval '20 milliseconds', sha, bytes
			FROM (SELECT t.*, ` + base + ` - t.off AS r FROM agedb_log_day t) l`,
			[]any{d}, &c.LogRows})
	}
	// Events: one per three deliveries of the event retention's days.
	for d := min(s.EventDays, days) - 1; d >= 0 && perDay > 0; d-- {
		statements = append(statements, struct {
			name string
			sql  string
			args []any
			n    *int64
		}{fmt.Sprintf("events day -%d", d), `INSERT INTO hyperswitch_events (event_id, event_type, received_at)
			SELECT 'evt_aged_' || $2::int || '_' || g, 'payment_succeeded', now() - make_interval(days => $2::int) - make_interval(secs => 86400 * g::float8 / $1)
			FROM generate_series(0, $1 - 1, 3) g`, []any{perDay, d}, &c.Events})
		// Stripe's (transfer.created, account.updated, ...): one per six
		// deliveries of Hyperswitch's.
		statements = append(statements, struct {
			name string
			sql  string
			args []any
			n    *int64
		}{fmt.Sprintf("stripe events day -%d", d), `INSERT INTO stripe_events (event_id, event_type, received_at)
			SELECT 'evt_aged_stripe_' || $2::int || '_' || g, 'transfer.created', now() - make_interval(days => $2::int) - make_interval(secs => 86400 * g::float8 / $1)
			FROM generate_series(0, $1 - 1, 6) g`, []any{perDay, d}, &c.Events})
	}
	if s.Jobs > 0 {
		statements = append(statements, struct {
			name string
			sql  string
			args []any
			n    *int64
		}{"river jobs", `INSERT INTO river_job (state, attempt, max_attempts, attempted_at, created_at, finalized_at, scheduled_at, priority, args, attempted_by, metadata, kind, queue)
			SELECT 'completed', 1, 25, c, c, c + interval '50 milliseconds', c, 1,
				CASE g % 3 WHEN 0 THEN jsonb_build_object('transfer_id', ` + id(kTransfer, `g`) + `)
					WHEN 1 THEN jsonb_build_object('event_id', 'evt_aged_job_' || g, 'event_type', 'payment_succeeded')
					ELSE jsonb_build_object('template', 'receipt', 'user_id', ` + id(kBuyer, `g % `+fmt.Sprint(buyers)) + `, 'order_id', ` + id(kOrder, `g`) + `) END,
				ARRAY['aged'], '{}', CASE g % 3 WHEN 0 THEN 'seller_payout' WHEN 1 THEN 'hyperswitch_event' ELSE 'email' END,
				CASE g % 3 WHEN 0 THEN 'stripe' WHEN 1 THEN 'events' ELSE 'email' END
			FROM (SELECT g, now() - make_interval(secs => 86400 * g::float8 / $1) AS c FROM generate_series(0, $1 - 1) g) j`,
			[]any{s.Jobs}, &c.Jobs})
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.Parallel)
	counted := make([]int64, len(statements))
	for i, st := range statements {
		g.Go(func() error {
			began := time.Now()
			n, err := exec(gctx, pool, st.sql, st.args...)
			if err != nil {
				return fmt.Errorf("%s: %w", st.name, err)
			}
			if s.Logf != nil {
				s.Logf("agedb: %s: %d rows in %s", st.name, n, time.Since(began).Round(time.Millisecond))
			}
			counted[i] = n
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return c, err
	}
	for i, st := range statements {
		*st.n += counted[i]
	}
	// Visibility maps and statistics, as autovacuum would have them after
	// months: without them the planner sees empty tables.
	//
	// The log is analysed only: vacuuming gigabytes of insert-only rows
	// nobody reads again would be most of the preload. So that autovacuum
	// does not do it either, in the middle of a measure, the past days'
	// partitions are left out of it: in production they were vacuumed
	// long ago, as they filled.
	if _, err := pool.Exec(ctx, `DO $$
		DECLARE r record;
		BEGIN
			FOR r IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
				WHERE i.inhparent = 'hyperswitch_webhook_log'::regclass
				AND c.relname LIKE 'hyperswitch\_webhook\_log\_p%' AND c.relname < 'hyperswitch_webhook_log_p' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD') LOOP
				EXECUTE format('ALTER TABLE %I SET (autovacuum_enabled = false)', r.relname);
			END LOOP;
		END $$`); err != nil {
		return c, fmt.Errorf("log partitions: %w", err)
	}
	tables := []string{"users", "tracks", "orders", "order_items", "seller_transfers", "refunds", "disputes",
		"hyperswitch_webhook_log", "hyperswitch_events", "stripe_events", "river_job"}
	for _, t := range tables {
		began := time.Now()
		command := `VACUUM ANALYZE ` + t
		if t == "hyperswitch_webhook_log" {
			// A small sample per partition: no query plans on the old
			// days' statistics, and the default sample of 92
			// partitions took 46 s.
			command = `BEGIN; SET LOCAL default_statistics_target = 10; ANALYZE ` + t + `; COMMIT`
		}
		if _, err := pool.Exec(ctx, command); err != nil {
			return c, fmt.Errorf("vacuum %s: %w", t, err)
		}
		if s.Logf != nil {
			s.Logf("agedb: vacuum %s in %s", t, time.Since(began).Round(time.Millisecond))
		}
	}
	c.Took = time.Since(start)
	return c, nil
}

// String is the counts in one line.
func (c Counts) String() string {
	parts := []string{
		fmt.Sprintf("%d orders", c.Orders), fmt.Sprintf("%d items", c.Items), fmt.Sprintf("%d transfers", c.Transfers),
		fmt.Sprintf("%d refunds", c.Refunds), fmt.Sprintf("%d disputes", c.Disputes), fmt.Sprintf("%d log rows", c.LogRows),
		fmt.Sprintf("%d events", c.Events), fmt.Sprintf("%d finished jobs", c.Jobs),
	}
	return strings.Join(parts, ", ")
}
