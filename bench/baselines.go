package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/store/dbtest"
)

// pgbench is PostgreSQL doing the webhook path's statements, alone, with
// the bench's clients: the ceiling of webhook ingest on this machine today.
// Measured once.
func (b *bench) pgbench(ctx context.Context) (float64, error) {
	if b.pgbenchTPS != nil {
		return *b.pgbenchTPS, nil
	}
	script := filepath.Join(b.dir, "webhook.sql")
	if err := os.WriteFile(script, []byte(`BEGIN;
INSERT INTO hyperswitch_webhook_log (request_id, signature_valid, event_id, event_type, payload, processing_result)
  VALUES ('bench', true, md5(random()::text), 'payment_succeeded', '{"event_type":"payment_succeeded","content":{"object":{}}}', 'queued');
INSERT INTO hyperswitch_events (event_id, event_type) VALUES (md5(random()::text), 'payment_succeeded');
INSERT INTO river_job (args, kind, max_attempts, queue, priority, state) VALUES ('{"event_id":"x"}', 'bench_baseline', 15, 'bench_baseline', 1, 'available');
COMMIT;
`), 0o600); err != nil {
		return 0, err
	}
	bin, err := dbtest.FindPGBinary("pgbench")
	if err != nil {
		return 0, err
	}
	out, err := exec.Command(bin, "-n", "-c", strconv.Itoa(b.clients), "-j", "2", "-T", "8", "-f", script,
		"-h", "127.0.0.1", "-p", b.pgPort, "-U", "postgres", "bench").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pgbench: %v: %s", err, out)
	}
	m := regexp.MustCompile(`tps = ([\d.]+) \(without initial connection time\)`).FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pgbench output: %s", out)
	}
	tps, _ := strconv.ParseFloat(string(m[1]), 64)
	b.add(Result{Name: "baseline: pgbench, webhook statements", Value: tps, Unit: "tx/s", Note: fmt.Sprintf("%d clients", b.clients)})
	if _, err := b.pool.Exec(ctx, `DELETE FROM river_job WHERE kind = 'bench_baseline'; TRUNCATE hyperswitch_webhook_log, hyperswitch_events`); err != nil {
		return 0, err
	}
	b.pgbenchTPS = &tps
	return tps, nil
}

// bareRiver is River working no-op jobs with the shipped settings of queue
// events: the ceiling of any job-driven step. Measured once.
func (b *bench) bareRiver(ctx context.Context) (float64, error) {
	if b.riverRate != nil {
		return *b.riverRate, nil
	}
	shipped := shippedConfig()
	workers, cooldown := shipped.River.Workers[jobargs.QueueEvents], shipped.River.FetchCooldown
	registry := river.NewWorkers()
	var done atomic.Int64
	river.AddWorker(registry, river.WorkFunc(func(ctx context.Context, j *river.Job[noopArgs]) error { done.Add(1); return nil }))
	client, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{
		Queues:        map[string]river.QueueConfig{"bench_noop": {MaxWorkers: workers}},
		Workers:       registry,
		FetchCooldown: cooldown,
		Logger:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return 0, err
	}
	n := b.size.riverJobs
	for inserted := 0; inserted < n; inserted += 1000 {
		params := make([]river.InsertManyParams, 1000)
		for i := range params {
			params[i] = river.InsertManyParams{Args: noopArgs{}}
		}
		if _, err := client.InsertMany(ctx, params); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	if err := client.Start(ctx); err != nil {
		return 0, err
	}
	if err := b.waitFor(3*time.Minute, func() bool { return done.Load() >= int64(n) }); err != nil {
		return 0, err
	}
	rate := float64(n) / time.Since(start).Seconds()
	_ = client.Stop(ctx)
	b.add(Result{Name: "baseline: bare River no-op jobs", Value: rate, Unit: "jobs/s", Note: fmt.Sprintf("%d workers, FetchCooldown %s", workers, cooldown)})
	if _, err := b.pool.Exec(ctx, `DELETE FROM river_job WHERE kind = 'bench_noop'`); err != nil {
		return 0, err
	}
	b.riverRate = &rate
	return rate, nil
}

type noopArgs struct{}

func (noopArgs) Kind() string { return "bench_noop" }
func (noopArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: "bench_noop"}
}
