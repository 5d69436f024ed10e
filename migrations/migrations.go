// Package migrations holds the service's SQL migrations, embedded in the
// binary, and the runner that applies them together with River's own tables
// (rivermigrate). Files are NNNN_name.up.sql / NNNN_name.down.sql; each
// migration runs in its own transaction and records its version in
// veza_schema_migrations. A session advisory lock serialises concurrent
// runners (several pods starting at once).
package migrations

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

//go:embed *.sql
var files embed.FS

// Migration is one embedded migration.
type Migration struct {
	Version int
	Name    string
	Up      string
	Down    string
}

// Label is the file stem, e.g. 0001_accounts.
func (m Migration) Label() string { return fmt.Sprintf("%04d_%s", m.Version, m.Name) }

var fileRE = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.(up|down)\.sql$`)

// All returns the embedded migrations sorted by version.
func All() ([]Migration, error) { return Parse(files) }

// Parse reads migrations from fsys (exported for tests of the naming rules).
func Parse(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	byVersion := map[int]*Migration{}
	for _, e := range entries {
		m := fileRE.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %q does not match NNNN_name.up|down.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, err
		}
		mig := byVersion[v]
		if mig == nil {
			mig = &Migration{Version: v, Name: m[2]}
			byVersion[v] = mig
		} else if mig.Name != m[2] {
			return nil, fmt.Errorf("migration %04d has two names: %q and %q", v, mig.Name, m[2])
		}
		if m[3] == "up" {
			mig.Up = string(body)
		} else {
			mig.Down = string(body)
		}
	}
	out := make([]Migration, 0, len(byVersion))
	for _, m := range byVersion {
		if m.Up == "" || m.Down == "" {
			return nil, fmt.Errorf("migration %s needs both an up and a down file", m.Label())
		}
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration versions must be contiguous from 0001: found %s at position %d", m.Label(), i+1)
		}
	}
	return out, nil
}

// lockKey is the advisory lock every runner takes ("veza-mig" in ASCII).
const lockKey int64 = 0x7665_7a61_2d6d_6967

// Runner applies and reports migrations on one database.
type Runner struct {
	pool  *pgxpool.Pool
	river *rivermigrate.Migrator[pgx.Tx]
	all   []Migration
}

// NewRunner builds a runner. logger receives River's migration lines.
func NewRunner(pool *pgxpool.Pool, logger *slog.Logger) (*Runner, error) {
	all, err := All()
	if err != nil {
		return nil, err
	}
	rm, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("error creating River migrator: %w", err)
	}
	return &Runner{pool: pool, river: rm, all: all}, nil
}

// Status is where a database stands against this binary.
type Status struct {
	Applied      []int // app versions recorded in the database
	Latest       int   // newest app version this binary embeds
	Pending      []Migration
	Unknown      []int // versions in the database this binary does not know: it is ahead
	RiverApplied int
	RiverLatest  int
	RiverUnknown bool
}

// Current reports whether the database is exactly at this binary's schema.
func (s *Status) Current() bool {
	return len(s.Pending) == 0 && len(s.Unknown) == 0 && s.RiverApplied == s.RiverLatest && !s.RiverUnknown
}

// ErrAhead is returned when the database has migrations this binary lacks.
var ErrAhead = errors.New("database schema is ahead of this binary")

// ErrBehind is returned by CheckCurrent when migrations are pending.
var ErrBehind = errors.New("database schema is behind this binary: run `app migrate up`")

// Describe is the human summary `app migrate status` prints.
func (s *Status) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "app schema:   %d of %d applied", len(s.Applied)-len(s.Unknown), s.Latest)
	switch {
	case len(s.Unknown) > 0:
		fmt.Fprintf(&b, " - AHEAD: the database has versions %v that this binary does not know; deploy the newer binary or roll back with it\n", s.Unknown)
	case len(s.Pending) > 0:
		labels := make([]string, len(s.Pending))
		for i, m := range s.Pending {
			labels[i] = m.Label()
		}
		fmt.Fprintf(&b, " - BEHIND: pending %s; run `app migrate up`\n", strings.Join(labels, ", "))
	default:
		b.WriteString(" - current\n")
	}
	fmt.Fprintf(&b, "river schema: %d of %d applied", s.RiverApplied, s.RiverLatest)
	switch {
	case s.RiverUnknown:
		b.WriteString(" - AHEAD: River tables are newer than this binary's River\n")
	case s.RiverApplied < s.RiverLatest:
		b.WriteString(" - BEHIND: run `app migrate up`\n")
	default:
		b.WriteString(" - current\n")
	}
	return b.String()
}

const createTable = `CREATE TABLE IF NOT EXISTS veza_schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)`

// Status reads the database's migration state without changing anything.
func (r *Runner) Status(ctx context.Context) (*Status, error) {
	st := &Status{Latest: len(r.all), RiverLatest: len(r.river.AllVersions())}

	var exists bool
	if err := r.pool.QueryRow(ctx, `SELECT to_regclass('veza_schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("error reading schema state: %w", err)
	}
	if exists {
		rows, err := r.pool.Query(ctx, `SELECT version FROM veza_schema_migrations ORDER BY version`)
		if err != nil {
			return nil, fmt.Errorf("error reading applied migrations: %w", err)
		}
		st.Applied, err = pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			return nil, fmt.Errorf("error reading applied migrations: %w", err)
		}
	}
	applied := map[int]bool{}
	for _, v := range st.Applied {
		applied[v] = true
		if v > st.Latest {
			st.Unknown = append(st.Unknown, v)
		}
	}
	for _, m := range r.all {
		if !applied[m.Version] {
			st.Pending = append(st.Pending, m)
		}
	}

	riverVersions, err := r.river.ExistingVersions(ctx)
	if err != nil {
		// River reports a version its bundle lacks as an error: the
		// database was migrated by a newer River.
		if strings.Contains(err.Error(), "not found in migrator bundle") {
			st.RiverUnknown = true
		} else {
			return nil, fmt.Errorf("error reading River migrations: %w", err)
		}
	}
	st.RiverApplied = len(riverVersions)
	return st, nil
}

