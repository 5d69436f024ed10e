package http

import (
	"net/http/httptest"
	"testing"
	"unsafe"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/require"
)

// The request id outlives its request (a webhook delivery waiting for its
// group commit keeps it), so it must not point into fasthttp's header
// buffer, which the next request on that context overwrites.
func TestRequestIDIsACopyOfTheHeader(t *testing.T) {
	t.Parallel()
	app := fiber.New()
	app.Use(assignRequestID())
	var shared bool
	app.Get("/", func(c *fiber.Ctx) error {
		id, header := requestID(c), c.Request().Header.Peek(fiber.HeaderXRequestID)
		require.Equal(t, "req-from-the-client", id)
		shared = unsafe.StringData(id) == unsafe.SliceData(header)
		return nil
	})
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set(fiber.HeaderXRequestID, "req-from-the-client")
	_, err := app.Test(req, -1)
	require.NoError(t, err)
	require.False(t, shared, "the id shares memory with the request's header buffer")
}
