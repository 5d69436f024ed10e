// Command bench measures the service against the physical limits of the
// machine it runs on and prints one table (also written as JSON under
// bench/results/). Every figure is a ratio to a baseline measured in the same
// run: the machines are shared and noisy, absolute numbers are not
// comparable across runs. `make bench`; bounded to a few minutes on 2 cores.
//
// It starts its own PostgreSQL cluster (initdb/pg_ctl), the real binary
// (`app serve` with the shipped queue settings) and the fake Hyperswitch and
// Stripe in this process.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/rs/zerolog"

	"github.com/veza/backend/config"
	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/hyperswitch/hyperswitchtest"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/jobs"
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

type bench struct {
	dir     string
	dbURL   string
	pgPort  string
	pool    *pgxpool.Pool
	base    string
	serve   *exec.Cmd
	hs      *hyperswitchtest.Server
	stripe  *stripetest.Server
	results []Result
	clients int
	// statements: pg_stat_statements is loaded (the -statements flag).
	statements bool
}

func main() {
	quick := flag.Bool("quick", false, "smaller sizes (a smoke run)")
	out := flag.String("out", "bench/results", "where to write the JSON")
	only := flag.String("only", "", "comma-separated steps to run after the baselines (ingest, settlement, reconcile, retention, upload); results are then not written")
	statements := flag.Bool("statements", false, "load pg_stat_statements and write where the database's time went during ingest and settlement to "+filepath.Join(os.TempDir(), "veza-<step>-statements.txt"))
	flag.Parse()
	if err := run(*quick, *out, *only, *statements); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) { fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...) }

func run(quick bool, outDir, only string, statements bool) error {
	ctx := context.Background()
	b := &bench{clients: 16, statements: statements}
	var err error
	if b.dir, err = os.MkdirTemp("", "veza-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.dir)

	initdb, err := dbtest.FindPGBinary("initdb")
	if err != nil {
		return err
	}
	say("starting PostgreSQL")
	var settings []string
	if statements {
		settings = []string{"shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track=all"}
	}
	cluster, err := dbtest.StartCluster(initdb, settings...)
	if err != nil {
		return err
	}
	defer cluster.Stop()
	b.pgPort = regexp.MustCompile(`:(\d+)/`).FindStringSubmatch(cluster.URL)[1]
	admin, err := pgx.Connect(ctx, cluster.URL)
	if err != nil {
		return err
	}
	if _, err := admin.Exec(ctx, `CREATE DATABASE bench`); err != nil {
		return err
	}
	admin.Close(ctx)
	b.dbURL = dbtest.WithDatabase(cluster.URL, "bench")
	if b.pool, err = pgxpool.New(ctx, b.dbURL); err != nil {
		return err
	}
	defer b.pool.Close()
	runner, err := migrations.NewRunner(b.pool, jobs.SlogLogger(zerolog.Nop()))
	if err != nil {
		return err
	}
	if _, err := runner.Up(ctx); err != nil {
		return err
	}
	if statements {
		if _, err := b.pool.Exec(ctx, `CREATE EXTENSION pg_stat_statements`); err != nil {
			return err
		}
	}

	var stopHS, stopStripe func()
	b.hs, stopHS = hyperswitchtest.New()
	defer stopHS()
	b.stripe, stopStripe = stripetest.New()
	defer stopStripe()

	say("building and starting app serve")
	if err := b.startServe(); err != nil {
		return err
	}
	defer b.stopServe()

	type benchSizes struct{ riverJobs, ingest, orders, settleRuns, backlog, expired int }
	sizes := benchSizes{20_000, 10_000, 3_000, 3, 10_000, 1_000_000}
	if quick {
		sizes = benchSizes{2_000, 1_000, 100, 1, 500, 50_000}
	}

	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"baselines", func(ctx context.Context) error { return b.baselines(ctx, sizes.riverJobs) }},
		{"ingest", func(ctx context.Context) error { return b.ingest(ctx, sizes.ingest) }},
		{"settlement", func(ctx context.Context) error { return b.settlement(ctx, sizes.orders, sizes.settleRuns) }},
		{"reconcile", func(ctx context.Context) error { return b.reconcile(ctx, sizes.backlog) }},
		{"retention", func(ctx context.Context) error { return b.retention(ctx, sizes.expired) }},
		{"upload", b.uploadMemory},
	}
	for _, s := range steps {
		if only != "" && s.name != "baselines" && !slices.Contains(strings.Split(only, ","), s.name) {
			continue
		}
		say("%s", s.name)
		start := time.Now()
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		say("%s done in %s", s.name, time.Since(start).Round(time.Millisecond))
	}
	b.print()
	if only != "" {
		return nil
	}
	return b.write(outDir, quick)
}

