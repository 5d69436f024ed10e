// Package ingest is how a Hyperswitch event enters the service: its id is
// recorded once (hyperswitch_events), and its process-event job is enqueued
// in the same transaction, so a redelivery or a repeated reconcile is stored
// and never processed twice. Webhook deliveries come through Batcher, which
// group-commits them; synthetic events from reconciliation through
// EnqueueEvent.
package ingest

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/settle"
	"github.com/veza/backend/store"
)

// EnqueueEvent records a synthetic event's id and enqueues its job, in tx;
// a second call with the same id enqueues nothing and returns false.
func EnqueueEvent(ctx context.Context, tx pgx.Tx, ins settle.Inserter, args jobargs.ProcessEventArgs) (bool, error) {
	first, err := store.RecordEvent(ctx, tx, args.EventID, args.EventType)
	if err != nil || !first {
		return false, err
	}
	if _, err := ins.InsertTx(ctx, tx, args, nil); err != nil {
		return false, fmt.Errorf("error enqueueing event %s: %w", args.EventID, err)
	}
	return true, nil
}
