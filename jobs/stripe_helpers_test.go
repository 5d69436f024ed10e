package jobs_test

import (
	"github.com/veza/backend/store"
	"github.com/veza/backend/stripeconnect"
)

func stripeTransferParams(b *payBundle, tr *store.Transfer) stripeconnect.TransferParams {
	return stripeconnect.TransferParams{
		Amount: tr.Amount, Currency: tr.Currency, Destination: *b.order.Sellers[0].StripeAccountID,
		TransferGroup: b.order.ID.String(), IdempotencyKey: tr.ID.String(),
		Metadata: map[string]string{"order_id": b.order.ID.String(), "transfer_id": tr.ID.String()},
	}
}
