// Package dbtest gives each test its own migrated PostgreSQL database, so
// tests run in parallel against a real server and never see each other's
// rows or jobs.
//
// The server is, in order: TEST_DATABASE_URL when set; otherwise an
// ephemeral cluster started with the machine's initdb/pg_ctl (stopped by
// Main when the package's tests end); otherwise a testcontainers PostgreSQL
// where a Docker engine answers. A template database is migrated once per
// schema version (under an advisory lock, so parallel test binaries agree)
// and each test clones it, which costs tens of milliseconds.
package dbtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/veza/backend/migrations"
	"github.com/veza/backend/store"
)

var (
	serverOnce sync.Once
	serverURL  string
	serverErr  error
	stopServer func()

	templateOnce sync.Once
	templateName string
	templateErr  error
)

// Main runs the package's tests and then stops an ephemeral server this
// process started, after running cleanups (such as servicetest.Cleanup).
// Use it from TestMain.
func Main(m *testing.M, cleanups ...func()) {
	code := m.Run()
	for _, c := range cleanups {
		c()
	}
	if stopServer != nil {
		stopServer()
	}
	os.Exit(code)
}

// ServerURL returns the admin URL of the test server, starting one if needed.
func ServerURL(t testing.TB) string {
	t.Helper()
	serverOnce.Do(func() {
		serverURL, stopServer, serverErr = startServer()
	})
	if serverErr != nil {
		t.Fatalf("dbtest: no PostgreSQL for tests: %v", serverErr)
	}
	return serverURL
}

func startServer() (string, func(), error) {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u, nil, nil
	}
	if initdb, err := FindPGBinary("initdb"); err == nil {
		c, err := StartCluster(initdb)
		if err != nil {
			return "", nil, err
		}
		return c.URL, c.Stop, nil
	}
	if dockerAvailable() {
		return startContainer()
	}
	return "", nil, errors.New("TEST_DATABASE_URL is unset, no initdb/pg_ctl was found and no Docker engine answers")
}

// WithDatabase returns u pointing at database name.
func WithDatabase(u, name string) string {
	parsed, err := url.Parse(u)
	if err != nil {
		panic(fmt.Sprintf("dbtest: bad server URL: %v", err))
	}
	parsed.Path = "/" + name
	return parsed.String()
}

// URL returns the URL of a new database migrated to the current schema,
// dropped when the test ends.
func URL(t testing.TB) string {
	t.Helper()
	admin := ServerURL(t)
	templateOnce.Do(func() { templateName, templateErr = ensureTemplate(admin) })
	if templateErr != nil {
		t.Fatalf("dbtest: preparing the template database: %v", templateErr)
	}
	return newDatabase(t, admin, templateName)
}

// EmptyURL returns the URL of a new, empty (unmigrated) database.
func EmptyURL(t testing.TB) string {
	t.Helper()
	return newDatabase(t, ServerURL(t), "template0")
}

// Pool returns a pool on a fresh migrated database, closed at cleanup.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return PoolFor(t, URL(t))
}

// PoolFor opens a pool on u, closed at cleanup.
func PoolFor(t testing.TB, u string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(u)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	cfg.MaxConns = 20
	cfg.AfterConnect = store.AfterConnect
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func newDatabase(t testing.TB, admin, template string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("dbtest: connecting to the test server: %v", err)
	}
	defer conn.Close(ctx)

	name := "veza_t_" + randomHex(8)
	for attempt := 0; ; attempt++ {
		_, err = conn.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s`, pgx.Identifier{name}.Sanitize(), pgx.Identifier{template}.Sanitize()))
		var pgErr *pgconn.PgError
		// 55006: the template is briefly in use (another process cloning it).
		if err != nil && errors.As(err, &pgErr) && pgErr.Code == "55006" && attempt < 50 {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		break
	}
	if err != nil {
		t.Fatalf("dbtest: creating database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Logf("dbtest: dropping %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, pgx.Identifier{name}.Sanitize())); err != nil {
			t.Logf("dbtest: dropping %s: %v", name, err)
		}
	})
	return WithDatabase(admin, name)
}

// schemaHash names the template after the migrations' content, so a changed
// migration gets a fresh template instead of a stale one.
func schemaHash() (string, error) {
	fp, err := migrations.Fingerprint()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00river:%s", fp, riverVersion())
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func ensureTemplate(admin string) (string, error) {
	hash, err := schemaHash()
	if err != nil {
		return "", err
	}
	name := "veza_tmpl_" + hash
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(727272)`); err != nil {
		return "", err
	}
	defer conn.Exec(context.Background(), `SELECT pg_advisory_unlock(727272)`) //nolint:errcheck

	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	building := name + "_wip"
	if _, err := conn.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, building)); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE template0`, building)); err != nil {
		return "", err
	}
	pool, err := pgxpool.New(ctx, WithDatabase(admin, building))
	if err != nil {
		return "", err
	}
	runner, err := migrations.NewRunner(pool, slog.New(slog.DiscardHandler))
	if err == nil {
		_, err = runner.Up(ctx)
	}
	pool.Close()
	if err != nil {
		return "", fmt.Errorf("migrating the template: %w", err)
	}
	// Renamed only once complete: a crash mid-way never leaves a template
	// that looks ready.
	if _, err := conn.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %s RENAME TO %s`, building, name)); err != nil {
		return "", err
	}
	return name, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