func (b *bench) add(r Result) {
	if r.Baseline > 0 && r.Ratio == 0 {
		r.Ratio = r.Value / r.Baseline
	}
	b.results = append(b.results, r)
}

func pass(ok bool) *bool { return &ok }

func (b *bench) startServe() error {
	bin := filepath.Join(b.dir, "app")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/app").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v: %s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ln.Close()
	b.base = "http://" + addr
	logFile, err := os.Create(filepath.Join(b.dir, "serve.log"))
	if err != nil {
		return err
	}
	b.serve = exec.Command(bin, "serve")
	b.serve.Env = []string{"PATH=" + os.Getenv("PATH"), "DATABASE_URL=" + b.dbURL, "HTTP_ADDR=" + addr, "LOG_LEVEL=warn",
		"HYPERSWITCH_ENABLED=true", "HYPERSWITCH_BASE_URL=" + b.hs.URL, "HYPERSWITCH_API_KEY=" + hyperswitchtest.APIKey,
		"HYPERSWITCH_WEBHOOK_SECRET=" + secret, "RECONCILE_WORKER_ENABLED=false",
		"STRIPE_CONNECT_ENABLED=true", "STRIPE_SECRET_KEY=" + stripetest.SecretKey, "STRIPE_API_BASE=" + b.stripe.URL,
		"RATE_LIMIT_PER_MINUTE=1000000", "RATE_LIMIT_AUTH_PER_MINUTE=1000000", "TRACK_STORAGE_DIR=" + filepath.Join(b.dir, "tracks"),
		"PPROF_ADDR=" + os.Getenv("BENCH_PPROF_ADDR")}
	// BENCH_SERVE_<NAME>=v runs serve with NAME=v: how the shipped defaults
	// are tuned (docs/DEPLOYMENT.md), e.g. BENCH_SERVE_RIVER_FETCH_COOLDOWN=20ms.
	for _, kv := range os.Environ() {
		if rest, ok := strings.CutPrefix(kv, "BENCH_SERVE_"); ok {
			b.serve.Env = append(b.serve.Env, rest)
			say("serve runs with %s", rest)
		}
	}
	b.serve.Stdout, b.serve.Stderr = logFile, logFile
	if err := b.serve.Start(); err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(b.base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("app serve did not become ready")
}

func (b *bench) stopServe() {
	if b.serve != nil && b.serve.Process != nil {
		_ = b.serve.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = b.serve.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = b.serve.Process.Kill()
		}
	}
}

