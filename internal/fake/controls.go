// Package fake holds what the provider fakes (hyperswitchtest, stripetest)
// share: the controls a test turns to make a provider misbehave, and the
// counters it reads back.
package fake

import (
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
