// Package ratelimit paces calls to a provider across every process on the
// database: one token bucket row per provider in PostgreSQL
// (provider_rate_limits), so N `app serve` / `app work` processes together
// stay under the provider's limit. River has no global rate limit of its
// own (river#132).
//
// Cost per call: one UPDATE of one row (a primary-key lookup) when a token
// is free or frees within MaxWait; one more SELECT when it does not. The row
// is hot by design: at 100 calls/s its lock is held about 0.1 ms per call.
//
// A caller that gets a token in the future sleeps until then (bounded by
// MaxWait, well under a job's timeout); one that would wait longer gets a
// *Delay and snoozes its job without using an attempt. A provider's 429
// drains the bucket and blocks it for Retry-After.
//
// Live calls (a payout, a refund submit, an order) may reserve tokens up to
// MaxWait ahead. A Background call (a reconcile read) takes only a token
// that is free now, never a reservation: live calls queue behind none of
// them, and a sweep gets what live traffic leaves. A process's background
// callers take turns (one polls the bucket at a time, sleeping until its
// next token), and none waits longer than BackgroundWait (or one bucket
// refill, burst / rate, if that is longer) before it gives up with a
// *Delay: a worker held by a sweep is free again within a second.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Delay says a call was not made: the provider's bucket has no token for
// at least After (or the provider asked us to back off). A job seeing it
// snoozes for After: being paced is not a failure.
type Delay struct {
	Provider string
	After    time.Duration
}

func (d *Delay) Error() string {
	return fmt.Sprintf("ratelimit: %s paced: no token for %s", d.Provider, d.After.Round(time.Millisecond))
}

// AsDelay finds a Delay in err's chain (a transport error wrapped by a
// client, a url.Error).
func AsDelay(err error) (*Delay, bool) {
	var d *Delay
	ok := errors.As(err, &d)
	return d, ok
}

// Limiter is one provider's bucket.
type Limiter struct {
	pool     *pgxpool.Pool
	provider string
	rate     float64 // tokens per second
	burst    float64
	maxWait  time.Duration
	sleep    func(context.Context, time.Duration) error
	// turn is held by the one background caller of this process that
	// polls the bucket.
	turn chan struct{}
}

type backgroundKey struct{}

// Background marks ctx's calls as sweep work: served only from tokens that
// are free now (see the package comment).
func Background(ctx context.Context) context.Context {
	return context.WithValue(ctx, backgroundKey{}, true)
}

// IsBackground reports whether ctx was marked by Background.
func IsBackground(ctx context.Context) bool {
	b, _ := ctx.Value(backgroundKey{}).(bool)
	return b
}

// New returns provider's limiter with rate calls/s and burst, creating its
// row when missing. A rate of 0 or less is no limit (nil Limiter).
func New(ctx context.Context, pool *pgxpool.Pool, provider string, rate float64, burst int, maxWait time.Duration) (*Limiter, error) {
	if rate <= 0 {
		return nil, nil
	}
	b := float64(max(burst, 1))
	if _, err := pool.Exec(ctx, `INSERT INTO provider_rate_limits (provider, tokens) VALUES ($1, $2) ON CONFLICT (provider) DO NOTHING`, provider, b); err != nil {
		return nil, fmt.Errorf("ratelimit: creating the %s bucket: %w", provider, err)
	}
	return &Limiter{pool: pool, provider: provider, rate: rate, burst: b, maxWait: maxWait, sleep: sleepCtx, turn: make(chan struct{}, 1)}, nil
}

// Provider names the bucket.
func (l *Limiter) Provider() string { return l.provider }

// Wait takes a token, sleeping until it is due when that is within
// MaxWait; otherwise it takes none and returns a *Delay.
func (l *Limiter) Wait(ctx context.Context) error {
	if l == nil {
		return nil
	}
	if IsBackground(ctx) {
		return l.waitBackground(ctx)
	}
	return l.wait(ctx, 3)
}

// BackgroundWait is how long a background caller may wait for its turn
// and a free token before it snoozes: River's fetch poll (1 s by default),
// the time a snoozed job would wait to be fetched again anyway. A shorter
// wait (one refill, 0.2 s at the defaults) made a sweep snooze 7 times per
// job and left tokens unused between polls (psp-reconcile: 0.84 of the
// limit with a bucket at 0.93).
const BackgroundWait = time.Second

