// Package window counts events per key in fixed one-minute windows, in the
// process: abuse limits (invalid webhook deliveries, failed River UI
// logins). N processes allow up to N times as many, like the HTTP rate
// limits.
package window

import (
	"sync"
	"time"
)

// MaxKeys bounds the keys tracked in one minute; past it, new keys share
// one overflow bucket (a flood from many addresses is limited as one).
const MaxKeys = 100_000

const overflow = "\x00overflow"

// PerMinute allows max events per key per minute.
type PerMinute struct {
	max    int
	mu     sync.Mutex
	start  time.Time // of the current window
	counts map[string]int
}

// New allows max events per key per minute.
func New(max int) *PerMinute { return &PerMinute{max: max, counts: map[string]int{}} }

// roll starts a new window when the current one is over: the whole map is
// dropped once a minute, never scanned.
func (p *PerMinute) roll(now time.Time) {
	if now.Sub(p.start) >= time.Minute {
		p.start, p.counts = now, map[string]int{}
	}
}

// keyFor rolls the window and returns the bucket key counts under (the
// overflow bucket for a new key past MaxKeys). Call with mu held.
func (p *PerMinute) keyFor(key string) string {
	p.roll(time.Now())
	if _, ok := p.counts[key]; !ok && len(p.counts) >= MaxKeys {
		return overflow
	}
	return key
}

// Allow counts one event for key and reports whether it is within the limit.
func (p *PerMinute) Allow(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	key = p.keyFor(key)
	p.counts[key]++
	return p.counts[key] <= p.max
}

// Exceeded reports whether key is at or over the limit, without counting.
func (p *PerMinute) Exceeded(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[p.keyFor(key)] >= p.max
}
