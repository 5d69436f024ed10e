package http

import (
	"context"
	"fmt"
	"github.com/gofiber/fiber/v2/middleware/helmet"
	"io"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
)

const localRequestID = "request_id"

// assignRequestID honours a well-formed incoming X-Request-Id (Hyperswitch sends
// one; a load balancer may too) and makes a UUID otherwise. Oversized or
// non-printable values are replaced: they end up in logs and log rows.
func assignRequestID() fiber.Handler {
	return func(c *fiber.Ctx) error {
		// c.Get aliases fasthttp's buffer, reused after the request: a copy,
		// since the id outlives the handler (a webhook delivery waiting
		// for its group commit keeps it).
		id := strings.Clone(c.Get(fiber.HeaderXRequestID))
		if !validRequestID(id) {
			id = uuid.NewString()
		}
		c.Locals(localRequestID, id)
		c.Set(fiber.HeaderXRequestID, id)
		return c.Next()
	}
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// requestID returns the id assignRequestID stored. Fiber reuses its buffers, so
// the string was copied (uuid or c.Get copy) when stored.
func requestID(c *fiber.Ctx) string {
	id, _ := c.Locals(localRequestID).(string)
	return id
}

// accessLog writes one structured line per request. It renders a handler's
// error itself so the logged status is the one the client gets.
func (s *Server) accessLog() fiber.Handler {
	return func(c *fiber.Ctx) error {
		start := time.Now()
		if err := c.Next(); err != nil {
			if herr := s.handleError(c, err); herr != nil {
				return herr
			}
		}
		status := c.Response().StatusCode()
		ev := s.log.Info()
		if status >= 500 {
			ev = s.log.Warn()
		}
		ev.Ctx(c.UserContext()).Str("request_id", requestID(c)).
			Str("method", c.Method()).
			Str("path", c.Path()).
			Int("status", status).
			Float64("duration_ms", float64(time.Since(start).Microseconds())/1000).
			Int("bytes_out", len(c.Response().Body())).
			Str("ip", s.clientIP(c)).
			Msg("http request")
		return nil
	}
}

// recoverPanic turns a handler panic into an internal error (a JSON 500)
// and keeps the stack for the log, never for the client.
func (s *Server) recoverPanic() fiber.Handler {
	return func(c *fiber.Ctx) (err error) {
		defer func() {
			if r := recover(); r != nil {
				s.log.Error().Ctx(c.UserContext()).Str("request_id", requestID(c)).Str("path", c.Path()).
					Str("panic", fmt.Sprint(r)).Str("stack", string(debug.Stack())).Msg("handler panicked")
				err = fmt.Errorf("panic in handler: %v", r)
			}
		}()
		return c.Next()
	}
}

// requestContext gives handlers a context with a deadline: Fiber's
// UserContext is context.Background() unless set.
func (s *Server) requestContext() fiber.Handler {
	return func(c *fiber.Ctx) error {
		// UserContext is Background unless telemetry put the request's
		// span in it.
		ctx, cancel := context.WithTimeout(c.UserContext(), s.opts.RequestTimeout)
		defer cancel()
		c.SetUserContext(ctx)
		return c.Next()
	}
}

// limitBody enforces DefaultBodyLimit on every route but the upload: with
// StreamRequestBody, fasthttp streams bodies over the limit (and chunked
// ones) instead of refusing them. Over the limit by Content-Length is refused
// before reading; a stream is read up to the limit and kept as the body.
//
// A compressed body is refused first (415): Fiber's Body() inflates every
// listed Content-Encoding with no limit, so a few KB on the wire could be
// gigabytes in memory before any check. No provider compresses its
// webhooks, and the API takes JSON and uploads as they are.
func (s *Server) limitBody(max int, streamed func(c *fiber.Ctx) bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if enc := strings.TrimSpace(string(c.Request().Header.ContentEncoding())); enc != "" && !strings.EqualFold(enc, "identity") {
			return fiber.NewError(fiber.StatusUnsupportedMediaType, "request bodies are not accepted compressed (Content-Encoding); send them as they are")
		}
		if streamed(c) {
			return c.Next()
		}
		if c.Request().Header.ContentLength() > max {
			return fiber.ErrRequestEntityTooLarge
		}
		if c.Request().IsBodyStream() {
			data, err := io.ReadAll(io.LimitReader(c.Context().RequestBodyStream(), int64(max)+1))
			if err != nil {
				return fiber.NewError(fiber.StatusBadRequest, "could not read the request body")
			}
			if len(data) > max {
				return fiber.ErrRequestEntityTooLarge
			}
			c.Request().SetBodyRaw(data)
		}
		return c.Next()
	}
}

// securityHeaders sets, on every answer (River UI's included), what a
// browser needs to not sniff types, leak URLs in Referer, or frame the
// service (River UI's buttons under a clickjacking overlay). HSTS only when
// the public URL is https (HSTS): the service cannot tell TLS at a balancer
// from a forged X-Forwarded-Proto. Cross-origin policies stay open: a
// frontend on another origin calls the API and plays its streams.
func (s *Server) securityHeaders() fiber.Handler {
	h := helmet.New(helmet.Config{
		ContentTypeNosniff:        "nosniff",
		XFrameOptions:             "DENY",
		ContentSecurityPolicy:     "frame-ancestors 'none'",
		ReferrerPolicy:            "no-referrer",
		CrossOriginEmbedderPolicy: "unsafe-none",
		CrossOriginOpenerPolicy:   "same-origin",
		CrossOriginResourcePolicy: "cross-origin",
	})
	return func(c *fiber.Ctx) error {
		if s.opts.HSTS {
			c.Set(fiber.HeaderStrictTransportSecurity, "max-age=31536000; includeSubDomains")
		}
		return h(c)
	}
}
