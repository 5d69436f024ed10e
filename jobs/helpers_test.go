package jobs_test

import (
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/config"
	"github.com/veza/backend/jobs"
	"github.com/veza/backend/mail"
)

// serviceClient is a River client with every worker of the service, on the
// tests' fast queue settings. Deps left zero get defaults: the shipped
// configuration and log-only mail.
func serviceClient(t *testing.T, d jobs.Deps) *jobs.Client {
	t.Helper()
	if d.Config == nil {
		d.Config, _ = config.Load(func(string) string { return "" })
	}
	d.Config.River = riverConfig()
	if d.Mail == nil {
		d.Mail = mail.NewSender(mail.Config{}, zerolog.Nop(), false)
	}
	if d.Inserter == nil {
		inserter, err := jobs.NewInserter(d.DB.Primary(), jobs.ClientOpts{River: d.Config.River, Logger: d.Logger})
		require.NoError(t, err)
		d.Inserter = inserter
	}
	client, err := jobs.NewClient(d.DB.Primary(), jobs.ClientOpts{River: d.Config.River, Logger: d.Logger, Workers: jobs.NewWorkers(d)})
	require.NoError(t, err)
	return client
}

var riverInsertLater = river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)}
