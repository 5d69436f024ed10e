// Command bench measures the service against the physical limits of the
// machine it runs on and prints one table (also written as JSON under
// bench/results/). Every figure is a ratio to a baseline measured in the same
// run: the machines are shared and noisy, absolute numbers are not
// comparable across runs. `make bench`; bounded to a few minutes on 2 cores.
//
// It starts its own PostgreSQL cluster (initdb/pg_ctl), the real binary
// (`app serve` with the shipped queue settings, through servicetest) and the
// fake Hyperswitch and Stripe in this process. Each step is a file of its
// own; a step that needs a baseline or another step's figure asks for it
// (b.pgbench, b.ingestMax, ...), which measures it once when it was not
// measured yet, so any step can run alone.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

func main() {
	quick := flag.Bool("quick", false, "smaller sizes (a smoke run)")
	out := flag.String("out", "bench/results", "where to write the JSON")
	only := flag.String("only", "", "comma-separated steps to run ("+strings.Join(stepNames(), ", ")+"); each measures the baselines it needs; results are then not written")
	statements := flag.Bool("statements", false, "load pg_stat_statements and write where the database's time went during ingest and settlement to "+filepath.Join(os.TempDir(), "veza-<step>-statements.txt"))
	flag.Parse()
	if err := run(*quick, *out, *only, *statements); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) { fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...) }

// sizes of each step, full or quick. medianRuns is how many runs
// settlement and ingest's max rate each report the median of.
type sizes struct {
	riverJobs, ingest, orders, medianRuns, backlog, expired, pspOrders int
	agedOrders, agedLog, agedJobs                                      int
}

var (
	fullSizes = sizes{riverJobs: 20_000, ingest: 10_000, orders: 3_000, medianRuns: 3, backlog: 10_000, expired: 1_000_000, pspOrders: 1_000,
		agedOrders: 1_000_000, agedLog: 10_000_000, agedJobs: 500_000}
	quickSizes = sizes{riverJobs: 2_000, ingest: 1_000, orders: 100, medianRuns: 1, backlog: 500, expired: 50_000, pspOrders: 200,
		agedOrders: 20_000, agedLog: 180_000, agedJobs: 10_000}
)

// step is one measurement of the table.
type step struct {
	name string
	run  func(*bench, context.Context) error
}

var steps = []step{
	{"baselines", func(b *bench, ctx context.Context) error {
		if _, err := b.pgbench(ctx); err != nil {
			return err
		}
		_, err := b.bareRiver(ctx)
		return err
	}},
	{"ingest", (*bench).ingest},
	{"telemetry", (*bench).telemetry},
	{"settlement", (*bench).settlement},
	{"psp-settlement", (*bench).pspSettlement},
	{"psp-reconcile", (*bench).pspReconcile},
	{"brownout", (*bench).brownout},
	{"reconcile", (*bench).reconcile},
	{"retention", (*bench).retention},
	{"upload", (*bench).uploadMemory},
	{"scale-out", (*bench).scaleOut},
	// Last: its preload stays in the database.
	{"aged", (*bench).aged},
}

func stepNames() []string {
	names := make([]string, len(steps))
	for i, s := range steps {
		names[i] = s.name
	}
	return names
}

func run(quick bool, outDir, only string, statements bool) error {
	size := fullSizes
	if quick {
		size = quickSizes
	}
	var selected []string
	if only != "" {
		selected = strings.Split(only, ",")
		for _, name := range selected {
			if !slices.Contains(stepNames(), name) {
				return fmt.Errorf("unknown step %q (steps: %s)", name, strings.Join(stepNames(), ", "))
			}
		}
	}
	ctx := context.Background()
	b, err := newBench(ctx, size, statements)
	if err != nil {
		return err
	}
	defer b.close()
	for _, s := range steps {
		if selected != nil && !slices.Contains(selected, s.name) {
			continue
		}
		say("%s", s.name)
		start := time.Now()
		if err := s.run(b, ctx); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		say("%s done in %s", s.name, time.Since(start).Round(time.Millisecond))
	}
	b.print()
	if selected != nil {
		return nil
	}
	return b.write(outDir, quick)
}
