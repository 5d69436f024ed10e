package http_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func TestAdminDisputesOpenFirstWithDeadline(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	ctx := context.Background()
	buyer, _ := b.newUser(t, "user")
	_, admin := b.newUser(t, "admin")
	_, seller := b.newUser(t, "seller")
	add := func(disputeID, orderStatus, status string, deadline *time.Time, age time.Duration) {
		t.Helper()
		order := uuid.New()
		_, err := b.pool.Exec(ctx, `INSERT INTO orders (id, buyer_id, status, amount, currency, payment_id) VALUES ($1, $2, $3, 1000, 'EUR', $4)`,
			order, buyer.ID, orderStatus, "veza_"+disputeID)
		require.NoError(t, err)
		_, err = b.pool.Exec(ctx, `INSERT INTO disputes (dispute_id, order_id, amount, currency, status, challenge_required_by, opened_at, reason)
			VALUES ($1, $2, 600, 'EUR', $3, $4, now() - make_interval(secs => $5), 'fraudulent')`, disputeID, order, status, deadline, age.Seconds())
		require.NoError(t, err)
	}
	soon, later := time.Now().Add(24*time.Hour), time.Now().Add(72*time.Hour)
	add("dp_won_new", "completed", "won", nil, time.Minute)
	add("dp_later", "disputed", "challenged", &later, time.Hour)
	add("dp_lost", "charged_back", "lost", nil, 2*time.Hour)
	add("dp_soon", "disputed", "opened", &soon, 3*time.Hour)
	add("dp_nodeadline", "disputed", "opened", nil, 4*time.Hour)

	r := b.do(t, "GET", "/admin/disputes", admin, nil)
	require.Equal(t, 200, r.Status, r.Raw)
	var ids []string
	for _, d := range r.Body["disputes"].([]any) {
		ids = append(ids, d.(map[string]any)["dispute_id"].(string))
	}
	require.Equal(t, []string{"dp_soon", "dp_later", "dp_nodeadline", "dp_won_new", "dp_lost"}, ids,
		"open ones first, nearest deadline first; then the newest")
	first := r.Body["disputes"].([]any)[0].(map[string]any)
	require.Equal(t, "veza_dp_soon", first["payment_id"], "to find it in Hyperswitch's dashboard")
	require.Equal(t, "disputed", first["order_status"])
	require.Equal(t, "opened", first["status"])
	require.Equal(t, float64(600), first["amount"])
	require.NotNil(t, first["challenge_required_by"])

	r = b.do(t, "GET", "/admin/disputes?status=lost", admin, nil)
	require.Equal(t, 200, r.Status)
	require.Len(t, r.Body["disputes"], 1)
	r = b.do(t, "GET", "/admin/disputes?status=expired", admin, nil)
	require.Contains(t, r.Raw, `"disputes":[]`, "an empty list, not null")
	require.Len(t, b.do(t, "GET", "/admin/disputes?limit=2", admin, nil).Body["disputes"], 2)

	require.Equal(t, 422, b.do(t, "GET", "/admin/disputes?status=dispute_lost", admin, nil).Status)
	require.Equal(t, 422, b.do(t, "GET", "/admin/disputes?limit=0", admin, nil).Status)
	require.Equal(t, 403, b.do(t, "GET", "/admin/disputes", seller, nil).Status)
	require.Equal(t, 401, b.do(t, "GET", "/admin/disputes", "", nil).Status)
}
