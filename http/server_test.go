package http_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend"
	vezahttp "github.com/veza/backend/http"
)

type testBundle struct {
	app  *fiber.App
	logs *bytes.Buffer
}

func setup(t *testing.T, ready func(context.Context) error) *testBundle {
	t.Helper()
	logs := &bytes.Buffer{}
	srv := vezahttp.NewServer(vezahttp.ServerOpts{Logger: zerolog.New(logs), ReadyFunc: ready})
	app := srv.App()
	app.Get("/test/panic", func(c *fiber.Ctx) error { panic("kaboom") })
	app.Get("/test/internal", func(c *fiber.Ctx) error { return errors.New("db password=hunter2 leaked?") })
	app.Get("/test/conflict", func(c *fiber.Ctx) error {
		return veza.Errorf(veza.KindConflict, "email_taken", "an account with this email already exists")
	})
	app.Post("/test/echo", func(c *fiber.Ctx) error { return c.Send(c.Body()) })
	return &testBundle{app: app, logs: logs}
}

func do(t *testing.T, app *fiber.App, req *nethttp.Request) (int, string) {
	t.Helper()
	resp, err := app.Test(req, -1)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestErrorShape(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)

	status, body := do(t, b.app, httptest.NewRequest("GET", "/test/conflict", nil))
	require.Equal(t, 409, status)
	require.JSONEq(t, `{"error":{"code":"email_taken","message":"an account with this email already exists"}}`, body)

	status, body = do(t, b.app, httptest.NewRequest("GET", "/test/internal", nil))
	require.Equal(t, 500, status)
	require.JSONEq(t, `{"error":{"code":"internal_error","message":"internal server error"}}`, body)
	require.Contains(t, b.logs.String(), "internal error", "logged once at the edge")

	status, body = do(t, b.app, httptest.NewRequest("DELETE", "/healthz", nil))
	require.Equal(t, 405, status)
	require.Contains(t, body, `"code":"method_not_allowed"`)
}

func TestPanicBecomesJSON500(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	status, body := do(t, b.app, httptest.NewRequest("GET", "/test/panic", nil))
	require.Equal(t, 500, status)
	require.JSONEq(t, `{"error":{"code":"internal_error","message":"internal server error"}}`, body)
	require.NotContains(t, body, "goroutine", "no stack trace to clients")
	require.Contains(t, b.logs.String(), "handler panicked")
	require.Contains(t, b.logs.String(), `"stack"`)
	// The server keeps serving.
	status, _ = do(t, b.app, httptest.NewRequest("GET", "/healthz", nil))
	require.Equal(t, 200, status)
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	// Fiber enforces BodyLimit in its fasthttp server, so this test runs a
	// real listener rather than app.Test.
	b := setup(t, nil)
	ln := httptestListener(t, b.app)
	resp, err := nethttp.Post(ln+"/test/echo", "application/octet-stream", strings.NewReader(strings.Repeat("x", vezahttp.DefaultBodyLimit+1)))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, 413, resp.StatusCode)
	require.JSONEq(t, `{"error":{"code":"body_too_large","message":"request body is too large"}}`, string(body))

	resp, err = nethttp.Post(ln+"/test/echo", "application/octet-stream", strings.NewReader("small"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	status, body := do(t, setup(t, func(context.Context) error { return nil }).app, httptest.NewRequest("GET", "/readyz", nil))
	require.Equal(t, 200, status)
	require.JSONEq(t, `{"status":"ok"}`, body)

	status, body = do(t, setup(t, func(context.Context) error { return errors.New("database unreachable") }).app, httptest.NewRequest("GET", "/readyz", nil))
	require.Equal(t, 503, status)
	require.JSONEq(t, `{"error":{"code":"not_ready","message":"database unreachable"}}`, body)
}
