package migrations

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pressly/goose/v3/database"
)

// legacyTable is where the runner before goose recorded applied versions.
const legacyTable = "veza_schema_migrations"

// withLock runs fn holding the migration lock, a PostgreSQL session-level
// advisory lock taken on one connection for the whole command: River's
// migrations, the ahead check and every goose step run under it, so two
// runners (or a runner of the release before goose, which took the same
// key) never interleave. pg_advisory_lock waits as long as the running
// migration takes. goose's own locker is not used: it would lock each goose
// call on its own and give up after a timeout. A database migrated before
// goose is adopted first.
func (r *Runner) withLock(ctx context.Context, fn func() error) error {
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
	if err := r.adoptLegacy(ctx, conn); err != nil {
		return err
	}
	return fn()
}

// adoptLegacy copies the versions the runner before goose recorded into
// goose's table, in one transaction: nothing is re-applied. The old table
// stays as it was, so processes of the previous release (which read it for
// readiness) stay ready during a rolling deploy and a rollback to it still
// boots; a later release drops it.
func (r *Runner) adoptLegacy(ctx context.Context, conn *pgxpool.Conn) error {
	var gooseTable, legacy bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL`,
		r.store.Tablename(), legacyTable).Scan(&gooseTable, &legacy); err != nil {
		return fmt.Errorf("error reading schema state: %w", err)
	}
	if gooseTable || !legacy {
		return nil
	}
	applied, err := r.appliedVersions(ctx)
	if err != nil {
		return err
	}
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if err := r.store.CreateVersionTable(ctx, tx); err != nil {
		return err
	}
	for _, v := range append([]int{0}, applied...) { // goose records 0 at creation
		if err := r.store.Insert(ctx, tx, database.InsertRequest{Version: int64(v)}); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("error adopting %s: %w", legacyTable, err)
	}
	return nil
}
