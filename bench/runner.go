package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/veza/backend/config"
	"github.com/veza/backend/hyperswitch/hyperswitchtest"
	"github.com/veza/backend/internal/servicetest"
	"github.com/veza/backend/migrations"
	"github.com/veza/backend/store/dbtest"
	"github.com/veza/backend/stripeconnect/stripetest"
)

const secret = "whsec_bench"

// Result is one row of the table.
type Result struct {
	Name     string  `json:"name"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	Baseline float64 `json:"baseline,omitempty"`
	Ratio    float64 `json:"ratio,omitempty"`
	Target   string  `json:"target,omitempty"`
	Pass     *bool   `json:"pass,omitempty"`
	Note     string  `json:"note,omitempty"`
}

func pass(ok bool) *bool { return &ok }

// bench is what every step shares: the database, the fakes, the service
// under test, the results so far and the figures steps ask each other for.
type bench struct {
	size       sizes
	dir        string
	dbURL      string
	pgPort     string
	pool       *pgxpool.Pool
	serve      *servicetest.Service
	hs         *hyperswitchtest.Server
	stripe     *stripetest.Server
	clients    int
	statements bool // pg_stat_statements is loaded (-statements)
	results    []Result
	closers    []func()

	// Figures measured once, on first request (see baselines.go, ingest.go).
	pgbenchTPS *float64
	riverRate  *float64
	ingestRate *ingestFigures
	settleRate *float64
}

func newBench(ctx context.Context, size sizes, statements bool) (*bench, error) {
	b := &bench{size: size, clients: 16, statements: statements}
	ok := false
	defer func() {
		if !ok {
			b.close()
		}
	}()
	var err error
	if b.dir, err = os.MkdirTemp("", "veza-bench-"); err != nil {
		return nil, err
	}
	b.closers = append(b.closers, func() { os.RemoveAll(b.dir) })

	initdb, err := dbtest.FindPGBinary("initdb")
	if err != nil {
		return nil, err
	}
	say("starting PostgreSQL")
	var settings []string
	if statements {
		settings = []string{"shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track=all"}
	}
	cluster, err := dbtest.StartCluster(initdb, settings...)
	if err != nil {
		return nil, err
	}
	b.closers = append(b.closers, cluster.Stop)
	b.pgPort = regexp.MustCompile(`:(\d+)/`).FindStringSubmatch(cluster.URL)[1]
	admin, err := pgx.Connect(ctx, cluster.URL)
	if err != nil {
		return nil, err
	}
	_, err = admin.Exec(ctx, `CREATE DATABASE bench`)
	admin.Close(ctx)
	if err != nil {
		return nil, err
	}
	b.dbURL = dbtest.WithDatabase(cluster.URL, "bench")
	if b.pool, err = pgxpool.New(ctx, b.dbURL); err != nil {
		return nil, err
	}
	b.closers = append(b.closers, b.pool.Close)
	runner, err := migrations.NewRunner(b.pool, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	if _, err := runner.Up(ctx); err != nil {
		return nil, err
	}
	if statements {
		if _, err := b.pool.Exec(ctx, `CREATE EXTENSION pg_stat_statements`); err != nil {
			return nil, err
		}
	}

	var stop func()
	b.hs, stop = hyperswitchtest.New()
	b.closers = append(b.closers, stop)
	b.stripe, stop = stripetest.New()
	b.closers = append(b.closers, stop)

	say("building and starting app serve")
	if err := b.startServe(); err != nil {
		return nil, err
	}
	ok = true
	return b, nil
}

// close undoes newBench, newest first.
func (b *bench) close() {
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i]()
	}
}

func (b *bench) startServe() error {
	b.closers = append(b.closers, servicetest.Cleanup)
	if err := b.launchServe(nil); err != nil {
		return err
	}
	b.closers = append(b.closers, func() { _ = b.serve.Stop(20 * time.Second) })
	return nil
}

// restartServe stops serve and starts it again with extra variables (the
// telemetry step's on and off); the address may change.
func (b *bench) restartServe(extra map[string]string) error {
	if err := b.serve.Stop(20 * time.Second); err != nil {
		return err
	}
	return b.launchServe(extra)
}

func (b *bench) launchServe(extra map[string]string) error {
	bin, err := servicetest.Build()
	if err != nil {
		return err
	}
	b.serve, err = servicetest.Start(servicetest.Opts{Bin: bin, Command: "serve", Env: b.serviceEnv(extra), LogPath: filepath.Join(b.dir, "serve.log")})
	return err
}

// serviceEnv is the environment of the service's processes: the fakes,
// the bench's database, no limits, then BENCH_SERVE_* and extra.
func (b *bench) serviceEnv(extra map[string]string) map[string]string {
	env := servicetest.FakeEnv(b.hs, b.stripe, nil, secret)
	for k, v := range map[string]string{
		"DATABASE_URL": b.dbURL, "LOG_LEVEL": "warn", "RECONCILE_WORKER_ENABLED": "false",
		"RATE_LIMIT_PER_MINUTE": "1000000", "RATE_LIMIT_AUTH_PER_MINUTE": "1000000",
		"TRACK_STORAGE_DIR": filepath.Join(b.dir, "tracks"), "PPROF_ADDR": os.Getenv("BENCH_PPROF_ADDR"),
		// The fakes have no limit: these steps measure the service, not
		// the providers' pace (issue 19's PSP-bound steps set limits).
		"STRIPE_RATE_LIMIT": "0", "HYPERSWITCH_RATE_LIMIT": "0", "SMTP_RATE_LIMIT": "0",
	} {
		env[k] = v
	}
	// BENCH_SERVE_<NAME>=v runs serve with NAME=v: how the shipped defaults
	// are tuned (docs/DEPLOYMENT.md), e.g. BENCH_SERVE_RIVER_FETCH_COOLDOWN=20ms.
	for _, kv := range os.Environ() {
		if rest, ok := strings.CutPrefix(kv, "BENCH_SERVE_"); ok {
			name, value, _ := strings.Cut(rest, "=")
			env[name] = value
			say("serve runs with %s", rest)
		}
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

func (b *bench) base() string { return b.serve.URL() }

func (b *bench) add(r Result) {
	if r.Baseline > 0 && r.Ratio == 0 {
		r.Ratio = r.Value / r.Baseline
	}
	b.results = append(b.results, r)
}

// shippedConfig is the configuration the service ships with (no env).
func shippedConfig() *config.Config {
	cfg, _ := config.Load(func(string) string { return "" })
	return cfg
}

// peakRSS is the serve process's high-water resident set (VmHWM), in MiB.
func (b *bench) peakRSS() float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", b.serve.Pid()))
	if err != nil {
		return 0
	}
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(raw)
	if m == nil {
		return 0
	}
	kb, _ := strconv.ParseFloat(string(m[1]), 64)
	return kb / 1024
}

func (b *bench) count(ctx context.Context, sql string, args ...any) int {
	var n int
	if err := b.pool.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		say("count: %v", err)
	}
	return n
}

// waitFor polls cond every 100 ms: the polls are queries on the database
// under test, and 100 ms keeps them under 2% of any measured step.
func (b *bench) waitFor(limit time.Duration, cond func() bool) error {
	return waitEvery(limit, 100*time.Millisecond, cond)
}

func waitEvery(limit, every time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		time.Sleep(every)
	}
	return nil
}

// medianRun returns the run whose figure is the median, and every run's
// figure in run order ("a, b, c") for the note: whole numbers, and to a
// tenth below 100 (latencies in ms, small rates).
func medianRun[T any](runs []T, figure func(T) float64) (T, string) {
	each := make([]string, len(runs))
	for i, r := range runs {
		each[i] = fmt.Sprintf("%.0f", figure(r))
		if figure(r) < 100 {
			each[i] = fmt.Sprintf("%.1f", figure(r)) // latencies in ms, small rates
		}
	}
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(a, b T) int { return cmp.Compare(figure(a), figure(b)) })
	return sorted[len(sorted)/2], strings.Join(each, ", ")
}

// waitTransfers waits until the two transfers of every order paid with
// payments are completed. It watches the fake Stripe's count of transfers
// (no database work) until it has grown by that many since fakeBefore,
// then counts this run's transfers alone in the database. A count of
// every completed transfer read the whole table: on the aged database,
// 1.9M rows and 0.6 s a poll, the bench loading the database it measures
// with its own polls, and counting transfers the sweeps completed too.
func (b *bench) waitTransfers(ctx context.Context, payments []string, fakeBefore int, limit time.Duration) error {
	want := 2 * len(payments)
	deadline := time.Now().Add(limit)
	if err := waitEvery(limit, 5*time.Millisecond, func() bool { return b.stripe.TransferCount()-fakeBefore >= want }); err != nil {
		return err
	}
	return b.waitFor(time.Until(deadline), func() bool {
		return b.count(ctx, `SELECT count(*) FROM seller_transfers t JOIN orders o ON o.id = t.order_id
			WHERE o.payment_id = ANY($1) AND t.status = 'completed'`, payments) >= want
	})
}

// drain waits for the service's queues to empty.
func (b *bench) drain(ctx context.Context) error {
	return b.waitFor(5*time.Minute, func() bool {
		return b.count(ctx, `SELECT count(*) FROM river_job WHERE state IN ('available', 'running', 'retryable')`) == 0
	})
}

// profile saves a CPU profile of serve for the next d, from now, when
// BENCH_PPROF_ADDR is set (serve's PPROF_ADDR).
func (b *bench) profile(step string, d time.Duration) {
	addr := os.Getenv("BENCH_PPROF_ADDR")
	if addr == "" {
		return
	}
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())))
		if err != nil {
			say("pprof: %v", err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(filepath.Join(os.TempDir(), "veza-"+step+".pprof"))
		if err != nil {
			return
		}
		defer f.Close()
		_, _ = io.Copy(f, resp.Body)
		say("CPU profile of serve during %s: %s", step, f.Name())
	}()
}

func (b *bench) print() {
	fmt.Printf("\n%-48s %14s %-13s %12s %8s %-40s %s\n", "measure", "value", "unit", "baseline", "ratio", "target", "pass")
	fmt.Println(strings.Repeat("-", 150))
	for _, r := range b.results {
		baseline, ratio, ok := "", "", ""
		if r.Baseline > 0 {
			baseline = fmt.Sprintf("%.1f", r.Baseline)
			ratio = fmt.Sprintf("%.2f", r.Ratio)
		}
		if r.Pass != nil {
			ok = map[bool]string{true: "yes", false: "NO"}[*r.Pass]
		}
		fmt.Printf("%-48s %14.1f %-13s %12s %8s %-40s %s\n", r.Name, r.Value, r.Unit, baseline, ratio, r.Target, ok)
		if r.Note != "" {
			fmt.Printf("    %s\n", r.Note)
		}
	}
}

func (b *bench) write(dir string, quick bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	host, _ := os.Hostname()
	doc := map[string]any{"when": time.Now().UTC().Format(time.RFC3339), "host": host, "quick": quick, "results": b.results}
	raw, _ := json.MarshalIndent(doc, "", "  ")
	name := filepath.Join(dir, "bench-"+time.Now().UTC().Format("20060102T150405Z")+".json")
	if err := os.WriteFile(name, raw, 0o644); err != nil {
		return err
	}
	say("results written to %s", name)
	return nil
}