// peakRSS is the serve process's high-water resident set (VmHWM), in MiB.
func (b *bench) peakRSS() float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", b.serve.Process.Pid))
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
// under test (at 20 ms, counting completed transfers took 4% of
// PostgreSQL's time during settlement), and 100 ms is under 2% of any
// measured step.
func (b *bench) waitFor(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// baselines: pgbench doing the webhook path's statements, and bare River.
func (b *bench) baselines(ctx context.Context, riverJobs int) error {
	script := filepath.Join(b.dir, "webhook.sql")
	if err := os.WriteFile(script, []byte(`BEGIN;
INSERT INTO hyperswitch_webhook_log (request_id, signature_valid, event_id, event_type, payload, processing_result)
  VALUES ('bench', true, md5(random()::text), 'payment_succeeded', '{"event_type":"payment_succeeded","content":{"object":{}}}', 'queued');
INSERT INTO hyperswitch_events (event_id, event_type) VALUES (md5(random()::text), 'payment_succeeded');
INSERT INTO river_job (args, kind, max_attempts, queue, priority, state) VALUES ('{"event_id":"x"}', 'bench_baseline', 15, 'bench_baseline', 1, 'available');
COMMIT;
`), 0o600); err != nil {
		return err
	}
	pgbench, err := dbtest.FindPGBinary("pgbench")
	if err != nil {
		return err
	}
	out, err := exec.Command(pgbench, "-n", "-c", strconv.Itoa(b.clients), "-j", "2", "-T", "8", "-f", script,
		"-h", "127.0.0.1", "-p", b.pgPort, "-U", "postgres", "bench").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgbench: %v: %s", err, out)
	}
	m := regexp.MustCompile(`tps = ([\d.]+) \(without initial connection time\)`).FindSubmatch(out)
	if m == nil {
		return fmt.Errorf("pgbench output: %s", out)
	}
	tps, _ := strconv.ParseFloat(string(m[1]), 64)
	b.add(Result{Name: "baseline: pgbench, webhook statements", Value: tps, Unit: "tx/s", Note: fmt.Sprintf("%d clients", b.clients)})
	if _, err := b.pool.Exec(ctx, `DELETE FROM river_job WHERE kind = 'bench_baseline'; TRUNCATE hyperswitch_webhook_log, hyperswitch_events`); err != nil {
		return err
	}

	// Bare River: no-op jobs with the shipped settings of queue payments.
	shipped := shippedConfig()
	cfgWorkers, cooldown := shipped.River.Workers[jobargs.QueuePayments], shipped.River.FetchCooldown
	workers := river.NewWorkers()
	var done atomic.Int64
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, j *river.Job[noopArgs]) error { done.Add(1); return nil }))
	client, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{
		Queues:        map[string]river.QueueConfig{"bench_noop": {MaxWorkers: cfgWorkers}},
		Workers:       workers,
		FetchCooldown: cooldown,
		Logger:        jobs.SlogLogger(zerolog.Nop()),
	})
	if err != nil {
		return err
	}
	for inserted := 0; inserted < riverJobs; inserted += 1000 {
		params := make([]river.InsertManyParams, 1000)
		for i := range params {
			params[i] = river.InsertManyParams{Args: noopArgs{}}
		}
		if _, err := client.InsertMany(ctx, params); err != nil {
			return err
		}
	}
	start := time.Now()
	if err := client.Start(ctx); err != nil {
		return err
	}
	if err := b.waitFor(ctx, 3*time.Minute, func() bool { return done.Load() >= int64(riverJobs) }); err != nil {
		return err
	}
	rate := float64(riverJobs) / time.Since(start).Seconds()
	_ = client.Stop(ctx)
	b.add(Result{Name: "baseline: bare River no-op jobs", Value: rate, Unit: "jobs/s", Note: fmt.Sprintf("%d workers, FetchCooldown %s", cfgWorkers, cooldown)})
	_, err = b.pool.Exec(ctx, `DELETE FROM river_job WHERE kind = 'bench_noop'`)
	return err
}

// shippedConfig is the configuration the service ships with (no env).
func shippedConfig() *config.Config {
	cfg, _ := config.Load(func(string) string { return "" })
	return cfg
}

type noopArgs struct{}

func (noopArgs) Kind() string { return "bench_noop" }
func (noopArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: "bench_noop"}
}

func (b *bench) baseline(name string) float64 {
	for _, r := range b.results {
		if r.Name == name {
			return r.Value
		}
	}
	return 0
}

