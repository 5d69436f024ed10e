// Package storetest builds the rows tests start from: a buyer, sellers
// with Stripe accounts and their tracks, an order, its transfers in a given
// state. Every helper takes the test's transaction, so a test can roll it
// all back, or commit it with store.DB.InTx when workers must see it.
package storetest

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend"
	"github.com/veza/backend/store"
)

// FeeBPS is the platform fee the fixtures' transfers are split with.
const FeeBPS = 1000

// Order is a fixture order with who takes part in it.
type Order struct {
	*store.Order
	Buyer   *store.User
	Sellers []*store.User // one per item, in item order
}

// User creates a user with a unique email.
func User(t testing.TB, tx pgx.Tx, role string) *store.User {
	t.Helper()
	u, err := store.CreateUser(context.Background(), tx, uuid.NewString()+"@example.test", "h", role)
	require.NoError(t, err)
	return u
}

// Seller creates a seller with a Stripe Connect account.
func Seller(t testing.TB, tx pgx.Tx) *store.User {
	t.Helper()
	u, err := store.SetPayoutAccount(context.Background(), tx, User(t, tx, store.RoleSeller).ID, "acct_"+uuid.NewString()[:8])
	require.NoError(t, err)
	return u
}

// PendingOrder creates a pending EUR order of one track per price, each from
// its own seller.
func PendingOrder(t testing.TB, tx pgx.Tx, prices ...int64) *Order {
	t.Helper()
	ctx := context.Background()
	o := &Order{Buyer: User(t, tx, store.RoleUser)}
	var tracks []store.Track
	for _, price := range prices {
		seller := Seller(t, tx)
		tr, err := store.CreateTrack(ctx, tx, store.CreateTrackParams{OwnerID: seller.ID, Title: "Track", PriceCents: price, Currency: "EUR"})
		require.NoError(t, err)
		o.Sellers, tracks = append(o.Sellers, seller), append(tracks, *tr)
	}
	var err error
	o.Order, err = store.CreateOrder(ctx, tx, o.Buyer.ID, tracks)
	require.NoError(t, err)
	return o
}

// CompletedOrder is PendingOrder, paid.
func CompletedOrder(t testing.TB, tx pgx.Tx, prices ...int64) *Order {
	t.Helper()
	o := PendingOrder(t, tx, prices...)
	o.Move(t, tx, veza.OrderPending, veza.OrderCompleted)
	return o
}

// Move moves the order through the status machine.
func (o *Order) Move(t testing.TB, tx pgx.Tx, from, to veza.OrderStatus) {
	t.Helper()
	require.NoError(t, store.TransitionOrder(context.Background(), tx, o.ID, from, to))
	o.Status = to
}

// transferPath is how a fresh (pending) transfer reaches each status.
var transferPath = map[veza.TransferStatus][]veza.TransferStatus{
	veza.TransferPending:           nil,
	veza.TransferCompleted:         {veza.TransferCompleted},
	veza.TransferFailed:            {veza.TransferFailed},
	veza.TransferPermanentlyFailed: {veza.TransferFailed, veza.TransferPermanentlyFailed},
	veza.TransferReversalPending:   {veza.TransferCompleted, veza.TransferReversalPending},
	veza.TransferReversed:          {veza.TransferCompleted, veza.TransferReversalPending, veza.TransferReversed},
}

// Transfer creates item i's seller transfer (net of FeeBPS) and moves it to
// status through the status machine; a paid one gets a Stripe id.
func (o *Order) Transfer(t testing.TB, tx pgx.Tx, i int, status veza.TransferStatus) *store.Transfer {
	t.Helper()
	ctx := context.Background()
	share := veza.SplitShare(o.Items[i].Amount, FeeBPS)
	created, err := store.InsertTransfers(ctx, tx, o.ID, o.Currency, []store.NewTransfer{{SellerID: o.Items[i].SellerID, Amount: share.Net, Fee: share.Fee}})
	require.NoError(t, err)
	require.Len(t, created, 1, "one transfer per seller and order")
	tr := &created[0]
	from := veza.TransferPending
	for _, to := range transferPath[status] {
		var u store.TransferUpdate
		if to == veza.TransferCompleted {
			id := "tr_" + uuid.NewString()[:12]
			u.StripeTransferID = &id
		}
		require.NoError(t, store.TransitionTransfer(ctx, tx, tr.ID, from, to, u))
		from = to
	}
	got, err := store.GetTransfer(ctx, tx, tr.ID)
	require.NoError(t, err)
	return got
}
