// Package jobargs holds every River job's arguments (an XxxArgs with Kind
// and InsertOpts), the queue names and the retry policy of each kind. It is
// a leaf: http, cmd, settle, bench and the workers in jobs import it, and it
// imports nothing of the service but the Hyperswitch wire type an event
// carries. A job's queue, uniqueness and attempt budget are defined here,
// once; workers live in package jobs.
package jobargs

import (
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Queue names. Every job declares one of these in its InsertOpts. Work that
// waits on one provider has a queue of its own, so a provider's brownout
// (Stripe answering in 30 s) holds only that queue's workers: a paid order
// completes on events while payouts wait on stripe.
const (
	QueueDefault = "default"
	// QueueEvents applies Hyperswitch events: order completion, refund and
	// dispute outcomes. Database work only: no provider call.
	QueueEvents = "events"
	// QueueStripe pays sellers and takes payouts back (Stripe Connect).
	QueueStripe = "stripe"
	// QueueHyperswitch submits refunds and reads stuck rows back
	// (reconcile row jobs, at PrioritySweep).
	QueueHyperswitch = "hyperswitch"
	QueueEmail       = "email"
	QueueMaintenance = "maintenance"
	// QueuePayments is the queue every payments job used before the
	// queues above: still served, so jobs an earlier version enqueued (a
	// retryable payout, a scheduled refund submit) finish. Nothing new is
	// inserted in it.
	QueuePayments = "payments"
)

// Queues lists the queues in a stable order; RIVER_WORKERS_<QUEUE> sizes each.
var Queues = []string{QueueDefault, QueueEvents, QueueStripe, QueueHyperswitch, QueueEmail, QueueMaintenance, QueuePayments}

// Job priorities (River: 1 is fetched first). Live work (a buyer's refund,
// a seller's payout) is PriorityLive; sweeps that share its provider and
// queue are PrioritySweep: a queue's free worker takes live work first, and
// the provider's bucket serves a sweep only from tokens live work left
// (ratelimit.Background), so a reconcile backlog delays a refund submit by
// no more than a token's interval.
const (
	PriorityLive  = 1
	PrioritySweep = 3
)

// OneLiveJob makes a job unique per args while one is queued or running; a
// finished one (completed, discarded, cancelled) does not block a new round.
var OneLiveJob = river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
	rivertype.JobStateRetryable, rivertype.JobStateScheduled,
}}

// Retry is an attempt budget with an exponential backoff: the delay before
// retry n (0 is the first retry) is Base·2^n capped at Max.
type Retry struct {
	MaxAttempts int
	Base, Max   time.Duration
}

// Delay is the wait before retry n (n = attempt - 1 for the attempt that
// just failed).
func (r Retry) Delay(n int) time.Duration {
	d := r.Base
	for i := 0; i < n; i++ {
		if d >= r.Max/2 {
			return r.Max
		}
		d *= 2
	}
	return min(d, r.Max)
}

// NextRetry is River's NextRetry for an attempt that just failed.
func (r Retry) NextRetry(attempt int) time.Time { return time.Now().Add(r.Delay(attempt - 1)) }

// Policy holds the budgets that operators configure (TRANSFER_* and
// REVERSAL_*); every other kind's budget is a constant in its InsertOpts.
// Every payout and reversal job is built by its method here, so the budget
// is written once whoever enqueues (a paid order, a refund, an operator's
// retry, the safety net).
type Policy struct {
	Payout   Retry
	Reversal Retry
	// KeyWindow is how long a payout may reuse its idempotency key: less
	// than the 24 h Stripe keeps a key's saved result. After it, the next
	// attempt looks the transfer up and starts a new round with a new key.
	KeyWindow time.Duration
	// BalanceWait is how long a payout or reversal that Stripe refused for
	// balance_insufficient waits before it tries again, with a new key.
	BalanceWait time.Duration
	// ReversalSettle is how long after a reversal request was sent its key
	// may be replaced by a new one (ReversalSettleTime).
	ReversalSettle time.Duration
}

// DefaultReversalSettle is the ReversalSettle of a Policy that sets none:
// four times the Stripe client's 30 s timeout.
const DefaultReversalSettle = 2 * time.Minute

// ReversalSettleTime is ReversalSettle, DefaultReversalSettle when unset.
// A reversal's retry reads the transfer back and, if it is not reversed,
// sends a new key (the old one may hold a saved error). But Stripe may
// still be executing the request our client gave up on: a new key then
// would make a second reversal, and for a dispute's share Stripe accepts
// both. So the new key waits until the old request has had this long.
func (p Policy) ReversalSettleTime() time.Duration {
	if p.ReversalSettle <= 0 {
		return DefaultReversalSettle
	}
	return p.ReversalSettle
}

// DefaultKeyWindow is the key window of a Policy that sets none.
const DefaultKeyWindow = 23 * time.Hour

// KeyReuse is the key window, DefaultKeyWindow when unset: a zero window
// would start a new round at every attempt.
func (p Policy) KeyReuse() time.Duration {
	if p.KeyWindow <= 0 {
		return DefaultKeyWindow
	}
	return p.KeyWindow
}

// PayoutJob is the insert of one payout job.
func (p Policy) PayoutJob(transferID uuid.UUID) river.InsertManyParams {
	return river.InsertManyParams{Args: PayoutArgs{TransferID: transferID}, InsertOpts: &river.InsertOpts{MaxAttempts: p.Payout.MaxAttempts}}
}

// ReversalJob is the insert of one reversal job.
func (p Policy) ReversalJob(transferID uuid.UUID) river.InsertManyParams {
	return river.InsertManyParams{Args: ReversalArgs{TransferID: transferID}, InsertOpts: &river.InsertOpts{MaxAttempts: p.Reversal.MaxAttempts}}
}

// Unique returns job made unique while one of its kind and args is live:
// for enqueuers that follow no guarded state change (the safety net), where
// a job that appeared meanwhile must not be doubled.
func Unique(job river.InsertManyParams) river.InsertManyParams {
	opts := river.InsertOpts{}
	if job.InsertOpts != nil {
		opts = *job.InsertOpts
	}
	opts.UniqueOpts = OneLiveJob
	job.InsertOpts = &opts
	return job
}
