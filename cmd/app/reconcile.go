package main

import (
	"context"
	"fmt"
	"io"

	"github.com/google/uuid"

	"github.com/veza/backend/jobs"
)

// runReconcile enqueues a reconcile (never runs it here: the workers of
// serve/work do, visibly in River UI) and prints the job ids.
func runReconcile(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("reconcile", stderr)
	order := fs.String("order", "", "reconcile one order (its id)")
	refund := fs.String("refund", "", "reconcile one refund (its id)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var req jobs.ReconcileRequest
	for _, f := range []struct {
		name, value string
		dst         **uuid.UUID
	}{{"--order", *order, &req.OrderID}, {"--refund", *refund, &req.RefundID}} {
		if f.value == "" {
			continue
		}
		id, err := uuid.Parse(f.value)
		if err != nil {
			return usagef("reconcile: %s must be a UUID", f.name)
		}
		*f.dst = &id
	}
	if req.OrderID != nil && req.RefundID != nil {
		return usagef("reconcile: give --order or --refund, not both")
	}

	return command(ctx, getenv, func(a *app, inserter *jobs.Client) error {
		ids, err := jobs.EnqueueReconcile(ctx, inserter, a.db, req)
		for _, id := range ids {
			fmt.Fprintf(stdout, "enqueued job %d\n", id)
		}
		return err
	})
}
