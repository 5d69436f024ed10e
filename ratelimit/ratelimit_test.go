package ratelimit

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/store/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// windows counts calls at a fake provider per 100 ms window.
type windows struct {
	mu     sync.Mutex
	start  time.Time
	counts map[int]int
}

func (w *windows) hit() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.counts[int(time.Since(w.start)/(100*time.Millisecond))]++
}

// TestTwoProcessesShareOneBucket: two limiters on two pools (two processes
// on one database) with 40 callers each never exceed rate × window + burst
// in any 100 ms window at the provider, nor the rate over the run, and
// together get close to the rate.
func TestTwoProcessesShareOneBucket(t *testing.T) {
	t.Parallel()
	url := dbtest.URL(t)
	w := &windows{start: time.Now(), counts: map[int]int{}}
	fakeProvider := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { w.hit() }))
	defer fakeProvider.Close()

	const rate, burst = 100.0, 5
	ctx := context.Background()
	var calls atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(2 * time.Second)
	for p := 0; p < 2; p++ {
		pool, err := pgxpool.New(ctx, url)
		require.NoError(t, err)
		defer pool.Close()
		l, err := New(ctx, pool, "stripe", rate, burst, time.Second)
		require.NoError(t, err)
		client := &http.Client{Transport: Transport(nil, l)}
		for c := 0; c < 40; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					resp, err := client.Get(fakeProvider.URL)
					if err != nil {
						_, paced := AsDelay(err)
						require.True(t, paced, "only pacing stops a call: %v", err)
						time.Sleep(50 * time.Millisecond)
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					calls.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	total := 0
	for i, n := range w.counts {
		total += n
		require.LessOrEqual(t, n, int(rate/10)+burst, "window %d", i)
	}
	// The calls made after the deadline's last token are in flight: allow
	// the MaxWait's worth reserved (1 s at the rate) on top.
	require.LessOrEqual(t, total, int(rate*3)+burst, "never over the rate across the run")
	require.GreaterOrEqual(t, total, int(rate*2*0.8), "close to the rate: %d calls in 2 s at %v/s", total, rate)
	require.EqualValues(t, total, calls.Load())
}

// TestTooManyRequestsBlocksTheBucket: a 429 with Retry-After blocks every
// process's bucket for that long; the next call is not made and says how
// long to wait.
func TestTooManyRequestsBlocksTheBucket(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t)
	ctx := context.Background()
	var hits atomic.Int64
	fakeProvider := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			rw.Header().Set("Retry-After", "3")
			rw.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer fakeProvider.Close()
	l, err := New(ctx, pool, "hyperswitch", 50, 10, 500*time.Millisecond)
	require.NoError(t, err)
	other, err := New(ctx, pool, "hyperswitch", 50, 10, 500*time.Millisecond)
	require.NoError(t, err)
	client := &http.Client{Transport: Transport(nil, l)}

	resp, err := client.Get(fakeProvider.URL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 429, resp.StatusCode, "the caller sees the provider's answer")

	err = other.Wait(ctx)
	d, ok := AsDelay(err)
	require.True(t, ok, "another process is blocked too: %v", err)
	require.InDelta(t, 3, d.After.Seconds(), 0.5)
	require.EqualValues(t, 1, hits.Load(), "nothing sent while blocked")

	// Other providers' buckets are their own.
	smtp, err := New(ctx, pool, "smtp", 10, 2, 0)
	require.NoError(t, err)
	require.NoError(t, smtp.Wait(ctx))
}

func TestNoTokenWithinMaxWaitTakesNone(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t)
	ctx := context.Background()
	l, err := New(ctx, pool, "stripe", 1, 1, 0) // 1/s, no waiting
	require.NoError(t, err)
	require.NoError(t, l.Wait(ctx), "the burst")
	err = l.Wait(ctx)
	d, ok := AsDelay(err)
	require.True(t, ok, "%v", err)
	require.InDelta(t, 1, d.After.Seconds(), 0.2)
	var tokens float64
	require.NoError(t, pool.QueryRow(ctx, `SELECT tokens FROM provider_rate_limits WHERE provider = 'stripe'`).Scan(&tokens))
	require.GreaterOrEqual(t, tokens, -0.01, "a refused call reserves nothing")

	none, err := New(ctx, pool, "stripe", 0, 1, 0)
	require.NoError(t, err)
	require.Nil(t, none, "rate 0: no limit")
	require.NoError(t, none.Wait(ctx))
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	h := func(v string) http.Header { return http.Header{"Retry-After": []string{v}} }
	require.Equal(t, DefaultBackoff, RetryAfter(nil, now))
	require.Equal(t, 2*time.Second, RetryAfter(h("2"), now))
	require.Equal(t, 1500*time.Millisecond, RetryAfter(h("1.5"), now))
	require.Equal(t, 30*time.Second, RetryAfter(h(now.Add(30*time.Second).Format(http.TimeFormat)), now))
	require.Equal(t, MaxBackoff, RetryAfter(h("86400"), now), "capped")
	require.Equal(t, DefaultBackoff, RetryAfter(h("soon"), now))
	require.Equal(t, time.Duration(0), RetryAfter(h(now.Add(-time.Minute).Format(http.TimeFormat)), now))
}
