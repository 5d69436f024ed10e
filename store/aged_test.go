package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	veza "github.com/veza/backend"
	"github.com/veza/backend/internal/agedb"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/store"
	"github.com/veza/backend/store/dbtest"
)

// explainer is a Querier that EXPLAINs every statement before running it,
// twice: a custom plan (the parameters' values known, as pgx's first
// executions are) and a generic plan (PREPARE + EXECUTE under
// force_generic_plan, what a cached prepared statement switches to).
type explainer struct {
	t     *testing.T
	tx    pgx.Tx
	plans []explained
}

type explained struct {
	sql, mode string
	plan      any
}

func (e *explainer) explain(ctx context.Context, sql string, args []any) {
	e.t.Helper()
	var raw []byte
	require.NoError(e.t, e.tx.QueryRow(ctx, `EXPLAIN (FORMAT JSON) `+sql, args...).Scan(&raw), sql)
	e.record(sql, "custom", raw)

	_, err := e.tx.Exec(ctx, `SET LOCAL plan_cache_mode = force_generic_plan`)
	require.NoError(e.t, err)
	_, err = e.tx.Exec(ctx, `PREPARE aged_sweep AS `+sql)
	require.NoError(e.t, err, sql)
	// EXECUTE's arguments are literals: the server gives EXPLAIN EXECUTE
	// no parameters of its own.
	literals := make([]string, len(args))
	for i, a := range args {
		literals[i] = literal(e.t, a)
	}
	execute := `EXPLAIN (FORMAT JSON) EXECUTE aged_sweep`
	if len(args) > 0 {
		execute += `(` + strings.Join(literals, ", ") + `)`
	}
	require.NoError(e.t, e.tx.QueryRow(ctx, execute).Scan(&raw), sql)
	e.record(sql, "generic", raw)
	_, err = e.tx.Exec(ctx, `DEALLOCATE aged_sweep; SET LOCAL plan_cache_mode = auto`)
	require.NoError(e.t, err)
}

// literal is a a sweep's argument as an SQL literal.
func literal(t *testing.T, a any) string {
	switch v := a.(type) {
	case int, int64, float64:
		return fmt.Sprint(v)
	case string:
		return "'" + strings.ReplaceAll(v, "'", "''") + "'"
	case uuid.UUID:
		return "'" + v.String() + "'"
	case time.Time:
		return "'" + v.UTC().Format(time.RFC3339Nano) + "'"
	}
	t.Fatalf("no literal for %T", a)
	return ""
}

func (e *explainer) record(sql, mode string, raw []byte) {
	var doc []struct{ Plan any }
	require.NoError(e.t, json.Unmarshal(raw, &doc))
	e.plans = append(e.plans, explained{sql: sql, mode: mode, plan: doc[0].Plan})
}

func (e *explainer) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	e.explain(ctx, sql, args)
	return e.tx.Exec(ctx, sql, args...)
}

func (e *explainer) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	e.explain(ctx, sql, args)
	return e.tx.Query(ctx, sql, args...)
}

func (e *explainer) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	e.explain(ctx, sql, args)
	return e.tx.QueryRow(ctx, sql, args...)
}

// seqScans lists the plan's sequential scans of tables that grow with the
// business (a default partition or a catalog may be scanned: they stay
// small).
func seqScans(node any) []string {
	m, ok := node.(map[string]any)
	if !ok {
		return nil
	}
	var out []string
	if m["Node Type"] == "Seq Scan" {
		rel, _ := m["Relation Name"].(string)
		if !strings.HasSuffix(rel, "_default") {
			out = append(out, rel)
		}
	}
	if children, ok := m["Plans"].([]any); ok {
		for _, c := range children {
			out = append(out, seqScans(c)...)
		}
	}
	return out
}

