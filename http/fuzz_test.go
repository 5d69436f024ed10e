package http_test

import (
	"bytes"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzUpload: any multipart body answers 2xx/4xx, and one that is refused
// leaves no row and no object.
func FuzzUpload(f *testing.F) {
	ct, valid := validForm(mp3(600)).body()
	boundary := ct[len("multipart/form-data; boundary="):]
	f.Add(valid)
	f.Add([]byte("--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nID3\r\n--" + boundary + "--\r\n"))
	f.Add([]byte("--" + boundary + "\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n\xff\xfe\r\n--" + boundary + "--\r\n"))
	f.Add([]byte("--" + boundary + "--"))
	f.Add([]byte{})
	b := setupAPI(f)
	_, token := b.newUser(f, "seller")
	f.Fuzz(func(t *testing.T, body []byte) {
		beforeRows := b.count(t, `SELECT count(*) FROM tracks`)
		beforeObjects := len(b.objects(t))
		req := httptest.NewRequest("POST", "/v1/tracks", bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := b.app.App().Test(req, -1)
		require.NoError(t, err)
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.True(t, resp.StatusCode < 500, "status %d for %q: %s", resp.StatusCode, body, raw)
		if resp.StatusCode != 201 {
			require.Equal(t, beforeRows, b.count(t, `SELECT count(*) FROM tracks`))
			require.Equal(t, beforeObjects, len(b.objects(t)), "a refused upload leaves no object")
		}
	})
}

// jsonRoutes are the /v1 (and admin) routes with a JSON body.
var jsonRoutes = []struct{ method, path string }{
	{"POST", "/v1/auth/register"},
	{"POST", "/v1/auth/verify"},
	{"POST", "/v1/auth/login"},
	{"POST", "/v1/auth/password-reset"},
	{"POST", "/v1/auth/password-reset/confirm"},
	{"PUT", "/v1/me/payout-account"},
	{"POST", "/v1/orders"},
	{"POST", "/v1/orders/7b0e4f5c-3f6a-4a53-9d0b-2f0b1d6d2a11/refund"},
	{"POST", "/admin/reconcile"},
}

// FuzzJSONBodies: whatever body reaches any JSON route, the answer is not a
// 5xx and is either a success or the API error shape.
func FuzzJSONBodies(f *testing.F) {
	for i := range jsonRoutes {
		f.Add(uint8(i), []byte(`{"email":"a@b.test","password":"password1"}`))
		f.Add(uint8(i), []byte(`{"track_ids":["7b0e4f5c-3f6a-4a53-9d0b-2f0b1d6d2a11"]}`))
		f.Add(uint8(i), []byte(`{"token":"x","password":"\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000"}`))
		f.Add(uint8(i), []byte(`null`))
		// NUL escaped in every string field a route keeps: TEXT refuses it.
		f.Add(uint8(i), []byte(`{"email":"a\u0000@b.test","stripe_account_id":"acct_\u0000","reason":"\u0000","token":"\u0000"}`))
		f.Add(uint8(i), []byte(`{"order_id":"\u0000","refund_id":"\u0000","track_ids":["\u0000"]}`))
	}
	b := setupAPI(f)
	_, token := b.newUser(f, "admin")
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rt := jsonRoutes[int(route)%len(jsonRoutes)]
		r := b.doWith(t, rt.method, rt.path, token, string(body), map[string]string{"Idempotency-Key": "fuzz"})
		require.True(t, r.Status < 500, "%s %s: status %d for %q: %s", rt.method, rt.path, r.Status, body, r.Raw)
		if r.Status >= 400 {
			require.NotEmpty(t, r.errorCode(), "the API error shape: %s", r.Raw)
		}
	})
}
