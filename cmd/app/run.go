package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `usage: app <command> [flags]

commands:
  serve                      HTTP API + River workers + periodic jobs + River UI
  work                       River workers + periodic jobs only (scale out)
  migrate up                 apply the app's and River's migrations
  migrate down [--steps N | --all]
                             revert N app migrations (default 1); --all also drops River's tables
  migrate status             show where the database stands against this binary
  migrate-storage            enqueue the copy of every local track to S3 (then flip each row)
  reconcile [--order ID | --refund ID]
                             enqueue the reconcile sweep now, or one row's reconcile job
  user create-admin --email E --password P
                             create an admin, or promote an existing user (idempotent)
  sandbox pay ORDER_ID [--status S] [--api URL]
                             the buyer pays ORDER_ID (or a payment_id) in the development sandbox;
                             --status failed, processing, cancelled, expired, ... (default succeeded)
  seed [--api URL]           demo sellers (payouts enabled), tracks and a buyer on the running sandbox;
                             prints their logins (idempotent)
  version                    print the version

Configuration comes from the environment; see .env.template.
`

// usageError makes main print usage and exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{msg: fmt.Sprintf(format, args...)} }

// run is the whole program. ctx ends on SIGINT/SIGTERM.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		return usagef("no command given")
	}
	cmd, rest := args[1], args[2:]
	switch cmd {
	case "serve":
		if err := noFlags("serve", rest, stderr); err != nil {
			return err
		}
		return runService(ctx, getenv, stdout, true)
	case "work":
		if err := noFlags("work", rest, stderr); err != nil {
			return err
		}
		return runService(ctx, getenv, stdout, false)
	case "migrate":
		return runMigrate(ctx, rest, getenv, stdout, stderr)
	case "migrate-storage":
		return runMigrateStorage(ctx, rest, getenv, stdout, stderr)
	case "reconcile":
		return runReconcile(ctx, rest, getenv, stdout, stderr)
	case "user":
		return runUser(ctx, rest, getenv, stdout, stderr)
	case "sandbox":
		return runSandbox(ctx, rest, getenv, stdout, stderr)
	case "seed":
		return runSeed(ctx, rest, getenv, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "veza %s (%s%s)\n", version, runtime.Version(), vcsRevision())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		return usagef("unknown command %q", cmd)
	}
}

// noFlags rejects any argument for commands that take none.
func noFlags(name string, args []string, stderr io.Writer) error {
	fs := newFlagSet(name, stderr)
	return parseFlags(fs, args)
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // main prints usage once
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return usagef("help requested")
		}
		return usagef("%s: %v", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q", fs.Name(), strings.Join(fs.Args(), " "))
	}
	return nil
}

func vcsRevision() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return ", " + s.Value[:12]
		}
	}
	return ""
}
