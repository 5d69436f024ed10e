package jobs

import (
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/veza/backend/config"
	"github.com/veza/backend/mail"
	"github.com/veza/backend/store"
)

// Deps are what the workers need.
type Deps struct {
	Config *config.Config
	DB     *store.DB
	Mail   mail.Sender
	Logger zerolog.Logger
}

// NewWorkers registers every worker of the service.
func NewWorkers(d Deps) *river.Workers {
	workers := river.NewWorkers()
	river.AddWorker(workers, &EmailWorker{DB: d.DB, Sender: d.Mail, PublicBaseURL: d.Config.PublicBaseURL, Logger: d.Logger})
	return workers
}
