package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/veza/backend/store/dbtest"
)

// telemetry: webhook ingest at full speed with metrics (scraped every
// second) and tracing (exported to a local OTLP receiver) on, against the
// same run with both off. The two alternate (off, on, on, off, off, on, …)
// on the same serve binary and database, so drift (a growing log table, a
// warming cache) falls on both sides, and each side is the median of its
// five runs: on 2 shared cores one run swings by 25% (1974 to 2648
// deliveries/s for the same setting seen in one run).
func (b *bench) telemetry(ctx context.Context) error {
	var exported atomic.Int64
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		exported.Add(n)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer receiver.Close()
	port, err := dbtest.FreePort()
	if err != nil {
		return err
	}
	metricsAddr := "127.0.0.1:" + strconv.Itoa(port)
	on := map[string]string{"METRICS_ADDR": metricsAddr, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.URL}
	off := map[string]string{"METRICS_ADDR": "off"}

	n := b.size.ingest
	var rates [2][]float64 // off, on
	var scrapes atomic.Int64
	for _, withTelemetry := range []bool{false, true, true, false, false, true, true, false, false, true} {
		env := off
		if withTelemetry {
			env = on
		}
		if err := b.restartServe(env); err != nil {
			return err
		}
		stop := make(chan struct{})
		if withTelemetry {
			go scrapeEvery(metricsAddr, time.Second, stop, &scrapes)
		}
		name := "telemetry-off"
		if withTelemetry {
			name = "telemetry-on"
		}
		rate, err := b.ingestPaused(ctx, n, name)
		close(stop)
		if err != nil {
			return err
		}
		i := 0
		if withTelemetry {
			i = 1
		}
		rates[i] = append(rates[i], rate)
	}
	if err := b.restartServe(nil); err != nil {
		return err
	}
	offRate, onRate := median(rates[0]), median(rates[1])
	b.add(Result{Name: "webhook ingest with metrics and tracing on", Value: onRate, Unit: "deliveries/s", Baseline: offRate, Target: "ratio >= 0.9",
		Pass: pass(onRate/offRate >= 0.9),
		Note: fmt.Sprintf("medians; off %.0f, on %.0f deliveries/s (%d each, alternating); /metrics scraped %d times, %d KiB of spans exported",
			rates[0], rates[1], n, scrapes.Load(), exported.Load()/1024)})
	return nil
}

// ingestPaused is the edge's rate for n deliveries (loadPaused); their
// events are discarded, not processed (ten runs' processing was a third of
// the step's time).
func (b *bench) ingestPaused(ctx context.Context, n int, step string) (float64, error) {
	lat, elapsed, failed, err := b.loadPaused(ctx, n, step, true)
	if err != nil {
		return 0, err
	}
	if failed > 0 {
		return 0, fmt.Errorf("telemetry: %d deliveries failed", failed)
	}
	return float64(len(lat)) / elapsed.Seconds(), b.drain(ctx)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func scrapeEvery(addr string, every time.Duration, stop <-chan struct{}, count *atomic.Int64) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			resp, err := http.Get("http://" + addr + "/metrics")
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				count.Add(1)
			}
		}
	}
}
