package http_test

import (
	"context"
	"fmt"
	nethttp "net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend"
	vezahttp "github.com/veza/backend/http"
	"github.com/veza/backend/riverui"
	"github.com/veza/backend/store"
)

// roles of the matrix.
var roles = []string{"anonymous", "other", "admin", "seller", "user"}

type matrixRow struct {
	method, path string
	body         any
	headers      map[string]string
	want         map[string]int // by role; "*" for every role not listed
}

func (r matrixRow) expect(role string) int {
	if s, ok := r.want[role]; ok {
		return s
	}
	return r.want["*"]
}

// TestAccessControlMatrix tries every route as anonymous, a user (buyer of
// the order), another user, a seller (owner of the track) and an admin.
// Every registered route must have a row.
func TestAccessControlMatrix(t *testing.T) {
	t.Parallel()
	ok := nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) { w.WriteHeader(200) })
	b := setupAPI(t, func(o *vezahttp.ServerOpts) { o.RiverUI = riverui.BasicAuth(ok, "ops", "ui-secret") })
	ctx := context.Background()
	buyer, userTok := b.newUser(t, "user")
	_, otherTok := b.newUser(t, "user")
	_, sellerTok := b.newUser(t, "seller")
	_, adminTok := b.newUser(t, "admin")
	tokens := map[string]string{"anonymous": "", "user": userTok, "other": otherTok, "seller": sellerTok, "admin": adminTok}

	up := b.upload(t, sellerTok, validForm(mp3(2000)))
	require.Equal(t, 201, up.Status)
	trackID := up.Body["id"].(string)
	up2 := b.upload(t, sellerTok, validForm(mp3(2000)))
	deletable := up2.Body["id"].(string)
	track, err := store.GetTrack(ctx, b.pool, mustUUID(trackID))
	require.NoError(t, err)
	var order *store.Order
	var transfer *store.Transfer
	require.NoError(t, b.db.InTx(ctx, func(tx pgx.Tx) error {
		if order, err = store.CreateOrder(ctx, tx, buyer.ID, []store.Track{*track}); err != nil {
			return err
		}
		if err := store.TransitionOrder(ctx, tx, order.ID, veza.OrderPending, veza.OrderCompleted); err != nil {
			return err
		}
		created, err := store.InsertTransfers(ctx, tx, order.ID, "EUR", []store.NewTransfer{{SellerID: track.OwnerID, Amount: 180, Fee: 19}})
		if err != nil {
			return err
		}
		transfer = &created[0]
		msg := "x"
		return store.TransitionTransfer(ctx, tx, transfer.ID, veza.TransferPending, veza.TransferFailed, store.TransferUpdate{ErrorMessage: &msg})
	}))
	oid, tid := order.ID.String(), transfer.ID.String()
	// A second session of the buyer, for the revoke row (the first is the
	// token the matrix uses).
	var sid string
	require.NoError(t, store.CreateSession(ctx, b.pool, buyer.ID, []byte("matrix-second-session"), time.Hour))
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT id::text FROM sessions WHERE token_hash = 'matrix-second-session'`).Scan(&sid))
	anyone := func(s int) map[string]int { return map[string]int{"*": s} }
	authed := func(s int) map[string]int { return map[string]int{"*": s, "anonymous": 401} }
	adminOnly := func(s int) map[string]int { return map[string]int{"*": 403, "anonymous": 401, "admin": s} }

	rows := []matrixRow{
		{"GET", "/healthz", nil, nil, anyone(200)},
		{"GET", "/readyz", nil, nil, anyone(200)},
		{"GET", "/openapi.json", nil, nil, anyone(200)},
		{"POST", "/v1/auth/register", map[string]string{"email": "bad"}, nil, anyone(422)},
		{"POST", "/v1/auth/verify", map[string]string{"token": "nope"}, nil, anyone(400)},
		{"POST", "/v1/auth/login", map[string]string{"email": "x@y.test", "password": "password1"}, nil, anyone(401)},
		{"POST", "/v1/auth/password-reset", map[string]string{"email": "bad"}, nil, anyone(422)},
		{"POST", "/v1/auth/password-reset/confirm", map[string]string{"token": "nope", "password": "password1"}, nil, anyone(400)},
		{"GET", "/v1/me", nil, nil, authed(200)},
		{"GET", "/v1/me/sessions", nil, nil, authed(200)},
		{"POST", "/v1/me/payout-account/onboarding", nil, nil, authed(503)}, // Stripe Connect off here
		{"DELETE", "/v1/me/sessions/" + sid, nil, nil, map[string]int{"*": 404, "anonymous": 401, "user": 204}},
		{"PUT", "/v1/me/payout-account", map[string]string{"stripe_account_id": "bad"}, nil, authed(422)},
		{"POST", "/v1/tracks", map[string]string{"title": "not multipart"}, nil, authed(422)},
		{"GET", "/v1/tracks", nil, nil, anyone(200)},
		{"GET", "/v1/tracks/" + trackID, nil, nil, anyone(200)},
		{"GET", "/v1/tracks/" + trackID + "/stream", nil, nil, map[string]int{"anonymous": 401, "other": 403, "admin": 403, "seller": 200, "user": 200}},
		{"DELETE", "/v1/tracks/" + deletable, nil, nil, map[string]int{"anonymous": 401, "other": 403, "admin": 403, "user": 403, "seller": 204}},
		{"POST", "/v1/orders", map[string]any{"track_ids": []string{}}, map[string]string{"Idempotency-Key": "k"}, authed(422)},
		{"GET", "/v1/orders/" + oid, nil, nil, map[string]int{"*": 404, "anonymous": 401, "user": 200}},
		{"POST", "/v1/orders/" + oid + "/refund", nil, nil, map[string]int{"*": 404, "anonymous": 401, "user": 202}},
		{"POST", "/webhooks/hyperswitch", map[string]string{"event_id": "e"}, nil, anyone(401)},
		{"POST", "/webhooks/stripe", map[string]string{"id": "evt_1"}, nil, anyone(503)}, // no STRIPE_WEBHOOK_SECRET here
		{"GET", "/admin/webhooks", nil, nil, adminOnly(200)},
		{"GET", "/admin/transfers", nil, nil, adminOnly(200)},
		{"GET", "/admin/disputes", nil, nil, adminOnly(200)},
		{"POST", "/admin/transfers/retry", map[string]string{"status": "reversal_failed"}, nil, adminOnly(202)},
		{"POST", "/admin/transfers/" + tid + "/retry", nil, nil, adminOnly(202)},
		{"POST", "/admin/reconcile", map[string]any{}, nil, adminOnly(202)},
		{"GET", "/admin/storage/migration", nil, nil, adminOnly(200)},
		{"POST", "/admin/storage/migrate", nil, nil, adminOnly(409)},
		{"POST", "/v1/auth/logout", nil, nil, authed(204)}, // last: it revokes the tokens
	}

	covered := map[string]bool{}
	idParam := regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	tried := 0
	for _, row := range rows {
		covered[row.method+" "+idParam.ReplaceAllString(row.path, ":id")] = true
		// Refusals first: a mutating success (delete, refund) goes last.
		ordered := []string{}
		var mutators []string
		for _, role := range roles {
			if row.method != "GET" && row.expect(role) < 300 {
				mutators = append(mutators, role)
			} else {
				ordered = append(ordered, role)
			}
		}
		for _, role := range append(ordered, mutators...) {
			r := b.doWith(t, row.method, row.path, tokens[role], row.body, row.headers)
			require.Equal(t, row.expect(role), r.Status, "%s %s as %s: %s", row.method, row.path, role, r.Raw)
			if r.Status >= 400 {
				require.NotEmpty(t, r.errorCode(), "%s %s as %s: the API error shape", row.method, row.path, role)
			}
			require.NotContains(t, r.Raw, "goroutine ", "no stack traces")
			tried++
		}
	}

	// River UI: no bearer token of any role opens it; only its credentials.
	for role, tok := range tokens {
		require.Equal(t, 401, b.do(t, "GET", "/riverui/", tok, nil).Status, role)
	}
	r := b.doWith(t, "GET", "/riverui/", "", nil, map[string]string{"Authorization": "Basic b3BzOnVpLXNlY3JldA=="})
	require.Equal(t, 200, r.Status)

	for _, route := range b.app.App().GetRoutes(true) {
		if route.Method == "HEAD" || route.Method == "USE" || !strings.HasPrefix(route.Path, "/") {
			continue
		}
		key := route.Method + " " + route.Path
		require.True(t, covered[key], "route %s has no row in the access-control matrix", key)
	}
	t.Logf("access-control matrix: %d routes × %d roles = %d requests", len(rows), len(roles), tried)
}

// TestIDORRefused: ids of other people's objects are refused, whatever the
// route, and refusals change nothing.
func TestIDORRefused(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	victim, victimToken := b.newUser(t, "user")
	_, attacker := b.newUser(t, "user")
	order := b.completedOrder(t, victim)
	trackID := order.Items[0].TrackID.String()
	// Every request below would succeed for the victim (or the seller): the
	// order is completed, so it is refundable and its track streamable.
	for _, req := range []struct{ method, path string }{
		{"GET", "/v1/orders/" + order.ID.String()},
		{"POST", "/v1/orders/" + order.ID.String() + "/refund"},
		{"GET", "/v1/tracks/" + trackID + "/stream"},
		{"DELETE", "/v1/tracks/" + trackID},
	} {
		r := b.do(t, req.method, req.path, attacker, nil)
		require.Contains(t, []int{403, 404}, r.Status, fmt.Sprintf("%s %s", req.method, req.path))
	}
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM orders WHERE status = 'completed'`))
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM refunds`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tracks WHERE deleted_at IS NULL`))
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM river_job`))
	// The victim's own refund goes through: the refusals above were about
	// who asked, not about the order.
	require.Equal(t, 202, b.do(t, "POST", "/v1/orders/"+order.ID.String()+"/refund", victimToken, nil).Status)
}
