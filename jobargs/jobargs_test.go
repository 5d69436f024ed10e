package jobargs_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/jobargs"
)

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	r := jobargs.Retry{Base: time.Second, Max: 10 * time.Second}
	require.Equal(t, time.Second, r.Delay(0))
	require.Equal(t, 2*time.Second, r.Delay(1))
	require.Equal(t, 8*time.Second, r.Delay(3))
	require.Equal(t, 10*time.Second, r.Delay(4), "capped, not 16s")
	require.Equal(t, 10*time.Second, r.Delay(200), "no overflow")
	require.WithinDuration(t, time.Now().Add(2*time.Second), r.NextRetry(2), time.Second, "after attempt 2 comes retry 1")
}

func TestPolicyBuildsEachJobWithItsBudget(t *testing.T) {
	t.Parallel()
	p := jobargs.Policy{Payout: jobargs.Retry{MaxAttempts: 4}, Reversal: jobargs.Retry{MaxAttempts: 6}}
	id := uuid.New()
	payout := p.PayoutJob(id)
	require.Equal(t, jobargs.PayoutArgs{TransferID: id}, payout.Args)
	require.Equal(t, 4, payout.InsertOpts.MaxAttempts)
	require.Equal(t, 6, p.ReversalJob(id).InsertOpts.MaxAttempts)

	unique := jobargs.Unique(payout)
	require.Equal(t, jobargs.OneLiveJob, unique.InsertOpts.UniqueOpts)
	require.Equal(t, 4, unique.InsertOpts.MaxAttempts, "the budget is kept")
	require.Zero(t, payout.InsertOpts.UniqueOpts, "the original is not changed")
}

// TestEachProviderHasItsQueue: work that waits on one provider is on that
// provider's queue (a brownout holds only its workers), event processing
// calls none, and sweeps sharing a queue with live work come after it.
func TestEachProviderHasItsQueue(t *testing.T) {
	t.Parallel()
	type opts interface{ InsertOpts() river.InsertOpts }
	for _, c := range []struct {
		args     opts
		queue    string
		priority int
	}{
		{jobargs.ProcessEventArgs{}, jobargs.QueueEvents, 0},
		{jobargs.PayoutArgs{}, jobargs.QueueStripe, 0},
		{jobargs.ReversalArgs{}, jobargs.QueueStripe, 0},
		{jobargs.SubmitRefundArgs{}, jobargs.QueueHyperswitch, jobargs.PriorityLive},
		{jobargs.ReconcileOrderArgs{}, jobargs.QueueHyperswitch, jobargs.PrioritySweep},
		{jobargs.ReconcileRefundArgs{}, jobargs.QueueHyperswitch, jobargs.PrioritySweep},
		{jobargs.ReconcileDisputeArgs{}, jobargs.QueueHyperswitch, jobargs.PrioritySweep},
		{jobargs.EmailArgs{}, jobargs.QueueEmail, 0},
		{jobargs.ReconcileSweepArgs{}, jobargs.QueueMaintenance, 0},
		{jobargs.SafetyNetArgs{}, jobargs.QueueMaintenance, 0},
		{jobargs.WebhookLogCleanupArgs{}, jobargs.QueueMaintenance, 0},
		{jobargs.DeleteObjectArgs{}, jobargs.QueueMaintenance, 0},
		{jobargs.MigrateTrackArgs{}, jobargs.QueueMaintenance, 0},
		{jobargs.OrphanCleanupArgs{}, jobargs.QueueMaintenance, 0},
	} {
		o := c.args.InsertOpts()
		require.Equal(t, c.queue, o.Queue, "%T", c.args)
		require.Equal(t, c.priority, o.Priority, "%T (0 is River's default, 1)", c.args)
		require.Contains(t, jobargs.Queues, o.Queue, "%T's queue is served", c.args)
	}
	require.Contains(t, jobargs.Queues, jobargs.QueuePayments, "an earlier version's jobs are still worked")
	require.Less(t, jobargs.PriorityLive, jobargs.PrioritySweep, "River fetches the lower number first")
}
