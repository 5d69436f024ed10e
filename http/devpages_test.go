package http_test

import (
	"io"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	vezahttp "github.com/veza/backend/http"
	"github.com/veza/backend/store"
)

// In development an email's link (PUBLIC_BASE_URL = the API) opens a page
// whose form makes the API call; opening the link alone changes nothing.
func TestDevPagesFollowEmailLinks(t *testing.T) {
	t.Parallel()
	b := setupAPI(t, func(o *vezahttp.ServerOpts) { o.DevPages = true })
	page := func(method, target string, form url.Values) (int, string) {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req := httptest.NewRequest(method, target, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := b.app.App().Test(req, -1)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		require.Contains(t, resp.Header.Get("Content-Type"), "text/html")
		return resp.StatusCode, string(raw)
	}
	b.register(t, "page@example.test", "password1")
	token := b.mintToken(t, "page@example.test", store.PurposeVerifyEmail)

	status, body := page("GET", "/verify-email?token="+url.QueryEscape(token)+"%22%3E%3Cscript%3E", nil)
	require.Equal(t, 200, status)
	require.Contains(t, body, `<form method="post" action="/verify-email">`)
	require.NotContains(t, body, "<script>", "the token is escaped")
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM users WHERE email = 'page@example.test' AND email_verified_at IS NOT NULL`), "GET changes nothing")

	status, body = page("POST", "/verify-email", url.Values{"token": {token}})
	require.Equal(t, 200, status, body)
	require.Contains(t, body, "page@example.test is verified")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM users WHERE email = 'page@example.test' AND email_verified_at IS NOT NULL`))
	status, body = page("POST", "/verify-email", url.Values{"token": {token}})
	require.Equal(t, 400, status, "used once")
	require.Contains(t, body, "invalid_token")

	b.do(t, "POST", "/v1/auth/password-reset", "", map[string]string{"email": "page@example.test"})
	reset := b.mintToken(t, "page@example.test", store.PurposePasswordReset)
	status, body = page("GET", "/reset-password?token="+url.QueryEscape(reset), nil)
	require.Equal(t, 200, status)
	require.Contains(t, body, `name="password"`)
	status, body = page("POST", "/reset-password", url.Values{"token": {reset}, "password": {"short"}})
	require.Equal(t, 422, status, body)
	status, body = page("POST", "/reset-password", url.Values{"token": {reset}, "password": {"a new password"}})
	require.Equal(t, 200, status, body)
	r := b.do(t, "POST", "/v1/auth/login", "", map[string]string{"email": "page@example.test", "password": "a new password"})
	require.Equal(t, 200, r.Status, r.Raw)

	// Opening a link changes nothing, so it is not rate limited (seen
	// limited by the auth limit after a walkthrough's logins).
	limited := setupAPI(t, func(o *vezahttp.ServerOpts) { o.DevPages, o.AuthRateLimitPerMinute = true, 1 })
	for range 3 {
		resp, err := limited.app.App().Test(httptest.NewRequest("GET", "/verify-email?token=x", nil), -1)
		require.NoError(t, err)
		require.Equal(t, 200, resp.StatusCode)
	}

	plain := setupAPI(t)
	resp, err := plain.app.App().Test(httptest.NewRequest("GET", "/verify-email?token=x", nil), -1)
	require.NoError(t, err)
	require.Equal(t, 404, resp.StatusCode, "outside development there is no page")
}
