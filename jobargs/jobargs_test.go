package jobargs_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
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
