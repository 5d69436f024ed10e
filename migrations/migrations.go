// Package migrations holds the service's SQL migrations, embedded in the
// binary, and applies them with pressly/goose (one transaction per
// migration, a PostgreSQL session lock against concurrent runners) together
// with River's own tables (rivermigrate). Files are NNNN_name.sql with
// goose's -- +goose Up / Down sections; a down section may refuse (RAISE)
// when reverting would lose data.
package migrations

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

//go:embed *.sql
var files embed.FS

// Migration is one embedded migration.
type Migration struct {
	Version int
	Name    string
}

// Label is the file stem, e.g. 0001_accounts.
func (m Migration) Label() string { return fmt.Sprintf("%04d_%s", m.Version, m.Name) }

var fileRE = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// All returns the embedded migrations sorted by version.
func All() ([]Migration, error) {
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		m := fileRE.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %q does not match NNNN_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		out = append(out, Migration{Version: v, Name: m[2]})
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	return out, nil
}

// Fingerprint identifies the embedded migrations' content (test databases
// are cloned from a template named after it).
func Fingerprint() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := fs.ReadFile(files, path)
		fmt.Fprintf(h, "%s\x00%s\x00", path, raw)
		return err
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

// lockKey is the advisory lock every runner takes ("veza-mig" in ASCII), the
// key the runner before goose took too.
const lockKey int64 = 0x7665_7a61_2d6d_6967

// Runner applies and reports migrations on one database.
type Runner struct {
	pool     *pgxpool.Pool
	db       *sql.DB
	goose    *goose.Provider
	newGoose func() (*goose.Provider, error)
	store    database.Store
	river    *rivermigrate.Migrator[pgx.Tx]
	all      []Migration
}

// NewRunner builds a runner. logger receives goose's and River's lines.
func NewRunner(pool *pgxpool.Pool, logger *slog.Logger) (*Runner, error) {
	all, err := All()
	if err != nil {
		return nil, err
	}
	db := stdlib.OpenDBFromPool(pool)
	newGoose := func() (*goose.Provider, error) {
		// No goose locker: withLock holds one lock for the whole command.
		p, err := goose.NewProvider(goose.DialectPostgres, db, files, goose.WithSlog(logger))
		if err != nil {
			return nil, fmt.Errorf("error creating the migration provider: %w", err)
		}
		return p, nil
	}
	provider, err := newGoose()
	if err != nil {
		return nil, err
	}
	store, err := database.NewStore(goose.DialectPostgres, goose.DefaultTablename)
	if err != nil {
		return nil, err
	}
	rm, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("error creating River migrator: %w", err)
	}
	return &Runner{pool: pool, db: db, goose: provider, newGoose: newGoose, store: store, river: rm, all: all}, nil
}

// Up applies River's migrations, then every pending app migration, each in
// its own transaction, under the migration lock. It returns the labels it
// applied; none means the database was already current. A database ahead
// of the binary is an error.
func (r *Runner) Up(ctx context.Context) ([]string, error) {
	var done []string
	err := r.withLock(ctx, func() error {
		// River migrates version by version in its own transactions (one
		// adds an enum value that cannot be used in the same transaction).
		res, err := r.river.Migrate(ctx, rivermigrate.DirectionUp, nil)
		if err != nil {
			return fmt.Errorf("error applying River migrations: %w", err)
		}
		for _, v := range res.Versions {
			done = append(done, riverLabel(v))
		}
		if err := r.refuseAhead(ctx, "this binary knows up to %d"); err != nil {
			return err
		}
		results, err := r.goose.Up(ctx)
		done = append(done, labels(results, err)...)
		if err != nil {
			return fmt.Errorf("error applying migrations: %w", err)
		}
		return nil
	})
	return done, err
}

// refuseAhead is ErrAhead when the database has versions this binary lacks.
func (r *Runner) refuseAhead(ctx context.Context, detail string) error {
	st, err := r.Status(ctx)
	if err != nil {
		return err
	}
	if len(st.Unknown) > 0 {
		return fmt.Errorf("%w: database has versions %v, "+detail, ErrAhead, st.Unknown, st.Latest)
	}
	return nil
}

// DownOpts says how far Down goes.
type DownOpts struct {
	// Steps is how many app migrations to revert, newest first (default 1).
	Steps int
	// All reverts every app migration and then River's tables: an empty
	// database. Queued jobs are lost; the operator asked for it.
	All bool
}

// Down reverts app migrations newest first, each in its own transaction,
// under the migration lock. A down section may refuse (RAISE) when
// reverting would lose data; its transaction then rolls back and the error
// carries the migration's message.
func (r *Runner) Down(ctx context.Context, opts DownOpts) ([]string, error) {
	if opts.Steps <= 0 {
		opts.Steps = 1
	}
	var done []string
	err := r.withLock(ctx, func() error {
		if err := r.refuseAhead(ctx, "they must be reverted by the binary that applied them (this one knows up to %d)"); err != nil {
			return err
		}
		if opts.All {
			return r.downAll(ctx, &done)
		}
		for range opts.Steps {
			result, err := r.goose.Down(ctx)
			if errors.Is(err, goose.ErrNoNextVersion) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("error reverting migrations: %w", err)
			}
			done = append(done, labels([]*goose.MigrationResult{result}, nil)...)
		}
		return nil
	})
	return done, err
}

// downAll reverts every app migration, then River's tables, and drops
// goose's table: an empty database.
func (r *Runner) downAll(ctx context.Context, done *[]string) error {
	results, err := r.goose.DownTo(ctx, 0)
	*done = append(*done, labels(results, err)...)
	if err != nil {
		return fmt.Errorf("error reverting migrations: %w", err)
	}
	res, err := r.river.Migrate(ctx, rivermigrate.DirectionDown, &rivermigrate.MigrateOpts{TargetVersion: -1})
	if err != nil {
		return fmt.Errorf("error reverting River migrations: %w", err)
	}
	for _, v := range res.Versions {
		*done = append(*done, riverLabel(v))
	}
	for _, table := range []string{r.store.Tablename(), legacyTable} {
		if _, err := r.pool.Exec(ctx, `DROP TABLE IF EXISTS `+table); err != nil {
			return fmt.Errorf("error dropping %s: %w", table, err)
		}
	}
	// A provider creates its version table once in its life: a new one
	// recreates it at the next up.
	r.goose, err = r.newGoose()
	return err
}

// labels names the migrations goose ran: those in results, or, when a run
// stopped at a failure, those it applied before it (in err).
func labels(results []*goose.MigrationResult, err error) []string {
	var partial *goose.PartialError
	if errors.As(err, &partial) {
		results = partial.Applied
	}
	out := make([]string, 0, len(results))
	for _, res := range results {
		if res != nil && res.Source != nil {
			out = append(out, strings.TrimSuffix(res.Source.Path, ".sql"))
		}
	}
	return out
}

func riverLabel(v rivermigrate.MigrateVersion) string {
	return fmt.Sprintf("river_%03d_%s", v.Version, strings.ReplaceAll(v.Name, " ", "_"))
}
