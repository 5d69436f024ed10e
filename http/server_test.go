package http_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend"
	vezahttp "github.com/veza/backend/http"
	"github.com/veza/backend/riverui"
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

// rawPost writes a request by hand (headers, then body from a goroutine so
// an early answer is read even while the body is still being refused) and
// returns the response.
func rawPost(t *testing.T, base, path string, headers string, body []byte) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: veza\r\n%s\r\n", path, headers)
	require.NoError(t, err)
	go func() { _, _ = conn.Write(body) }()
	resp, err := nethttp.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	base := httptestListener(t, b.app)

	// Over the limit by Content-Length: refused without reading it all.
	status, body := rawPost(t, base, "/test/echo", fmt.Sprintf("Content-Length: %d\r\n", vezahttp.DefaultBodyLimit+1),
		bytes.Repeat([]byte("x"), 16<<10))
	require.Equal(t, 413, status)
	require.JSONEq(t, `{"error":{"code":"body_too_large","message":"request body is too large"}}`, body)

	// Chunked, so no length up front: refused once the limit is passed.
	var chunked bytes.Buffer
	for sent := 0; sent <= vezahttp.DefaultBodyLimit; sent += 64 << 10 {
		fmt.Fprintf(&chunked, "%x\r\n%s\r\n", 64<<10, bytes.Repeat([]byte("y"), 64<<10))
	}
	chunked.WriteString("0\r\n\r\n")
	status, _ = rawPost(t, base, "/test/echo", "Transfer-Encoding: chunked\r\n", chunked.Bytes())
	require.Equal(t, 413, status)

	// Under the limit, chunked or not, the body arrives whole.
	status, body = rawPost(t, base, "/test/echo", "Transfer-Encoding: chunked\r\n", []byte("5\r\nsmall\r\n0\r\n\r\n"))
	require.Equal(t, 200, status)
	require.Equal(t, "small", body)
	resp, err := nethttp.Post(base+"/test/echo", "application/octet-stream", strings.NewReader("hello"))
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "hello", string(raw))
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

// Every answer carries the security headers; HSTS only when the public URL
// is https.
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	ok := nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) { w.WriteHeader(200) })
	for _, hsts := range []bool{false, true} {
		b := setupAPI(t, func(o *vezahttp.ServerOpts) { o.HSTS = hsts; o.RiverUI = riverui.BasicAuth(ok, "ops", "pw") })
		for _, path := range []string{"/healthz", "/v1/tracks", "/v1/nope", "/riverui/", "/openapi.json"} {
			r := b.do(t, "GET", path, "", nil)
			require.Equal(t, "nosniff", r.Header.Get("X-Content-Type-Options"), path)
			require.Equal(t, "no-referrer", r.Header.Get("Referrer-Policy"), path)
			require.Equal(t, "DENY", r.Header.Get("X-Frame-Options"), path)
			require.Contains(t, r.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'", path)
			if hsts {
				require.Contains(t, r.Header.Get("Strict-Transport-Security"), "max-age=", path)
			} else {
				require.Empty(t, r.Header.Get("Strict-Transport-Security"), path)
			}
		}
	}
}
