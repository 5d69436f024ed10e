// Package http is the Fiber application: routes, handlers, middleware and the
// mapping of veza.Error kinds to HTTP statuses and the API.md error shape.
package http

import (
	"context"
	"net"
	nethttp "net/http"
	"net/netip"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/ingest"
	"github.com/veza/backend/internal/window"
	"github.com/veza/backend/jobs"
	"github.com/veza/backend/obs"
	"github.com/veza/backend/settle"
	"github.com/veza/backend/store"
	"github.com/veza/backend/stripeconnect"
)

// DefaultBodyLimit caps JSON bodies. Routes that take more (uploads) stream.
const DefaultBodyLimit = 1 << 20

// ServerOpts are the dependencies of the HTTP server.
type ServerOpts struct {
	Logger zerolog.Logger
	// CORSAllowedOrigins are the exact origins browsers may call from
	// (none: no CORS headers, preflights are not answered).
	CORSAllowedOrigins []string
	// Sandbox serves /sandbox (development only; nil: absent), to loopback
	// callers unless SandboxAllowRemote.
	Sandbox            nethttp.Handler
	SandboxAllowRemote bool
	// DevPages (development only) answers GET /verify-email and
	// /reset-password, where emails link while PUBLIC_BASE_URL is the API.
	DevPages bool
	DB       *store.DB
	// Inserter enqueues jobs in the handlers' transactions.
	Inserter settle.Inserter
	// Settle applies money state changes (refunds, operator retries);
	// nil is a settler with no fee and River's default budgets (tests of
	// routes that move no money).
	Settle *settle.Settler
	// ReadyFunc reports whether the service can take traffic (database
	// answers, schema current). Nil means always ready.
	ReadyFunc func(ctx context.Context) error
	// Hyperswitch is nil when payments are disabled; WebhookSecret is its
	// payment response hash key.
	Hyperswitch *hyperswitch.Client
	// Stripe checks a linked payout account (nil: Stripe Connect is off).
	Stripe *stripeconnect.Client
	// PublicBaseURL is where the frontend is (Stripe's onboarding returns
	// there).
	PublicBaseURL string
	// StripeWebhookSecret verifies POST /webhooks/stripe (empty: 503).
	StripeWebhookSecret string
	WebhookSecret       string
	// Stores are the track storage backends; MaxUploadBytes caps uploads.
	Stores         jobs.Stores
	MaxUploadBytes int64
	// RiverUI is River UI with its auth already applied; nil when disabled.
	RiverUI nethttp.Handler
	// RequestTimeout bounds each handler's context (c.UserContext()).
	RequestTimeout time.Duration
	// Requests per minute per client IP on /v1, and on the auth routes
	// that guess-and-check attacks target. Zero means the defaults.
	RateLimitPerMinute     int
	AuthRateLimitPerMinute int
	// TrustedProxies are the balancers in front of the service (CIDRs or
	// addresses, TRUSTED_PROXIES): from them, the client is read from
	// X-Forwarded-For (see clientIP). Empty: the peer is the client.
	TrustedProxies []string
	// MaxConcurrentHashes caps argon2 hashes at once (19 MiB each;
	// ARGON2_MAX_CONCURRENT). Zero: 8.
	MaxConcurrentHashes int
	// HSTS sends Strict-Transport-Security (PUBLIC_BASE_URL is https).
	HSTS bool
	// InvalidWebhooksPerMinute caps invalid-signature webhook deliveries
	// stored per client address (valid ones are never limited). Zero: 30.
	InvalidWebhooksPerMinute int
	// WebhookCommitters bounds the transactions storing webhook deliveries
	// at once (zero: ingest.DefaultCommitters).
	WebhookCommitters int
	// ResetResponseFloor is the minimum time a password-reset request
	// takes, whether or not the account exists (default 300ms).
	ResetResponseFloor time.Duration
	// Metrics (nil: off) and Tracer (nil: off) instrument every request.
	Metrics *obs.Metrics
	Tracer  trace.Tracer
}

// Server is the HTTP side of the service.
type Server struct {
	app        *fiber.App
	opts       ServerOpts
	log        zerolog.Logger
	deliveries *ingest.Batcher
	// invalidWebhooks counts invalid-signature deliveries per address.
	invalidWebhooks *window.PerMinute
	trusted         []netip.Prefix
	hashing         chan struct{} // argon2 slots
}

// NewServer builds the Fiber app and its routes.
func NewServer(opts ServerOpts) *Server {
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = 30 * time.Second
	}
	if opts.RateLimitPerMinute == 0 {
		opts.RateLimitPerMinute = 600
	}
	if opts.AuthRateLimitPerMinute == 0 {
		opts.AuthRateLimitPerMinute = 10
	}
	if opts.MaxConcurrentHashes == 0 {
		opts.MaxConcurrentHashes = 8
	}
	if opts.InvalidWebhooksPerMinute == 0 {
		opts.InvalidWebhooksPerMinute = 30
	}
	if opts.ResetResponseFloor == 0 {
		opts.ResetResponseFloor = 300 * time.Millisecond
	}
	if opts.MaxUploadBytes == 0 {
		opts.MaxUploadBytes = 256 << 20
	}
	if opts.Settle == nil {
		opts.Settle = &settle.Settler{Logger: opts.Logger}
	}
	s := &Server{opts: opts, log: opts.Logger, invalidWebhooks: window.New(opts.InvalidWebhooksPerMinute),
		hashing: make(chan struct{}, opts.MaxConcurrentHashes)}
	for _, p := range opts.TrustedProxies {
		prefix, err := ParseTrustedProxy(p)
		if err != nil {
			s.log.Error().Err(err).Msg("TRUSTED_PROXIES entry ignored")
			continue
		}
		s.trusted = append(s.trusted, prefix)
	}
	s.deliveries = ingest.NewBatcher(opts.DB, opts.Inserter, opts.RequestTimeout, opts.WebhookCommitters)
	s.app = fiber.New(fiber.Config{
		AppName:               "veza",
		DisableStartupMessage: true,
		BodyLimit:             DefaultBodyLimit,
		// Bodies over BodyLimit are streamed instead of refused, so uploads
		// go straight to storage; limitBody enforces the limit everywhere
		// else. Multipart is not pre-parsed to temp files either.
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		ReadTimeout:                  30 * time.Second,
		WriteTimeout:                 60 * time.Second,
		IdleTimeout:                  90 * time.Second,
		ErrorHandler:                 s.handleError,
	})
	s.routes()
	return s
}

// App exposes the Fiber app for in-process tests (app.Test).
func (s *Server) App() *fiber.App { return s.app }

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.app.Listener(ln) }

// Shutdown stops accepting connections and waits for in-flight requests
// until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.app.ShutdownWithContext(ctx) }
