package http_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestOpenAPICoversEveryRoute fails when a route under /v1, /admin or
// /webhooks is registered but not documented (or documented but gone).
func TestOpenAPICoversEveryRoute(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	r := b.do(t, "GET", "/openapi.json", "", nil)
	require.Equal(t, 200, r.Status)
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.Raw), &doc))
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
