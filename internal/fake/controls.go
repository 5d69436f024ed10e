// Package fake holds what the provider fakes (hyperswitchtest, stripetest)
// share: the controls a test turns to make a provider misbehave, and the
// counters it reads back.
package fake

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Controls are embedded by a fake: fail the next calls, slow every answer,
// count calls by key and the most calls in flight at once.
type Controls struct {
	mu         sync.Mutex
	failNext   int
	failStatus int
	latency    time.Duration
	calls      map[string]int
	losses     losses
	rate       rateLimit

	inFlight    atomic.Int64
	maxInFlight atomic.Int64
}

// FailNext makes the next n calls answer status (e.g. 503: the provider is
// down) before doing anything.
func (c *Controls) FailNext(n, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failNext, c.failStatus = n, status
}

// SetLatency delays every answer.
func (c *Controls) SetLatency(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.latency = d
}

// Calls counts the calls recorded under key.
func (c *Controls) Calls(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[key]
}

// MaxInFlight is the most calls seen at once.
func (c *Controls) MaxInFlight() int64 { return c.maxInFlight.Load() }

// Begin records a call under key. It returns the status to fail the call
// with before doing anything (0: serve it), and done, to call when the
// answer is written. The fake waits the latency (Wait) while it works.
func (c *Controls) Begin(key string) (failStatus int, done func()) {
	n := c.inFlight.Add(1)
	for {
		m := c.maxInFlight.Load()
		if n <= m || c.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	c.mu.Lock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[key]++
	if c.failNext > 0 {
		c.failNext--
		failStatus = c.failStatus
	}
	if r := &c.rate; r.perSecond > 0 && r.counted(key) {
		sec := time.Now().Unix()
		r.seconds[sec]++
		if r.seconds[sec] > r.perSecond && failStatus == 0 {
			failStatus = http.StatusTooManyRequests
			r.refused++
		}
	}
	c.mu.Unlock()
	return failStatus, func() { c.inFlight.Add(-1) }
}

// Wait sleeps the latency SetLatency set: the provider at work.
func (c *Controls) Wait() {
	c.mu.Lock()
	d := c.latency
	c.mu.Unlock()
	time.Sleep(d)
}

// rateLimit is a provider's hard limit (SetRateLimit).
type rateLimit struct {
	perSecond int
	counted   func(key string) bool
	seconds   map[int64]int
	refused   int
}

// SetRateLimit makes the fake enforce its provider's limit: of the calls
// whose key counted accepts (Stripe: its writes), those past perSecond in
// one wall-clock second are refused with 429 before anything executes, as
// the provider does. 0 lifts the limit and forgets the counts.
func (c *Controls) SetRateLimit(perSecond int, counted func(key string) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rate = rateLimit{perSecond: perSecond, counted: counted, seconds: map[int64]int{}}
}

// RateCounts reports, since SetRateLimit, the counted calls that arrived
// in the busiest second (refused ones included) and how many were refused.
func (c *Controls) RateCounts() (busiest, refused int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.rate.seconds {
		busiest = max(busiest, n)
	}
	return busiest, c.rate.refused
}

// RateSeconds is the counted calls of each second since SetRateLimit, in
// order, from the first second with one to the last.
func (c *Controls) RateSeconds() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first, last int64
	for s := range c.rate.seconds {
		if first == 0 || s < first {
			first = s
		}
		last = max(last, s)
	}
	if first == 0 {
		return nil
	}
	out := make([]int, last-first+1)
	for s, n := range c.rate.seconds {
		out[s-first] = n
	}
	return out
}