// load posts signed payment_succeeded deliveries: total of them (0: until
// stop), at most rate per second (0: as fast as the clients go). It returns
// the latencies of accepted deliveries and the elapsed time.
func (b *bench) load(ctx context.Context, total int, rate float64, duration time.Duration, stop <-chan struct{}, payment func(i int) (string, int64)) ([]time.Duration, time.Duration, int64) {
	// Bodies and signatures are made before the clock starts, as pgbench
	// parses its script before it measures: the generator shares the CPUs.
	var prepared []struct {
		body []byte
		sig  string
	}
	for i := 1; i <= total; i++ {
		body, sig := delivery(payment, i)
		prepared = append(prepared, struct {
			body []byte
			sig  string
		}{body, sig})
	}
	var next atomic.Int64
	var failures atomic.Int64
	lat := make([][]time.Duration, b.clients)
	start := time.Now()
	var ticker <-chan time.Time
	if rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer t.Stop()
		ticker = t.C
	}
	tokens := make(chan struct{}, b.clients)
	if ticker != nil {
		go func() {
			for {
				select {
				case <-ticker:
					select {
					case tokens <- struct{}{}:
					default:
					}
				case <-ctx.Done():
					return
				}
				if time.Since(start) > duration+time.Second {
					return
				}
			}
		}()
	}
	transport := &http.Transport{MaxIdleConnsPerHost: b.clients * 2}
	hc := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	for c := 0; c < b.clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for {
				if duration > 0 && time.Since(start) > duration {
					return
				}
				select {
				case <-stop:
					return
				default:
				}
				i := int(next.Add(1))
				if total > 0 && i > total {
					return
				}
				if ticker != nil {
					select {
					case <-tokens:
					case <-time.After(duration):
						return
					}
				}
				var body []byte
				var sig string
				if total > 0 && i <= len(prepared) {
					body, sig = prepared[i-1].body, prepared[i-1].sig
				} else {
					body, sig = delivery(payment, i)
				}
				req, _ := http.NewRequest(http.MethodPost, b.base+"/webhooks/hyperswitch", bytes.NewReader(body))
				req.Header.Set(hyperswitch.SignatureHeader, sig)
				t0 := time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					failures.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures.Add(1)
					continue
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	return all, elapsed, failures.Load()
}

// delivery is the i-th signed payment_succeeded webhook.
func delivery(payment func(i int) (string, int64), i int) ([]byte, string) {
	pid, amount := payment(i)
	body := hyperswitchtest.WebhookBody("evt_"+uuid.NewString(), "payment_succeeded",
		map[string]any{"payment_id": pid, "status": "succeeded", "amount": amount, "currency": "EUR"})
	return body, hyperswitch.Sign(secret, body)
}

func pct(l []time.Duration, p float64) float64 {
	if len(l) == 0 {
		return 0
	}
	i := int(float64(len(l)-1) * p)
	return float64(l[i].Microseconds()) / 1000
}

func unknownPayment(i int) (string, int64) { return "pay_unknown_" + strconv.Itoa(i), 100 }

