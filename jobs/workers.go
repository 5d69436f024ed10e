package jobs

import (
	"time"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/veza/backend/config"
	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/mail"
	"github.com/veza/backend/store"
	"github.com/veza/backend/stripeconnect"
)

// Deps are what the workers need. Hyperswitch and Stripe are nil when
// disabled.
type Deps struct {
	Config      *config.Config
	DB          *store.DB
	Mail        mail.Sender
	Hyperswitch *hyperswitch.Client
	Stripe      *stripeconnect.Client
	Stores      Stores
	Logger      zerolog.Logger
}

// NewWorkers registers every worker of the service.
func NewWorkers(d Deps) *river.Workers {
	reversals := newReversals(d)
	payouts := newPayouts(d, reversals)
	workers := river.NewWorkers()
	river.AddWorker(workers, &EmailWorker{DB: d.DB, Sender: d.Mail, PublicBaseURL: d.Config.PublicBaseURL, Logger: d.Logger})
	river.AddWorker(workers, &ProcessEventWorker{DB: d.DB, Dispatcher: &Dispatcher{Logger: d.Logger, Payouts: payouts, Reversals: reversals}})
	river.AddWorker(workers, &PayoutWorker{Payouts: payouts})
	river.AddWorker(workers, &ReversalWorker{Reversals: reversals})
	river.AddWorker(workers, &SubmitRefundWorker{DB: d.DB, Hyperswitch: d.Hyperswitch, Logger: d.Logger})

	reconciler := &Reconciler{DB: d.DB, Hyperswitch: d.Hyperswitch, Settings: d.Config.Reconcile, Logger: d.Logger}
	river.AddWorker(workers, &ReconcileSweepWorker{Reconciler: reconciler})
	river.AddWorker(workers, &ReconcileOrderWorker{Reconciler: reconciler})
	river.AddWorker(workers, &ReconcileRefundWorker{Reconciler: reconciler})
	river.AddWorker(workers, &WebhookLogCleanupWorker{DB: d.DB, RetentionDays: d.Config.Hyperswitch.WebhookLogRetentionDays,
		BatchSize: 2_000, Pause: 100 * time.Millisecond, Logger: d.Logger})
	river.AddWorker(workers, &SafetyNetWorker{DB: d.DB, Payouts: payouts, Reversals: reversals,
		Grace: 10 * time.Minute, Limit: 500, Logger: d.Logger})

	river.AddWorker(workers, &DeleteObjectWorker{Stores: d.Stores})
	river.AddWorker(workers, &MigrateTrackWorker{DB: d.DB, Stores: d.Stores, Logger: d.Logger})
	river.AddWorker(workers, &OrphanCleanupWorker{DB: d.DB, Stores: d.Stores, Grace: d.Config.TrackOrphanGrace, Logger: d.Logger})
	return workers
}

func newReversals(d Deps) *Reversals {
	return &Reversals{DB: d.DB, Stripe: d.Stripe, Enabled: d.Config.Reversal.Enabled, Retry: d.Config.Reversal.BackoffConfig, Logger: d.Logger}
}

func newPayouts(d Deps, r *Reversals) *Payouts {
	return &Payouts{DB: d.DB, Stripe: d.Stripe, FeeBPS: d.Config.Stripe.PlatformFeeBPS, Retry: d.Config.Transfer, Reversals: r}
}
