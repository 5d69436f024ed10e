package jobs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/jobs"
	"github.com/veza/backend/ratelimit"
	"github.com/veza/backend/store/dbtest"
)

// A snooze uses no attempt, so a job snoozing without end never fails
// where an operator looks. Its 100th, 1,000th, ... snooze (River's
// metadata count plus this one), paced or the worker's own, is logged at
// WARN, naming the job but none of its args; other snoozes and failures
// are not.
func TestEndlessSnoozeIsLoggedAtPowersOfTen(t *testing.T) {
	t.Parallel()
	paced := func(context.Context) error {
		return fmt.Errorf("stripe: %w", &ratelimit.Delay{Provider: "stripe", After: time.Second})
	}
	held := func(context.Context) error { return river.JobSnooze(time.Minute) }
	failed := func(context.Context) error { return errors.New("stripe: 500") }
	for _, c := range []struct {
		name     string
		metadata string
		inner    func(context.Context) error
		snoozes  bool
		warns    bool
	}{
		{"100th, paced", `{"snoozes": 99}`, paced, true, true},
		{"1000th, the worker's own", `{"snoozes": 999, "other": "x"}`, held, true, true},
		{"10000th", `{"snoozes": 9999}`, paced, true, true},
		{"99th", `{"snoozes": 98}`, paced, true, false},
		{"101st", `{"snoozes": 100}`, paced, true, false},
		{"500th", `{"snoozes": 499}`, held, true, false},
		{"first, no count yet", `{}`, paced, true, false},
		{"past 10^18, where a power of ten would wrap", `{"snoozes": 9223372036854775806}`, paced, true, false},
		{"a failure", `{"snoozes": 99}`, failed, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			mw := jobs.PacingMiddleware(zerolog.New(&logs))
			job := &rivertype.JobRow{ID: 42, Kind: "seller_payout", Queue: "stripe", Metadata: []byte(c.metadata),
				EncodedArgs: []byte(`{"transfer_id": "secret-looking"}`)}
			err := mw.Work(context.Background(), job, c.inner)
			var snooze *river.JobSnoozeError
			require.Equal(t, c.snoozes, errors.As(err, &snooze), "paced or held: a snooze; a failure stays one: %v", err)
			require.Equal(t, c.warns, strings.Contains(logs.String(), `"level":"warn"`), logs.String())
			if c.warns {
				require.Contains(t, logs.String(), `"job_id":42`)
				require.Contains(t, logs.String(), `"job_kind":"seller_payout"`)
				require.NotContains(t, logs.String(), "secret-looking", "no args in logs")
			}
		})
	}
}

type snoozerArgs struct{}

func (snoozerArgs) Kind() string { return "test_snoozer" }

type snoozerWorker struct {
	river.WorkerDefaults[snoozerArgs]
}

func (snoozerWorker) Work(context.Context, *river.Job[snoozerArgs]) error {
	return river.JobSnooze(time.Hour)
}

// Through a real River client: the middleware NewClient installs reads
// the count River keeps (metadata "snoozes"), and River stores the 100th.
func TestEndlessSnoozeCountIsRiversOwn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t)
	var logs bytes.Buffer
	workers := river.NewWorkers()
	river.AddWorker(workers, &snoozerWorker{})
	client, err := jobs.NewClient(pool, jobs.ClientOpts{River: riverConfig(), Logger: zerolog.New(zerolog.SyncWriter(&logs)).Level(zerolog.WarnLevel), Workers: workers})
	require.NoError(t, err)
	inserted, err := client.Insert(ctx, snoozerArgs{}, &river.InsertOpts{Queue: jobargs.QueueMaintenance, Metadata: []byte(`{"snoozes": 99}`)})
	require.NoError(t, err)

	events, cancel := client.Subscribe(river.EventKindJobSnoozed)
	defer cancel()
	require.NoError(t, client.Start(ctx))
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = client.Stop(context.Background())
		}
	})
	select {
	case ev := <-events:
		require.Equal(t, inserted.Job.ID, ev.Job.ID)
	case <-time.After(15 * time.Second):
		t.Fatal("job was not worked")
	}
	require.NoError(t, client.Stop(ctx))
	stopped = true // the logs are read after River's goroutines stopped
	var snoozes int
	require.NoError(t, pool.QueryRow(ctx, `SELECT (metadata->>'snoozes')::int FROM river_job WHERE id = $1`, inserted.Job.ID).Scan(&snoozes))
	require.Equal(t, 100, snoozes)
	require.Contains(t, logs.String(), `"snoozes":100`)
	require.Contains(t, logs.String(), "job keeps snoozing")
}
