package jobs

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
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
type pacingMiddleware struct{ river.MiddlewareDefaults }

func (*pacingMiddleware) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	if job.Priority >= jobargs.PrioritySweep {
		ctx = ratelimit.Background(ctx)
	}
	err := doInner(ctx)
	if d, ok := Paced(err); ok {
		return river.JobSnooze(d)
	}
	return err
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
