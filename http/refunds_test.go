package http_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend"
	vezahttp "github.com/veza/backend/http"
	"github.com/veza/backend/settle"
	"github.com/veza/backend/store"
)

// completedOrder makes an order of buyer for one track and marks it paid.
func (b *apiBundle) completedOrder(t *testing.T, buyer *store.User) *store.Order {
	t.Helper()
	ctx := context.Background()
	seller, _ := b.newUser(t, "seller")
	tr := b.newTrack(t, seller, 1200, "EUR")
	var order *store.Order
	require.NoError(t, b.db.InTx(ctx, func(tx pgx.Tx) error {
		var err error
		if order, err = store.CreateOrder(ctx, tx, buyer.ID, []store.Track{*tr}); err != nil {
			return err
		}
		return store.TransitionOrder(ctx, tx, order.ID, veza.OrderPending, veza.OrderCompleted)
	}))
	return order
}

func TestRefundPhaseOne(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	buyer, token := b.newUser(t, "user")
	order := b.completedOrder(t, buyer)
	path := "/v1/orders/" + order.ID.String() + "/refund"

	r := b.do(t, "POST", path, token, map[string]string{"reason": "  wrong track  "})
	require.Equal(t, 202, r.Status, r.Raw)
	refund := r.Body["refund"].(map[string]any)
	require.Equal(t, "pending", refund["status"])
	refundID := refund["id"].(string)

	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM refunds WHERE id = $1 AND status = 'pending' AND hyperswitch_refund_id IS NULL AND reason = 'wrong track'`, refundID))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM orders WHERE id = $1 AND status = 'refund_pending'`, order.ID))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'submit_refund' AND args->>'refund_id' = $1`, refundID))

	again := b.do(t, "POST", path, token, nil)
	require.Equal(t, 409, again.Status)
	require.Equal(t, "order_not_refundable", again.errorCode())
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM refunds`))

	got := b.do(t, "GET", "/v1/orders/"+order.ID.String(), token, nil)
	require.Equal(t, "refund_pending", got.Body["status"])
	refunds := got.Body["refunds"].([]any)
	require.Len(t, refunds, 1)
	require.Equal(t, refundID, refunds[0].(map[string]any)["id"])
	require.NotContains(t, got.Raw, "hyperswitch_refund_id")
}

func TestRefundBadPaths(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	buyer, token := b.newUser(t, "user")
	_, stranger := b.newUser(t, "user")
	order := b.completedOrder(t, buyer)
	path := "/v1/orders/" + order.ID.String() + "/refund"

	cases := []struct {
		name, path, token string
		body              any
		status            int
		code              string
	}{
		{"anonymous", path, "", nil, 401, "unauthorized"},
		{"someone else's order", path, stranger, nil, 404, "not_found"},
		{"unknown order", "/v1/orders/" + uuid.NewString() + "/refund", token, nil, 404, "not_found"},
		{"not a uuid", "/v1/orders/x/refund", token, nil, 404, "not_found"},
		{"reason too long", path, token, map[string]string{"reason": strings.Repeat("é", 501)}, 422, "validation_failed"},
		{"unknown field", path, token, `{"amount": 1}`, 400, "invalid_json"},
		{"reason not a string", path, token, `{"reason": 5}`, 400, "invalid_json"},
		{"reason with NUL", path, token, `{"reason": "wrong \u0000 track"}`, 400, "invalid_json"},
	}
	for _, tc := range cases {
		r := b.do(t, "POST", tc.path, tc.token, tc.body)
		require.Equal(t, tc.status, r.Status, "%s: %s", tc.name, r.Raw)
		require.Equal(t, tc.code, r.errorCode(), tc.name)
	}

	// A pending order is not refundable.
	pending := b.completedOrder(t, buyer)
	_, err := b.pool.Exec(context.Background(), `UPDATE orders SET status = 'pending' WHERE id = $1`, pending.ID)
	require.NoError(t, err)
	r := b.do(t, "POST", "/v1/orders/"+pending.ID.String()+"/refund", token, nil)
	require.Equal(t, 409, r.Status)

	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM refunds`))
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM river_job`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM orders WHERE status = 'completed'`))
}

func TestAdminTransfers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupAPI(t)
	_, admin := b.newUser(t, "admin")
	_, user := b.newUser(t, "user")
	buyer, _ := b.newUser(t, "user")
	order := b.completedOrder(t, buyer)
	seller2, _ := b.newUser(t, "seller")

	var failed, completed *store.Transfer
	require.NoError(t, b.db.InTx(ctx, func(tx pgx.Tx) error {
		created, err := store.InsertTransfers(ctx, tx, order.ID, "EUR", []store.NewTransfer{
			{SellerID: order.Items[0].SellerID, Amount: 1080, Fee: 120}, {SellerID: seller2.ID, Amount: 10, Fee: 1}})
		if err != nil {
			return err
		}
		failed, completed = &created[0], &created[1]
		msg := "stripe 503"
		if err := store.TransitionTransfer(ctx, tx, failed.ID, veza.TransferPending, veza.TransferFailed, store.TransferUpdate{ErrorMessage: &msg}); err != nil {
			return err
		}
		id := "tr_1"
		return store.TransitionTransfer(ctx, tx, completed.ID, veza.TransferPending, veza.TransferCompleted, store.TransferUpdate{StripeTransferID: &id})
	}))

	r := b.do(t, "GET", "/admin/transfers?status=failed", admin, nil)
	require.Equal(t, 200, r.Status, r.Raw)
	list := r.Body["transfers"].([]any)
	require.Len(t, list, 1)
	row := list[0].(map[string]any)
	require.Equal(t, "failed", row["status"])
	require.Equal(t, "stripe 503", row["error_message"])
	for _, field := range []string{"retry_count", "next_retry_at", "amount", "platform_fee"} {
		require.Contains(t, row, field)
	}
	require.Len(t, b.do(t, "GET", "/admin/transfers", admin, nil).Body["transfers"], 2)
	require.Equal(t, 422, b.do(t, "GET", "/admin/transfers?status=lost", admin, nil).Status)

	require.Equal(t, 403, b.do(t, "POST", "/admin/transfers/"+failed.ID.String()+"/retry", user, nil).Status)
	require.Equal(t, 409, b.do(t, "POST", "/admin/transfers/"+completed.ID.String()+"/retry", admin, nil).Status)
	require.Equal(t, 404, b.do(t, "POST", "/admin/transfers/"+uuid.NewString()+"/retry", admin, nil).Status)

	r = b.do(t, "POST", "/admin/transfers/"+failed.ID.String()+"/retry", admin, nil)
	require.Equal(t, 202, r.Status, r.Raw)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM seller_transfers WHERE id = $1 AND status = 'pending' AND retry_count = 0`, failed.ID))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'seller_payout' AND args->>'transfer_id' = $1`, failed.ID.String()))
	r = b.do(t, "POST", "/admin/transfers/"+failed.ID.String()+"/retry", admin, nil)
	require.Equal(t, 409, r.Status, "now pending")
	require.Equal(t, "transfer_not_retryable", r.errorCode())

	// A reversal that exhausted its budget goes back to reversal_pending,
	// and the answer says so.
	_, err := b.pool.Exec(ctx, `UPDATE seller_transfers SET status = 'reversal_failed', reversal_amount = 10 WHERE id = $1`, completed.ID)
	require.NoError(t, err)
	r = b.do(t, "POST", "/admin/transfers/"+completed.ID.String()+"/retry", admin, nil)
	require.Equal(t, 202, r.Status, r.Raw)
	require.Equal(t, "reversal_pending", r.Body["status"], r.Raw)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM seller_transfers WHERE id = $1 AND status = 'reversal_pending'`, completed.ID))

	// The bulk form, after an outage: only the retryable statuses.
	r = b.do(t, "POST", "/admin/transfers/retry", admin, map[string]string{"status": "completed"})
	require.Equal(t, 422, r.Status, r.Raw)
	r = b.do(t, "POST", "/admin/transfers/retry", admin, map[string]string{"status": "failed"})
	require.Equal(t, 202, r.Status, r.Raw)
	require.EqualValues(t, 0, r.Body["enqueued"], "the failed one is pending already")
}

