package main

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/veza/backend/hyperswitch/hyperswitchtest"
)

// otlpReceiver is an in-process OTLP/HTTP trace collector.
type otlpReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/v1/traces" || req.Method != http.MethodPost {
			http.NotFound(w, req)
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			w.WriteHeader(400)
			return
		}
		var export coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &export); err != nil {
			w.WriteHeader(400)
			return
		}
		r.mu.Lock()
		for _, rs := range export.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				r.spans = append(r.spans, ss.Spans...)
			}
		}
		r.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *otlpReceiver) all() []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*tracepb.Span(nil), r.spans...)
}

// TestOneTraceFromWebhookToStripe: the payment webhook's request, the
// process-event job it enqueued, the payout job that job enqueued and the
// payout's call to Stripe are one trace, each the child of the one before;
// the request's log line carries the trace id.
func TestOneTraceFromWebhookToStripe(t *testing.T) {
	t.Parallel()
	rec := startOTLPReceiver(t)
	s := startStack(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rec.URL})
	_, track, _ := s.seller(t, 1299)
	_, buyer := s.account(t, "buyer@example.test")
	orderID, paymentID, amount := s.buy(t, buyer, track)
	s.paid(t, paymentID, amount)
	require.Eventually(t, func() bool { return allStatus(s.transfers(t, orderID), "completed") }, 30*time.Second, 50*time.Millisecond)
	// A job's own log line carries its trace (here, the event job's
	// warning about a payment it does not know).
	require.Equal(t, 200, s.webhook(t, hyperswitchtest.WebhookBody("evt_stranger", "payment_succeeded",
		map[string]any{"payment_id": "pay_stranger", "status": "succeeded", "amount": 100, "currency": "EUR"})))
	var jobLine map[string]any
	require.Eventually(t, func() bool {
		for _, line := range strings.Split(s.logs.String(), "\n") {
			var fields map[string]any
			if json.Unmarshal([]byte(line), &fields) == nil && fields["message"] == "event for an unknown payment" {
				jobLine = fields
				return true
			}
		}
		return false
	}, 20*time.Second, 50*time.Millisecond)
	jobTrace, _ := jobLine["trace_id"].(string)
	require.Len(t, jobTrace, 32, "the job's log line names its trace: %v", jobLine)
	require.Contains(t, s.logs.String(), `"trace_id":"`+jobTrace+`"`+`,"span_id"`, "…the trace its webhook request logged")
	var requestLogged bool
	for _, line := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(line, `"message":"http request"`) && strings.Contains(line, jobTrace) {
			requestLogged = true
		}
	}
	require.True(t, requestLogged, "the job's trace is its webhook request's")

	// Stopping the service flushes the exporter.
	s.cancel()
	err := <-s.done
	s.done <- err
	require.NoError(t, err)

	spans := rec.all()
	byID := map[string]*tracepb.Span{}
	for _, sp := range spans {
		byID[hex.EncodeToString(sp.SpanId)] = sp
	}
	find := func(name string, trace []byte) *tracepb.Span {
		for _, sp := range spans {
			if sp.Name == name && (trace == nil || string(sp.TraceId) == string(trace)) {
				return sp
			}
		}
		return nil
	}
	webhook := find("POST /webhooks/hyperswitch", nil)
	require.NotNil(t, webhook, "the webhook request's span (of %d spans)", len(spans))
	require.Equal(t, tracepb.Span_SPAN_KIND_SERVER, webhook.Kind)
	trace := webhook.TraceId
	event := find("job hyperswitch_event", trace)
	require.NotNil(t, event, "the process-event job continues the request's trace")
	payout := find("job seller_payout", trace)
	require.NotNil(t, payout, "the payout job continues the event job's trace")
	stripe := find("stripe POST /transfers", trace)
	require.NotNil(t, stripe, "the payout's Stripe call is in the trace")
	require.Equal(t, tracepb.Span_SPAN_KIND_CLIENT, stripe.Kind)

	// Each is the child of the one before (through job metadata).
	require.Equal(t, webhook.SpanId, event.ParentSpanId)
	require.Equal(t, event.SpanId, ancestorJob(byID, payout.ParentSpanId), "payout inserted inside the event job's span")
	require.Equal(t, payout.SpanId, ancestorJob(byID, stripe.ParentSpanId))
	require.NotNil(t, find("db.query", trace), "queries of the trace are spans too")

	traceID := hex.EncodeToString(trace)
	var logged bool
	for _, line := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(line, `"message":"http request"`) && strings.Contains(line, `"path":"/webhooks/hyperswitch"`) && strings.Contains(line, `"trace_id":"`+traceID+`"`) {
			logged = true
		}
	}
	require.True(t, logged, "the webhook's access log line names its trace")
}

// ancestorJob walks up from span id to the nearest job span (an insert
// may run under a db span) and returns its id.
func ancestorJob(byID map[string]*tracepb.Span, id []byte) []byte {
	for i := 0; i < 10 && len(id) > 0; i++ {
		sp := byID[hex.EncodeToString(id)]
		if sp == nil {
			return nil
		}
		if strings.HasPrefix(sp.Name, "job ") {
			return sp.SpanId
		}
		id = sp.ParentSpanId
	}
	return nil
}
