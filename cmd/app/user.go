package main

import (
	"context"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/veza/backend/auth"
	"github.com/veza/backend/jobs"
	"github.com/veza/backend/store"
)

// runUser handles `app user create-admin --email E --password P`: creates an
// admin, or promotes an existing user (keeping their password). Idempotent.
func runUser(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create-admin" {
		return usagef("user needs a subcommand: create-admin")
	}
	fs := newFlagSet("user create-admin", stderr)
	email := fs.String("email", "", "admin email")
	password := fs.String("password", "", "password for a new admin (at least 8 characters)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	addr := strings.ToLower(strings.TrimSpace(*email))
	if parsed, err := mail.ParseAddress(addr); err != nil || parsed.Address != addr {
		return usagef("user create-admin: --email must be an email address")
	}
	if utf8.RuneCountInString(*password) < 8 {
		return usagef("user create-admin: --password must be at least 8 characters")
	}

	return command(ctx, getenv, func(a *app, _ *jobs.Client) error {
		hash, err := auth.HashPassword(*password)
		if err != nil {
			return err
		}
		var created bool
		err = a.db.InTx(ctx, func(tx pgx.Tx) error {
			_, created, err = store.UpsertAdmin(ctx, tx, addr, hash)
			return err
		})
		if err != nil {
			return err
		}
		if created {
			fmt.Fprintf(stdout, "created admin %s\n", addr)
		} else {
			fmt.Fprintf(stdout, "promoted %s to admin (password unchanged)\n", addr)
		}
		return nil
	})
}
