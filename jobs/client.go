// Package jobs holds the River workers of the service (one XxxWorker per
// jobargs.XxxArgs), the periodic schedule, and the constructors of the River
// clients with the queue settings from config. Workers are thin: they own
// their transactions, call providers outside them and leave every money
// state change to package settle.
package jobs

import (
	"context"
	"errors"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/veza/backend/config"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/obs"
)

// Client is the River client type used everywhere in the service.
type Client = river.Client[pgx.Tx]

// ClientOpts configures NewClient.
type ClientOpts struct {
	River  config.RiverConfig
	Logger zerolog.Logger
	// Workers and PeriodicJobs make a working client; without Workers the
	// client can only insert (migrate, CLI commands, tests).
	Workers      *river.Workers
	PeriodicJobs []*river.PeriodicJob
	// Middleware is for instrumentation and fault-injection tests.
	Middleware []rivertype.Middleware
}

// NewClient builds the River client. Queue sizes, FetchCooldown, JobTimeout
// and RescueStuckJobsAfter come from config so operators and crash tests can
// change them without a code change.
func NewClient(pool *pgxpool.Pool, opts ClientOpts) (*Client, error) {
	cfg := &river.Config{
		Logger:       SlogLogger(opts.Logger),
		ErrorHandler: &errorHandler{logger: opts.Logger},
		// Pacing is innermost: instrumentation outside it sees the snooze.
		Middleware: append(append([]rivertype.Middleware(nil), opts.Middleware...), &pacingMiddleware{logger: opts.Logger}),
	}
	if opts.Workers != nil {
		cfg.Workers = opts.Workers
		cfg.PeriodicJobs = opts.PeriodicJobs
		cfg.Queues = map[string]river.QueueConfig{}
		for _, q := range jobargs.Queues {
			cfg.Queues[q] = river.QueueConfig{MaxWorkers: opts.River.Workers[q]}
		}
		cfg.FetchCooldown = opts.River.FetchCooldown
		cfg.FetchPollInterval = opts.River.FetchPollInterval
		cfg.JobTimeout = opts.River.JobTimeout
		cfg.RescueStuckJobsAfter = opts.River.RescueStuckJobsAfter
		cfg.CompletedJobRetentionPeriod = opts.River.CompletedRetention
		cfg.CancelledJobRetentionPeriod = opts.River.CancelledRetention
		cfg.DiscardedJobRetentionPeriod = opts.River.DiscardedRetention
		cfg.PollOnly = opts.River.PollOnly
	}
	return river.NewClient(riverpgxv5.New(pool), cfg)
}

// NewInserter builds an insert-only River client: what workers, handlers
// and commands pass to settle as its Inserter. Workers get it at
// construction, before the working client exists, instead of pulling a
// client out of their context. Its insert notifications are paced like the
// working client's fetches.
func NewInserter(pool *pgxpool.Pool, opts ClientOpts) (*Client, error) {
	return river.NewClient(riverpgxv5.New(pool), &river.Config{
		Logger:            SlogLogger(opts.Logger),
		Middleware:        opts.Middleware,
		FetchCooldown:     opts.River.FetchCooldown,
		FetchPollInterval: opts.River.FetchPollInterval,
	})
}

// SlogLogger bridges zerolog to the *slog.Logger River and River UI take, so
// the service runs one logger. River is chatty at info; its lines carry the
// component name in the message.
func SlogLogger(logger zerolog.Logger) *slog.Logger {
	return slog.New(zerolog.NewSlogHandler(logger.With().Str("component", "river").Logger()))
}

// errorHandler is the one place job errors are logged (workers return errors,
// they never log them too). The last attempt logs at ERROR: the job is being
// discarded and an operator must look at it in River UI.
type errorHandler struct{ logger zerolog.Logger }

func (h *errorHandler) HandleError(ctx context.Context, job *rivertype.JobRow, err error) *river.ErrorHandlerResult {
	ev := h.event(job)
	var ce *configError
	if errors.As(err, &ce) && job.Attempt < job.MaxAttempts {
		ev = h.logger.Error().Int64("job_id", job.ID).Str("job_kind", job.Kind).Str("queue", job.Queue).
			Int("attempt", job.Attempt).Int("max_attempts", job.MaxAttempts)
	}
	ev.Err(err).Msg("job attempt failed")
	return nil
}

func (h *errorHandler) HandlePanic(ctx context.Context, job *rivertype.JobRow, panicVal any, trace string) *river.ErrorHandlerResult {
	h.event(job).Interface("panic", panicVal).Str("stack", trace).Msg("job attempt panicked")
	return nil
}

func (h *errorHandler) event(job *rivertype.JobRow) *zerolog.Event {
	ev := h.logger.Warn()
	if job.Attempt >= job.MaxAttempts {
		ev = h.logger.Error().Bool("discarded", true)
	}
	if id := obs.JobTraceID(job.Metadata); id != "" {
		ev = ev.Str("trace_id", id)
	}
	return ev.Int64("job_id", job.ID).Str("job_kind", job.Kind).Str("queue", job.Queue).
		Int("attempt", job.Attempt).Int("max_attempts", job.MaxAttempts)
}
