package http

import (
	_ "embed"

	"github.com/gofiber/fiber/v2"
)

// openAPI documents /v1, /admin and /webhooks. A test fails when a route is
// registered without being documented here.
//
//go:embed openapi.json
var openAPI []byte

func handleOpenAPI() fiber.Handler {
	return func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(openAPI)
	}
}
