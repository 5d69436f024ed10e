package main

import (
	"context"
	"fmt"
	"io"

	"github.com/veza/backend/migrations"
)

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("migrate needs up, down or status")
	}
	sub, rest := args[0], args[1:]
	fs := newFlagSet("migrate "+sub, stderr)
	var down migrations.DownOpts
	switch sub {
	case "up", "status":
	case "down":
		fs.IntVar(&down.Steps, "steps", 1, "app migrations to revert")
		fs.BoolVar(&down.All, "all", false, "revert everything, River's tables included")
	default:
		return usagef("unknown migrate command %q", sub)
	}
	if err := parseFlags(fs, rest); err != nil {
		return err
	}

	a, err := boot(ctx, getenv, io.Discard, false)
	if err != nil {
		return err
	}
	defer a.db.Close()

	switch sub {
	case "up":
		done, err := a.runner.Up(ctx)
		for _, label := range done {
			fmt.Fprintln(stdout, "applied", label)
		}
		if err != nil {
			return err
		}
		if len(done) == 0 {
			fmt.Fprintln(stdout, "nothing to apply: the database is current")
		}
		return nil
	case "down":
		done, err := a.runner.Down(ctx, down)
		for _, label := range done {
			fmt.Fprintln(stdout, "reverted", label)
		}
		if err != nil {
			return err
		}
		if len(done) == 0 {
			fmt.Fprintln(stdout, "nothing to revert")
		}
		return nil
	default:
		st, err := a.runner.Status(ctx)
		if err != nil {
			return err
		}
		fmt.Fprint(stdout, st.Describe())
		return nil
	}
}
