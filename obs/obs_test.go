package obs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/veza/backend/mail"
	"github.com/veza/backend/store/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func TestOperationLabelsAreBounded(t *testing.T) {
	cases := map[string]string{
		"POST https://api.stripe.com/v1/transfers":                     "POST /transfers",
		"GET https://api.stripe.com/v1/transfers/tr_123":               "GET /transfers/:id",
		"POST https://api.stripe.com/v1/transfers/tr_123/reversals":    "POST /transfers/:id/reversals",
		"GET https://api.stripe.com/v1/transfers?transfer_group=ord_1": "GET /transfers",
		"GET https://api.stripe.com/v1/accounts/acct_1/a/b/c/d/e":      "GET /accounts/:id/a/:id",
		"GET https://sandbox.hyperswitch.io/payments/pay_1":            "GET /payments/:id",
		"POST https://sandbox.hyperswitch.io/refunds":                  "POST /refunds",
		"GET https://sandbox.hyperswitch.io/disputes/dp_1":             "GET /disputes/:id",
		"GET https://gw.internal/hs/payments/pay_1":                    "GET /payments/:id",
		"GET https://gw.internal/hs/v2/payments/pay_1/extra":           "GET /payments/:id/extra",
		"POST https://gw.internal/pay_9/unknown":                       "POST other",
	}
	for in, want := range cases {
		method, url, _ := strings.Cut(in, " ")
		req := httptest.NewRequest(method, url, nil)
		require.Equal(t, want, operation(ProviderStripe, req), in)
	}
	put := httptest.NewRequest("PUT", "http://s3.local/bucket/tracks/a/b.mp3", nil)
	require.Equal(t, "PUT object", operation(ProviderS3, put))
	head := httptest.NewRequest("HEAD", "http://s3.local/bucket", nil)
	require.Equal(t, "HEAD bucket", operation(ProviderS3, head))
	named := httptest.NewRequest("POST", "http://x/v1/transfers", nil).WithContext(WithOperation(context.Background(), "create_transfer"))
	require.Equal(t, "create_transfer", operation(ProviderStripe, named))
}

