package store_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	veza "github.com/veza/backend"
	"github.com/veza/backend/store"
	"github.com/veza/backend/store/dbtest"
)

// pendingOrder makes a pending order of two tracks (999 + 1500 EUR cents).
func pendingOrder(t *testing.T, db *store.DB) *store.Order {
	t.Helper()
	ctx := context.Background()
	var order *store.Order
	require.NoError(t, db.InTx(ctx, func(tx pgx.Tx) error {
		buyer, err := store.CreateUser(ctx, tx, uuid.NewString()+"@example.test", "h", store.RoleUser)
		if err != nil {
			return err
		}
		var tracks []store.Track
		for _, price := range []int64{999, 1500} {
			seller, err := store.CreateUser(ctx, tx, uuid.NewString()+"@example.test", "h", store.RoleUser)
			if err != nil {
				return err
			}
			tr, err := store.CreateTrack(ctx, tx, store.CreateTrackParams{OwnerID: seller.ID, Title: "T", PriceCents: price, Currency: "EUR"})
			if err != nil {
				return err
			}
			tracks = append(tracks, *tr)
		}
		order, err = store.CreateOrder(ctx, tx, buyer.ID, tracks)
		return err
	}))
	return order
}

func completePaid(t *testing.T, db *store.DB, paymentID string, amount int64, currency string) (*store.Order, error) {
	t.Helper()
	var order *store.Order
	err := db.InTx(context.Background(), func(tx pgx.Tx) error {
		var err error
		order, err = store.CompletePaidOrder(context.Background(), tx, paymentID, amount, currency, "succeeded")
		return err
	})
	return order, err
}

func TestCompletePaidOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := store.New(dbtest.Pool(t), nil)
	order := pendingOrder(t, db)

	for name, tc := range map[string]struct {
		paymentID string
		amount    int64
		currency  string
	}{
		"another amount":   {order.PaymentID, 2498, "EUR"},
		"another currency": {order.PaymentID, 2499, "USD"},
		"unknown payment":  {"veza_ord_" + uuid.NewString(), 2499, "EUR"},
	} {
		_, err := completePaid(t, db, tc.paymentID, tc.amount, tc.currency)
		require.ErrorIs(t, err, veza.ErrStaleState, name)
		got, err := store.GetOrder(ctx, db.Primary(), order.ID)
		require.NoError(t, err)
		require.Equal(t, veza.OrderPending, got.Status, name)
		require.Nil(t, got.PaymentStatus, name)
	}

	got, err := completePaid(t, db, order.PaymentID, 2499, "eur")
	require.NoError(t, err, "currency compares case-insensitively")
	require.Equal(t, veza.OrderCompleted, got.Status)
	require.NotNil(t, got.CompletedAt)
	require.Equal(t, "succeeded", *got.PaymentStatus)
	require.ElementsMatch(t, order.Items, got.Items, "returned with its items (sorted by item id)")

	_, err = completePaid(t, db, order.PaymentID, 2499, "EUR")
	require.ErrorIs(t, err, veza.ErrStaleState, "a replay finds it completed")
}
