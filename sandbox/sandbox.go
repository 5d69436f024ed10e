// Package sandbox is the development sandbox: simulated Hyperswitch and
// Stripe Connect served by `app serve` under /sandbox (API.md, section
// Sandbox), so the whole marketplace can be tried on one machine without
// provider accounts.
//
// The simulators are the faithful fakes the tests use (hyperswitchtest,
// stripetest): the same wire formats, HE_01 duplicates, Stripe's saved
// idempotency results. The service's own clients call them over HTTP, so
// the real client code runs. The sandbox adds what a provider does on its
// own time:
//
//   - a buyer's payment moves when asked (POST /sandbox/payments/{id}/complete,
//     or `app sandbox pay`), a refund settles by itself after RefundDelay, a
//     dispute opens and closes when asked, an onboarding link completes
//     onboarding when opened;
//   - each of those sends the signed webhook the provider would send, from a
//     delivery table in PostgreSQL, retried on a non-2xx on the provider's
//     schedule compressed TimeScale times (Hyperswitch: +1 min, 5 min ×2,
//     10 min ×5, 1 h ×5, 6 h ×3 becomes +1 s, 5 s ×2, ...).
//
// Its state (the simulators' objects, pending deliveries, the development
// inbox) lives in the schema "sandbox", so a restart of `make run` keeps
// it. Config refuses the sandbox outside APP_ENV=development.
package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/hyperswitch/hyperswitchtest"
	"github.com/veza/backend/stripeconnect/stripetest"
)

// Path is where the sandbox is mounted on the service.
const Path = "/sandbox"

// The credentials the simulators accept and sign with: fixed, public,
// development only (config refuses the sandbox anywhere else).
const (
	HyperswitchAPIKey        = hyperswitchtest.APIKey
	HyperswitchWebhookSecret = "sandbox_payment_response_hash_key"
	StripeSecretKey          = stripetest.SecretKey
	StripeWebhookSecret      = stripetest.WebhookSecret
)

// TimeScale compresses the providers' webhook retry schedules: a minute of
// theirs is a second here.
const TimeScale = 60

// hyperswitchRetries is Hyperswitch's outgoing webhook retry schedule
// (PSP.md: +1 min, then 5 min ×2, 10 min ×5, 1 h ×5, 6 h ×3, about 24 h).
var hyperswitchRetries = schedule(
	[]time.Duration{time.Minute}, rep(5*time.Minute, 2), rep(10*time.Minute, 5), rep(time.Hour, 5), rep(6*time.Hour, 3))

// stripeRetries is Stripe's: exponential backoff for up to 3 days.
var stripeRetries = schedule([]time.Duration{5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour}, rep(12*time.Hour, 4))

