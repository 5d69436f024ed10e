package obs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// RiverMiddleware counts and times every job attempt (veza_jobs_total,
// veza_job_duration_seconds) and, with a tracer, carries traces through
// jobs: an insert stores the inserting span's traceparent in the job's
// metadata, and the attempt's span is that span's child, so one trace runs
// from a webhook request through its process-event job to the payout job
// and its Stripe call. (rivercontrib/otelriver links a job's span to its
// inserter instead of continuing its trace, and reports OpenTelemetry
// metrics, not these Prometheus families: it does not fit here.)
type RiverMiddleware struct {
	river.MiddlewareDefaults
	Metrics *Metrics
	Tracer  trace.Tracer // nil: no spans, no metadata
}

// InsertMany implements rivertype.JobInsertMiddleware.
func (m *RiverMiddleware) InsertMany(ctx context.Context, params []*rivertype.JobInsertParams, doInner func(context.Context) ([]*rivertype.JobInsertResult, error)) ([]*rivertype.JobInsertResult, error) {
	if m.Tracer != nil && trace.SpanContextFromContext(ctx).IsValid() {
		for _, p := range params {
			p.Metadata = withTraceMetadata(ctx, p.Metadata)
		}
	}
	return doInner(ctx)
}

// Work implements rivertype.WorkerMiddleware.
func (m *RiverMiddleware) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) (err error) {
	start := time.Now()
	var span trace.Span
	if m.Tracer != nil {
		if parent := spanContextOf(job.Metadata); parent.IsValid() {
			ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
		}
		ctx, span = m.Tracer.Start(ctx, "job "+job.Kind, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
			attribute.String("messaging.system", "river"),
			attribute.String("messaging.destination.name", job.Queue),
			attribute.String("river.job.kind", job.Kind),
			attribute.Int64("river.job.id", job.ID),
			attribute.Int("river.job.attempt", job.Attempt),
		))
	}
	defer func() {
		var panicked any
		if r := recover(); r != nil {
			panicked = r
			err = fmt.Errorf("panic: %v", r)
		}
		outcome := JobOutcome(job, err)
		m.Metrics.Job(job.Kind, job.Queue, outcome, time.Since(start))
		if span != nil {
			span.SetAttributes(attribute.String("river.job.outcome", outcome))
			if outcome == JobRetried || outcome == JobDiscarded {
				span.RecordError(err)
				span.SetStatus(codes.Error, outcome)
			}
			span.End()
		}
		if panicked != nil {
			panic(panicked) // River's own recovery records it as the attempt's error
		}
	}()
	return doInner(ctx)
}

// JobOutcome is what River does with an attempt that returned err.
func JobOutcome(job *rivertype.JobRow, err error) string {
	if err == nil {
		return JobCompleted
	}
	var cancel *river.JobCancelError
	var snooze *river.JobSnoozeError
	switch {
	case errors.As(err, &snooze):
		return JobSnoozed
	case errors.As(err, &cancel):
		return JobCancelled
	case job.Attempt >= job.MaxAttempts:
		return JobDiscarded
	default:
		return JobRetried
	}
}