// CheckCurrent returns nil when the schema is current, ErrBehind or ErrAhead
// (wrapped with the details) otherwise.
func (r *Runner) CheckCurrent(ctx context.Context) error {
	st, err := r.Status(ctx)
	if err != nil {
		return err
	}
	switch {
	case len(st.Unknown) > 0 || st.RiverUnknown:
		return fmt.Errorf("%w: %s", ErrAhead, strings.TrimSpace(st.Describe()))
	case !st.Current():
		return fmt.Errorf("%w: %s", ErrBehind, strings.TrimSpace(st.Describe()))
	}
	return nil
}

// withLock runs fn on one connection holding the migration advisory lock.
func (r *Runner) withLock(ctx context.Context, fn func(conn *pgxpool.Conn) error) error {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("error connecting to the database: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, lockKey); err != nil {
		return fmt.Errorf("error taking the migration lock: %w", err)
	}
	defer func() {
		// A fresh context: the caller's may be cancelled, and a held session
		// lock on a pooled connection would block the next runner.
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, lockKey)
	}()
	if _, err := conn.Exec(ctx, createTable); err != nil {
		return fmt.Errorf("error creating veza_schema_migrations: %w", err)
	}
	return fn(conn)
}

// Up applies River's migrations, then every pending app migration, each in
// its own transaction. It returns the labels it applied; none means the
// database was already current. A database ahead of the binary is an error.
func (r *Runner) Up(ctx context.Context) ([]string, error) {
	var done []string
	err := r.withLock(ctx, func(conn *pgxpool.Conn) error {
		// River migrates version by version in its own transactions (one
		// adds an enum value that cannot be used in the same transaction);
		// the advisory lock held on conn still serialises runners.
		res, err := r.river.Migrate(ctx, rivermigrate.DirectionUp, nil)
		if err != nil {
			return fmt.Errorf("error applying River migrations: %w", err)
		}
		for _, v := range res.Versions {
			done = append(done, fmt.Sprintf("river_%03d_%s", v.Version, strings.ReplaceAll(v.Name, " ", "_")))
		}

		st, err := r.Status(ctx)
		if err != nil {
			return err
		}
		if len(st.Unknown) > 0 {
			return fmt.Errorf("%w: database has versions %v, this binary knows up to %d", ErrAhead, st.Unknown, st.Latest)
		}
		for _, m := range st.Pending {
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, m.Up); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `INSERT INTO veza_schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name)
				return err
			})
			if err != nil {
				return fmt.Errorf("error applying migration %s: %w", m.Label(), err)
			}
			done = append(done, m.Label())
		}
		return nil
	})
	return done, err
}

// DownOpts says how far Down goes.
type DownOpts struct {
	// Steps is how many app migrations to revert, newest first (default 1).
	Steps int
	// All reverts every app migration and then River's tables: an empty
	// database. Queued jobs are lost; the operator asked for it.
	All bool
}

// Down reverts app migrations newest first. A down file may refuse (RAISE)
// when reverting would lose data; the transaction then rolls back and the
// error carries the migration's message.
func (r *Runner) Down(ctx context.Context, opts DownOpts) ([]string, error) {
	if opts.Steps <= 0 {
		opts.Steps = 1
	}
	var done []string
	err := r.withLock(ctx, func(conn *pgxpool.Conn) error {
		st, err := r.Status(ctx)
		if err != nil {
			return err
		}
		if len(st.Unknown) > 0 {
			return fmt.Errorf("%w: versions %v must be reverted by the binary that applied them", ErrAhead, st.Unknown)
		}
		applied := st.Applied
		for i := len(applied) - 1; i >= 0 && (opts.All || len(done) < opts.Steps); i-- {
			m := r.all[applied[i]-1]
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, m.Down); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `DELETE FROM veza_schema_migrations WHERE version = $1`, m.Version)
				return err
			})
			if err != nil {
				return fmt.Errorf("error reverting migration %s: %w", m.Label(), err)
			}
			done = append(done, m.Label())
		}
		if !opts.All {
			return nil
		}
		res, err := r.river.Migrate(ctx, rivermigrate.DirectionDown, &rivermigrate.MigrateOpts{TargetVersion: -1})
		if err != nil {
			return fmt.Errorf("error reverting River migrations: %w", err)
		}
		for _, v := range res.Versions {
			done = append(done, fmt.Sprintf("river_%03d_%s", v.Version, strings.ReplaceAll(v.Name, " ", "_")))
		}
		if _, err := conn.Exec(ctx, `DROP TABLE veza_schema_migrations`); err != nil {
			return fmt.Errorf("error dropping veza_schema_migrations: %w", err)
		}
		return nil
	})
	return done, err
}