// refill is the time an empty bucket takes to fill.
func (l *Limiter) refill() time.Duration {
	return time.Duration(l.burst / l.rate * float64(time.Second))
}

// waitBackground takes a token that is free now, waiting for this
// process's turn and then for the next free token, within BackgroundWait
// or one refill (and half of ctx's deadline); past that it takes none: a
// *Delay. A contended bucket (see contended) ends the wait at once: the
// worker this caller holds may be the one a live job needs. Without live
// contention the turn passes at every token, so a held worker is free
// within a token or two.
func (l *Limiter) waitBackground(ctx context.Context) error {
	limit := max(BackgroundWait, l.refill())
	if dl, ok := ctx.Deadline(); ok {
		limit = max(min(limit, time.Until(dl)/2), 0)
	}
	until := time.Now().Add(limit)
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case l.turn <- struct{}{}:
	case <-timer.C:
		return l.backgroundDelay(limit)
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-l.turn }()
	for {
		next, err := l.takeFree(ctx)
		if err != nil || next == 0 {
			return err
		}
		if l.contended(next) || time.Until(until) < next {
			return l.backgroundDelay(next)
		}
		if err := l.sleep(ctx, next); err != nil {
			return err
		}
	}
}

// contended reports whether the next free token, next away, is further
// than a sweep alone could push it (a refill and one token): live calls
// hold more than a burst of reservations, or a 429 blocks the bucket.
func (l *Limiter) contended(next time.Duration) bool {
	return next > l.refill()+time.Duration(float64(time.Second)/l.rate)
}

// backgroundDelay is a sweep's *Delay: short (a refill or two, random),
// since a sweep's next token is often only the next one: a sweep backlog
// then keeps jobs ready for every token live work leaves, at the cost of
// snoozes (the psp-reconcile bench step counts them).
func (l *Limiter) backgroundDelay(d time.Duration) *Delay {
	r := l.refill()
	d = max(d, r, 10*time.Millisecond)
	return &Delay{Provider: l.provider, After: d + rand.N(2*max(r, 10*time.Millisecond))}
}

func (l *Limiter) wait(ctx context.Context, retakes int) error {
	// A reservation never outlasts half the time the caller has left (a
	// client timeout, a job's): the call must still fit after the sleep.
	maxWait := l.maxWait
	if dl, ok := ctx.Deadline(); ok {
		maxWait = max(min(maxWait, time.Until(dl)/2), 0)
	}
	wait, err := l.take(ctx, maxWait)
	if err != nil {
		return err
	}
	if wait <= 0 {
		return nil
	}
	due := time.Now().Add(wait)
	if err := l.sleep(ctx, wait); err != nil {
		return err
	}
	if late := time.Since(due); retakes > 0 && late > lateBy && late > time.Duration(float64(time.Second)/l.rate) {
		// Woken well after the slot (a starved process): sending now
		// would land beside the calls of the next slots. Give the slot up
		// and take a new one (the lost token errs on the safe side), a
		// few times at most.
		return l.wait(ctx, retakes-1)
	}
	// A 429 may have blocked the bucket while we slept: a reservation
	// granted before it must not go out inside the provider's Retry-After.
	var blocked float64
	if err := l.pool.QueryRow(ctx, `SELECT GREATEST(EXTRACT(EPOCH FROM GREATEST(blocked_until, clock_timestamp()) - clock_timestamp()), 0)
		FROM provider_rate_limits WHERE provider = $1`, l.provider).Scan(&blocked); err != nil {
		return fmt.Errorf("ratelimit: %s bucket: %w", l.provider, err)
	}
	if blocked > 0 {
		return l.delay(time.Duration(blocked * float64(time.Second)))
	}
	return nil
}

// lateBy is how late past its slot a sleeper may still send.
const lateBy = 50 * time.Millisecond

