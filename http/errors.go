package http

import (
	"errors"
	nethttp "net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/veza/backend"
)

// errorBody is the API.md error shape.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

var kindStatus = map[veza.ErrorKind]int{
	veza.KindInternal:      fiber.StatusInternalServerError,
	veza.KindInvalid:       fiber.StatusBadRequest,
	veza.KindUnprocessable: fiber.StatusUnprocessableEntity,
	veza.KindUnauthorized:  fiber.StatusUnauthorized,
	veza.KindForbidden:     fiber.StatusForbidden,
	veza.KindNotFound:      fiber.StatusNotFound,
	veza.KindConflict:      fiber.StatusConflict,
	veza.KindTooLarge:      fiber.StatusRequestEntityTooLarge,
	veza.KindRateLimited:   fiber.StatusTooManyRequests,
	veza.KindUnavailable:   fiber.StatusServiceUnavailable,
}

// fiberCodes names Fiber's own errors (unknown route, body over the limit...).
var fiberCodes = map[int]string{
	fiber.StatusBadRequest:            "bad_request",
	fiber.StatusUnauthorized:          "unauthorized",
	fiber.StatusForbidden:             "forbidden",
	fiber.StatusNotFound:              "not_found",
	fiber.StatusMethodNotAllowed:      "method_not_allowed",
	fiber.StatusRequestEntityTooLarge: "body_too_large",
	fiber.StatusUnsupportedMediaType:  "unsupported_media_type",
	fiber.StatusTooManyRequests:       "rate_limited",
	fiber.StatusRequestTimeout:        "request_timeout",
	fiber.StatusServiceUnavailable:    "unavailable",
}

// handleError is Fiber's ErrorHandler: every error a handler returns, and
// Fiber's own, becomes the API.md shape. Internal errors are logged here,
// once, and shown to the client as a bare "internal_error".
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	status, code, msg := fiber.StatusInternalServerError, "internal_error", "internal server error"
	var fe *fiber.Error
	switch ve := veza.AsError(err); {
	case ve != nil && ve.Kind != veza.KindInternal:
		status, code, msg = kindStatus[ve.Kind], ve.Code, ve.Message
	case errors.As(err, &fe):
		status, msg = fe.Code, fe.Message
		code = fiberCodes[fe.Code]
		if code == "" {
			code = "http_" + nethttp.StatusText(fe.Code)
		}
		if fe.Code == fiber.StatusRequestEntityTooLarge {
			msg = "request body is too large"
		}
	default:
		s.log.Error().Ctx(c.UserContext()).Err(err).Str("request_id", requestID(c)).
			Str("method", c.Method()).Str("path", c.Path()).Msg("internal error")
	}
	if c.Request().IsBodyStream() {
		// The body was not read to its end: the rest of it must not be
		// parsed as the next request on this connection.
		c.Context().SetConnectionClose()
	}
	if status == fiber.StatusTooManyRequests && c.GetRespHeader(fiber.HeaderRetryAfter) == "" {
		c.Set(fiber.HeaderRetryAfter, "60")
	}
	return c.Status(status).JSON(errorBody{Error: errorDetail{Code: code, Message: msg}})
}
