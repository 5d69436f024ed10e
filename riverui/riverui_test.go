package riverui_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/veza/backend/riverui"
)

func TestBasicAuth(t *testing.T) {
	t.Parallel()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h := riverui.BasicAuth(ok, "ops", "pw")
	for _, tc := range []struct {
		name       string
		user, pass string
		set        bool
		want       int
	}{
		{"no credentials", "", "", false, 401},
		{"wrong password", "ops", "nope", true, 401},
		{"wrong user", "op", "pw", true, 401},
		{"password prefix", "ops", "p", true, 401},
		{"empty", "", "", true, 401},
		{"right", "ops", "pw", true, http.StatusTeapot},
	} {
		req := httptest.NewRequest("GET", "/riverui/", nil)
		if tc.set {
			req.SetBasicAuth(tc.user, tc.pass)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, tc.want, rec.Code, tc.name)
		if tc.want == 401 {
			require.Contains(t, rec.Header().Get("WWW-Authenticate"), "Basic")
		}
	}
}

func TestRefusesEmptyCredentials(t *testing.T) {
	t.Parallel()
	_, err := riverui.NewHandler(t.Context(), riverui.Opts{Username: "ops"})
	require.Error(t, err)
}

// River UI's POST endpoints (cancel, retry, delete) accept JSON whatever the
// Content-Type, and browsers cache basic auth: a page an operator visits
// could post to them. Unsafe cross-site requests are refused; the operator's
// own (same-origin, or not from a browser) pass.
func TestRiverUIRefusesCrossSiteWrites(t *testing.T) {
	t.Parallel()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h := riverui.BasicAuth(ok, "ops", "pw")
	try := func(method string, headers map[string]string) int {
		req := httptest.NewRequest(method, "http://ops.example.test/riverui/api/jobs/cancel", strings.NewReader(`{"job_ids":[1]}`))
		req.SetBasicAuth("ops", "pw")
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	require.Equal(t, 403, try("POST", map[string]string{"Sec-Fetch-Site": "cross-site"}))
	require.Equal(t, 403, try("POST", map[string]string{"Origin": "https://evil.example"}))
	require.Equal(t, 403, try("DELETE", map[string]string{"Sec-Fetch-Site": "same-site"}))
	require.Equal(t, http.StatusTeapot, try("POST", map[string]string{"Sec-Fetch-Site": "same-origin"}))
	require.Equal(t, http.StatusTeapot, try("POST", map[string]string{"Origin": "http://ops.example.test"}))
	require.Equal(t, http.StatusTeapot, try("POST", nil), "not from a browser (curl)")
	require.Equal(t, http.StatusTeapot, try("GET", map[string]string{"Sec-Fetch-Site": "cross-site"}), "reads are safe")
}

// Failed basic-auth attempts are limited per client: guessing the password
// stops at 10 a minute; a client that knows it is not locked out by another.
func TestRiverUILimitsFailedLogins(t *testing.T) {
	t.Parallel()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h := riverui.BasicAuth(ok, "ops", "pw")
	try := func(addr, pass string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/riverui/", nil)
		req.RemoteAddr = addr + ":4242"
		req.SetBasicAuth("ops", pass)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for i := range 10 {
		require.Equal(t, 401, try("203.0.113.5", "guess").Code, "attempt %d", i)
	}
	over := try("203.0.113.5", "guess")
	require.Equal(t, 429, over.Code)
	require.NotEmpty(t, over.Header().Get("Retry-After"))
	require.Equal(t, 429, try("203.0.113.5", "pw").Code, "locked out for the minute, even with the password")
	require.Equal(t, http.StatusTeapot, try("198.51.100.1", "pw").Code, "another client is not")
}
