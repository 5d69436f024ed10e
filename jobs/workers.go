package jobs

import (
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/veza/backend/config"
	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/mail"
	"github.com/veza/backend/store"
)

// Deps are what the workers need. Hyperswitch is nil when disabled.
type Deps struct {
	Config      *config.Config
	DB          *store.DB
	Mail        mail.Sender
	Hyperswitch *hyperswitch.Client
	Logger      zerolog.Logger
}

// NewWorkers registers every worker of the service.
func NewWorkers(d Deps) *river.Workers {
	workers := river.NewWorkers()
	river.AddWorker(workers, &EmailWorker{DB: d.DB, Sender: d.Mail, PublicBaseURL: d.Config.PublicBaseURL, Logger: d.Logger})
	river.AddWorker(workers, &ProcessEventWorker{DB: d.DB, Dispatcher: NewDispatcher(d)})
	return workers
}

// NewDispatcher builds the one event dispatcher (webhooks and reconcile).
func NewDispatcher(d Deps) *Dispatcher {
	return &Dispatcher{Logger: d.Logger}
}
