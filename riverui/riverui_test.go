package riverui_test

import (
	"net/http"
	"net/http/httptest"
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
