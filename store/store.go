// Package store owns the PostgreSQL pools and the queries. Handlers and
// workers own transactions: they open one with DB.InTx (or pgx.BeginFunc) and
// pass the pgx.Tx down to store functions and to River's InsertTx, so a state
// change and the jobs it implies commit together.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Querier is what both a pool and a transaction offer. Read functions take it
// so they run on the read pool, the primary or inside a transaction alike.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Batcher sends several queries in one round trip: a pool or a transaction.
type Batcher interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// DB is the primary pool plus an optional read pool, and a second pool on
// the primary for River and its workers (see Workers).
type DB struct {
	primary *pgxpool.Pool
	read    *pgxpool.Pool // nil when DATABASE_READ_URL is unset
	workers *DB           // nil: the workers share primary
}

// Opts configures Open.
type Opts struct {
	URL          string
	ReadURL      string
	MaxConns     int32 // explicit: pgxpool's default of max(4, CPUs) starves River
	ReadMaxConns int32
	// WorkerMaxConns, when set, gives River and its workers their own pool
	// on the primary, so a job storm cannot take the API's connections,
	// and sized small: a database does the most work with a few active
	// connections per core, not one per worker (most workers wait on a
	// provider, holding none).
	WorkerMaxConns int32
	// Tracer traces queries (nil: none).
	Tracer pgx.QueryTracer
}

// Open connects both pools. It does not wait for the database to answer:
// a service must boot (and report not-ready) while PostgreSQL restarts.
func Open(ctx context.Context, opts Opts) (*DB, error) {
	primary, err := newPool(ctx, opts.URL, opts.MaxConns, "veza", opts.Tracer)
	if err != nil {
		return nil, fmt.Errorf("error opening primary pool (DATABASE_URL): %w", err)
	}
	db := &DB{primary: primary}
	if opts.ReadURL != "" {
		db.read, err = newPool(ctx, opts.ReadURL, opts.ReadMaxConns, "veza", opts.Tracer)
		if err != nil {
			primary.Close()
			return nil, fmt.Errorf("error opening read pool (DATABASE_READ_URL): %w", err)
		}
	}
	if opts.WorkerMaxConns > 0 {
		workers, err := newPool(ctx, opts.URL, opts.WorkerMaxConns, "veza-workers", opts.Tracer)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("error opening worker pool (DATABASE_URL): %w", err)
		}
		db.workers = &DB{primary: workers, read: db.read}
	}
	return db, nil
}

// New wraps existing pools (tests, tools). read may be nil.
func New(primary, read *pgxpool.Pool) *DB { return &DB{primary: primary, read: read} }

// newPool opens a pool; name is its application_name, which tells the API's
// connections from the workers' in pg_stat_activity.
func newPool(ctx context.Context, url string, maxConns int32, name string, tracer pgx.QueryTracer) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse error can echo the URL, password included: keep it out.
		return nil, errors.New("cannot parse the connection URL")
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	cfg.ConnConfig.Tracer = tracer
	cfg.MaxConnIdleTime = 5 * time.Minute
	cfg.HealthCheckPeriod = 15 * time.Second
	cfg.ConnConfig.RuntimeParams["application_name"] = name
	cfg.AfterConnect = AfterConnect
	return pgxpool.NewWithConfig(ctx, cfg)
}

// AfterConnect prepares each new connection of the service's pools; test
// pools use it too, so tests run on the same connection setup.
func AfterConnect(_ context.Context, conn *pgx.Conn) error {
	RegisterUUID(conn.TypeMap())
	return nil
}

// Primary is the read-write pool. Writes, and reads that must see the
// caller's own write, use it.
func (db *DB) Primary() *pgxpool.Pool { return db.primary }

// ForRead is the pool for read-only queries that tolerate replica lag (track
// list, search, get). It is the primary when no read URL is configured.
func (db *DB) ForRead() *pgxpool.Pool {
	if db.read != nil {
		return db.read
	}
	return db.primary
}

// Ping checks that the primary answers.
func (db *DB) Ping(ctx context.Context) error { return db.primary.Ping(ctx) }

// InTx runs fn in a transaction on the primary: committed when fn returns
// nil, rolled back otherwise (and on panic).
func (db *DB) InTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, db.primary, fn)
}

// Workers is the DB River and its job workers use: the same databases
// through the worker pool when one was opened, else db itself. It shares
// db's read pool: close db, never the view.
func (db *DB) Workers() *DB {
	if db.workers != nil {
		return db.workers
	}
	return db
}

// Close closes every pool.
func (db *DB) Close() {
	if db.workers != nil {
		db.workers.primary.Close()
	}
	if db.read != nil {
		db.read.Close()
	}
	db.primary.Close()
}

// one turns the outcome of a single-row Scan into v, ErrNotFound when there
// was no row, or the error.
func one[T any](v *T, err error) (*T, error) {
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}

// all makes a single-row scanner collect a query's rows:
// all(scanRefund)(q.Query(...)).
func all[T any](scan func(pgx.Row) (*T, error)) func(pgx.Rows, error) ([]T, error) {
	return func(rows pgx.Rows, err error) ([]T, error) {
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, func(row pgx.CollectableRow) (T, error) {
			v, err := scan(row)
			if err != nil {
				var zero T
				return zero, err
			}
			return *v, nil
		})
	}
}

// IsUniqueViolation reports whether err is PostgreSQL's unique_violation,
// optionally on the named constraint.
func IsUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		return false
	}
	return constraint == "" || pgErr.ConstraintName == constraint
}
