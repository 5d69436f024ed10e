// Package settle is the one home of money state changes. Each function
// moves orders, refunds and seller transfers through their guarded status
// machines (veza's move tables, store's Transition functions) and inserts
// the jobs the change implies, in the caller's transaction: the rule of the
// service is that a state change and its jobs commit together.
//
// Callers own the transaction and call providers outside it: an HTTP
// handler (a refund request, an operator's retry) or a thin worker in
// package jobs (a payout that Stripe answered, an event Hyperswitch sent).
// A new money flow goes here, as a function taking (ctx, tx, ins, ...).
package settle

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/veza/backend/jobargs"
)

// Inserter is what settle needs of River: *river.Client[pgx.Tx] satisfies
// it, an insert-only client as well as a working one.
type Inserter interface {
	InsertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	InsertManyTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
}

// Settler applies money state changes under the service's rules: the
// platform fee and the attempt budgets of payout and reversal jobs.
type Settler struct {
	// FeeBPS is the platform's share of each seller's gross, in basis
	// points (PLATFORM_FEE_BPS).
	FeeBPS int
	Jobs   jobargs.Policy
	// Logger receives the situations an operator must know about (an
	// amount mismatch, a dispute); errors are returned, not logged.
	Logger zerolog.Logger
	// RefundWindow is how long after completion a buyer may ask a refund
	// (REFUND_WINDOW); zero is no window.
	RefundWindow time.Duration
}
