package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/hyperswitch/hyperswitchtest"
)

// load posts signed payment_succeeded deliveries: total of them (0: until
// stop), at most rate per second (0: as fast as the clients go). It returns
// the latencies of accepted deliveries and the elapsed time.
//
// With a rate the schedule is open: delivery i is due at start + (i-1)/rate,
// as a webhook sender does not wait for our answer to the last one before
// it sends the next, and its latency runs from when it was due. A stall
// that holds deliveries back then counts in full in the percentiles (a
// closed loop that measured from the send would leave out exactly the
// deliveries the stall delayed: coordinated omission). The clients are
// then openClients, so the generator's own pool is not what makes them late.
func (b *bench) load(ctx context.Context, total int, rate float64, duration time.Duration, stop <-chan struct{}, payment func(i int) (string, int64)) ([]time.Duration, time.Duration, int64) {
	// Bodies and signatures are made before the clock starts, as pgbench
	// parses its script before it measures: the generator shares the CPUs.
	var prepared []struct {
		body []byte
		sig  string
	}
	for i := 1; i <= total; i++ {
		body, sig := delivery(payment, i)
		prepared = append(prepared, struct {
			body []byte
			sig  string
		}{body, sig})
	}
	clients := b.clients
	if rate > 0 {
		clients = max(clients, openClients)
	}
	var next atomic.Int64
	var failures atomic.Int64
	lat := make([][]time.Duration, clients)
	start := time.Now()
	transport := &http.Transport{MaxIdleConnsPerHost: clients * 2}
	defer transport.CloseIdleConnections() // a serve restart after this load waits for none of them
	hc := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for {
				if duration > 0 && time.Since(start) > duration {
					return
				}
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				i := int(next.Add(1))
				if total > 0 && i > total {
					return
				}
				var due time.Time
				if rate > 0 {
					due = start.Add(time.Duration(float64(i-1) / rate * float64(time.Second)))
					if duration > 0 && due.Sub(start) > duration {
						return
					}
					if wait := time.Until(due); wait > 0 {
						select {
						case <-time.After(wait):
						case <-stop:
							return
						case <-ctx.Done():
							return
						}
					}
				}
				var body []byte
				var sig string
				if total > 0 && i <= len(prepared) {
					body, sig = prepared[i-1].body, prepared[i-1].sig
				} else {
					body, sig = delivery(payment, i)
				}
				req, _ := http.NewRequest(http.MethodPost, b.base()+"/webhooks/hyperswitch", bytes.NewReader(body))
				req.Header.Set(hyperswitch.SignatureHeader, sig)
				t0 := time.Now()
				if rate > 0 {
					t0 = due // from when it was due, however late it went out
				}
				resp, err := hc.Do(req)
				if err != nil {
					failures.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures.Add(1)
					continue
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	return all, elapsed, failures.Load()
}

// openClients is how many connections a paced load may keep busy at once:
// at 2,000 deliveries/s and 6 ms each, 12 are in flight on average, and a
// 20 ms stall needs 40 more to keep sending on schedule.
const openClients = 64

// delivery is the i-th signed payment_succeeded webhook.
func delivery(payment func(i int) (string, int64), i int) ([]byte, string) {
	pid, amount := payment(i)
	body := hyperswitchtest.WebhookBody("evt_"+uuid.NewString(), "payment_succeeded",
		map[string]any{"payment_id": pid, "status": "succeeded", "amount": amount, "currency": "EUR"})
	return body, hyperswitch.Sign(secret, body)
}

func pct(l []time.Duration, p float64) float64 {
	if len(l) == 0 {
		return 0
	}
	i := int(float64(len(l)-1) * p)
	return float64(l[i].Microseconds()) / 1000
}

func unknownPayment(i int) (string, int64) { return "pay_unknown_" + strconv.Itoa(i), 100 }
