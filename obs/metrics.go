// Package obs is what operators see of the service besides its logs:
// Prometheus metrics (one registry per process, served on METRICS_ADDR) and
// OpenTelemetry traces (OTLP/HTTP, on when an endpoint is configured). The
// metric names and labels are a contract: docs/observability/ dashboards and
// alert rules rely on them, and a test reads every family back.
//
// Every recorder is a method on a *Metrics that may be nil (metrics off), so
// callers never branch on whether metrics are on.
package obs

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Webhook delivery results (veza_webhook_deliveries_total{result}): what the
// endpoint did with a delivery when it answered.
const (
	WebhookOK               = "ok"      // processed in the request (Stripe)
	WebhookQueued           = "queued"  // stored, its job enqueued
	WebhookSkipped          = "skipped" // a redelivery of an event already stored
	WebhookSignatureInvalid = "signature_invalid"
	WebhookError            = "error" // unparseable, or could not be stored (5xx)
	WebhookTooLarge         = "too_large"
)

// Provider call outcomes (veza_psp_requests_total{outcome}). Unknown is an
// answer that was lost after the request was sent (timeout, reset, a proxy's
// page instead of the provider's JSON): SPEC §9, the work may have happened.
const (
	OutcomeOK          = "ok"
	OutcomeClientError = "client_error"
	OutcomeServerError = "server_error"
	OutcomeNetwork     = "network" // nothing was sent: the provider did nothing
	OutcomeUnknown     = "unknown"
)

// Job outcomes (veza_jobs_total{outcome}).
const (
	JobCompleted = "completed"
	JobRetried   = "retried"
	JobSnoozed   = "snoozed"
	JobCancelled = "cancelled"
	JobDiscarded = "discarded"
)

// Metrics holds the service's collectors on its own registry (in-process
// tests run several services in one process: nothing is global).
type Metrics struct {
	reg *prometheus.Registry

	httpRequests  *prometheus.CounterVec
	httpDuration  *prometheus.HistogramVec
	jobs          *prometheus.CounterVec
	jobDuration   *prometheus.HistogramVec
	webhooks      *prometheus.CounterVec
	psp           *prometheus.CounterVec
	pspDuration   *prometheus.HistogramVec
	reconcile     *prometheus.CounterVec
	refreshErrors prometheus.Counter
}

// NewMetrics registers every family, the Go runtime and process collectors.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veza_http_requests_total", Help: "HTTP requests answered, by route template and status code.",
		}, []string{"method", "route", "status"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "veza_http_request_duration_seconds", Help: "Time to answer an HTTP request, by route template.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"method", "route"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veza_jobs_total", Help: "River job attempts worked, by kind, queue and outcome (completed, retried, snoozed, cancelled, discarded).",
		}, []string{"kind", "queue", "outcome"}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "veza_job_duration_seconds", Help: "Time a River job attempt ran, by kind and queue.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"kind", "queue"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veza_webhook_deliveries_total", Help: "Provider webhook deliveries received, by provider and result (ok, queued, skipped, signature_invalid, error, too_large).",
		}, []string{"provider", "result"}),
		psp: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veza_psp_requests_total", Help: "Calls to providers (hyperswitch, stripe, smtp, s3), by operation and outcome (ok, client_error, server_error, network, unknown).",
		}, []string{"provider", "operation", "outcome"}),
		pspDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "veza_psp_request_duration_seconds", Help: "Time a provider call took, by provider and operation.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"provider", "operation"}),
		reconcile: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veza_reconcile_actions_total", Help: "What reconcile did with a row it checked at the provider, by class (order, refund, dispute) and outcome.",
		}, []string{"class", "outcome"}),
		refreshErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "veza_metrics_refresh_errors_total", Help: "Failed refreshes of the database gauges (the gauges keep their last values).",
		}),
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.httpRequests, m.httpDuration, m.jobs, m.jobDuration, m.webhooks, m.psp, m.pspDuration, m.reconcile, m.refreshErrors,
	)
	return m
}

// Register adds collectors of other parts (the database gauges).
func (m *Metrics) Register(cs ...prometheus.Collector) {
	if m != nil {
		m.reg.MustRegister(cs...)
	}
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: nil, Registry: m.reg})
}

// Gatherer is the registry, for tests.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// HTTP records one answered request. route is the route template.
func (m *Metrics) HTTP(method, route string, status int, d time.Duration) {
	if m == nil {
		return
	}
	m.httpRequests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.httpDuration.WithLabelValues(method, route).Observe(d.Seconds())
}

// Job records one worked attempt.
func (m *Metrics) Job(kind, queue, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.jobs.WithLabelValues(kind, queue, outcome).Inc()
	m.jobDuration.WithLabelValues(kind, queue).Observe(d.Seconds())
}

// Webhook records one delivery's result.
func (m *Metrics) Webhook(provider, result string) {
	if m == nil {
		return
	}
	m.webhooks.WithLabelValues(provider, result).Inc()
}

// PSP records one provider call.
func (m *Metrics) PSP(provider, operation, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.psp.WithLabelValues(provider, operation, outcome).Inc()
	m.pspDuration.WithLabelValues(provider, operation).Observe(d.Seconds())
}

// Reconcile records what a reconcile row job did.
func (m *Metrics) Reconcile(class, outcome string) {
	if m == nil {
		return
	}
	m.reconcile.WithLabelValues(class, outcome).Inc()
}
