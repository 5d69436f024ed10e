package http

import (
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/limiter"

	"github.com/veza/backend"
)

// rateLimit allows max requests per minute per client IP, answering 429 in
// the API error shape with Retry-After (set by the limiter). Counters live in
// the process: with N processes behind a balancer the effective limit is up
// to N times higher, which is acceptable for abuse control.
func (s *Server) rateLimit(max int) fiber.Handler {
	return limiter.New(limiter.Config{
		Max:          max,
		Expiration:   time.Minute,
		KeyGenerator: func(c *fiber.Ctx) string { return limitKey(s.clientIP(c)) },
		LimitReached: func(c *fiber.Ctx) error {
			return veza.Errorf(veza.KindRateLimited, "rate_limited", "too many requests; retry after %s seconds", c.GetRespHeader(fiber.HeaderRetryAfter))
		},
	})
}
