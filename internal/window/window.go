// Package window counts events per key in fixed one-minute windows, in the
// process: abuse limits (invalid webhook deliveries, failed River UI
// logins). N processes allow up to N times as many, like the HTTP rate
// limits.
package window

import (
	"sync"
	"time"
)

// PerMinute allows max events per key per minute.
type PerMinute struct {
	max    int
	mu     sync.Mutex
	counts map[string]*count
}

type count struct {
	start time.Time
	n     int
}

// New allows max events per key per minute.
func New(max int) *PerMinute { return &PerMinute{max: max, counts: map[string]*count{}} }

// Allow counts one event for key and reports whether it is within the limit.
func (p *PerMinute) Allow(key string) bool {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.counts) > 10_000 { // forget finished windows
		for k, c := range p.counts {
			if now.Sub(c.start) >= time.Minute {
				delete(p.counts, k)
			}
		}
	}
	c := p.counts[key]
	if c == nil || now.Sub(c.start) >= time.Minute {
		c = &count{start: now}
		p.counts[key] = c
	}
	c.n++
	return c.n <= p.max
}

// Exceeded reports whether key is over the limit now, without counting.
func (p *PerMinute) Exceeded(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.counts[key]
	return c != nil && time.Since(c.start) < time.Minute && c.n >= p.max
}