func (b *bench) ingest(ctx context.Context, total int) error {
	rssBefore := b.peakRSS()
	// The edge alone, as pgbench measures the statements alone: the queue
	// that processes the events is paused meanwhile (settlement measures
	// processing) and resumed before the half-rate run.
	client, err := jobs.NewClient(b.pool, jobs.ClientOpts{Logger: zerolog.Nop()})
	if err != nil {
		return err
	}
	if err := client.QueuePause(ctx, jobargs.QueuePayments, nil); err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // workers see the pause
	b.profile("ingest", 2*time.Second)
	report := b.watchStatements(ctx, "ingest")
	lat, elapsed, failed := b.load(ctx, total, 0, 60*time.Second, nil, unknownPayment)
	report()
	if err := client.QueueResume(ctx, jobargs.QueuePayments, nil); err != nil {
		return err
	}
	rate := float64(len(lat)) / elapsed.Seconds()
	pg := b.baseline("baseline: pgbench, webhook statements")
	b.add(Result{Name: "webhook ingest, max rate", Value: rate, Unit: "deliveries/s", Baseline: pg, Target: "ratio >= 0.5",
		Pass: pass(rate/pg >= 0.5), Note: fmt.Sprintf("at the HTTP edge, event processing paused; p50 %.1f ms, p99 %.1f ms, %d failed",
			pct(lat, 0.5), pct(lat, 0.99), failed)})
	b.add(Result{Name: "serve peak RSS during ingest", Value: b.peakRSS(), Unit: "MiB", Note: fmt.Sprintf("%.0f MiB before", rssBefore)})
	if err := b.drain(ctx); err != nil {
		return err
	}

	half, _, failed := b.load(ctx, 0, rate/2, 6*time.Second, nil, unknownPayment)
	p99 := pct(half, 0.99)
	b.add(Result{Name: "webhook ingest p99 at half the max rate", Value: p99, Unit: "ms", Target: "< 25 ms", Pass: pass(p99 < 25),
		Note: fmt.Sprintf("%.0f deliveries/s offered with events processed meanwhile, p50 %.1f ms, %d failed", rate/2, pct(half, 0.5), failed)})
	return b.drain(ctx)
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

// watchStatements, with -statements, starts counting where the database's
// time goes; the returned func writes the step's statements by total
// execution time, and the wait events of active connections sampled every
// 20 ms ("CPU" when a connection waits on nothing), to
// $TMPDIR/veza-<step>-statements.txt. This is how the settlement profile
// found the transfer status index (docs/DEPLOYMENT.md).
func (b *bench) watchStatements(ctx context.Context, step string) (report func()) {
	if !b.statements {
		return func() {}
	}
	if _, err := b.pool.Exec(ctx, `SELECT pg_stat_statements_reset()`); err != nil {
		say("pg_stat_statements: %v", err)
		return func() {}
	}
	waits := map[string]int{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			rows, err := b.pool.Query(ctx, `SELECT COALESCE(wait_event_type || ':' || wait_event, 'CPU') || '  ' || left(regexp_replace(query, '\s+', ' ', 'g'), 70)
				FROM pg_stat_activity WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()`)
			if err != nil {
				continue
			}
			for rows.Next() {
				var w string
				if rows.Scan(&w) == nil {
					waits[w]++
				}
			}
			rows.Close()
		}
	}()
	return func() {
		close(stop)
		<-done
		var out strings.Builder
		fmt.Fprintf(&out, "%s: statements by total execution time\n%9s %10s %9s  %s\n", step, "calls", "total ms", "mean ms", "query")
		rows, err := b.pool.Query(ctx, `SELECT calls, total_exec_time, mean_exec_time, left(regexp_replace(query, '\s+', ' ', 'g'), 150)
			FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 25`)
		if err == nil {
			for rows.Next() {
				var calls int64
				var total, mean float64
				var q string
				if rows.Scan(&calls, &total, &mean, &q) == nil {
					fmt.Fprintf(&out, "%9d %10.0f %9.3f  %s\n", calls, total, mean, q)
				}
			}
			rows.Close()
		}
		type sample struct {
			what string
			n    int
		}
		var samples []sample
		for w, n := range waits {
			samples = append(samples, sample{w, n})
		}
		slices.SortFunc(samples, func(a, b sample) int { return b.n - a.n })
		fmt.Fprintf(&out, "\n%s: active connections, sampled every 20 ms\n", step)
		for _, s := range samples[:min(len(samples), 25)] {
			fmt.Fprintf(&out, "%9d  %s\n", s.n, s.what)
		}
		path := filepath.Join(os.TempDir(), "veza-"+step+"-statements.txt")
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			say("pg_stat_statements: %v", err)
			return
		}
		say("where the database's time went during %s: %s", step, path)
	}
}

// drain waits for the service's queues to empty.
func (b *bench) drain(ctx context.Context) error {
	return b.waitFor(ctx, 5*time.Minute, func() bool {
		return b.count(ctx, `SELECT count(*) FROM river_job WHERE state IN ('available', 'running', 'retryable')`) == 0
	})
}

