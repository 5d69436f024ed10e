package http_test

import (
	"encoding/json"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	vezahttp "github.com/veza/backend/http"
)

// TestOpenAPICoversEveryRoute fails when a route under /v1, /admin or
// /webhooks is registered but not documented (or documented but gone).
func TestOpenAPICoversEveryRoute(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	servedOpenAPI(t, b.app, &doc)
	require.Equal(t, "3.0.3", doc.OpenAPI)

	param := regexp.MustCompile(`:([a-z_]+)`)
	registered := map[string]bool{}
	for _, route := range b.app.App().GetRoutes(true) {
		if route.Method == "HEAD" || route.Method == "USE" {
			continue
		}
		if !strings.HasPrefix(route.Path, "/v1/") && !strings.HasPrefix(route.Path, "/admin/") && !strings.HasPrefix(route.Path, "/webhooks/") {
			continue
		}
		path := param.ReplaceAllString(route.Path, "{$1}")
		key := strings.ToLower(route.Method) + " " + path
		registered[key] = true
		_, documented := doc.Paths[path][strings.ToLower(route.Method)]
		require.True(t, documented, "route %s is not documented in http/openapi.json", key)
	}
	for path, ops := range doc.Paths {
		if !strings.HasPrefix(path, "/v1/") && !strings.HasPrefix(path, "/admin/") && !strings.HasPrefix(path, "/webhooks/") {
			continue
		}
		for method := range ops {
			require.True(t, registered[method+" "+path], "documented %s %s is not a route", method, path)
		}
	}
	require.NotEmpty(t, registered)
}

// The rules of `npx @redocly/cli lint` (recommended) that the document
// broke, kept in make test: every operation has a unique operationId and
// declares its security, `[]` for the public ones (so a generated client
// sends no token there, and a forgotten requireAuth shows up here).
func TestOpenAPILintRules(t *testing.T) {
	t.Parallel()
	var doc struct {
		Security *[]any `json:"security"`
		Paths    map[string]map[string]struct {
			OperationID string            `json:"operationId"`
			Security    *[]map[string]any `json:"security"`
		} `json:"paths"`
	}
	servedOpenAPI(t, vezahttp.NewServer(vezahttp.ServerOpts{Logger: zerolog.Nop()}), &doc) // the document only: no database
	require.Nil(t, doc.Security, "security is declared per operation, not at the root")
	ids := map[string]string{}
	var public []string
	for path, ops := range doc.Paths {
		for method, op := range ops {
			at := method + " " + path
			require.Regexp(t, `^[a-z][A-Za-z]+$`, op.OperationID, "%s has no operationId", at)
			require.Empty(t, ids[op.OperationID], "operationId %s is used by %s and %s", op.OperationID, ids[op.OperationID], at)
			ids[op.OperationID] = at
			require.NotNil(t, op.Security, "%s declares no security (public ones say [])", at)
			if len(*op.Security) == 0 {
				public = append(public, at)
			}
		}
	}
	require.ElementsMatch(t, []string{
		"get /healthz", "get /readyz", "post /v1/auth/register", "post /v1/auth/verify", "post /v1/auth/login",
		"post /v1/auth/password-reset", "post /v1/auth/password-reset/confirm", "get /v1/tracks", "get /v1/tracks/{id}",
		"post /webhooks/hyperswitch", "post /webhooks/stripe",
	}, public, "the operations served without a token")
}

// servedOpenAPI decodes the document srv serves at /openapi.json into doc.
func servedOpenAPI(t *testing.T, srv *vezahttp.Server, doc any) {
	t.Helper()
	resp, err := srv.App().Test(httptest.NewRequest("GET", "/openapi.json", nil), -1)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(doc))
}
