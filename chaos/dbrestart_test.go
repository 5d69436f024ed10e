package chaos_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/hyperswitch/hyperswitchtest"
	"github.com/veza/backend/internal/servicetest"
	"github.com/veza/backend/store/dbtest"
)

// TestDatabaseRestartUnderWebhookLoad stops PostgreSQL for a few seconds
// while webhooks arrive: the service stays up, /readyz goes 503 and back to
// 200, deliveries refused with a 5xx are redelivered (as Hyperswitch does)
// and every event ends processed exactly once.
func TestDatabaseRestartUnderWebhookLoad(t *testing.T) {
	t.Parallel()
	initdb, err := dbtest.FindPGBinary("initdb")
	if err != nil {
		t.Skip("needs initdb/pg_ctl to stop and start a server of its own")
	}
	cluster, err := dbtest.StartCluster(initdb)
	require.NoError(t, err)
	t.Cleanup(cluster.Stop)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, cluster.URL)
	require.NoError(t, err)
	_, err = admin.Exec(ctx, `CREATE DATABASE veza`)
	require.NoError(t, err)
	admin.Close(ctx)
	dbURL := dbtest.WithDatabase(cluster.URL, "veza")

	bin, err := servicetest.Build()
	require.NoError(t, err)
	env := map[string]string{"DATABASE_URL": dbURL,
		"HYPERSWITCH_ENABLED": "true", "HYPERSWITCH_BASE_URL": "http://127.0.0.1:1", "HYPERSWITCH_API_KEY": "k",
		"HYPERSWITCH_WEBHOOK_SECRET": webhookSecret, "RIVER_FETCH_COOLDOWN": "10ms", "SHUTDOWN_TIMEOUT": "5s",
		"DATABASE_MAX_CONNS": "20", "TRACK_STORAGE_DIR": t.TempDir()}
	migrate := exec.Command(bin, "migrate", "up")
	migrate.Env = []string{"PATH=" + os.Getenv("PATH"), "DATABASE_URL=" + dbURL}
	out, err := migrate.CombinedOutput()
	require.NoError(t, err, string(out))

	const n = 60
	pool := dbtest.PoolFor(t, dbURL)
	_, err = pool.Exec(ctx, `WITH u AS (INSERT INTO users (email, password_hash) VALUES ('b@x.test', 'h') RETURNING id)
		INSERT INTO orders (buyer_id, amount, currency, payment_id) SELECT id, 500, 'EUR', 'pay_' || g FROM u, generate_series(1, $1) g`, n)
	require.NoError(t, err)
	pool.Close()

	serve, err := servicetest.Start(servicetest.Opts{Bin: bin, Command: "serve", Env: env, LogPath: filepath.Join(t.TempDir(), "serve.log")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = serve.Stop(15 * time.Second) })
	base := serve.URL()

	// Watch readiness throughout.
	var saw503, sawRecovery atomic.Bool
	stopWatch := make(chan struct{})
	go func() {
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(50 * time.Millisecond):
			}
			resp, err := http.Get(base + "/readyz")
			if err != nil {
				continue
			}
			resp.Body.Close()
			if resp.StatusCode == 503 {
				saw503.Store(true)
			} else if resp.StatusCode == 200 && saw503.Load() {
				sawRecovery.Store(true)
			}
		}
	}()

	// The load: each event redelivered until a 2xx, like Hyperswitch.
	var refused atomic.Int64
	var wg sync.WaitGroup
	sent := make(chan struct{}, n)
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 60 * time.Millisecond) // spread over ~3.6s
			body := hyperswitchtest.WebhookBody(fmt.Sprintf("evt_restart_%d", i), "payment_succeeded",
				map[string]any{"payment_id": fmt.Sprintf("pay_%d", i), "status": "succeeded", "amount": 500, "currency": "EUR"})
			deadline := time.Now().Add(90 * time.Second)
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/hyperswitch", bytes.NewReader(body))
				req.Header.Set(hyperswitch.SignatureHeader, hyperswitch.Sign(webhookSecret, body))
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == 200 {
						sent <- struct{}{}
						return
					}
					refused.Add(1)
				}
				time.Sleep(200 * time.Millisecond)
			}
			t.Errorf("event %d never accepted", i)
		}(i)
	}

	time.Sleep(1200 * time.Millisecond)
	require.NoError(t, cluster.Halt())
	require.Eventually(t, saw503.Load, 10*time.Second, 20*time.Millisecond, "/readyz turns 503 while the database is down")
	time.Sleep(3 * time.Second)
	require.NoError(t, cluster.Resume())
	wg.Wait()
	require.Len(t, sent, n)
	require.Eventually(t, sawRecovery.Load, 30*time.Second, 20*time.Millisecond, "/readyz back to 200")
	close(stopWatch)

	require.NoError(t, serve.WaitReady(time.Second), "the service stayed up through the outage")

	pool = dbtest.PoolFor(t, dbURL)
	count := func(sql string) int {
		var c int
		require.NoError(t, pool.QueryRow(ctx, sql).Scan(&c))
		return c
	}
	require.Eventually(t, func() bool { return count(`SELECT count(*) FROM orders WHERE status = 'completed'`) == n },
		90*time.Second, 100*time.Millisecond, "every payment applied")
	require.Equal(t, n, count(`SELECT count(*) FROM river_job WHERE kind = 'hyperswitch_event'`), "one process-event job per event")
	require.Equal(t, n, count(`SELECT count(*) FROM river_job WHERE kind = 'email' AND args->>'template' = 'purchase_receipt'`), "one receipt per order")
	require.Equal(t, n, count(`SELECT count(DISTINCT event_id) FROM hyperswitch_webhook_log WHERE processing_result = 'ok'`))
	require.Equal(t, 0, count(`SELECT count(*) FROM (SELECT event_id FROM hyperswitch_webhook_log WHERE processing_result = 'ok' GROUP BY 1 HAVING count(*) > 1) d`), "processed exactly once")
	t.Logf("database restart: %d events, %d deliveries refused during the outage and redelivered", n, refused.Load())
	require.Positive(t, refused.Load(), "the outage was felt")
}
