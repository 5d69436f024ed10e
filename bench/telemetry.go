package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/veza/backend/store/dbtest"
)

// telemetry: webhook ingest at full speed with metrics (scraped every
// second) and tracing (exported to a local OTLP receiver) on, against the
// same run with both off, on the same serve binary and database. On 2
// shared cores one run swings by 25% (1974 to 2648 deliveries/s for the
// same setting in one run), and ten runs' side medians read 0.82 to 1.10
// for the same code. So the runs are paired: four blocks of off, on, on,
// off, each run on emptied log tables, and the ratio is the geometric mean
// of the eight adjacent pairs' on/off ratios. A pair's two runs are seconds
// apart, so a neighbour's load of the moment falls on both; a drift across
// a block falls as much against each side and cancels in the mean.
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
	var scrapes atomic.Int64
	var order []bool
	for range 4 {
		order = append(order, false, true, true, false)
	}
	seq := make([]float64, 0, len(order)) // each run's rate, in order
	for _, withTelemetry := range order {
		env := off
		if withTelemetry {
			env = on
		}
		if err := b.restartServe(env); err != nil {
			return err
		}
		// Every run starts from the same tables: each run adds 10,000
		// log rows and event ids, and without this the later runs were
		// slower whichever side they were on.
		if _, err := b.pool.Exec(ctx, `TRUNCATE hyperswitch_webhook_log, hyperswitch_events`); err != nil {
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
		seq = append(seq, rate)
	}
	if err := b.restartServe(nil); err != nil {
		return err
	}
	var sides [2][]float64 // off, on
	var pairs []float64    // on/off of runs 2k and 2k+1
	each := make([]string, 0, len(order)/2)
	for k, rate := range seq {
		if order[k] {
			sides[1] = append(sides[1], rate)
		} else {
			sides[0] = append(sides[0], rate)
		}
		if k%2 == 1 {
			p := seq[k] / seq[k-1] // on after off
			if order[k-1] {
				p = 1 / p
			}
			pairs = append(pairs, p)
			each = append(each, fmt.Sprintf("%.2f", p))
		}
	}
	rate := func(r float64) float64 { return r }
	offRate, offEach := medianRun(sides[0], rate)
	onRate, onEach := medianRun(sides[1], rate)
	ratio := geomean(pairs)
	b.add(Result{Name: "webhook ingest with metrics and tracing on", Value: onRate, Unit: "deliveries/s", Baseline: offRate, Ratio: ratio,
		Target: "ratio >= 0.9", Pass: pass(ratio >= 0.9),
		Note: fmt.Sprintf("ratio: geometric mean of %d paired runs' on/off (%s); value and baseline: medians, off (%s), on (%s) deliveries/s (%d each, blocks of off, on, on, off, each run on emptied log tables); /metrics scraped %d times, %d KiB of spans exported",
			len(pairs), strings.Join(each, ", "), offEach, onEach, n, scrapes.Load(), exported.Load()/1024)})
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

// geomean is the geometric mean of ratios.
func geomean(xs []float64) float64 {
	var sum float64
	for _, x := range xs {
		sum += math.Log(x)
	}
	return math.Exp(sum / float64(len(xs)))
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