// A refund the provider refused shows the buyer a stable code and message;
// the provider's raw text stays for ops.
func TestFailedRefundShowsTheBuyerAStableError(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	buyer, token := b.newUser(t, "user")
	order := b.completedOrder(t, buyer)
	raw := "stripe: card_declined (acct_1Secret internal ref 99)"
	_, err := b.pool.Exec(context.Background(), `INSERT INTO refunds (order_id, amount, currency, status, error_message) VALUES ($1, 1200, 'EUR', 'failed', $2)`, order.ID, raw)
	require.NoError(t, err)
	got := b.do(t, "GET", "/v1/orders/"+order.ID.String(), token, nil)
	require.Equal(t, 200, got.Status)
	require.NotContains(t, got.Raw, "acct_1Secret", "the provider's raw text is not shown")
	refund := got.Body["refunds"].([]any)[0].(map[string]any)
	require.Equal(t, "failed", refund["status"])
	e := refund["error"].(map[string]any)
	require.Equal(t, "refund_failed", e["code"])
	require.NotEmpty(t, e["message"])
	require.NotContains(t, refund, "error_message")
	require.NotContains(t, refund, "hyperswitch_refund_id")
	require.Equal(t, float64(1200), refund["amount"])

	// An automatic refund's reason is written for ops: buyers see a stable one.
	_, err = b.pool.Exec(context.Background(), `INSERT INTO refunds (order_id, amount, currency, status, reason, automatic)
		VALUES ($1, 100, 'EUR', 'pending', 'automatic: 100 EUR taken for order x (failed, internal)', true)`, order.ID)
	require.NoError(t, err)
	got = b.do(t, "GET", "/v1/orders/"+order.ID.String(), token, nil)
	require.NotContains(t, got.Raw, "internal)")
	require.Contains(t, got.Raw, "returned automatically")
}

// After REFUND_WINDOW from completion a buyer's refund is refused.
func TestRefundWindow(t *testing.T) {
	t.Parallel()
	b := setupAPI(t, func(o *vezahttp.ServerOpts) {
		o.Settle = &settle.Settler{Logger: o.Logger, RefundWindow: 14 * 24 * time.Hour}
	})
	buyer, token := b.newUser(t, "user")
	old := b.completedOrder(t, buyer)
	recent := b.completedOrder(t, buyer)
	_, err := b.pool.Exec(context.Background(), `UPDATE orders SET completed_at = now() - interval '15 days' WHERE id = $1`, old.ID)
	require.NoError(t, err)
	r := b.do(t, "POST", "/v1/orders/"+old.ID.String()+"/refund", token, map[string]string{"reason": "late"})
	require.Equal(t, 409, r.Status, r.Raw)
	require.Equal(t, "refund_window_closed", r.errorCode())
	require.Equal(t, "completed", b.do(t, "GET", "/v1/orders/"+old.ID.String(), token, nil).Body["status"])
	require.Equal(t, 202, b.do(t, "POST", "/v1/orders/"+recent.ID.String()+"/refund", token, nil).Status)
}
