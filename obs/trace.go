package obs

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// InstrumentationName names the service's tracer.
const InstrumentationName = "github.com/veza/backend"

// TraceConfig says where spans go. Endpoint is OTEL_EXPORTER_OTLP_ENDPOINT
// (the collector's base URL: spans are posted to /v1/traces under it) and
// TracesEndpoint OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the full URL, wins);
// both empty, tracing is off and costs nothing. The exporter's other
// standard variables (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _COMPRESSION,
// OTEL_TRACES_SAMPLER…) are read by the OpenTelemetry SDK itself.
type TraceConfig struct {
	Endpoint       string
	TracesEndpoint string
	ServiceName    string
	Version        string
}

// Enabled reports whether spans are exported.
func (c TraceConfig) Enabled() bool { return c.Endpoint != "" || c.TracesEndpoint != "" }

// URL is where the exporter posts spans.
func (c TraceConfig) URL() string {
	if c.TracesEndpoint != "" {
		return c.TracesEndpoint
	}
	return strings.TrimRight(c.Endpoint, "/") + "/v1/traces"
}

// Tracing is the service's tracer provider; a nil *Tracing is tracing off.
type Tracing struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
}

// NewTracing starts the OTLP/HTTP exporter (batched, in the background).
// Shutdown flushes it.
func NewTracing(ctx context.Context, c TraceConfig) (*Tracing, error) {
	if !c.Enabled() {
		return nil, nil
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(c.URL()))
	if err != nil {
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: %w", err)
	}
	name := c.ServiceName
	if name == "" {
		name = "veza"
	}
	res := resource.NewSchemaless(attribute.String("service.name", name), attribute.String("service.version", c.Version))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &Tracing{provider: tp, tracer: tp.Tracer(InstrumentationName)}, nil
}

// Provider is the tracer provider (nil when off).
func (t *Tracing) Provider() trace.TracerProvider {
	if t == nil {
		return nil
	}
	return t.provider
}

// Tracer is the service's tracer (nil when off).
func (t *Tracing) Tracer() trace.Tracer {
	if t == nil {
		return nil
	}
	return t.tracer
}

// Shutdown exports what is buffered, within ctx.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

var propagator = propagation.TraceContext{}

// metadataKey is where a job's metadata carries the trace of the request
// or job that inserted it (W3C traceparent).
const metadataKey = "traceparent"

// TraceMetadata is job metadata carrying ctx's span, or nil when ctx has
// none: for inserts that do not run in the span's context (the webhook
// group commit stores many requests' jobs in one transaction).
func TraceMetadata(ctx context.Context) []byte {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return nil
	}
	// W3C traceparent, written by hand: this runs for every webhook
	// delivery, and a propagator, a map and json.Marshal cost more than
	// the delivery's own metrics.
	b := make([]byte, 0, 72)
	b = append(b, `{"traceparent":"00-`...)
	traceID, spanID := sc.TraceID(), sc.SpanID()
	b = hex.AppendEncode(b, traceID[:])
	b = append(b, '-')
	b = hex.AppendEncode(b, spanID[:])
	if sc.IsSampled() {
		b = append(b, `-01"}`...)
	} else {
		b = append(b, `-00"}`...)
	}
	return b
}

// withTraceMetadata adds ctx's traceparent to metadata unless it has one.
func withTraceMetadata(ctx context.Context, metadata []byte) []byte {
	fields := map[string]json.RawMessage{}
	if len(metadata) > 0 {
		if err := json.Unmarshal(metadata, &fields); err != nil {
			return metadata // not an object: leave it as River got it
		}
	}
	if _, ok := fields[metadataKey]; ok {
		return metadata
	}
	carrier := propagation.MapCarrier{}
	propagator.Inject(ctx, carrier)
	tp := carrier.Get(metadataKey)
	if tp == "" {
		return metadata
	}
	fields[metadataKey], _ = json.Marshal(tp)
	out, err := json.Marshal(fields)
	if err != nil {
		return metadata
	}
	return out
}

// spanContextOf reads the traceparent a job's metadata carries.
func spanContextOf(metadata []byte) trace.SpanContext {
	var fields struct {
		TraceParent string `json:"traceparent"`
	}
	if len(metadata) == 0 || json.Unmarshal(metadata, &fields) != nil || fields.TraceParent == "" {
		return trace.SpanContext{}
	}
	ctx := propagator.Extract(context.Background(), propagation.MapCarrier{metadataKey: fields.TraceParent})
	return trace.SpanContextFromContext(ctx)
}

// JobTraceID is the trace a job belongs to (from its metadata), "" when it
// carries none: River's error handler logs it, the job's span being gone.
func JobTraceID(metadata []byte) string {
	if sc := spanContextOf(metadata); sc.IsValid() {
		return sc.TraceID().String()
	}
	return ""
}
