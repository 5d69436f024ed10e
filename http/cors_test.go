package http_test

import (
	nethttp "net/http"
	"net/http/httptest"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	vezahttp "github.com/veza/backend/http"
)

// A browser frontend on an allowed origin gets its preflight answered and
// can read the headers it needs; a foreign origin gets no CORS headers, so
// the browser refuses its script the answer.
func TestCORSPreflights(t *testing.T) {
	t.Parallel()
	srv := vezahttp.NewServer(vezahttp.ServerOpts{Logger: zerolog.Nop(), CORSAllowedOrigins: []string{"http://localhost:5173", "https://app.veza.example"}})
	preflight := func(origin, path string) (int, map[string]string) {
		req := httptest.NewRequest("OPTIONS", path, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type, idempotency-key")
		resp, err := srv.App().Test(req, -1)
		require.NoError(t, err)
		defer resp.Body.Close()
		h := map[string]string{}
		for _, k := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers", "Access-Control-Max-Age", "Access-Control-Allow-Credentials"} {
			h[k] = resp.Header.Get(k)
		}
		return resp.StatusCode, h
	}

	status, h := preflight("http://localhost:5173", "/v1/orders")
	require.Equal(t, 204, status, "a preflight is answered, not 405")
	require.Equal(t, "http://localhost:5173", h["Access-Control-Allow-Origin"], "the exact origin, never *")
	require.Contains(t, h["Access-Control-Allow-Methods"], "POST")
	for _, name := range []string{"Authorization", "Content-Type", "Idempotency-Key"} {
		require.Contains(t, h["Access-Control-Allow-Headers"], name)
	}
	require.Equal(t, "600", h["Access-Control-Max-Age"])
	require.Empty(t, h["Access-Control-Allow-Credentials"], "bearer tokens, no cookies")

	status, h = preflight("https://evil.example", "/v1/orders")
	require.Equal(t, 204, status)
	require.Empty(t, h["Access-Control-Allow-Origin"], "a foreign origin is not allowed")
	_, h = preflight("http://localhost:5173.evil.example", "/v1/orders")
	require.Empty(t, h["Access-Control-Allow-Origin"], "exact match, not a prefix")

	// A real request from the allowed origin exposes what the frontend reads.
	req := httptest.NewRequest("GET", "/healthz", nil)
	req.Header.Set("Origin", "https://app.veza.example")
	resp, err := srv.App().Test(req, -1)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "https://app.veza.example", resp.Header.Get("Access-Control-Allow-Origin"))
	require.Contains(t, resp.Header.Get("Access-Control-Expose-Headers"), "Retry-After")
	require.Contains(t, resp.Header.Get("Access-Control-Expose-Headers"), "X-Request-Id")
	require.Contains(t, resp.Header.Get("Vary"), "Origin")

	// No origins configured (production's default): no CORS at all.
	bare := vezahttp.NewServer(vezahttp.ServerOpts{Logger: zerolog.Nop()})
	req = httptest.NewRequest("OPTIONS", "/v1/orders", nil)
	req.Header.Set("Origin", "http://localhost:5173")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err = bare.App().Test(req, -1)
	require.NoError(t, err)
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
}

// The sandbox answers this machine only unless told otherwise: its inbox
// holds every account's links and its controls mark payments paid.
func TestSandboxLocalOnly(t *testing.T) {
	t.Parallel()
	ok := nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) { w.WriteHeader(200) })
	for _, remote := range []bool{false, true} {
		srv := vezahttp.NewServer(vezahttp.ServerOpts{Logger: zerolog.Nop(), Sandbox: ok, SandboxAllowRemote: remote})
		resp, err := srv.App().Test(httptest.NewRequest("GET", "/sandbox/emails", nil), -1) // from 0.0.0.0: not loopback
		require.NoError(t, err)
		resp.Body.Close()
		if remote {
			require.Equal(t, 200, resp.StatusCode)
		} else {
			require.Equal(t, 403, resp.StatusCode)
		}
	}
}
