// Package chaos holds the crash suite: it runs the real binary (`app serve`
// and `app work`) against real PostgreSQL and the fake Hyperswitch, Stripe
// and SMTP, drives purchases, payments, refunds and disputes (opened while
// payouts run then won; lost in full or in part) while kill -9-ing worker
// processes, and checks the money invariants at the end. `make test` runs it
// small; `make chaos` runs it full-size (CHAOS_PURCHASES, CHAOS_KILLS).
package chaos
