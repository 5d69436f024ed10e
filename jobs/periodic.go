package jobs

import (
	"time"

	"github.com/riverqueue/river"

	"github.com/veza/backend/config"
	"github.com/veza/backend/jobargs"
)

// DailyAt is a wall-clock schedule: every day at hour:minute UTC. River keeps
// periodic schedules in memory on the leader, so a 24h interval would never
// fire if processes restart more often than that; a wall-clock time fires
// whenever a leader is up at that minute.
type DailyAt struct{ Hour, Minute int }

// Next implements river.PeriodicSchedule.
func (d DailyAt) Next(t time.Time) time.Time {
	t = t.UTC()
	next := time.Date(t.Year(), t.Month(), t.Day(), d.Hour, d.Minute, 0, 0, time.UTC)
	if !next.After(t) {
		next = next.AddDate(0, 0, 1)
	}
	return next
}

// SafetyNetInterval is how often the safety net runs.
const SafetyNetInterval = 15 * time.Minute

// oncePerPeriod runs a periodic job at start too, but at most once per
// period: processes restarting more often than the interval cannot starve
// it, nor run it more than once per period.
func oncePerPeriod(period time.Duration) *river.InsertOpts {
	return &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: period}}
}

// PeriodicJobs is the schedule. River's elected leader alone enqueues them,
// whatever the number of serve/work processes.
func PeriodicJobs(cfg *config.Config) []*river.PeriodicJob {
	jobs := []*river.PeriodicJob{
		river.NewPeriodicJob(DailyAt{Hour: 3, Minute: 17},
			func() (river.JobArgs, *river.InsertOpts) {
				return jobargs.WebhookLogCleanupArgs{}, oncePerPeriod(time.Hour)
			},
			&river.PeriodicJobOpts{ID: "webhook_log_cleanup"}),
		river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
			func() (river.JobArgs, *river.InsertOpts) {
				return jobargs.WebhookLogPartitionsArgs{}, oncePerPeriod(time.Hour)
			},
			&river.PeriodicJobOpts{ID: "webhook_log_partitions", RunOnStart: true}),
		river.NewPeriodicJob(DailyAt{Hour: 4, Minute: 7},
			func() (river.JobArgs, *river.InsertOpts) {
				return jobargs.OrphanCleanupArgs{}, oncePerPeriod(time.Hour)
			},
			&river.PeriodicJobOpts{ID: "storage_orphan_cleanup"}),
		river.NewPeriodicJob(river.PeriodicInterval(SafetyNetInterval),
			func() (river.JobArgs, *river.InsertOpts) {
				return jobargs.SafetyNetArgs{}, oncePerPeriod(SafetyNetInterval)
			},
			&river.PeriodicJobOpts{ID: "safety_net_sweep", RunOnStart: true}),
	}
	if ReconcileEnabled(cfg) {
		interval := cfg.Reconcile.Interval
		jobs = append(jobs, river.NewPeriodicJob(river.PeriodicInterval(interval),
			func() (river.JobArgs, *river.InsertOpts) {
				return jobargs.ReconcileSweepArgs{}, oncePerPeriod(interval)
			},
			&river.PeriodicJobOpts{ID: "reconcile_sweep", RunOnStart: true}))
	}
	return jobs
}

// ReconcileEnabled: the sweep runs only when it is switched on and
// Hyperswitch is enabled with an API key (SPEC §1).
func ReconcileEnabled(cfg *config.Config) bool {
	return cfg.Reconcile.Enabled && cfg.Hyperswitch.Enabled && cfg.Hyperswitch.APIKey != ""
}
