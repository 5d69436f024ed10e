package stripeconnect_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/veza/backend/stripeconnect"
	"github.com/veza/backend/stripeconnect/stripetest"
)

func TestCreateTransferIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := stripetest.Start(t)
	c := fake.Client()
	p := stripeconnect.TransferParams{Amount: 900, Currency: "EUR", Destination: "acct_1", TransferGroup: "order-1", IdempotencyKey: "row-1"}
	id1, err := c.CreateTransfer(ctx, p)
	require.NoError(t, err)
	id2, err := c.CreateTransfer(ctx, p)
	require.NoError(t, err)
	require.Equal(t, id1, id2, "the same key returns the same transfer")
	require.Len(t, fake.Transfers(), 1)
	tr := fake.Transfers()[0]
	require.EqualValues(t, 900, tr.Amount)
	require.Equal(t, "eur", tr.Currency)
	require.Equal(t, "order-1", tr.TransferGroup)
	require.Zero(t, fake.MissingKeys())
}

func TestEmptyIdempotencyKeyFailsLoudly(t *testing.T) {
	t.Parallel()
	fake := stripetest.Start(t)
	_, err := fake.Client().CreateTransfer(context.Background(), stripeconnect.TransferParams{Amount: 1, Currency: "EUR", Destination: "acct_1"})
	require.ErrorIs(t, err, stripeconnect.ErrMissingIdempotencyKey)
	_, err = fake.Client().ReverseTransfer(context.Background(), "tr_1", "", nil)
	require.ErrorIs(t, err, stripeconnect.ErrMissingIdempotencyKey)
	require.Zero(t, fake.Calls("POST /v1/transfers")+fake.Calls("POST reversals"), "nothing was sent")
	require.False(t, stripeconnect.IsTransient(err))
}

func TestReversalOutcomes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := stripetest.Start(t)
	c := fake.Client()
	id, err := c.CreateTransfer(ctx, stripeconnect.TransferParams{Amount: 500, Currency: "USD", Destination: "acct_9", TransferGroup: "o", IdempotencyKey: "k"})
	require.NoError(t, err)

	revID, err := c.ReverseTransfer(ctx, id, "rev-k", nil)
	require.NoError(t, err)
	require.Contains(t, revID, "trr_")
	tr, _ := fake.Transfer(id)
	require.True(t, tr.Reversed)

	// The same key replays; a new key finds it already reversed (confirmed
	// by reading the transfer back).
	again, err := c.ReverseTransfer(ctx, id, "rev-k", nil)
	require.NoError(t, err)
	require.Equal(t, revID, again)
	_, err = c.ReverseTransfer(ctx, id, "rev-other", nil)
	require.ErrorIs(t, err, stripeconnect.ErrTransferAlreadyReversed)
	require.Equal(t, 1, fake.Calls("GET transfer"))

	_, err = c.ReverseTransfer(ctx, "tr_missing", "rev-x", nil)
	require.ErrorIs(t, err, stripeconnect.ErrTransferNotFound)

	before := fake.Calls("POST reversals")
	fake.FailNext(1, 503)
	_, err = c.ReverseTransfer(ctx, id, "rev-y", nil)
	require.Error(t, err)
	require.True(t, stripeconnect.IsTransient(err))
	require.Contains(t, stripeconnect.Describe(err), "stripe 503")
	require.Equal(t, before+1, fake.Calls("POST reversals"), "stripe-go did not retry by itself: River owns retries")
}

func TestBadRequestIsNotTransient(t *testing.T) {
	t.Parallel()
	fake := stripetest.Start(t)
	_, err := fake.Client().CreateTransfer(context.Background(), stripeconnect.TransferParams{Amount: 5, Currency: "EUR", Destination: "not-an-account", IdempotencyKey: "k"})
	require.Error(t, err)
	require.False(t, stripeconnect.IsTransient(err))
	_, err = stripeconnect.New("sk_wrong", fake.URL, nil).CreateTransfer(context.Background(), stripeconnect.TransferParams{Amount: 5, Currency: "EUR", Destination: "acct_1", IdempotencyKey: "k2"})
	require.Error(t, err)
	require.False(t, stripeconnect.IsTransient(err))
}

// The look-up pages through a group's transfers as Stripe lists them.
func TestFindTransfersPagesThroughTheGroup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := stripetest.Start(t)
	c := fake.Client()
	for i := range 130 {
		_, err := c.CreateTransfer(ctx, stripeconnect.TransferParams{Amount: 100, Currency: "EUR", Destination: "acct_1",
			TransferGroup: "order_many", IdempotencyKey: fmt.Sprint("k", i), Metadata: map[string]string{"transfer_id": fmt.Sprint("row_", i%3)}})
		require.NoError(t, err)
	}
	found, err := c.FindTransfers(ctx, "order_many", "row_0")
	require.NoError(t, err)
	require.Len(t, found, 44, "every page read")
	none, err := c.FindTransfers(ctx, "order_other", "row_0")
	require.NoError(t, err)
	require.Empty(t, none)
}

func TestObjectBusyIsLockTimeoutOnly(t *testing.T) {
	t.Parallel()
	require.True(t, stripeconnect.ObjectBusy([]byte(`{"error":{"type":"invalid_request_error","code":"lock_timeout","message":"This object cannot be accessed right now"}}`)))
	require.False(t, stripeconnect.ObjectBusy([]byte(`{"error":{"type":"invalid_request_error","code":"rate_limit"}}`)), "the rate limit blocks the bucket")
	require.False(t, stripeconnect.ObjectBusy([]byte(`<html>Too Many Requests</html>`)), "a proxy's 429 is about the rate")
	require.False(t, stripeconnect.ObjectBusy(nil))
}
