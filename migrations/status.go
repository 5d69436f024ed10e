package migrations

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

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

// Status reads the database's migration state without changing anything
// and without waiting for a running migration (readiness probes call it).
func (r *Runner) Status(ctx context.Context) (*Status, error) {
	st := &Status{RiverLatest: len(r.river.AllVersions())}
	if len(r.all) > 0 {
		st.Latest = r.all[len(r.all)-1].Version
	}
	applied, err := r.appliedVersions(ctx)
	if err != nil {
		return nil, err
	}
	st.Applied = applied
	known := map[int]bool{}
	for _, m := range r.all {
		known[m.Version] = true
		if !slices.Contains(applied, m.Version) {
			st.Pending = append(st.Pending, m)
		}
	}
	for _, v := range applied {
		if !known[v] {
			st.Unknown = append(st.Unknown, v)
		}
	}

	riverVersions, err := r.river.ExistingVersions(ctx)
	if err != nil {
		// River reports a version its bundle lacks as an error: the
		// database was migrated by a newer River.
		if !strings.Contains(err.Error(), "not found in migrator bundle") {
			return nil, fmt.Errorf("error reading River migrations: %w", err)
		}
		st.RiverUnknown = true
	}
	st.RiverApplied = len(riverVersions)
	return st, nil
}

// appliedVersions lists the app versions applied, ascending: from goose's
// table, or from the legacy table of a database not yet adopted.
func (r *Runner) appliedVersions(ctx context.Context) ([]int, error) {
	var gooseTable, legacy bool
	err := r.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL`,
		r.store.Tablename(), legacyTable).Scan(&gooseTable, &legacy)
	if err != nil {
		return nil, fmt.Errorf("error reading schema state: %w", err)
	}
	var out []int
	switch {
	case gooseTable:
		rows, err := r.store.ListMigrations(ctx, r.db)
		if err != nil {
			return nil, fmt.Errorf("error reading applied migrations: %w", err)
		}
		for _, m := range rows {
			if m.IsApplied && m.Version > 0 {
				out = append(out, int(m.Version))
			}
		}
	case legacy:
		rows, err := r.pool.Query(ctx, `SELECT version FROM `+legacyTable)
		if err != nil {
			return nil, fmt.Errorf("error reading applied migrations: %w", err)
		}
		if out, err = pgx.CollectRows(rows, pgx.RowTo[int]); err != nil {
			return nil, fmt.Errorf("error reading applied migrations: %w", err)
		}
	}
	slices.Sort(out)
	return out, nil
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
