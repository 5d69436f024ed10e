// Package chaos holds the crash suite: it runs the real binary (`app serve`
// and `app work`) against real PostgreSQL and the fake Hyperswitch, Stripe
// and SMTP, drives purchases, payments and refunds while kill -9-ing worker
// processes, and checks the money invariants at the end. `make test` runs it
// small; `make chaos` runs it full-size (CHAOS_PURCHASES, CHAOS_KILLS).
package chaos
