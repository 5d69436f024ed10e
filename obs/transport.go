package obs

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Providers (veza_psp_requests_total{provider}).
const (
	ProviderHyperswitch = "hyperswitch"
	ProviderStripe      = "stripe"
	ProviderSMTP        = "smtp"
	ProviderS3          = "s3"
)

type operationKey struct{}

// WithOperation names the provider call made with ctx (the operation
// label); without it the transport names it from the method and path.
func WithOperation(ctx context.Context, op string) context.Context {
	return context.WithValue(ctx, operationKey{}, op)
}

// Transport wraps base so every call to provider is counted and timed
// (veza_psp_*) and, with tp, is a client span. No trace context is sent to
// the provider: it is not ours to read.
func Transport(base http.RoundTripper, provider string, m *Metrics, tp trace.TracerProvider) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if tp != nil {
		base = otelhttp.NewTransport(base,
			otelhttp.WithTracerProvider(tp),
			otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator()),
			otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
				return provider + " " + operation(provider, r)
			}))
	}
	if m == nil {
		return base
	}
	return &metered{base: base, provider: provider, m: m, jsonAPI: provider == ProviderHyperswitch || provider == ProviderStripe}
}

type metered struct {
	base     http.RoundTripper
	provider string
	m        *Metrics
	// jsonAPI: the provider always answers JSON, so a 2xx that is not
	// JSON is a proxy's page and the provider's answer was lost.
	jsonAPI bool
}

func (t *metered) RoundTrip(req *http.Request) (*http.Response, error) {
	var wrote atomic.Bool
	ctx := httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) },
	})
	start := time.Now()
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	t.m.PSP(t.provider, operation(t.provider, req), HTTPOutcome(resp, err, wrote.Load(), t.jsonAPI), time.Since(start))
	return resp, err
}

// HTTPOutcome classifies a provider's answer. An error before the request
// was written is network (the provider got nothing); after, unknown.
func HTTPOutcome(resp *http.Response, err error, wrote, jsonAPI bool) string {
	switch {
	case err != nil && !wrote:
		return OutcomeNetwork
	case err != nil:
		return OutcomeUnknown
	case resp.StatusCode >= 500:
		return OutcomeServerError
	case resp.StatusCode >= 400:
		return OutcomeClientError
	case jsonAPI && resp.StatusCode < 300 && !strings.Contains(resp.Header.Get("Content-Type"), "json"):
		return OutcomeUnknown
	default:
		return OutcomeOK
	}
}

// operation is the call's operation label: the context's, else the method
// and the path with its ids replaced, which keeps the label set bounded
// ("POST /transfers/:id/reversals"). Stripe's /v1 is dropped; for S3 the
// bucket and key are never part of it.
func operation(provider string, r *http.Request) string {
	if op, ok := r.Context().Value(operationKey{}).(string); ok && op != "" {
		return op
	}
	if provider == ProviderS3 {
		path := strings.Trim(r.URL.Path, "/")
		if strings.Contains(path, "/") {
			return r.Method + " object"
		}
		return r.Method + " bucket"
	}
	// From the first resource the clients call: a base URL with a path of
	// its own (a gateway's /hs/) must not shift ids into named places.
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	start := slices.IndexFunc(segs, func(s string) bool { return resources[s] })
	if start < 0 {
		return r.Method + " other"
	}
	segs = segs[start:]
	if len(segs) > 4 {
		segs = segs[:4]
	}
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte(' ')
	for i, s := range segs {
		b.WriteByte('/')
		if i%2 == 1 {
			b.WriteString(":id")
		} else {
			b.WriteString(s)
		}
	}
	return b.String()
}

// resources are the collections the Hyperswitch and Stripe clients call.
var resources = map[string]bool{
	"payments": true, "refunds": true, "disputes": true,
	"transfers": true, "accounts": true, "account_links": true, "balance": true, "events": true,
}

// ErrorOutcome classifies an error of a call that is not HTTP (SMTP): a
// failed dial is network, anything else after connecting unknown.
func ErrorOutcome(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return OutcomeNetwork
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return OutcomeNetwork
	}
	return OutcomeUnknown
}
