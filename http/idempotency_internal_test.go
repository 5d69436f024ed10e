package http

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend"
	"github.com/veza/backend/internal/logtest"
	"github.com/veza/backend/store"
	"github.com/veza/backend/store/dbtest"
)

// testBody is the test endpoint's request.
type testBody struct {
	A int   `json:"a"`
	B []int `json:"b"`
}

func (*testBody) Validate() error { return nil }

type idemBundle struct {
	app   *fiber.App
	db    *store.DB
	user  *store.User
	logs  *logtest.Buffer
	calls atomic.Int64
	// answer is what the endpoint behind the middleware does.
	answer func(c *fiber.Ctx) error
}

// setupIdempotency mounts the idempotent middleware on a test endpoint of a
// real server, for one user.
func setupIdempotency(t *testing.T) *idemBundle {
	t.Helper()
	ctx := context.Background()
	b := &idemBundle{db: store.New(dbtest.Pool(t), nil), logs: &logtest.Buffer{}}
	require.NoError(t, b.db.InTx(ctx, func(tx pgx.Tx) (err error) {
		b.user, err = store.CreateUser(ctx, tx, uuid.NewString()+"@example.test", "h", store.RoleUser)
		return err
	}))
	s := NewServer(ServerOpts{DB: b.db, Logger: zerolog.New(b.logs)})
	b.app = s.App()
	asUser := func(c *fiber.Ctx) error { c.Locals(localUser, b.user); return c.Next() }
	b.app.Post("/test/idempotent", asUser, decoded[testBody](), requireIdempotencyKey, s.idempotent, func(c *fiber.Ctx) error {
		b.calls.Add(1)
		return b.answer(c)
	})
	return b
}

func (b *idemBundle) post(t *testing.T, key, body string) (int, string, string) {
	t.Helper()
	req := httptest.NewRequest("POST", "/test/idempotent", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := b.app.Test(req, -1)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(raw), resp.Header.Get("Idempotent-Replayed")
}

func TestIdempotentReplaysTheStoredAnswer(t *testing.T) {
	t.Parallel()
	b := setupIdempotency(t)
	b.answer = func(c *fiber.Ctx) error { return c.Status(201).JSON(fiber.Map{"n": b.calls.Load()}) }

	status, body, replayed := b.post(t, "k1", `{"a": 1, "b": [2, 3]}`)
	require.Equal(t, 201, status)
	require.JSONEq(t, `{"n":1}`, body)
	require.Empty(t, replayed)

	// The same body reformatted is the same request.
	status, body, replayed = b.post(t, "k1", `{"b":[2,3],"a":1}`)
	require.Equal(t, 201, status)
	require.JSONEq(t, `{"n":1}`, body)
	require.Equal(t, "true", replayed)

	status, body, _ = b.post(t, "k1", `{"a": 2}`)
	require.Equal(t, 422, status)
	require.Contains(t, body, "idempotency_key_reused")
	status, body, _ = b.post(t, "", `{"a": 1}`)
	require.Equal(t, 400, status)
	require.Contains(t, body, "idempotency_key_required")
	require.EqualValues(t, 1, b.calls.Load(), "the endpoint ran once")
}

func TestIdempotentStoresClientErrorsThroughTheErrorHandler(t *testing.T) {
	t.Parallel()
	b := setupIdempotency(t)
	b.answer = func(c *fiber.Ctx) error { return veza.Errorf(veza.KindUnprocessable, "payment_rejected", "no") }
	for range 2 {
		status, body, _ := b.post(t, "k2", `{}`)
		require.Equal(t, 422, status)
		require.JSONEq(t, `{"error":{"code":"payment_rejected","message":"no"}}`, body)
	}
	require.EqualValues(t, 1, b.calls.Load(), "a refusal is the answer repeats get")
}

func TestIdempotentReleasesRetryableAnswers(t *testing.T) {
	t.Parallel()
	b := setupIdempotency(t)
	b.answer = func(c *fiber.Ctx) error { return veza.Errorf(veza.KindUnavailable, "down", "provider down") }
	status, _, _ := b.post(t, "k3", `{}`)
	require.Equal(t, 503, status)
	b.answer = func(c *fiber.Ctx) error { return c.Status(201).JSON(fiber.Map{"ok": true}) }
	status, _, _ = b.post(t, "k3", `{}`)
	require.Equal(t, 201, status, "the retry ran the endpoint again")
	require.EqualValues(t, 2, b.calls.Load())
}

func TestIdempotentRefusesAKeyInProgress(t *testing.T) {
	t.Parallel()
	b := setupIdempotency(t)
	b.answer = func(c *fiber.Ctx) error {
		// A second request with the key arrives while this one runs.
		status, body, _ := b.post(t, "k4", `{}`)
		require.Equal(t, 409, status)
		require.Contains(t, body, "idempotency_key_in_progress")
		return c.SendStatus(204)
	}
	status, body, _ := b.post(t, "k4", `{}`)
	require.Equal(t, 204, status, body)
	status, _, replayed := b.post(t, "k4", `{}`)
	require.Equal(t, 204, status, "an empty answer is stored too")
	require.Equal(t, "true", replayed)
	require.EqualValues(t, 1, b.calls.Load())
}

func TestIdempotentLogsAFailedReleaseOnce(t *testing.T) {
	t.Parallel()
	b := setupIdempotency(t)
	_, err := b.db.Primary().Exec(context.Background(), `
		CREATE FUNCTION refuse_release() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'release refused by the test'; END $$;
		CREATE TRIGGER refuse_release BEFORE UPDATE ON idempotency_keys FOR EACH ROW
		WHEN (NEW.locked_until IS NULL AND NEW.response_status IS NULL) EXECUTE FUNCTION refuse_release()`)
	require.NoError(t, err)
	b.answer = func(c *fiber.Ctx) error { return veza.Errorf(veza.KindUnavailable, "down", "provider down") }
	status, _, _ := b.post(t, "k5", `{}`)
	require.Equal(t, 503, status, "the answer stands")
	require.Equal(t, 1, strings.Count(b.logs.String(), "could not release an idempotency key"), b.logs.String())
	require.Contains(t, b.logs.String(), "release refused by the test")
}
