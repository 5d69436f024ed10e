package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/config"
	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/hyperswitch/hyperswitchtest"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/store/dbtest"
	"github.com/veza/backend/stripeconnect/stripetest"
)

// scrape is one read of /metrics.
type scrape struct {
	raw      []byte
	families map[string]*dto.MetricFamily
}

func scrapeMetrics(t *testing.T, addr string) scrape {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	require.NoError(t, err)
	return scrape{raw: raw, families: families}
}

// value sums the family's series whose labels include every pair given
// (counter, gauge, or a histogram's count).
func (s scrape) value(name string, labels ...string) float64 {
	f := s.families[name]
	if f == nil {
		return -1
	}
	var sum float64
series:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue series
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

func (s scrape) labelValues(name, label string) []string {
	var out []string
	for _, m := range s.families[name].GetMetric() {
		for _, l := range m.Label {
			if l.GetName() == label {
				out = append(out, l.GetValue())
			}
		}
	}
	return out
}

func (r *running) metricsAddr(t *testing.T) string {
	t.Helper()
	var addr string
	require.Eventually(t, func() bool {
		for _, line := range strings.Split(r.logs.String(), "\n") {
			if strings.Contains(line, `"message":"metrics listening"`) {
				i := strings.Index(line, `"addr":"`)
				addr = line[i+8:]
				addr = addr[:strings.IndexByte(addr, '"')]
				return true
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond)
	return addr
}

// TestMetricsFollowAPurchaseToItsReversal runs purchase → payout → refund →
// reversal through the real server and reads /metrics at each step: the
// counters and gauges move as they should, with a signature-invalid
// delivery and a discarded job among them.
func TestMetricsFollowAPurchaseToItsReversal(t *testing.T) {
	t.Parallel()
	s := startStack(t, map[string]string{"METRICS_ADDR": "127.0.0.1:0", "METRICS_REFRESH_INTERVAL": "100ms", "STRIPE_WEBHOOK_SECRET": stripetest.WebhookSecret})
	addr := s.metricsAddr(t)
	_, track1, _ := s.seller(t, 1299)
	_, track2, _ := s.seller(t, 705)
	_, buyer := s.account(t, "buyer@example.test")

	before := scrapeMetrics(t, addr)
	require.Zero(t, before.value("veza_transfers", "status", "completed"))
	for _, q := range jobargs.Queues {
		require.GreaterOrEqual(t, before.value("veza_queue_oldest_available_seconds", "queue", q), 0.0, "every queue has its age series")
	}

	orderID, paymentID, amount := s.buy(t, buyer, track1, track2)
	s.paid(t, paymentID, amount)
	require.Eventually(t, func() bool { return allStatus(s.transfers(t, orderID), "completed") }, 30*time.Second, 50*time.Millisecond)

	var paid scrape
	require.Eventually(t, func() bool {
		paid = scrapeMetrics(t, addr)
		return paid.value("veza_transfers", "status", "completed") == 2
	}, 10*time.Second, 100*time.Millisecond, "the transfer gauge follows the table")
	require.Equal(t, 1.0, paid.value("veza_orders", "status", "completed"))
	require.Equal(t, 1.0, paid.value("veza_http_requests_total", "method", "POST", "route", "/v1/orders", "status", "201"))
	require.Equal(t, 1.0, paid.value("veza_http_request_duration_seconds", "method", "POST", "route", "/v1/orders"))
	require.Equal(t, 1.0, paid.value("veza_webhook_deliveries_total", "provider", "hyperswitch", "result", "queued"))
	require.Equal(t, 1.0, paid.value("veza_jobs_total", "kind", "hyperswitch_event", "queue", "events", "outcome", "completed"))
	require.Equal(t, 2.0, paid.value("veza_jobs_total", "kind", "seller_payout", "outcome", "completed"))
	require.Equal(t, 2.0, paid.value("veza_psp_requests_total", "provider", "stripe", "operation", "POST /transfers", "outcome", "ok"))
	require.Equal(t, 1.0, paid.value("veza_psp_requests_total", "provider", "hyperswitch", "operation", "POST /payments", "outcome", "ok"))
	require.Equal(t, 2.0, paid.value("veza_psp_request_duration_seconds", "provider", "stripe", "operation", "POST /transfers"))

	// The same delivery again is skipped; a forged one is refused.
	s.paid(t, paymentID, amount)
	req, _ := http.NewRequest(http.MethodPost, s.base+"/webhooks/hyperswitch", strings.NewReader(`{"event_id":"evt_forged","event_type":"payment_succeeded"}`))
	req.Header.Set(hyperswitch.SignatureHeader, strings.Repeat("0", 128))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 401, resp.StatusCode)
	// Over the 64 KB cap (refused in the handler), over the 1 MB body
	// limit (refused before routing), and a signed body that is no event.
	for _, size := range []int{70 << 10, 2 << 20} {
		resp, err = http.Post(s.base+"/webhooks/hyperswitch", "application/json", bytes.NewReader(bytes.Repeat([]byte(" "), size)))
		if err != nil && size > 1<<20 {
			// Refused by Content-Length and closed while the client was
			// still writing: the client sees the reset, not the 413.
			require.True(t, strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"), "%v", err)
			continue
		}
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 413, resp.StatusCode)
	}
	require.Equal(t, 400, s.webhook(t, []byte(`["not an event"]`)))
	// Stripe: an event we act on, one we do not, and its redelivery.
	acct := "acct_metrics"
	s.stripe.PutAccount(acct, true)
	s.stripeEvent(t, stripetest.ConnectEvent("evt_m_1", "account.updated", acct, s.stripe.AccountObject(acct)))
	s.stripeEvent(t, stripetest.ConnectEvent("evt_m_2", "charge.succeeded", acct, map[string]any{"id": "ch_1"}))
	s.stripeEvent(t, stripetest.ConnectEvent("evt_m_2", "charge.succeeded", acct, map[string]any{"id": "ch_1"}))
	resp, err = http.Get(s.base + "/v1/orders/" + orderID + "/no-such-thing")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 404, resp.StatusCode)

	// Refund and its reversals.
	status, body := s.request(t, "POST", "/v1/orders/"+orderID+"/refund", buyer, nil, map[string]string{"reason": "changed my mind"})
	require.Equal(t, 202, status, body)
	pspRefundID := "veza_ref_" + body["refund"].(map[string]any)["id"].(string)
	require.Eventually(t, func() bool {
		return s.count(t, `SELECT count(*) FROM refunds WHERE hyperswitch_refund_id = $1`, pspRefundID) == 1
	}, 20*time.Second, 50*time.Millisecond)
	s.hs.SetRefundStatus(pspRefundID, "succeeded", nil)
	require.Equal(t, 200, s.webhook(t, hyperswitchtest.WebhookBody("evt_refund_m", "refund_succeeded",
		map[string]any{"refund_id": pspRefundID, "payment_id": paymentID, "status": "succeeded", "amount": amount, "currency": "EUR"})))
	require.Eventually(t, func() bool { return allStatus(s.transfers(t, orderID), "reversed") }, 30*time.Second, 50*time.Millisecond)

	// A job that fails on its only attempt is discarded, and counted.
	pool, err := pgxpool.New(context.Background(), s.dbURL())
	require.NoError(t, err)
	defer pool.Close()
	inserter, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	require.NoError(t, err)
	_, err = inserter.Insert(context.Background(), jobargs.DeleteObjectArgs{Backend: "s3", Key: "tracks/none"}, &river.InsertOpts{MaxAttempts: 1})
	require.NoError(t, err)
	// An engineer's one-off reconcile of the (settled) order: counted.
	_, err = inserter.Insert(context.Background(), jobargs.ReconcileOrderArgs{OrderID: uuid.MustParse(orderID)}, nil)
	require.NoError(t, err)

	var after scrape
	require.Eventually(t, func() bool {
		after = scrapeMetrics(t, addr)
		return after.value("veza_transfers", "status", "reversed") == 2 &&
			after.value("veza_jobs_total", "kind", "delete_object", "outcome", "discarded") == 1 &&
			after.value("veza_queue_jobs", "queue", "maintenance", "state", "discarded") == 1 &&
			after.value("veza_reconcile_actions_total", "class", "order", "outcome", "nothing") == 1
	}, 15*time.Second, 100*time.Millisecond)
	require.Zero(t, after.value("veza_transfers", "status", "completed"))
	require.Equal(t, 1.0, after.value("veza_orders", "status", "refunded"))
	require.Zero(t, after.value("veza_orders", "status", "completed"))
	require.Equal(t, 1.0, after.value("veza_refunds", "status", "succeeded"))
	require.Zero(t, after.value("veza_disputes_open"))
	require.Zero(t, after.value("veza_metrics_refresh_errors_total"), "every gauge query ran")
	require.Equal(t, 2.0, after.value("veza_webhook_deliveries_total", "provider", "hyperswitch", "result", "queued"))
	require.Equal(t, 1.0, after.value("veza_webhook_deliveries_total", "provider", "hyperswitch", "result", "skipped"))
	require.Equal(t, 1.0, after.value("veza_webhook_deliveries_total", "provider", "hyperswitch", "result", "signature_invalid"))
	require.Equal(t, 2.0, after.value("veza_webhook_deliveries_total", "provider", "hyperswitch", "result", "too_large"), "in the handler and before routing")
	require.Equal(t, 1.0, after.value("veza_webhook_deliveries_total", "provider", "hyperswitch", "result", "error"))
	require.Equal(t, 1.0, after.value("veza_webhook_deliveries_total", "provider", "stripe", "result", "ok"))
	require.Equal(t, 2.0, after.value("veza_webhook_deliveries_total", "provider", "stripe", "result", "skipped"), "a type we do not act on, and a redelivery")
	require.Equal(t, 3.0, after.value("veza_psp_requests_total", "provider", "stripe", "operation", "GET /accounts/:id", "outcome", "ok"), "each seller linking an account, and account.updated, read it")
	require.Equal(t, 1.0, after.value("veza_http_requests_total", "route", "/webhooks/hyperswitch", "status", "401"))
	require.Equal(t, 1.0, after.value("veza_http_requests_total", "route", "unmatched", "status", "404"))
	require.Equal(t, 1.0, after.value("veza_http_requests_total", "method", "POST", "route", "/v1/orders/:id/refund", "status", "202"))
	require.Equal(t, 2.0, after.value("veza_psp_requests_total", "provider", "stripe", "operation", "POST /transfers/:id/reversals", "outcome", "ok"))
	require.Equal(t, 1.0, after.value("veza_psp_requests_total", "provider", "hyperswitch", "operation", "POST /refunds", "outcome", "ok"))
	require.GreaterOrEqual(t, after.value("veza_psp_requests_total", "provider", "smtp", "operation", "send", "outcome", "ok"), 4.0, "verification mails and the receipt")
	require.Equal(t, 2.0, after.value("veza_jobs_total", "kind", "transfer_reversal", "outcome", "completed"))
	require.Equal(t, 1.0, after.value("veza_jobs_total", "kind", "submit_refund", "outcome", "completed"))
	require.Greater(t, after.value("go_goroutines"), 0.0, "Go runtime collector")
	require.Greater(t, after.value("process_resident_memory_bytes"), 0.0, "process collector")

	// Route labels are templates, never raw paths (ids would mint series).
	for _, route := range after.labelValues("veza_http_requests_total", "route") {
		require.NotContains(t, route, orderID)
		require.True(t, route == "unmatched" || strings.HasPrefix(route, "/"), route)
	}
	for _, op := range after.labelValues("veza_psp_requests_total", "operation") {
		require.NotContains(t, op, "tr_", "no Stripe ids in operation labels")
		require.NotContains(t, op, "veza_ref_")
	}
	require.NotContains(t, string(after.raw), testWebhookSecret)

	// The dashboard and the alerts query only families this service exports.
	dir := filepath.Join("..", "..", "docs", "observability")
	for _, file := range []string{"dashboard.json", "alerts.yml"} {
		raw, err := os.ReadFile(filepath.Join(dir, file))
		require.NoError(t, err)
		for _, name := range regexp.MustCompile(`veza_[a-z_]*[a-z]`).FindAllString(string(raw), -1) {
			family := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")
			if family == "veza_backend" {
				continue // the dashboard's uid
			}
			_, ok := after.families[family]
			require.True(t, ok, "%s queries %s, which /metrics does not export", file, name)
		}
	}
	promtoolCheckMetrics(t, after.raw)
}

// promtoolCheckMetrics lints the exposition with promtool when it is
// installed (.ci/run installs it and sets VEZA_REQUIRE_PROMTOOL).
func promtoolCheckMetrics(t *testing.T, raw []byte) {
	t.Helper()
	promtool := requirePromtool(t)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(raw)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool check metrics:\n%s", out)
}

func requirePromtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("VEZA_REQUIRE_PROMTOOL") != "" {
			t.Fatalf("promtool not found but VEZA_REQUIRE_PROMTOOL is set")
		}
		t.Skip("promtool not installed (apt-get install prometheus)")
	}
	return path
}

