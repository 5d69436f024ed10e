package settle

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/store"
)

// ApplyEvent applies a Hyperswitch event (a webhook's, or one synthesised
// by reconciliation) to our rows, in tx. Every state change goes through
// the status machines, so a late, repeated or out-of-order event finds its
// row already moved and is skipped: replaying is always safe.
//
// It returns the result for the event's log row: store.ResultOK when it
// changed something, store.ResultSkipped when there was nothing to do, or
// an error result for an event it refuses (not retried). A returned error
// is a failure to retry.
func (s *Settler) ApplyEvent(ctx context.Context, tx pgx.Tx, ins Inserter, ev jobargs.ProcessEventArgs) (string, error) {
	switch {
	case strings.HasPrefix(ev.EventType, "payment_"):
		return s.applyPayment(ctx, tx, ins, ev)
	case strings.HasPrefix(ev.EventType, "refund_"):
		return s.applyRefund(ctx, tx, ins, ev)
	case strings.HasPrefix(ev.EventType, "dispute_"):
		return s.applyDispute(ctx, tx, ins, ev)
	default:
		return store.ResultSkipped, nil
	}
}
