package http

import (
	"github.com/gofiber/fiber/v2/middleware/adaptor"
)

// routes maps the whole API. Read it top to bottom to see what the service
// answers.
func (s *Server) routes() {
	s.app.Use(assignRequestID(), s.accessLog(), s.recoverPanic(), s.requestContext())

	s.app.Get("/healthz", handleHealthz())
	s.app.Get("/readyz", handleReadyz(s.opts.ReadyFunc))

	if s.opts.RiverUI != nil {
		s.app.Use("/riverui", adaptor.HTTPHandler(s.opts.RiverUI))
	}
}
