package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/auth"
	vezahttp "github.com/veza/backend/http"
	"github.com/veza/backend/hyperswitch/hyperswitchtest"
	"github.com/veza/backend/internal/logtest"
	"github.com/veza/backend/jobs"
	"github.com/veza/backend/storage"
	"github.com/veza/backend/store"
	"github.com/veza/backend/store/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// apiBundle is the real server on a real database with an insert-only River
// client: handlers enqueue, nothing works the jobs.
type apiBundle struct {
	app    *vezahttp.Server
	pool   *pgxpool.Pool
	db     *store.DB
	logs   *logtest.Buffer
	hs     *hyperswitchtest.Server
	secret string
	stores jobs.Stores
}

const webhookSecret = "whsec_test_payment_response_hash_key"

func setupAPI(t testing.TB, mutate ...func(*vezahttp.ServerOpts)) *apiBundle {
	t.Helper()
	pool := dbtest.Pool(t)
	inserter, err := jobs.NewInserter(pool, jobs.ClientOpts{Logger: zerolog.Nop()})
	require.NoError(t, err)
	logs := &logtest.Buffer{}
	hs := hyperswitchtest.Start(t)
	local, err := storage.NewLocal(t.TempDir())
	require.NoError(t, err)
	opts := vezahttp.ServerOpts{
		Stores: jobs.Stores{ByName: map[string]storage.Store{storage.BackendLocal: local}, Active: storage.BackendLocal},
		Logger: zerolog.New(logs), DB: store.New(pool, nil), Inserter: inserter,
		Hyperswitch: hs.Client(), WebhookSecret: webhookSecret,
		RateLimitPerMinute: 10_000, AuthRateLimitPerMinute: 10_000, ResetResponseFloor: time.Millisecond,
	}
	for _, m := range mutate {
		m(&opts)
	}
	return &apiBundle{app: vezahttp.NewServer(opts), pool: opts.DB.Primary(), db: opts.DB, logs: logs, hs: hs, secret: opts.WebhookSecret, stores: opts.Stores}
}

func jsonUnmarshal(raw []byte, v any) error { return json.Unmarshal(raw, v) }

type response struct {
	Status int
	Header nethttp.Header
	Body   map[string]any
	Raw    string
}

func (b *apiBundle) do(t *testing.T, method, path, token string, body any) response {
	t.Helper()
	return b.doWith(t, method, path, token, body, nil)
}

func (b *apiBundle) doWith(t *testing.T, method, path, token string, body any, headers map[string]string) response {
	t.Helper()
	var reader io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		reader = bytes.NewBufferString(v)
	default:
		raw, err := json.Marshal(v)
		require.NoError(t, err)
		reader = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, path, reader)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := b.app.App().Test(req, -1)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

func (r response) errorCode() string {
	e, _ := r.Body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// newUser creates a user with a live session directly in the database
// (no argon2 work) and returns it with its bearer token.
func (b *apiBundle) newUser(t testing.TB, role string) (*store.User, string) {
	t.Helper()
	ctx := context.Background()
	var u *store.User
	require.NoError(t, b.db.InTx(ctx, func(tx pgx.Tx) error {
		var err error
		u, err = store.CreateUser(ctx, tx, uuid.NewString()+"@example.test", "not-a-real-hash", role)
		return err
	}))
	token, hash, err := auth.NewToken()
	require.NoError(t, err)
	require.NoError(t, store.CreateSession(ctx, b.pool, u.ID, hash, time.Hour))
	return u, token
}

// newTrack creates a track for sale by owner.
func (b *apiBundle) newTrack(t *testing.T, owner *store.User, price int64, currency string) *store.Track {
	t.Helper()
	tr, err := store.CreateTrack(context.Background(), b.pool, store.CreateTrackParams{OwnerID: owner.ID, Title: "Song " + uuid.NewString()[:8], PriceCents: price, Currency: currency})
	require.NoError(t, err)
	return tr
}

func (b *apiBundle) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func mustUUID(s string) uuid.UUID { return uuid.MustParse(s) }