// Every sweep and retention query reaches its rows through an index on a
// database of 1,000,000 orders (2,000,000 items, about 1,900,000 transfers,
// refunds and disputes in every state) and 300,000 finished River jobs:
// what a periodic job costs must not grow with the rows it does not want.
func TestSweepQueriesUseIndexesOnAnAgedDatabase(t *testing.T) {
	if testing.Short() {
		t.Skip("preloads a million orders")
	}
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t)
	counts, err := agedb.Preload(ctx, pool, agedb.Sizes{Orders: 1_000_000, LogRows: 300_000, Days: 30, EventDays: 30, Jobs: 300_000, Logf: t.Logf})
	require.NoError(t, err)
	t.Logf("preloaded in %s: %s", counts.Took.Round(time.Millisecond), counts)
	require.EqualValues(t, 1_000_000, counts.Orders)
	require.Greater(t, counts.Transfers, int64(1_800_000))

	var someTransfer uuid.UUID
	require.NoError(t, pool.QueryRow(ctx, `SELECT id FROM seller_transfers LIMIT 1`).Scan(&someTransfer))
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	e := &explainer{t: t, tx: tx}
	sweeps := []struct {
		name string
		run  func() error
	}{
		{"stuck orders", func() error { _, err := store.StuckOrders(ctx, e, time.Hour, 1000); return err }},
		{"failed orders to read again", func() error {
			_, err := store.FailedOrdersToRecheck(ctx, e, 30*24*time.Hour, 6*time.Hour, 1000)
			return err
		}},
		{"stuck refunds", func() error { _, err := store.StuckRefunds(ctx, e, time.Hour, 1000); return err }},
		{"orphan refunds", func() error { _, err := store.OrphanRefunds(ctx, e, 5*time.Minute, 1000); return err }},
		{"stuck disputes", func() error { _, err := store.StuckDisputes(ctx, e, time.Hour, 1000); return err }},
		{"payouts without a job", func() error {
			_, err := store.TransfersWithoutJob(ctx, e, string(veza.TransferPending), jobargs.PayoutArgs{}.Kind(), time.Hour, 1000)
			return err
		}},
		{"reversals without a job", func() error {
			_, err := store.TransfersWithoutJob(ctx, e, string(veza.TransferReversalPending), jobargs.ReversalArgs{}.Kind(), time.Hour, 1000)
			return err
		}},
		{"live job of a transfer", func() error {
			_, err := store.HasLiveJob(ctx, e, jobargs.PayoutArgs{}.Kind(), "transfer_id", someTransfer)
			return err
		}},
		{"late log rows", func() error {
			_, err := store.DeleteDefaultLogRowsBefore(ctx, e, time.Now().AddDate(0, 0, -90), 2000)
			return err
		}},
		{"expired events", func() error {
			_, err := store.DeleteEventsBefore(ctx, e, time.Now().AddDate(0, 0, -29), 2000)
			return err
		}},
	}
	for _, s := range sweeps {
		before := len(e.plans)
		require.NoError(t, s.run(), s.name)
		require.Greater(t, len(e.plans), before, "%s ran no statement", s.name)
	}
	// 10 sweeps; the two deletes run one statement per table.
	require.GreaterOrEqual(t, len(e.plans), 2*11)
	for _, p := range e.plans {
		require.Empty(t, seqScans(p.plan), "%s plan of\n%s\n%v", p.mode, p.sql, p.plan)
	}
}

// The check above can fail: the same walk finds the sequential scan of a
// query no index serves.
func TestSeqScansFindsASequentialScan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t)
	var raw []byte
	require.NoError(t, pool.QueryRow(ctx, `EXPLAIN (FORMAT JSON) SELECT id FROM orders WHERE amount = 5`).Scan(&raw))
	var doc []struct{ Plan any }
	require.NoError(t, json.Unmarshal(raw, &doc))
	require.Equal(t, []string{"orders"}, seqScans(doc[0].Plan))
}

// relations lists every relation a plan reads.
func relations(node any) []string {
	m, ok := node.(map[string]any)
	if !ok {
		return nil
	}
	var out []string
	if rel, ok := m["Relation Name"].(string); ok {
		out = append(out, rel)
	}
	if children, ok := m["Plans"].([]any); ok {
		for _, c := range children {
			out = append(out, relations(c)...)
		}
	}
	return out
}

// Processing an event records its result on the delivery's log row: with
// the row's received_at, one day partition of the 90-day log is touched,
// not all of them (each probe locks a partition and its indexes, which on
// an aged log halved settlement in make bench).
func TestSetWebhookResultTouchesOnePartition(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t)
	now := time.Now()
	_, err := store.EnsureLogPartitions(ctx, pool, now.AddDate(0, 0, -30), now.AddDate(0, 0, 1))
	require.NoError(t, err)
	id, err := store.InsertWebhookLog(ctx, pool, &store.WebhookLog{RequestID: "r", SignatureValid: true, Payload: "{}", ProcessingResult: store.ResultQueued})
	require.NoError(t, err)
	var receivedAt time.Time
	require.NoError(t, pool.QueryRow(ctx, `SELECT received_at FROM hyperswitch_webhook_log WHERE id = $1`, id).Scan(&receivedAt))

	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	e := &explainer{t: t, tx: tx}
	require.NoError(t, store.SetWebhookResult(ctx, e, id, &receivedAt, store.ResultOK))
	require.Len(t, e.plans, 2)
	for _, p := range e.plans {
		var partitions []string
		for _, rel := range relations(p.plan) {
			if strings.HasPrefix(rel, "hyperswitch_webhook_log_") {
				partitions = append(partitions, rel)
			}
		}
		require.Len(t, partitions, 1, "%s plan of %s", p.mode, p.sql)
	}
	var result string
	require.NoError(t, tx.QueryRow(ctx, `SELECT processing_result FROM hyperswitch_webhook_log WHERE id = $1`, id).Scan(&result))
	require.Equal(t, store.ResultOK, result)
}
