package fake

import (
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"time"
)

// Loss is how a provider's answer is lost after it did the work: what a
// real network, proxy or load balancer does to an answer, the unpleasant
// case for a client, which must not conclude that the work was not done.
type Loss int

const (
	// Delivered: the answer reaches the client.
	Delivered Loss = iota
	// Lost502: a proxy answers 502 Bad Gateway (an HTML page).
	Lost502
	// LostReset: the connection is closed without an answer.
	LostReset
	// LostHTML200: a proxy answers 200 with an HTML page that is not the
	// provider's JSON.
	LostHTML200
	// LostTimeout: nothing comes back until the client gives up (the
	// connection is closed after Controls.TimeoutAfter).
	LostTimeout
)

func (l Loss) String() string {
	return [...]string{"delivered", "502", "reset", "html200", "timeout"}[l]
}

// losses are the answers to lose, per call key, and a random share of all.
type losses struct {
	next    map[string][]Loss
	rate    float64
	rateAs  []Loss
	rng     *rand.Rand
	timeout time.Duration
	lost    int
}

// Lost counts the answers lost so far.
func (c *Controls) Lost() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.losses.lost
}

// LoseNext makes the next n calls under key do their work and then lose
// their answer as how.
func (c *Controls) LoseNext(key string, n int, how Loss) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.losses.next == nil {
		c.losses.next = map[string][]Loss{}
	}
	for range n {
		c.losses.next[key] = append(c.losses.next[key], how)
	}
}

// LoseRandomly loses the answer of a share (0 to 1) of every call that does
// work, as one of hows picked at random (the crash suite's weather).
func (c *Controls) LoseRandomly(share float64, seed uint64, hows ...Loss) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.losses.rate, c.losses.rateAs = share, hows
	c.losses.rng = rand.New(rand.NewPCG(seed, 0x5eed))
}

// TimeoutAfter sets how long a LostTimeout answer is held (default 35 s,
// past the service's client timeouts).
func (c *Controls) TimeoutAfter(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.losses.timeout = d
}

// Loss takes the fate of a call under key that is about to do its work.
func (c *Controls) Loss(key string) Loss {
	c.mu.Lock()
	defer c.mu.Unlock()
	if q := c.losses.next[key]; len(q) > 0 {
		c.losses.next[key] = q[1:]
		c.losses.lost++
		return q[0]
	}
	if c.losses.rate > 0 && len(c.losses.rateAs) > 0 && c.losses.rng.Float64() < c.losses.rate {
		c.losses.lost++
		return c.losses.rateAs[c.losses.rng.IntN(len(c.losses.rateAs))]
	}
	return Delivered
}

// Deliver sends the recorded answer to w, or loses it as how.
func (c *Controls) Deliver(w http.ResponseWriter, rec *httptest.ResponseRecorder, how Loss) {
	switch how {
	case Delivered:
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	case Lost502:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html><body><h1>502 Bad Gateway</h1></body></html>"))
	case LostHTML200:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("<html><body>Please wait while we check your browser...</body></html>"))
	case LostTimeout:
		c.mu.Lock()
		d := c.losses.timeout
		c.mu.Unlock()
		if d == 0 {
			d = 35 * time.Second
		}
		time.Sleep(d)
		reset(w)
	case LostReset:
		reset(w)
	}
}

// reset closes the connection without an answer.
func reset(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}
