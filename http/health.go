package http

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"
)

// handleHealthz answers while the process is up; it touches nothing.
func handleHealthz() fiber.Handler {
	return func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"status": "ok"})
	}
}

// handleReadyz answers 200 when ready (database answers, schema current) and
// 503 otherwise, so a load balancer stops routing to this process.
func handleReadyz(ready func(ctx context.Context) error) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if ready != nil {
			ctx, cancel := context.WithTimeout(c.UserContext(), 3*time.Second)
			defer cancel()
			if err := ready(ctx); err != nil {
				return c.Status(fiber.StatusServiceUnavailable).JSON(errorBody{Error: errorDetail{
					Code: "not_ready", Message: err.Error(),
				}})
			}
		}
		return c.JSON(fiber.Map{"status": "ok"})
	}
}
