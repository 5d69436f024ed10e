package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/hyperswitch/hyperswitchtest"
	"github.com/veza/backend/store/dbtest"
)

func TestReconcileCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := dbtest.URL(t)
	env := envOf(map[string]string{"DATABASE_URL": dbURL})
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)

	var out bytes.Buffer
	require.NoError(t, run(ctx, []string{"app", "reconcile"}, env, &out, io.Discard))
	require.Regexp(t, `^enqueued job \d+\n$`, out.String())

	var buyer, order uuid.UUID
	require.NoError(t, conn.QueryRow(ctx, `INSERT INTO users (email, password_hash) VALUES ('b@x.test', 'h') RETURNING id`).Scan(&buyer))
	require.NoError(t, conn.QueryRow(ctx, `INSERT INTO orders (buyer_id, amount, currency, payment_id) VALUES ($1, 100, 'EUR', 'p1') RETURNING id`, buyer).Scan(&order))
	out.Reset()
	require.NoError(t, run(ctx, []string{"app", "reconcile", "--order", order.String()}, env, &out, io.Discard))
	require.Contains(t, out.String(), "enqueued job")

	err = run(ctx, []string{"app", "reconcile", "--refund", uuid.NewString()}, env, io.Discard, io.Discard)
	require.ErrorContains(t, err, "no such order or refund")
	for _, args := range [][]string{
		{"app", "reconcile", "--order", "x"},
		{"app", "reconcile", "--order", order.String(), "--refund", order.String()},
		{"app", "reconcile", "now"},
	} {
		var ue *usageError
		require.ErrorAs(t, run(ctx, args, env, io.Discard, io.Discard), &ue, strings.Join(args, " "))
	}

	var kinds []string
	rows, err := conn.Query(ctx, `SELECT kind FROM river_job ORDER BY id`)
	require.NoError(t, err)
	kinds, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"reconcile_sweep", "reconcile_order"}, kinds, "only enqueued; the CLI does no work")
}

func TestAdminReconcile(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	_, user := s.account(t, "user@example.test")
	status, _ := s.request(t, "POST", "/admin/reconcile", user, nil, map[string]any{})
	require.Equal(t, 403, status)

	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"app", "user", "create-admin", "--email", "ops@example.test", "--password", "ops password"},
		envOf(map[string]string{"DATABASE_URL": s.dbURL()}), &out, io.Discard))
	status, body := s.request(t, "POST", "/v1/auth/login", "", nil, map[string]string{"email": "ops@example.test", "password": "ops password"})
	require.Equal(t, 200, status)
	admin := body["token"].(string)

	status, body = s.request(t, "POST", "/admin/reconcile", admin, nil, map[string]any{})
	require.Equal(t, 202, status, body)
	require.Len(t, body["job_ids"], 1)

	status, body = s.request(t, "POST", "/admin/reconcile", admin, nil, map[string]any{"order_id": uuid.NewString()})
	require.Equal(t, 404, status, body)
	status, _ = s.request(t, "POST", "/admin/reconcile", admin, nil, map[string]any{"order_id": "nope"})
	require.Equal(t, 422, status)
	status, _ = s.request(t, "POST", "/admin/reconcile", admin, nil, map[string]any{"order_id": uuid.NewString(), "refund_id": uuid.NewString()})
	require.Equal(t, 422, status)
	status, _ = s.request(t, "POST", "/admin/reconcile", admin, nil, map[string]any{"everything": true})
	require.Equal(t, 400, status)
}

// TestPeriodicSweepOnLeaderOnly: two `app work` processes on one database;
// the reconcile sweep (every second here) is enqueued once per interval.
func TestPeriodicSweepOnLeaderOnly(t *testing.T) {
	t.Parallel()
	hs := hyperswitchtest.Start(t)
	dbURL := dbtest.URL(t)
	env := envOf(map[string]string{
		"DATABASE_URL": dbURL, "HYPERSWITCH_ENABLED": "true", "HYPERSWITCH_BASE_URL": hs.URL,
		"HYPERSWITCH_API_KEY": hyperswitchtest.APIKey, "HYPERSWITCH_WEBHOOK_SECRET": "s",
		"RECONCILE_INTERVAL": "1s", "RIVER_FETCH_COOLDOWN": "10ms", "SHUTDOWN_TIMEOUT": "5s",
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- run(ctx, []string{"app", "work"}, env, io.Discard, io.Discard) }()
	}
	// Wait for sweeps rather than a fixed window: under -race on a busy
	// machine two processes can take seconds to boot and elect a leader.
	conn, err := pgx.Connect(context.Background(), dbURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var sweeps, seconds int
	var span float64
	count := func() {
		require.NoError(t, conn.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT date_trunc('second', created_at)),
			COALESCE(EXTRACT(EPOCH FROM max(created_at) - min(created_at)), 0)::float8
			FROM river_job WHERE kind = 'reconcile_sweep'`).Scan(&sweeps, &seconds, &span))
	}
	deadline := time.Now().Add(45 * time.Second)
	for count(); sweeps < 5 && time.Now().Before(deadline); count() {
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	require.NoError(t, <-errs)
	require.NoError(t, <-errs)

	count()
	require.GreaterOrEqual(t, sweeps, 5, "the sweep keeps firing every interval")
	require.LessOrEqual(t, float64(sweeps), span+2, "once per interval, not once per process")
	require.Equal(t, sweeps, seconds, "never two in one interval")
}
