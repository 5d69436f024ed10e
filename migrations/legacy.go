package migrations

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pressly/goose/v3/database"
)

// legacyTable is where the runner before goose recorded applied versions.
const legacyTable = "veza_schema_migrations"

// prepare holds the migration lock while it adopts a database migrated by
// the runner before goose and runs fn (River's migrations). goose takes the
// same lock on its own connection afterwards.
func (r *Runner) prepare(ctx context.Context, fn func() error) error {
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
	if fn == nil {
		return nil
	}
	return fn()
}

// adoptLegacy moves the versions the runner before goose recorded into
// goose's table, in one transaction: nothing is re-applied.
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
	if _, err := tx.ExecContext(ctx, `DROP TABLE `+legacyTable); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("error adopting %s: %w", legacyTable, err)
	}
	return nil
}
