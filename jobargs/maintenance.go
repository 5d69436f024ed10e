package jobargs

import (
	"github.com/google/uuid"
	"github.com/riverqueue/river"
)

// ReconcileSweepArgs runs one reconcile sweep: it finds rows whose outcome
// never arrived and enqueues one row job each.
type ReconcileSweepArgs struct{}

func (ReconcileSweepArgs) Kind() string { return "reconcile_sweep" }

func (ReconcileSweepArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 3}
}

// ReconcileOrderArgs reconciles one pending order.
type ReconcileOrderArgs struct {
	OrderID uuid.UUID `json:"order_id" river:"unique"`
}

func (ReconcileOrderArgs) Kind() string { return "reconcile_order" }

func (ReconcileOrderArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueHyperswitch, Priority: PrioritySweep, MaxAttempts: 3, UniqueOpts: OneLiveJob}
}

// ReconcileRefundArgs reconciles one pending refund (stuck or orphan).
type ReconcileRefundArgs struct {
	RefundID uuid.UUID `json:"refund_id" river:"unique"`
}

func (ReconcileRefundArgs) Kind() string { return "reconcile_refund" }

func (ReconcileRefundArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueHyperswitch, Priority: PrioritySweep, MaxAttempts: 3, UniqueOpts: OneLiveJob}
}

// ReconcileDisputeArgs reads one open dispute at Hyperswitch (its outcome
// may never have been delivered).
type ReconcileDisputeArgs struct {
	DisputeID uuid.UUID `json:"dispute_id" river:"unique"`
}

func (ReconcileDisputeArgs) Kind() string { return "reconcile_dispute" }

func (ReconcileDisputeArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueHyperswitch, Priority: PrioritySweep, MaxAttempts: 3, UniqueOpts: OneLiveJob}
}

// WebhookLogCleanupArgs deletes webhook log rows past their retention.
type WebhookLogCleanupArgs struct{}

func (WebhookLogCleanupArgs) Kind() string { return "webhook_log_cleanup" }

func (WebhookLogCleanupArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 5}
}

// WebhookLogPartitionsArgs creates the webhook logs' day partitions ahead.
type WebhookLogPartitionsArgs struct{}

func (WebhookLogPartitionsArgs) Kind() string { return "webhook_log_partitions" }

func (WebhookLogPartitionsArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 5}
}

// SafetyNetArgs re-enqueues jobs for rows that wait in a status whose job is
// gone: data from before this system, or a job an operator deleted.
type SafetyNetArgs struct{}

func (SafetyNetArgs) Kind() string { return "safety_net_sweep" }

func (SafetyNetArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 3}
}

// DeleteObjectArgs removes one stored object (a deleted track's file, or a
// local copy after its migration to S3). Backend and key are not secrets.
type DeleteObjectArgs struct {
	Backend string `json:"backend" river:"unique"`
	Key     string `json:"key" river:"unique"`
}

func (DeleteObjectArgs) Kind() string { return "delete_object" }

func (DeleteObjectArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 10, UniqueOpts: OneLiveJob}
}

// MigrateTrackArgs copies one local track to S3.
type MigrateTrackArgs struct {
	TrackID uuid.UUID `json:"track_id" river:"unique"`
}

func (MigrateTrackArgs) Kind() string { return "migrate_track_storage" }

func (MigrateTrackArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 10, UniqueOpts: OneLiveJob}
}

// OrphanCleanupArgs removes stored objects no committed row points at.
type OrphanCleanupArgs struct{}

func (OrphanCleanupArgs) Kind() string { return "storage_orphan_cleanup" }

func (OrphanCleanupArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 3}
}