// TestTransportOutcomes: what the provider answered, or did not, is told
// apart: nothing sent (network) from an answer lost after sending (unknown).
func TestTransportOutcomes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{}`)
		case "/html":
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, `<html>bad gateway</html>`)
		case "/400":
			w.WriteHeader(400)
		case "/429":
			w.WriteHeader(429)
		case "/503":
			w.WriteHeader(503)
		case "/reset":
			conn, _, _ := w.(http.Hijacker).Hijack()
			_ = conn.Close() // the request was read: the work may be done
		}
	}))
	defer srv.Close()
	m := NewMetrics()
	client := &http.Client{Transport: Transport(nil, ProviderStripe, m, nil)}
	post := func(url, op string) error {
		req, _ := http.NewRequestWithContext(WithOperation(context.Background(), op), "POST", url, strings.NewReader(`{}`))
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	for _, p := range []string{"/ok", "/html", "/400", "/429", "/503", "/reset"} {
		_ = post(srv.URL+p, "POST "+p)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	ln.Close()
	require.Error(t, post("http://"+closed+"/refused", "POST /refused"))

	get := func(op, outcome string) float64 {
		return testutil.ToFloat64(m.psp.WithLabelValues(ProviderStripe, op, outcome))
	}
	require.Equal(t, 1.0, get("POST /ok", OutcomeOK))
	require.Equal(t, 1.0, get("POST /html", OutcomeUnknown), "a proxy's page: the provider's answer is lost")
	require.Equal(t, 1.0, get("POST /400", OutcomeClientError))
	require.Equal(t, 1.0, get("POST /429", OutcomeClientError))
	require.Equal(t, 1.0, get("POST /503", OutcomeServerError))
	require.Equal(t, 1.0, get("POST /reset", OutcomeUnknown))
	require.Equal(t, 1.0, get("POST /refused", OutcomeNetwork))
	require.Equal(t, 7, testutil.CollectAndCount(m.pspDuration))
}

type failingSender struct{ err error }

func (f failingSender) Send(context.Context, mail.Message) error { return f.err }

func TestSMTPOutcomes(t *testing.T) {
	require.Equal(t, OutcomeOK, SMTPOutcome(nil))
	require.Equal(t, OutcomeClientError, SMTPOutcome(fmt.Errorf("x: %w", mail.ErrNoSender)))
	require.Equal(t, OutcomeNetwork, SMTPOutcome(fmt.Errorf("x: %w", &net.OpError{Op: "dial", Err: errors.New("refused")})))
	require.Equal(t, OutcomeUnknown, SMTPOutcome(io.ErrUnexpectedEOF), "dropped after connecting: the relay may have the message")

	m := NewMetrics()
	require.Error(t, Sender(failingSender{err: io.ErrUnexpectedEOF}, m).Send(context.Background(), mail.Message{}))
	require.Equal(t, 1.0, testutil.ToFloat64(m.psp.WithLabelValues(ProviderSMTP, "send", OutcomeUnknown)))
	var off *Metrics
	off.PSP("x", "y", "z", time.Second) // no panic
	require.Equal(t, failingSender{}, Sender(failingSender{}, nil))
}

func TestJobOutcomes(t *testing.T) {
	job := &rivertype.JobRow{Attempt: 1, MaxAttempts: 3}
	require.Equal(t, JobCompleted, JobOutcome(job, nil))
	require.Equal(t, JobRetried, JobOutcome(job, errors.New("boom")))
	require.Equal(t, JobSnoozed, JobOutcome(job, river.JobSnooze(time.Minute)))
	require.Equal(t, JobCancelled, JobOutcome(job, river.JobCancel(errors.New("gone"))))
	last := &rivertype.JobRow{Attempt: 3, MaxAttempts: 3}
	require.Equal(t, JobDiscarded, JobOutcome(last, errors.New("boom")))
	require.Equal(t, JobCancelled, JobOutcome(last, river.JobCancel(errors.New("gone"))))
}

// TestJobSpanContinuesTheInsertersTrace: the insert stores the span's
// traceparent, the attempt's span is its child in the same trace, and
// metadata River or a caller set is kept.
func TestJobSpanContinuesTheInsertersTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tracer := tp.Tracer("test")
	mw := &RiverMiddleware{Metrics: NewMetrics(), Tracer: tracer}

	ctx, parent := tracer.Start(context.Background(), "request")
	params := []*rivertype.JobInsertParams{{Kind: "a"}, {Kind: "b", Metadata: []byte(`{"river:x":1}`)}, {Kind: "c", Metadata: []byte(`{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}`)}}
	_, err := mw.InsertMany(ctx, params, func(context.Context) ([]*rivertype.JobInsertResult, error) { return nil, nil })
	require.NoError(t, err)
	parent.End()
	require.Contains(t, string(params[1].Metadata), `"river:x":1`)
	require.Equal(t, parent.SpanContext().TraceID().String(), JobTraceID(params[0].Metadata))
	require.Equal(t, parent.SpanContext().TraceID().String(), JobTraceID(params[1].Metadata))
	require.Equal(t, "0af7651916cd43dd8448eb211c80319c", JobTraceID(params[2].Metadata), "a caller's trace is kept")

	job := &rivertype.JobRow{ID: 7, Kind: "a", Queue: "payments", Attempt: 1, MaxAttempts: 1, Metadata: params[0].Metadata}
	require.Panics(t, func() {
		_ = mw.Work(context.Background(), job, func(context.Context) error { panic("worker bug") })
	}, "a panic goes on to River's recovery")
	require.Equal(t, 1.0, testutil.ToFloat64(mw.Metrics.jobs.WithLabelValues("a", "payments", JobDiscarded)))
	spans := rec.Ended()
	require.Len(t, spans, 2)
	work := spans[1]
	require.Equal(t, "job a", work.Name())
	require.Equal(t, parent.SpanContext().TraceID(), work.SpanContext().TraceID())
	require.Equal(t, parent.SpanContext().SpanID(), work.Parent().SpanID())

	// Without a tracer, nothing is written into metadata.
	plain := []*rivertype.JobInsertParams{{Kind: "a"}}
	_, _ = (&RiverMiddleware{}).InsertMany(ctx, plain, func(context.Context) ([]*rivertype.JobInsertResult, error) { return nil, nil })
	require.Nil(t, plain[0].Metadata)
}

func TestTraceMetadataIsW3CTraceparent(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.Background(), "x")
	defer span.End()
	sc := span.SpanContext()
	require.JSONEq(t, `{"traceparent":"00-`+sc.TraceID().String()+`-`+sc.SpanID().String()+`-01"}`, string(TraceMetadata(ctx)))
	require.Equal(t, sc.TraceID(), spanContextOf(TraceMetadata(ctx)).TraceID(), "read back as written")
	require.Nil(t, TraceMetadata(context.Background()))
}

func TestTraceHookAddsTheTraceID(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.Background(), "x")
	defer span.End()
	var buf strings.Builder
	log := zerolog.New(&buf).Hook(TraceHook{})
	log.Info().Ctx(ctx).Msg("in a span")
	log.Info().Msg("outside")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Contains(t, lines[0], `"trace_id":"`+span.SpanContext().TraceID().String()+`"`)
	require.NotContains(t, lines[1], "trace_id")
}

func TestDBGaugesReadTheQueueOnceAnInterval(t *testing.T) {
	pool := dbtest.Pool(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO river_job (kind, args, queue, state, scheduled_at, finalized_at, max_attempts, priority)
		VALUES ('seller_payout', '{}', 'payments', 'available', now() - interval '10 minutes', NULL, 5, 1),
		       ('seller_payout', '{}', 'payments', 'available', now() - interval '1 minute', NULL, 5, 1),
		       ('email', '{}', 'email', 'discarded', now(), now(), 5, 1),
		       ('email', '{}', 'email', 'completed', now(), now(), 5, 1)`)
	require.NoError(t, err)
	m := NewMetrics()
	g := NewDBGauges(pool, pool, time.Hour, m, zerolog.Nop())
	m.Register(g)
	families, err := m.Gatherer().Gather()
	require.NoError(t, err)
	values := map[string]float64{}
	for _, f := range families {
		for _, s := range f.Metric {
			key := f.GetName()
			for _, l := range s.Label {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			if s.Gauge != nil {
				values[key] = s.Gauge.GetValue()
			}
		}
	}
	require.Equal(t, 2.0, values["veza_queue_jobs,queue=payments,state=available"])
	require.Equal(t, 1.0, values["veza_queue_jobs,queue=email,state=discarded"])
	require.Zero(t, values["veza_queue_jobs,queue=email,state=available"])
	require.InDelta(t, 600, values["veza_queue_oldest_available_seconds,queue=payments"], 30)
	require.Zero(t, values["veza_queue_oldest_available_seconds,queue=email"])
	require.Contains(t, values, "veza_transfers,status=permanently_failed", "every status has a series, zero or not")
	require.Zero(t, testutil.ToFloat64(m.refreshErrors))

	// Within the interval a scrape is served from the last read.
	_, err = pool.Exec(ctx, `DELETE FROM river_job`)
	require.NoError(t, err)
	require.Equal(t, 2.0, gaugeValue(t, m, "veza_queue_jobs", "payments", "available"))
	g.mu.Lock()
	g.queueAt = time.Time{}
	g.mu.Unlock()
	require.Equal(t, 0.0, gaugeValue(t, m, "veza_queue_jobs", "payments", "available"))
}

func gaugeValue(t *testing.T, m *Metrics, name, queue, state string) float64 {
	t.Helper()
	families, err := m.Gatherer().Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.Metric {
			var q, st string
			for _, l := range s.Label {
				switch l.GetName() {
				case "queue":
					q = l.GetValue()
				case "state":
					st = l.GetValue()
				}
			}
			if q == queue && st == state {
				return s.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("%s{%s,%s} not found", name, queue, state)
	return 0
}