// seedOrders inserts n pending orders of two tracks from two sellers.
func (b *bench) seedOrders(ctx context.Context, n int, age time.Duration) (map[string]int64, error) {
	var buyer string
	if err := b.pool.QueryRow(ctx, `INSERT INTO users (email, password_hash) VALUES ($1, 'h') RETURNING id::text`, uuid.NewString()+"@bench.test").Scan(&buyer); err != nil {
		return nil, err
	}
	var tracks [2]string
	for i := range tracks {
		var seller string
		if err := b.pool.QueryRow(ctx, `INSERT INTO users (email, password_hash, role, stripe_account_id) VALUES ($1, 'h', 'seller', $2) RETURNING id::text`,
			uuid.NewString()+"@bench.test", fmt.Sprintf("acct_bench%d%s", i, strings.ReplaceAll(uuid.NewString(), "-", "")[:8])).Scan(&seller); err != nil {
			return nil, err
		}
		if err := b.pool.QueryRow(ctx, `INSERT INTO tracks (owner_id, title, price_cents, currency) VALUES ($1, 'Bench', $2, 'EUR') RETURNING id::text`,
			seller, 999+i*501).Scan(&tracks[i]); err != nil {
			return nil, err
		}
	}
	rows, err := b.pool.Query(ctx, `WITH o AS (
			INSERT INTO orders (buyer_id, amount, currency, payment_id, created_at)
			SELECT $1, 2499, 'EUR', 'bench_' || gen_random_uuid(), now() - make_interval(secs => $4) FROM generate_series(1, $2)
			RETURNING id, payment_id),
		i AS (INSERT INTO order_items (order_id, track_id, seller_id, amount, currency)
			SELECT o.id, t.id, t.owner_id, t.price_cents, 'EUR' FROM o CROSS JOIN tracks t WHERE t.id = ANY($3::uuid[]))
		SELECT payment_id FROM o`, buyer, n, tracks[:], age.Seconds())
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(ids))
	for _, id := range ids {
		out[id] = 2499
	}
	return out, nil
}

// settlement: webhook → order completed → two transfers completed at a
// fake Stripe answering in 20 ms. The value is the median of runs: one
// 3,000-order run takes about 6 s, and on this shared machine a neighbour's
// burst in those seconds moved single runs by ±15%.
func (b *bench) settlement(ctx context.Context, n, runs int) error {
	var rates []float64
	failed := 0
	for i := range runs {
		rate, f, err := b.settleOnce(ctx, n, i == 0)
		if err != nil {
			return err
		}
		say("settlement run %d of %d: %.1f orders/s", i+1, runs, rate)
		rates, failed = append(rates, rate), failed+f
	}
	each := make([]string, len(rates))
	for i, r := range rates {
		each[i] = fmt.Sprintf("%.0f", r)
	}
	slices.Sort(rates)
	rate := rates[len(rates)/2]
	noop := b.baseline("baseline: bare River no-op jobs")
	b.add(Result{Name: "settlement: webhook to both transfers completed", Value: rate, Unit: "orders/s", Baseline: noop,
		Target: ">= 500 orders/s", Pass: pass(rate >= 500),
		Note: fmt.Sprintf("median of %d runs (%s) of %d orders, 2 sellers each, Stripe 20 ms; ratio is to bare River no-op jobs/s; %.3f of pgbench, which tracks how fast the machine is today (%d webhook failures)",
			runs, strings.Join(each, ", "), n, rate/b.baseline("baseline: pgbench, webhook statements"), failed)})
	return nil
}

// settleOnce pays n fresh orders and waits for all their transfers; the
// first run is the one profiled.
func (b *bench) settleOnce(ctx context.Context, n int, first bool) (float64, int, error) {
	payments, err := b.seedOrders(ctx, n, 0)
	if err != nil {
		return 0, 0, err
	}
	ids := make([]string, 0, len(payments))
	for id := range payments {
		ids = append(ids, id)
	}
	b.stripe.SetLatency(20 * time.Millisecond)
	defer b.stripe.SetLatency(0)
	before := b.count(ctx, `SELECT count(*) FROM seller_transfers WHERE status = 'completed'`)
	report := func() {}
	start := time.Now()
	if first {
		b.profile("settlement", 4*time.Second)
		report = b.watchStatements(ctx, "settlement")
	}
	_, _, failed := b.load(ctx, n, 0, 2*time.Minute, nil, func(i int) (string, int64) { return ids[i-1], 2499 })
	if err := b.waitFor(ctx, 5*time.Minute, func() bool {
		return b.count(ctx, `SELECT count(*) FROM seller_transfers WHERE status = 'completed'`)-before >= 2*n
	}); err != nil {
		return 0, 0, fmt.Errorf("transfers did not all complete: %w", err)
	}
	rate := float64(n) / time.Since(start).Seconds()
	report()
	return rate, int(failed), b.drain(ctx)
}

