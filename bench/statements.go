package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// watchStatements, with -statements, starts counting where the database's
// time goes; the returned func writes the step's statements by total
// execution time, and the wait events of active connections sampled every
// 20 ms ("CPU" when a connection waits on nothing), and each table's row
// updates with how many were HOT (no index entry, no new page), to
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
	updatesBefore := b.tableUpdates(ctx)
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
		fmt.Fprintf(&out, "\n%s: row updates by table (pg_stat_user_tables, flushed about every second)\n%9s %9s  %s\n", step, "updates", "HOT", "table")
		after := b.tableUpdates(ctx)
		var tables []string
		for t := range after {
			tables = append(tables, t)
		}
		slices.Sort(tables)
		for _, t := range tables {
			if d := after[t].sub(updatesBefore[t]); d.all > 0 {
				fmt.Fprintf(&out, "%9d %9d  %s\n", d.all, d.hot, t)
			}
		}
		path := filepath.Join(os.TempDir(), "veza-"+step+"-statements.txt")
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			say("pg_stat_statements: %v", err)
			return
		}
		say("where the database's time went during %s: %s", step, path)
	}
}

type updateCount struct{ all, hot int64 }

func (u updateCount) sub(o updateCount) updateCount { return updateCount{u.all - o.all, u.hot - o.hot} }

// tableUpdates reads each table's update counters; an error reads as none.
func (b *bench) tableUpdates(ctx context.Context) map[string]updateCount {
	out := map[string]updateCount{}
	rows, err := b.pool.Query(ctx, `SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables`)
	if err != nil {
		return out
	}
	defer rows.Close()
	for rows.Next() {
		var t string
		var u updateCount
		if rows.Scan(&t, &u.all, &u.hot) == nil {
			out[t] = u
		}
	}
	return out
}
