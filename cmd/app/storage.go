package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/veza/backend/jobs"
)

// runMigrateStorage enqueues one job per local track that copies it to S3,
// verifies it and flips its row; the workers of serve/work do the copying.
func runMigrateStorage(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if err := noFlags("migrate-storage", args, stderr); err != nil {
		return err
	}
	return command(ctx, getenv, func(a *app, inserter *jobs.Client) error {
		if !a.cfg.S3.Enabled || a.cfg.S3.Bucket == "" || a.cfg.S3.Endpoint == "" {
			return errors.New("migrate-storage needs S3: set AWS_S3_ENABLED=true, AWS_S3_ENDPOINT and AWS_S3_BUCKET (the workers copy to it)")
		}
		n, err := jobs.EnqueueStorageMigration(ctx, inserter, a.db)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "enqueued %d track migration jobs (progress: GET /admin/storage/migration)\n", n)
		return nil
	})
}