// TestAlertRulesAndDashboard checks docs/observability: the rules pass
// promtool (syntax and their unit tests), and the dashboard is JSON that
// only queries families the service exports.
func TestAlertRulesAndDashboard(t *testing.T) {
	t.Parallel()
	promtool := requirePromtool(t)
	dir := filepath.Join("..", "..", "docs", "observability")
	out, err := exec.Command(promtool, "check", "rules", filepath.Join(dir, "alerts.yml")).CombinedOutput()
	require.NoError(t, err, "%s", out)
	out, err = exec.Command(promtool, "test", "rules", filepath.Join(dir, "alerts_test.yml")).CombinedOutput()
	require.NoError(t, err, "%s", out)

	// Every dashboard query is valid PromQL: promtool checks them as
	// recording rules, Grafana's variables replaced.
	raw, err := os.ReadFile(filepath.Join(dir, "dashboard.json"))
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	require.NoError(t, json.Unmarshal(raw, &dash))
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			expr := strings.NewReplacer("$__rate_interval", "5m", "$job", ".*").Replace(target.Expr)
			quoted, _ := json.Marshal(expr)
			fmt.Fprintf(&rules, "      - record: dashboard:query%d\n        expr: %s\n", n, quoted)
			n++
		}
	}
	require.Greater(t, n, 15, "the dashboard has its panels")
	path := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	require.NoError(t, os.WriteFile(path, []byte(rules.String()), 0o600))
	out, err = exec.Command(promtool, "check", "rules", path).CombinedOutput()
	require.NoError(t, err, "%s", out)
}

// TestMetricsPortTaken: the development default being taken (another
// `make run`) is a warning and the service runs without /metrics; an
// address the operator chose failing stops the boot, naming the variable.
func TestMetricsPortTaken(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	dbURL := dbtest.URL(t)

	env := baseEnv(t, dbURL)
	env["METRICS_ADDR"] = ln.Addr().String()
	err = run(context.Background(), []string{"app", "serve"}, envOf(env), io.Discard, io.Discard)
	require.ErrorContains(t, err, "METRICS_ADDR "+ln.Addr().String())

	if held, err := net.Listen("tcp", config.DefaultDevMetricsAddr); err == nil {
		defer held.Close() // else another test's service holds it: taken all the same
	}
	env = baseEnv(t, dbURL)
	delete(env, "METRICS_ADDR")
	r := start(t, env)
	require.Eventually(t, func() bool {
		return strings.Contains(r.logs.String(), "metrics not served: the development default METRICS_ADDR is taken")
	}, 10*time.Second, 20*time.Millisecond)
}
