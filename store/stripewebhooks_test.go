package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/veza/backend/store"
	"github.com/veza/backend/store/dbtest"
)

// Stripe redelivers for 3 days: a redelivery logged in another day's
// partition than the first delivery is still a duplicate (stripe_events,
// not a per-partition index, is the authority).
func TestStripeRedeliveryAcrossDaysIsADuplicate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t)
	now := time.Now()
	_, err := store.EnsureLogPartitions(ctx, pool, now.AddDate(0, 0, -3), now)
	require.NoError(t, err)
	id, typ := "evt_across", "account.updated"
	delivery := func() *store.StripeWebhook {
		return &store.StripeWebhook{SignatureValid: true, EventID: &id, EventType: &typ, Payload: "{}", ProcessingResult: store.ResultOK}
	}
	first, err := store.InsertStripeWebhook(ctx, pool, delivery())
	require.NoError(t, err)
	require.True(t, first)
	// The first delivery came two days ago: its row lives in that day's partition.
	_, err = pool.Exec(ctx, `UPDATE stripe_webhook_log SET received_at = now() - interval '2 days' WHERE event_id = $1`, id)
	require.NoError(t, err)
	var part string
	require.NoError(t, pool.QueryRow(ctx, `SELECT tableoid::regclass::text FROM stripe_webhook_log WHERE event_id = $1`, id).Scan(&part))
	require.NotEqual(t, "stripe_webhook_log_default", part)

	again, err := store.InsertStripeWebhook(ctx, pool, delivery())
	require.NoError(t, err)
	require.False(t, again, "applied once")
	var dup int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM stripe_webhook_log WHERE event_id = $1 AND processing_result = 'duplicate'`, id).Scan(&dup))
	require.Equal(t, 1, dup)

	// An unsigned delivery with the same id is logged, never recorded.
	bad := delivery()
	bad.SignatureValid = false
	_, err = store.InsertStripeWebhook(ctx, pool, bad)
	require.NoError(t, err)
	var events int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM stripe_events`).Scan(&events))
	require.Equal(t, 1, events)
}
