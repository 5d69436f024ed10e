package http

import (
	"io"
	"net"
	nethttp "net/http"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/obs"
)

// TestMethodLabelSurvivesTheNextRequest: fasthttp reuses the method's
// buffer for the next request on a kept-alive connection; labels recorded
// for earlier requests must keep their value (a changed label would make
// two identical series and /metrics answer 500).
func TestMethodLabelSurvivesTheNextRequest(t *testing.T) {
	t.Parallel()
	m := obs.NewMetrics()
	s := NewServer(ServerOpts{Logger: zerolog.Nop(), Metrics: m})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = s.Serve(ln) }()
	defer func() { _ = s.app.Shutdown() }()

	client := &nethttp.Client{Transport: &nethttp.Transport{MaxConnsPerHost: 1}}
	base := "http://" + ln.Addr().String()
	for _, req := range []struct{ method, path string }{
		{"POST", "/healthz"}, {"GET", "/healthz"}, {"DELETE", "/healthz"}, {"GET", "/nowhere/else"}, {"PUT", "/healthz"}, {"GET", "/healthz"},
	} {
		r, err := nethttp.NewRequest(req.method, base+req.path, strings.NewReader(""))
		require.NoError(t, err)
		resp, err := client.Do(r)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	families, err := m.Gatherer().Gather()
	require.NoError(t, err, "no two series with the same labels")
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "veza_http_requests_total" {
			continue
		}
		for _, s := range f.Metric {
			key := ""
			for _, l := range s.Label {
				key += l.GetName() + "=" + l.GetValue() + " "
			}
			got[key] = s.Counter.GetValue()
		}
	}
	require.Equal(t, map[string]float64{
		"method=GET route=/healthz status=200 ":     2,
		"method=POST route=unmatched status=405 ":   1,
		"method=DELETE route=unmatched status=405 ": 1,
		"method=PUT route=unmatched status=405 ":    1,
		"method=GET route=unmatched status=404 ":    1,
	}, got)
}
