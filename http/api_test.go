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

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	vezahttp "github.com/veza/backend/http"
	"github.com/veza/backend/jobs"
	"github.com/veza/backend/store"
	"github.com/veza/backend/store/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// apiBundle is the real server on a real database with an insert-only River
// client: handlers enqueue, nothing works the jobs.
type apiBundle struct {
	app  *vezahttp.Server
	pool *pgxpool.Pool
	db   *store.DB
	logs *safeBuffer
}

func setupAPI(t *testing.T, mutate ...func(*vezahttp.ServerOpts)) *apiBundle {
	t.Helper()
	pool := dbtest.Pool(t)
	client, err := jobs.NewClient(pool, jobs.ClientOpts{Logger: zerolog.Nop()})
	require.NoError(t, err)
	logs := &safeBuffer{}
	opts := vezahttp.ServerOpts{
		Logger: zerolog.New(logs), DB: store.New(pool, nil), River: client,
		RateLimitPerMinute: 10_000, AuthRateLimitPerMinute: 10_000, ResetResponseFloor: time.Millisecond,
	}
	for _, m := range mutate {
		m(&opts)
	}
	return &apiBundle{app: vezahttp.NewServer(opts), pool: pool, db: opts.DB, logs: logs}
}

type response struct {
	Status int
	Header nethttp.Header
	Body   map[string]any
	Raw    string
}

func (b *apiBundle) do(t *testing.T, method, path, token string, body any) response {
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

func (b *apiBundle) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}
