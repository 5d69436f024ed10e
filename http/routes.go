package http

import (
	"context"
	nethttp "net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/cors"

	"github.com/veza/backend"
	"github.com/veza/backend/riverui"
	"github.com/veza/backend/store"
)

// stdHandler mounts a net/http handler (River UI, the sandbox). Behind
// Fiber's adaptor a request's header and path strings alias fasthttp's
// buffers, which the next request on the connection overwrites, and its
// context is fasthttp's, which is not safe to watch once the handler has
// returned (pgx watches it: a data race the sandbox tests hit). The handler
// gets a request with strings of its own and a context that does not end
// with fasthttp's.
func stdHandler(h nethttp.Handler) fiber.Handler {
	return adaptor.HTTPHandler(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		h.ServeHTTP(w, ownedRequest(r))
	}))
}

// ownedRequest is r with strings of its own and a context detached from
// the connection's.
func ownedRequest(r *nethttp.Request) *nethttp.Request {
	c := r.Clone(context.WithoutCancel(r.Context()))
	for _, vs := range c.Header { // Clone gave new slices: the originals stay
		for i, v := range vs {
			vs[i] = strings.Clone(v)
		}
	}
	u := *c.URL
	u.Path, u.RawPath, u.RawQuery = strings.Clone(u.Path), strings.Clone(u.RawPath), strings.Clone(u.RawQuery)
	c.URL = &u
	c.Method, c.Host, c.RequestURI, c.RemoteAddr = strings.Clone(c.Method), strings.Clone(c.Host), strings.Clone(c.RequestURI), strings.Clone(c.RemoteAddr)
	return c
}

// CORSMaxAge is how long a browser may cache a preflight's answer
// (Chromium caps it at 2 h).
const CORSMaxAge = 10 * time.Minute

// routes maps the whole API. Read it top to bottom to see what the service
// answers.
func (s *Server) routes() {
	s.app.Use(s.securityHeaders())
	isUpload := func(c *fiber.Ctx) bool { return c.Method() == fiber.MethodPost && c.Path() == "/v1/tracks" }
	s.app.Use(s.telemetry(), assignRequestID(), s.accessLog(), s.recoverPanic(), s.limitBody(DefaultBodyLimit, isUpload), s.requestContext())

	if len(s.opts.CORSAllowedOrigins) > 0 {
		// Before any route: a preflight is answered here (204), whatever
		// the path. Bearer tokens, not cookies: no credentials.
		s.app.Use(cors.New(cors.Config{
			AllowOrigins:  strings.Join(s.opts.CORSAllowedOrigins, ","),
			AllowMethods:  "GET,POST,PUT,DELETE",
			AllowHeaders:  "Authorization,Content-Type,Idempotency-Key",
			ExposeHeaders: "Retry-After,X-Request-Id",
			MaxAge:        int(CORSMaxAge.Seconds()),
		}))
	}

	s.app.Get("/healthz", handleHealthz())
	s.app.Get("/readyz", handleReadyz(s.opts.ReadyFunc))
	s.app.Get("/openapi.json", handleOpenAPI())

	if s.opts.RiverUI != nil {
		s.app.Use("/riverui", func(c *fiber.Ctx) error {
			// Never the client's own: Del removes every copy (Set replaces
			// only the first, and the adaptor keeps the last).
			c.Request().Header.Del(riverui.ClientHeader)
			c.Request().Header.Set(riverui.ClientHeader, s.clientIP(c))
			return c.Next()
		}, stdHandler(s.opts.RiverUI))
	}

	if s.opts.Sandbox != nil {
		// Development only (config refuses it elsewhere): the simulated
		// providers and their controls. No IP limit: the service's own
		// calls to its simulators come from loopback.
		s.app.Use("/sandbox", func(c *fiber.Ctx) error {
			// Its inbox holds every account's reset links and its controls
			// mark payments paid: this machine only, unless told otherwise
			// (a container reached through a port mapping).
			if ip, err := netip.ParseAddr(s.clientIP(c)); !s.opts.SandboxAllowRemote && (err != nil || !ip.Unmap().IsLoopback()) {
				return veza.Errorf(veza.KindForbidden, "sandbox_local_only", "the sandbox answers this machine only (SANDBOX_ALLOW_REMOTE=true to open it)")
			}
			return c.Next()
		}, stdHandler(s.opts.Sandbox))
	}

	general := s.rateLimit(s.opts.RateLimitPerMinute)
	v1 := s.app.Group("/v1", general)
	strict := s.rateLimit(s.opts.AuthRateLimitPerMinute)
	if s.opts.DevPages {
		s.devPages(general, strict)
	}
	v1.Post("/auth/register", strict, s.handleRegister())
	v1.Post("/auth/verify", s.handleVerify())
	v1.Post("/auth/login", strict, s.handleLogin())
	v1.Post("/auth/logout", s.requireAuth, s.handleLogout())
	v1.Post("/auth/password-reset", strict, s.handlePasswordReset())
	v1.Post("/auth/password-reset/confirm", strict, s.handlePasswordResetConfirm())
	v1.Get("/me", s.requireAuth, s.handleMe())
	v1.Get("/me/sessions", s.requireAuth, s.handleListSessions())
	v1.Delete("/me/sessions/:id", s.requireAuth, s.handleRevokeSession())
	v1.Post("/me/payout-account/onboarding", s.requireAuth, s.handlePayoutOnboarding())
	v1.Put("/me/payout-account", strict, s.requireAuth, s.handleSetPayoutAccount()) // checks a password: guessable
	v1.Post("/tracks", s.requireAuth, s.handleUploadTrack())
	v1.Get("/tracks", s.handleListTracks())
	v1.Get("/tracks/:id", s.handleGetTrack())
	v1.Get("/tracks/:id/stream", s.requireAuth, s.handleStreamTrack())
	v1.Delete("/tracks/:id", s.requireAuth, s.handleDeleteTrack())
	v1.Post("/orders", s.requireAuth, decoded[createOrderRequest](), requireIdempotencyKey, s.requirePayments, s.idempotent, s.handleCreateOrder())
	v1.Get("/orders/:id", s.requireAuth, s.handleGetOrder())
	v1.Post("/orders/:id/refund", s.requireAuth, s.handleRefundOrder())

	// Hyperswitch retries and the body cap bounds the cost: no IP limit.
	s.app.Post("/webhooks/hyperswitch", s.handleHyperswitchWebhook())
	s.app.Post("/webhooks/stripe", s.handleStripeWebhook())

	admin := s.app.Group("/admin", s.requireAuth, requireRole(store.RoleAdmin))
	admin.Get("/webhooks", s.handleAdminWebhooks())
	admin.Get("/transfers", s.handleAdminTransfers())
	admin.Get("/disputes", s.handleAdminDisputes())
	admin.Post("/transfers/retry", decoded[bulkRetryRequest](), s.handleAdminRetryTransfers())
	admin.Post("/transfers/:id/retry", s.handleAdminRetryTransfer())
	admin.Post("/reconcile", s.handleAdminReconcile())
	admin.Get("/storage/migration", s.handleStorageMigration())
	admin.Post("/storage/migrate", s.handleStartStorageMigration())

	s.app.Use(markUnmatched)
}