// delay is the *Delay for a wait of at least d: never shorter than
// MaxWait (the bucket's reservations span that far, so sooner would only
// find it full again), plus a random share of MaxWait so a backlog of
// snoozed jobs does not come back at one instant.
func (l *Limiter) delay(d time.Duration) *Delay {
	d = max(d, l.maxWait, 100*time.Millisecond)
	if l.maxWait > 0 {
		d += rand.N(l.maxWait)
	}
	return &Delay{Provider: l.provider, After: d}
}

// take reserves a token due within maxWait (reserve). The returned wait
// is when the token is due. When none is, or the provider blocked us,
// nothing is taken and the error is a *Delay.
func (l *Limiter) take(ctx context.Context, maxWait time.Duration) (time.Duration, error) {
	wait, later, err := l.reserve(ctx, maxWait)
	if err != nil || later == 0 {
		return wait, err
	}
	return 0, l.delay(later)
}

// takeFree takes a token only when one is free now (none is reserved by
// live calls): reserve with no horizon. Otherwise it says when one will
// be, a little past the token's instant (the clocks of the statement and
// of the caller's sleep differ by the round trip).
func (l *Limiter) takeFree(ctx context.Context) (time.Duration, error) {
	_, later, err := l.reserve(ctx, 0)
	if err != nil || later == 0 {
		return 0, err
	}
	return later + time.Millisecond, nil
}

// reserve takes a token in one statement: the bucket refills by elapsed ×
// rate up to burst, then gives one if that leaves it at no less than
// −rate × horizon (a token due within horizon; 0: free now). wait is when
// the token is due. When none is due within horizon, or the provider
// blocked us, nothing is taken and later (> 0) is how long until one would
// be: one more statement, a read.
func (l *Limiter) reserve(ctx context.Context, horizon time.Duration) (wait, later time.Duration, err error) {
	var tokens float64
	err = l.pool.QueryRow(ctx, `
		UPDATE provider_rate_limits SET
		    tokens = LEAST($2, tokens + GREATEST(EXTRACT(EPOCH FROM clock_timestamp() - updated_at), 0) * $3) - 1,
		    updated_at = clock_timestamp()
		WHERE provider = $1
		  AND blocked_until <= clock_timestamp()
		  AND LEAST($2, tokens + GREATEST(EXTRACT(EPOCH FROM clock_timestamp() - updated_at), 0) * $3) - 1 >= -$3 * $4
		RETURNING tokens`, l.provider, l.burst, l.rate, horizon.Seconds()).Scan(&tokens)
	if err == nil {
		return time.Duration(max(-tokens, 0) / l.rate * float64(time.Second)), 0, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, fmt.Errorf("ratelimit: %s bucket: %w", l.provider, err)
	}
	var avail, blocked float64
	err = l.pool.QueryRow(ctx, `
		SELECT LEAST($2, tokens + GREATEST(EXTRACT(EPOCH FROM clock_timestamp() - updated_at), 0) * $3),
		       GREATEST(EXTRACT(EPOCH FROM GREATEST(blocked_until, clock_timestamp()) - clock_timestamp()), 0)
		FROM provider_rate_limits WHERE provider = $1`, l.provider, l.burst, l.rate).Scan(&avail, &blocked)
	if err != nil {
		return 0, 0, fmt.Errorf("ratelimit: %s bucket: %w", l.provider, err)
	}
	after := math.Max(blocked, (1-avail)/l.rate-horizon.Seconds())
	// Never 0: a token was just refused.
	return 0, max(time.Duration(after*float64(time.Second)), time.Microsecond), nil
}

// Block drains the bucket and refuses tokens for d: the provider answered
// 429 (Retry-After d). Every process backs off, not only the one that got it.
func (l *Limiter) Block(ctx context.Context, d time.Duration) error {
	if l == nil {
		return nil
	}
	_, err := l.pool.Exec(ctx, `
		UPDATE provider_rate_limits SET
		    blocked_until = GREATEST(blocked_until, clock_timestamp() + $2 * interval '1 millisecond'),
		    -- Empty, and refilling only from the block's end: no burst the
		    -- moment it lifts.
		    tokens = LEAST(tokens, 0),
		    updated_at = GREATEST(updated_at, blocked_until, clock_timestamp() + $2 * interval '1 millisecond')
		WHERE provider = $1`, l.provider, d.Milliseconds())
	return err
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
