package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"
	"github.com/stripe/stripe-go/v82"

	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/ratelimit"
)

// pacingMiddleware turns an attempt that ended because a provider is paced
// (our bucket had no token: *ratelimit.Delay; or the provider answered
// 429) into a snooze: River runs the job again after the delay without
// counting an attempt. Workers that record an error on their row first
// check Paced themselves, so a paced call leaves no trace of failure.
// A sweep's job (PrioritySweep) calls providers as ratelimit.Background:
// from tokens live work leaves.
//
// A snooze uses no attempt, so a job that snoozes without end (a provider
// refusing one object forever, a wait whose cause never clears) would never
// fail where an operator looks: its 100th, 1,000th, 10,000th... snooze is
// logged at WARN.
type pacingMiddleware struct {
	river.MiddlewareDefaults
	logger zerolog.Logger
}

func (m *pacingMiddleware) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	if job.Priority >= jobargs.PrioritySweep {
		ctx = ratelimit.Background(ctx)
	}
	err := doInner(ctx)
	paced := false
	if d, ok := Paced(err); ok {
		err, paced = river.JobSnooze(d), true
	}
	var snooze *river.JobSnoozeError
	if errors.As(err, &snooze) {
		m.warnEndlessSnooze(ctx, job, snooze.Duration, paced)
	}
	return err
}

// warnEndlessSnooze logs the snooze River is about to record when its
// count (River's metadata "snoozes", plus this one) is 100, 1,000, ...
func (m *pacingMiddleware) warnEndlessSnooze(ctx context.Context, job *rivertype.JobRow, d time.Duration, paced bool) {
	var meta struct {
		Snoozes int64 `json:"snoozes"`
	}
	_ = json.Unmarshal(job.Metadata, &meta) // no count: the first snooze
	if n := meta.Snoozes + 1; n >= 100 && powerOfTen(n) {
		// docs/OPERATIONS.md says what paced and not paced mean.
		m.logger.Warn().Ctx(ctx).Int64("job_id", job.ID).Str("job_kind", job.Kind).Str("queue", job.Queue).
			Int64("snoozes", n).Bool("paced", paced).Dur("next_in", d).Msg("job keeps snoozing (no attempt used)")
	}
}

// powerOfTen reports whether n is 1, 10, 100, ... (dividing down, so no
// power is computed that could overflow).
func powerOfTen(n int64) bool {
	for n > 1 && n%10 == 0 {
		n /= 10
	}
	return n == 1
}

// Paced reports whether err is a call that was not executed because of a
// rate limit, ours or the provider's, and how long to wait before the next
// one. A 429 was already recorded in the shared bucket by the transport.
func Paced(err error) (time.Duration, bool) {
	if err == nil {
		return 0, false
	}
	var snooze *river.JobSnoozeError
	if errors.As(err, &snooze) {
		return 0, false
	}
	if d, ok := ratelimit.AsDelay(err); ok {
		return d.After, true
	}
	var se *stripe.Error
	if errors.As(err, &se) && se.HTTPStatusCode == http.StatusTooManyRequests {
		var h http.Header
		if se.LastResponse != nil {
			h = se.LastResponse.Header
		}
		return ratelimit.RetryAfter(h, time.Now()), true
	}
	var he *hyperswitch.Error
	if errors.As(err, &he) && he.HTTPStatus == http.StatusTooManyRequests {
		return ratelimit.DefaultBackoff, true
	}
	return 0, false
}
