package jobs

import (
	"time"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/veza/backend/config"
	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/mail"
	"github.com/veza/backend/obs"
	"github.com/veza/backend/settle"
	"github.com/veza/backend/store"
	"github.com/veza/backend/stripeconnect"
)

// Deps are what the workers need. Hyperswitch and Stripe are nil when
// disabled.
type Deps struct {
	Config *config.Config
	DB     *store.DB
	// Inserter enqueues the jobs a worker's state change implies, in its
	// transaction (an insert-only client: NewInserter).
	Inserter settle.Inserter
	// Settle applies money state changes; nil builds one from Config.
	Settle      *settle.Settler
	Mail        mail.Sender
	Hyperswitch *hyperswitch.Client
	Stripe      *stripeconnect.Client
	Stores      Stores
	Logger      zerolog.Logger
	// Metrics is nil when METRICS_ADDR is off.
	Metrics *obs.Metrics
}

// NewSettler is the settler the configuration describes.
func NewSettler(cfg *config.Config, logger zerolog.Logger) *settle.Settler {
	return &settle.Settler{FeeBPS: cfg.Stripe.PlatformFeeBPS, Jobs: cfg.Policy(), Logger: logger, RefundWindow: cfg.RefundWindow}
}

// NewWorkers registers every worker of the service.
func NewWorkers(d Deps) *river.Workers {
	if d.Settle == nil {
		d.Settle = NewSettler(d.Config, d.Logger)
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &EmailWorker{DB: d.DB, Sender: d.Mail, PublicBaseURL: d.Config.PublicBaseURL, Logger: d.Logger})
	river.AddWorker(workers, &ProcessEventWorker{DB: d.DB, Settle: d.Settle, Inserter: d.Inserter})
	river.AddWorker(workers, &PayoutWorker{DB: d.DB, Stripe: d.Stripe, Settle: d.Settle, Inserter: d.Inserter, Logger: d.Logger})
	river.AddWorker(workers, &ReversalWorker{DB: d.DB, Stripe: d.Stripe, Settle: d.Settle, Enabled: d.Config.Reversal.Enabled, Logger: d.Logger})
	river.AddWorker(workers, &SubmitRefundWorker{DB: d.DB, Hyperswitch: d.Hyperswitch, Settle: d.Settle, Inserter: d.Inserter, Logger: d.Logger})

	reconciler := &Reconciler{DB: d.DB, Hyperswitch: d.Hyperswitch, Settle: d.Settle, Inserter: d.Inserter, Settings: d.Config.Reconcile, Logger: d.Logger, Metrics: d.Metrics}
	river.AddWorker(workers, &ReconcileSweepWorker{Reconciler: reconciler})
	river.AddWorker(workers, &ReconcileOrderWorker{Reconciler: reconciler})
	river.AddWorker(workers, &ReconcileRefundWorker{Reconciler: reconciler})
	river.AddWorker(workers, &ReconcileDisputeWorker{Reconciler: reconciler})
	river.AddWorker(workers, &WebhookLogCleanupWorker{DB: d.DB, RetentionDays: d.Config.Hyperswitch.WebhookLogRetentionDays,
		EventRetentionDays: d.Config.WebhookEventRetentionDays, BatchSize: 2_000, Pause: 100 * time.Millisecond, Logger: d.Logger})
	river.AddWorker(workers, &WebhookLogPartitionsWorker{DB: d.DB, Logger: d.Logger})
	river.AddWorker(workers, &SafetyNetWorker{DB: d.DB, Inserter: d.Inserter, Jobs: d.Settle.Jobs,
		Grace: 10 * time.Minute, Limit: 500, Logger: d.Logger})

	river.AddWorker(workers, &DeleteObjectWorker{DB: d.DB, Stores: d.Stores})
	river.AddWorker(workers, &MigrateTrackWorker{DB: d.DB, Stores: d.Stores, Inserter: d.Inserter, Logger: d.Logger})
	river.AddWorker(workers, &OrphanCleanupWorker{DB: d.DB, Stores: d.Stores, Grace: d.Config.TrackOrphanGrace, Logger: d.Logger})
	return workers
}