// reconcile: a backlog of stuck orders, each read at a Hyperswitch
// answering in 20 ms, drained by the maintenance queue.
func (b *bench) reconcile(ctx context.Context, n int) error {
	payments, err := b.seedOrders(ctx, n, time.Hour)
	if err != nil {
		return err
	}
	for id := range payments {
		b.hs.PutPayment(hyperswitch.Payment{PaymentID: id, Status: "processing", Amount: 2499, Currency: "EUR"})
	}
	b.hs.SetLatency(20 * time.Millisecond)
	defer b.hs.SetLatency(0)
	client, err := jobs.NewClient(b.pool, jobs.ClientOpts{Logger: zerolog.Nop()})
	if err != nil {
		return err
	}
	rows, err := b.pool.Query(ctx, `SELECT id FROM orders WHERE payment_id = ANY($1)`, keys(payments))
	if err != nil {
		return err
	}
	orderIDs, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return err
	}
	callsBefore := b.hs.Calls("GET /payments")
	start := time.Now()
	for i := 0; i < len(orderIDs); i += 1000 {
		end := min(i+1000, len(orderIDs))
		params := make([]river.InsertManyParams, 0, end-i)
		for _, id := range orderIDs[i:end] {
			params = append(params, river.InsertManyParams{Args: jobargs.ReconcileOrderArgs{OrderID: id}})
		}
		if _, err := client.InsertMany(ctx, params); err != nil {
			return err
		}
	}
	if err := b.waitFor(ctx, 8*time.Minute, func() bool { return b.hs.Calls("GET /payments")-callsBefore >= n }); err != nil {
		return err
	}
	if err := b.drain(ctx); err != nil {
		return err
	}
	took := time.Since(start)
	workers := shippedConfig().River.Workers[jobargs.QueueMaintenance]
	ideal := time.Duration(n) * 20 * time.Millisecond / time.Duration(workers)
	inflight := b.hs.MaxInFlight()
	b.add(Result{Name: "reconcile backlog drain time", Value: took.Seconds(), Unit: "s", Baseline: ideal.Seconds(),
		Target: fmt.Sprintf("ratio <= 2, PSP calls in flight <= %d", workers), Pass: pass(took.Seconds()/ideal.Seconds() <= 2 && inflight <= int64(workers)),
		Note: fmt.Sprintf("%d stuck orders, Hyperswitch 20 ms, %d maintenance workers; max PSP calls in flight %d", n, workers, inflight)})
	return nil
}