func rep(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func schedule(parts ...[]time.Duration) []time.Duration {
	var out []time.Duration
	for _, p := range parts {
		for _, d := range p {
			out = append(out, d/TimeScale)
		}
	}
	return out
}

// Opts configure the sandbox.
type Opts struct {
	DB *pgxpool.Pool
	// URL is where Path is served, e.g. http://127.0.0.1:8080/sandbox.
	URL string
	// ServiceURL is where the service answers webhooks, e.g.
	// http://127.0.0.1:8080.
	ServiceURL string
	// RefundDelay: how long a refund stays pending before it settles.
	RefundDelay time.Duration
	Logger      zerolog.Logger
	// Client delivers webhooks (default: 5 s timeout, Hyperswitch's).
	Client *http.Client
	// Tick is how often due deliveries and refunds are looked at (default
	// 200 ms).
	Tick time.Duration
}

// Sandbox is the simulated pair of providers.
type Sandbox struct {
	opts Opts
	hs   *hyperswitchtest.Server
	st   *stripetest.Server

	saveMu sync.Mutex // one snapshot write at a time, the latest last
	// ctlMu: a control's check and move are one step (two controls on one
	// refund must not both find it pending).
	ctlMu sync.Mutex
	mu    sync.Mutex
	// pendingSince: when the sandbox first saw each refund pending (a
	// restart starts the delay again: the refund is still pending, as a
	// real one can be for days).
	pendingSince map[string]time.Time
	// reversalsSent: how many of the simulated Stripe's reversals have had
	// their transfer.reversed queued.
	reversalsSent int
	wake          chan struct{}
}

// EnsureSchema creates the sandbox's own schema and tables (idempotent,
// serialised between processes). It is not an app migration: production
// databases never get it.
func EnsureSchema(ctx context.Context, db *pgxpool.Pool) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('veza_sandbox_schema'))`); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `
CREATE SCHEMA IF NOT EXISTS sandbox;
CREATE TABLE IF NOT EXISTS sandbox.state (
    provider  text PRIMARY KEY,
    snapshot  jsonb NOT NULL,
    saved_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS sandbox.deliveries (
    id           bigserial PRIMARY KEY,
    provider     text NOT NULL,
    event_id     text NOT NULL,
    event_type   text NOT NULL,
    body         bytea NOT NULL,
    attempts     int NOT NULL DEFAULT 0,
    next_at      timestamptz NOT NULL DEFAULT now(),
    last_status  int,
    delivered_at timestamptz,
    given_up_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS deliveries_due ON sandbox.deliveries (next_at) WHERE delivered_at IS NULL AND given_up_at IS NULL;
CREATE TABLE IF NOT EXISTS sandbox.emails (
    id       bigserial PRIMARY KEY,
    to_addr  text NOT NULL,
    subject  text NOT NULL,
    body     text NOT NULL,
    sent_at  timestamptz NOT NULL DEFAULT now()
);`); err != nil {
		return fmt.Errorf("sandbox: creating its schema: %w", err)
	}
	return tx.Commit(ctx)
}

// Open creates the schema if needed and restores the simulators' state.
func Open(ctx context.Context, opts Opts) (*Sandbox, error) {
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 5 * time.Second}
	}
	if opts.Tick <= 0 {
		opts.Tick = 200 * time.Millisecond
	}
	opts.URL = strings.TrimRight(opts.URL, "/")
	if err := EnsureSchema(ctx, opts.DB); err != nil {
		return nil, err
	}
	s := &Sandbox{
		opts: opts,
		hs:   hyperswitchtest.NewHandler(opts.URL + "/hyperswitch"),
		st:   stripetest.NewHandler(opts.URL + "/stripe"),
		wake: make(chan struct{}, 1), pendingSince: map[string]time.Time{},
	}
	s.st.SetOnboardingURL(func(acct string) string { return opts.URL + "/stripe/onboarding/" + acct })
	rows, err := opts.DB.Query(ctx, `SELECT provider, snapshot FROM sandbox.state`)
	if err != nil {
		return nil, err
	}
	snaps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2][]byte, error) {
		var p string
		var b []byte
		err := r.Scan(&p, &b)
		return [2][]byte{[]byte(p), b}, err
	})
	if err != nil {
		return nil, err
	}
	for _, sn := range snaps {
		switch string(sn[0]) {
		case "hyperswitch":
			err = s.hs.Restore(sn[1])
		case "stripe":
			err = s.st.Restore(sn[1])
		}
		if err != nil {
			return nil, err
		}
	}
	s.reversalsSent = len(s.st.Reversals())
	return s, nil
}

// Hyperswitch is the simulated Hyperswitch (tests read its objects).
func (s *Sandbox) Hyperswitch() *hyperswitchtest.Server { return s.hs }

// Stripe is the simulated Stripe.
func (s *Sandbox) Stripe() *stripetest.Server { return s.st }

// event is a webhook to deliver.
type event struct {
	provider, id, typ string
	body              []byte
}

// save writes both simulators' state.
func (s *Sandbox) save(ctx context.Context) error { return s.commit(ctx) }

// commit writes both simulators' state and queues events in one
// transaction: a move and its webhook are stored together or not at all.
// Writes are serialised and each takes its snapshot inside the lock, so
// the last write holds the latest state.
func (s *Sandbox) commit(ctx context.Context, events ...event) error {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	hs, err := s.hs.Snapshot()
	if err != nil {
		return err
	}
	st, err := s.st.Snapshot()
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, s.opts.DB, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
INSERT INTO sandbox.state (provider, snapshot) VALUES ('hyperswitch', $1), ('stripe', $2)
ON CONFLICT (provider) DO UPDATE SET snapshot = EXCLUDED.snapshot, saved_at = now()`, hs, st); err != nil {
			return err
		}
		for _, e := range events {
			if _, err := tx.Exec(ctx, `INSERT INTO sandbox.deliveries (provider, event_id, event_type, body) VALUES ($1, $2, $3, $4)`,
				e.provider, e.id, e.typ, e.body); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sandbox: saving its state and webhooks: %w", err)
	}
	if len(events) > 0 {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

var eventSeq atomic.Int64

// eventID is a fresh provider event id (unique within the process even on
// a coarse clock, and across restarts by its time).
func eventID(prefix string) string {
	return fmt.Sprintf("%s_sandbox_%d_%d", prefix, time.Now().UnixNano(), eventSeq.Add(1))
}

// Run delivers due webhooks and settles refunds until ctx ends.
func (s *Sandbox) Run(ctx context.Context) {
	t := time.NewTicker(s.opts.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
		if err := s.settleRefunds(ctx); err != nil && ctx.Err() == nil {
			s.opts.Logger.Warn().Err(err).Msg("sandbox: settling refunds")
		}
		if err := s.deliverDue(ctx); err != nil && ctx.Err() == nil {
			s.opts.Logger.Warn().Err(err).Msg("sandbox: delivering webhooks")
		}
	}
}

// settleRefunds succeeds every refund pending for RefundDelay, as the
// connector would, and sends refund_succeeded.
func (s *Sandbox) settleRefunds(ctx context.Context) error {
	now := time.Now()
	var due []string
	s.mu.Lock()
	seen := map[string]bool{}
	for _, rf := range s.hs.Refunds() {
		if rf.Status != "pending" {
			continue
		}
		seen[rf.RefundID] = true
		since, ok := s.pendingSince[rf.RefundID]
		if !ok {
			s.pendingSince[rf.RefundID] = now
			since = now
		}
		if now.Sub(since) >= s.opts.RefundDelay {
			due = append(due, rf.RefundID)
		}
	}
	for id := range s.pendingSince {
		if !seen[id] {
			delete(s.pendingSince, id)
		}
	}
	s.mu.Unlock()
	for _, id := range due {
		if _, err := s.completeRefund(ctx, id, "succeeded"); err != nil && !errors.Is(err, errFinal) {
			return err
		}
	}
	return nil
}

type delivery struct {
	id       int64
	provider string
	body     []byte
	attempts int
}

// deliverDue posts every due webhook once, one after another (Hyperswitch
// keeps no order either).
func (s *Sandbox) deliverDue(ctx context.Context) error {
	rows, err := s.opts.DB.Query(ctx, `
SELECT id, provider, body, attempts FROM sandbox.deliveries
WHERE delivered_at IS NULL AND given_up_at IS NULL AND next_at <= now()
ORDER BY next_at, id LIMIT 50`)
	if err != nil {
		return err
	}
	due, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (delivery, error) {
		var d delivery
		return d, r.Scan(&d.id, &d.provider, &d.body, &d.attempts)
	})
	if err != nil {
		return err
	}
	for _, d := range due {
		status := s.post(ctx, d)
		if status >= 200 && status < 300 {
			_, err = s.opts.DB.Exec(ctx, `UPDATE sandbox.deliveries SET attempts = attempts + 1, last_status = $2, delivered_at = now() WHERE id = $1`, d.id, status)
		} else {
			retries := hyperswitchRetries
			if d.provider == "stripe" {
				retries = stripeRetries
			}
			if d.attempts < len(retries) {
				_, err = s.opts.DB.Exec(ctx, `UPDATE sandbox.deliveries SET attempts = attempts + 1, last_status = $2, next_at = now() + $3 WHERE id = $1`,
					d.id, status, retries[d.attempts])
			} else {
				_, err = s.opts.DB.Exec(ctx, `UPDATE sandbox.deliveries SET attempts = attempts + 1, last_status = $2, given_up_at = now() WHERE id = $1`, d.id, status)
				s.opts.Logger.Warn().Int64("delivery", d.id).Str("provider", d.provider).Msg("sandbox: webhook given up after the provider's last retry")
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// post sends one delivery, signed as its provider signs (Hyperswitch the
// stored bytes once; Stripe each attempt with its timestamp), and returns
// the status (0: no answer).
func (s *Sandbox) post(ctx context.Context, d delivery) int {
	path := "/webhooks/hyperswitch"
	if d.provider == "stripe" {
		path = "/webhooks/stripe"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.opts.ServiceURL+path, strings.NewReader(string(d.body)))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	if d.provider == "stripe" {
		req.Header.Set("Stripe-Signature", stripetest.SignWebhook(StripeWebhookSecret, d.body))
	} else {
		req.Header.Set("X-Webhook-Signature-512", hyperswitch.Sign(HyperswitchWebhookSecret, d.body))
	}
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		s.opts.Logger.Info().Err(err).Int64("delivery", d.id).Msg("sandbox: webhook not delivered; retrying on the provider's schedule")
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// Delivery is one webhook the sandbox sent or will send (tests).
type Delivery struct {
	Provider, EventID, EventType string
	Attempts, LastStatus         int
	Delivered                    bool
}

// Deliveries lists every webhook so far, oldest first.
func (s *Sandbox) Deliveries(ctx context.Context) ([]Delivery, error) {
	rows, err := s.opts.DB.Query(ctx, `SELECT provider, event_id, event_type, attempts, coalesce(last_status, 0), delivered_at IS NOT NULL FROM sandbox.deliveries ORDER BY id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delivery, error) {
		var d Delivery
		return d, r.Scan(&d.Provider, &d.EventID, &d.EventType, &d.Attempts, &d.LastStatus, &d.Delivered)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// StripeTransport sends the Stripe client's calls to the simulated Stripe
// under Path/stripe. stripe-go reads the API version from its request's
// path, which must start with /v1, so the client's base URL is the service
// itself and the prefix is added here, on a copy of each request.
func StripeTransport(next http.RoundTripper) http.RoundTripper {
	return prefixTransport{prefix: Path + "/stripe", next: next}
}

type prefixTransport struct {
	prefix string
	next   http.RoundTripper
}

func (t prefixTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c := r.Clone(r.Context())
	c.URL.Path = t.prefix + r.URL.Path
	if r.URL.RawPath != "" {
		c.URL.RawPath = t.prefix + r.URL.RawPath
	}
	return t.next.RoundTrip(c)
}
