package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/internal/logtest"
	"github.com/veza/backend/internal/servicetest"
	"github.com/veza/backend/migrations"
	"github.com/veza/backend/store/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m, servicetest.Cleanup) }

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// baseEnv is a development environment on a fresh migrated database.
func baseEnv(t *testing.T, dbURL string) map[string]string {
	return map[string]string{
		"DATABASE_URL":      dbURL,
		"HTTP_ADDR":         "127.0.0.1:0",
		"RIVER_UI_USERNAME": "ops",
		"RIVER_UI_PASSWORD": "test-ui-password",
		"SHUTDOWN_TIMEOUT":  "5s",
		"LOG_LEVEL":         "info",
		"METRICS_ADDR":      "off",   // tests that read /metrics set 127.0.0.1:0
		"SANDBOX_ENABLED":   "false", // sandbox_test.go turns it on
	}
}

type running struct {
	base   string
	logs   *logtest.Buffer
	cancel context.CancelFunc
	done   chan error
}

// start runs `app serve` in-process on port 0 and waits for /readyz.
func start(t *testing.T, env map[string]string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{logs: &logtest.Buffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- run(ctx, []string{"app", "serve"}, envOf(env), r.logs, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(15 * time.Second):
			t.Error("service did not stop")
		}
	})
	listening, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	go func() {
		// An early exit ends the wait at once.
		select {
		case err := <-r.done:
			r.done <- err
			stop()
		case <-listening.Done():
		}
	}()
	addr, err := servicetest.WaitListening(listening, r.logs.String)
	require.NoError(t, err, "logs:\n%s", r.logs.String())
	r.base = "http://" + addr
	require.Eventually(t, func() bool {
		resp, err := http.Get(r.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, 30*time.Second, 20*time.Millisecond, "logs:\n%s", r.logs.String())
	return r
}

func get(t *testing.T, url string, auth ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if len(auth) == 2 {
		req.SetBasicAuth(auth[0], auth[1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestServeEndToEnd(t *testing.T) {
	t.Parallel()
	env := baseEnv(t, dbtest.URL(t))
	r := start(t, env)

	status, body := get(t, r.base+"/healthz")
	require.Equal(t, 200, status)
	require.JSONEq(t, `{"status":"ok"}`, body)

	status, body = get(t, r.base+"/readyz")
	require.Equal(t, 200, status, body)

	status, body = get(t, r.base+"/riverui/")
	require.Equal(t, 401, status)
	require.Contains(t, body, `"code":"unauthorized"`)
	status, _ = get(t, r.base+"/riverui/", "ops", "wrong")
	require.Equal(t, 401, status)
	status, body = get(t, r.base+"/riverui/", "ops", "test-ui-password")
	require.Equal(t, 200, status)
	require.Contains(t, strings.ToLower(body), "<html")

	status, body = get(t, r.base+"/riverui/api/jobs?state=completed", "ops", "test-ui-password")
	require.Equal(t, 200, status)
	var jobsPage map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &jobsPage), body)
	require.Contains(t, jobsPage, "data")

	// Unknown routes answer in the API error shape.
	status, body = get(t, r.base+"/v1/nope")
	require.Equal(t, 404, status)
	require.JSONEq(t, `{"error":{"code":"not_found","message":"Cannot GET /v1/nope"}}`, body)

	// Graceful stop returns nil promptly.
	start := time.Now()
	r.cancel()
	select {
	case err := <-r.done:
		require.NoError(t, err)
		r.done <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("service did not stop within 10s")
	}
	require.Less(t, time.Since(start), 10*time.Second)
	require.Contains(t, r.logs.String(), "shutdown complete")
	// One structured access-log line per request, with its request id.
	require.Contains(t, r.logs.String(), `"message":"http request"`)
	require.Contains(t, r.logs.String(), `"request_id":`)
}

func TestRequestIDIsHonoured(t *testing.T) {
	t.Parallel()
	r := start(t, baseEnv(t, dbtest.URL(t)))
	req, _ := http.NewRequest(http.MethodGet, r.base+"/healthz", nil)
	req.Header.Set("X-Request-Id", "hs-req-42")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, "hs-req-42", resp.Header.Get("X-Request-Id"))
	require.Eventually(t, func() bool { return strings.Contains(r.logs.String(), `"request_id":"hs-req-42"`) }, 5*time.Second, 20*time.Millisecond)

	// A hostile id (too long) is replaced by a server-made one.
	req, _ = http.NewRequest(http.MethodGet, r.base+"/healthz", nil)
	req.Header.Set("X-Request-Id", strings.Repeat("x", 500))
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Len(t, resp.Header.Get("X-Request-Id"), 36)
}

func TestReadyzTurns503WhenDatabaseGone(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.URL(t)
	r := start(t, baseEnv(t, dbURL))
	status, _ := get(t, r.base+"/readyz")
	require.Equal(t, 200, status)

	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dbtest.ServerURL(t))
	require.NoError(t, err)
	defer admin.Close(ctx)
	name := dbName(t, dbURL)
	_, err = admin.Exec(ctx, fmt.Sprintf(`DROP DATABASE %s WITH (FORCE)`, pgx.Identifier{name}.Sanitize()))
	require.NoError(t, err)

	status, body := get(t, r.base+"/readyz")
	require.Equal(t, 503, status)
	require.Contains(t, body, `"code":"not_ready"`)
	require.NotContains(t, body, "postgres://", "no connection details leak")
	// The process stays up: liveness is not readiness.
	status, _ = get(t, r.base+"/healthz")
	require.Equal(t, 200, status)
}

func dbName(t *testing.T, dbURL string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(dbURL)
	require.NoError(t, err)
	return cfg.Database
}

func TestServeRefusesSchemaBehind(t *testing.T) {
	t.Parallel()
	env := baseEnv(t, dbtest.EmptyURL(t))
	err := run(context.Background(), []string{"app", "serve"}, envOf(env), io.Discard, io.Discard)
	require.ErrorIs(t, err, migrations.ErrBehind)
	require.Contains(t, err.Error(), "app migrate up")
}

func TestProductionBadStorageFailsBoot(t *testing.T) {
	t.Parallel()
	env := baseEnv(t, "postgres://postgres@127.0.0.1:1/none")
	env["APP_ENV"] = "production"
	env["TRACK_STORAGE_BACKEND"] = "S3"
	env["SMTP_HOST"] = "smtp.example.com"
	err := run(context.Background(), []string{"app", "serve"}, envOf(env), io.Discard, io.Discard)
	require.Error(t, err)
	require.Contains(t, err.Error(), "TRACK_STORAGE_BACKEND")
}

func TestDevelopmentBadStorageWarnsAndUsesLocal(t *testing.T) {
	t.Parallel()
	env := baseEnv(t, dbtest.URL(t))
	env["APP_ENV"] = "development"
	env["TRACK_STORAGE_BACKEND"] = "minio"
	r := start(t, env)
	logs := r.logs.String()
	require.Contains(t, logs, `"level":"warn"`)
	require.Contains(t, logs, `"var":"TRACK_STORAGE_BACKEND"`)
	require.Contains(t, logs, `using \"local\"`)
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"app"},
		{"app", "dance"},
		{"app", "serve", "--port", "1"},
		{"app", "work", "extra"},
		{"app", "migrate"},
		{"app", "migrate", "sideways"},
		{"app", "migrate", "down", "--steps", "x"},
		{"app", "sandbox"},
		{"app", "sandbox", "refund", "x"},
		{"app", "sandbox", "pay"},
		{"app", "sandbox", "pay", "--status", "failed"},
		{"app", "sandbox", "pay", "ord", "extra"},
		{"app", "seed", "extra"},
		{"app", "seed", "--bogus"},
	} {
		err := run(context.Background(), args, envOf(nil), io.Discard, io.Discard)
		var ue *usageError
		require.True(t, errors.As(err, &ue), "%v: %v", args, err)
	}
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"app", "version"}, envOf(nil), &out, io.Discard))
	require.Contains(t, out.String(), "veza ")
}

func TestMigrateCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := envOf(map[string]string{"DATABASE_URL": dbtest.EmptyURL(t)})
	runOut := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		require.NoError(t, run(ctx, append([]string{"app", "migrate"}, args...), env, &out, io.Discard))
		return out.String()
	}
	require.Contains(t, runOut("status"), "BEHIND")
	require.Contains(t, runOut("up"), "applied 0001_accounts")
	require.Contains(t, runOut("up"), "nothing to apply")
	status := runOut("status")
	require.Contains(t, status, "app schema:   ")
	require.NotContains(t, status, "BEHIND")
	require.Contains(t, runOut("down"), "reverted")
	require.Contains(t, runOut("status"), "BEHIND")
	require.Contains(t, runOut("down", "--all"), "reverted river_001")
	require.Contains(t, runOut("up"), "applied river_001")
}

// TestBinary runs the real binary and checks what an operator sees: exit
// codes and a graceful SIGTERM.
func TestBinary(t *testing.T) {
	t.Parallel()
	bin, err := servicetest.Build()
	require.NoError(t, err)
	exitCode := func(m map[string]string, args ...string) (int, string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		for k, v := range m {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(out)
	}

	code, out := exitCode(nil, "dance")
	require.Equal(t, 2, code)
	require.Contains(t, out, "usage: app")

	code, out = exitCode(map[string]string{"APP_ENV": "production", "TRACK_STORAGE_BACKEND": "S3"}, "serve")
	require.Equal(t, 1, code)
	require.Contains(t, out, "TRACK_STORAGE_BACKEND")

	env := baseEnv(t, dbtest.EmptyURL(t))
	code, out = exitCode(env, "migrate", "up")
	require.Equal(t, 0, code, out)

	serve, err := servicetest.Start(servicetest.Opts{Bin: bin, Command: "serve", Env: env, LogPath: filepath.Join(t.TempDir(), "serve.log")})
	require.NoError(t, err)
	require.NoError(t, serve.Stop(10*time.Second), "exit code 0 on SIGTERM")
}

// Every subcommand `app help` lists is in the README's command table.
func TestReadmeListsEveryCommand(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	n := 0
	for _, line := range strings.Split(usage, "\n") {
		if !strings.HasPrefix(line, "  ") || strings.HasPrefix(line, "   ") {
			continue // not a command line (or a continuation)
		}
		words := strings.Fields(line)
		name := words[0]
		if len(words) > 1 && map[string]bool{"up": true, "down": true, "status": true, "create-admin": true, "pay": true}[words[1]] {
			name += " " + words[1] // a subcommand's own word
		}
		n++
		require.True(t, strings.Contains(string(readme), "| `app "+name), "README's command table lacks app %s", name)
	}
	require.GreaterOrEqual(t, n, 11)
}