func keys(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// retention: delete expired log rows while ingest runs at half its max.
func (b *bench) retention(ctx context.Context, n int) error {
	if _, err := b.pool.Exec(ctx, `INSERT INTO hyperswitch_webhook_log (request_id, signature_valid, event_id, payload, processing_result, received_at)
		SELECT 'old', true, 'old_' || g, '{"event_type":"payment_succeeded"}', 'ok', now() - interval '200 days' FROM generate_series(1, $1) g`, n); err != nil {
		return err
	}
	if _, err := b.pool.Exec(ctx, `VACUUM ANALYZE hyperswitch_webhook_log`); err != nil {
		return err
	}
	var maxRate float64
	for _, r := range b.results {
		if r.Name == "webhook ingest, max rate" {
			maxRate = r.Value
		}
	}
	quiet, _, _ := b.load(ctx, 0, maxRate/2, 6*time.Second, nil, unknownPayment)
	if err := b.drain(ctx); err != nil {
		return err
	}

	client, err := jobs.NewClient(b.pool, jobs.ClientOpts{Logger: zerolog.Nop()})
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	var during []time.Duration
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		during, _, _ = b.load(ctx, 0, maxRate/2, 10*time.Minute, stop, unknownPayment)
	}()
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	if _, err := client.Insert(ctx, jobargs.WebhookLogCleanupArgs{}, nil); err != nil {
		return err
	}
	err = b.waitFor(ctx, 8*time.Minute, func() bool {
		return b.count(ctx, `SELECT count(*) FROM river_job WHERE kind = 'webhook_log_cleanup' AND state = 'completed'`) > 0
	})
	took := time.Since(start)
	close(stop)
	wg.Wait()
	if err != nil {
		return err
	}
	left := b.count(ctx, `SELECT count(*) FROM hyperswitch_webhook_log WHERE request_id = 'old'`)
	b.add(Result{Name: "retention: expired rows deleted", Value: float64(n-left) / took.Seconds(), Unit: "rows/s",
		Note: fmt.Sprintf("%d rows in %.1f s, batches of 2,000, pause max(100 ms, batch time), %d left", n-left, took.Seconds(), left)})
	p99q, p99d := pct(quiet, 0.99), pct(during, 0.99)
	b.add(Result{Name: "ingest p99 during cleanup", Value: p99d, Unit: "ms", Baseline: p99q, Target: "ratio <= 2", Pass: pass(p99d/p99q <= 2),
		Note: fmt.Sprintf("half the max rate; p99 without cleanup %.1f ms", p99q)})
	return b.drain(ctx)
}

// uploadMemory: peak RSS of serve across a 20 MB and a 200 MB upload.
func (b *bench) uploadMemory(ctx context.Context) error {
	token, err := b.token(ctx)
	if err != nil {
		return err
	}
	upload := func(size int64) error {
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(pw)
		go func() {
			_ = mw.WriteField("title", "Big")
			_ = mw.WriteField("price_cents", "100")
			_ = mw.WriteField("currency", "EUR")
			fw, _ := mw.CreateFormFile("file", "big.mp3")
			chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
			copy(chunk, "ID3\x04\x00\x00\x00\x00\x00\x00")
			var sent int64
			for sent < size {
				n := min(int64(len(chunk)), size-sent)
				if _, err := fw.Write(chunk[:n]); err != nil {
					pw.CloseWithError(err)
					return
				}
				sent += n
				chunk[0] = 'x' // only the first bytes sniff as audio
			}
			pw.CloseWithError(mw.Close())
		}()
		req, _ := http.NewRequest(http.MethodPost, b.base+"/v1/tracks", pr)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 201 {
			return fmt.Errorf("upload answered %d: %s", resp.StatusCode, raw)
		}
		return nil
	}
	start := b.peakRSS()
	if err := upload(20 << 20); err != nil {
		return err
	}
	after20 := b.peakRSS()
	if err := upload(200 << 20); err != nil {
		return err
	}
	after200 := b.peakRSS()
	growth := after200 - after20
	b.add(Result{Name: "serve peak RSS after a 200 MB upload", Value: after200, Unit: "MiB", Baseline: after20,
		Target: "does not grow with file size (ratio <= 1.1)", Pass: pass(after200/after20 <= 1.1),
		Note: fmt.Sprintf("%.0f MiB before, %.0f after 20 MB, +%.1f MiB for 200 MB", start, after20, growth)})
	return nil
}

func (b *bench) token(ctx context.Context) (string, error) {
	email := uuid.NewString() + "@bench.test"
	post := func(path string, body any) (map[string]any, error) {
		raw, _ := json.Marshal(body)
		resp, err := http.Post(b.base+path, "application/json", bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var out map[string]any
		err = json.NewDecoder(resp.Body).Decode(&out)
		return out, err
	}
	if _, err := post("/v1/auth/register", map[string]string{"email": email, "password": "bench password"}); err != nil {
		return "", err
	}
	out, err := post("/v1/auth/login", map[string]string{"email": email, "password": "bench password"})
	if err != nil {
		return "", err
	}
	tok, _ := out["token"].(string)
	if tok == "" {
		return "", fmt.Errorf("login: %v", out)
	}
	return tok, nil
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
