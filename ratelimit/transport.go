package ratelimit

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/veza/backend/mail"
)

// DefaultBackoff is how long a 429 without Retry-After blocks the bucket.
const DefaultBackoff = time.Second

// MaxBackoff caps a provider's Retry-After (a broken header must not stop
// payouts for a day).
const MaxBackoff = 5 * time.Minute

// Transport takes a token from l before each call through base, and turns
// a 429 into a block of the whole bucket for its Retry-After and a *Delay
// for the caller: a 429 was not executed (Stripe never saves it under the
// key), so the call is simply made later. A call with no token within
// MaxWait is not made either: a *Delay (a client wraps it; AsDelay finds
// it).
func Transport(base http.RoundTripper, l *Limiter, opts ...TransportOption) http.RoundTripper {
	if l == nil {
		return base
	}
	if base == nil {
		base = http.DefaultTransport
	}
	p := &paced{base: base, l: l}
	for _, o := range opts {
		o(p)
	}
	return p
}

// TransportOption tunes Transport.
type TransportOption func(*paced)

// ObjectBusy tells, from a 429's body, a refusal about one object from one
// about the rate (Stripe's lock_timeout: another request holds the
// object). Such a 429 delays its own call only: the bucket stays open for
// every other call, which would otherwise all wait a second for one busy
// object.
func ObjectBusy(busy func(body []byte) bool) TransportOption {
	return func(p *paced) { p.objectBusy = busy }
}

type paced struct {
	base       http.RoundTripper
	l          *Limiter
	objectBusy func(body []byte) bool
}

func (p *paced) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := p.l.Wait(req.Context()); err != nil {
		return nil, err
	}
	resp, err := p.base.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusTooManyRequests {
		d := RetryAfter(resp.Header, time.Now())
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if p.objectBusy != nil && p.objectBusy(body) {
			return nil, p.l.delay(d)
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(req.Context()), 5*time.Second)
		_ = p.l.Block(ctx, d)
		cancel()
		return nil, p.l.delay(d)
	}
	return resp, err
}

// RetryAfter reads a Retry-After header (seconds or an HTTP date),
// DefaultBackoff when absent, unreadable or zero (a provider answering 429
// with "now" is still refusing), at most MaxBackoff.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return DefaultBackoff
	}
	var d time.Duration
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 && secs < 1e6 {
		d = time.Duration(secs * float64(time.Second))
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now)
	} else {
		return DefaultBackoff
	}
	return min(max(d, DefaultBackoff), MaxBackoff)
}

// Sender takes a token from l before each message (SMTP relays limit
// messages per second); a message with no token within MaxWait is not
// sent and the error is a *Delay.
func Sender(s mail.Sender, l *Limiter) mail.Sender {
	if l == nil {
		return s
	}
	return &pacedSender{s: s, l: l}
}

var _ mail.Paced = (*pacedSender)(nil)

type pacedSender struct {
	s mail.Sender
	l *Limiter
}

// Reserve takes a token for one message and returns the sender that sends
// it without taking another; no token within MaxWait is a *Delay.
func (p *pacedSender) Reserve(ctx context.Context) (mail.Sender, error) {
	if err := p.l.Wait(ctx); err != nil {
		return nil, err
	}
	return p.s, nil
}

func (p *pacedSender) Send(ctx context.Context, msg mail.Message) error {
	if err := p.l.Wait(ctx); err != nil {
		return err
	}
	return p.s.Send(ctx, msg)
}
