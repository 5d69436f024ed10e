package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/veza/backend"
)

// validator is implemented by request types: validation is a method on the
// request, so each handler reads decode → validate → act.
type validator interface {
	Validate() error
}

// decodeJSON reads exactly one JSON object into dst, refusing unknown fields
// and trailing data (a typo'd field must not be silently ignored), then
// validates it. Errors are client errors in the API shape.
func decodeJSON(c *fiber.Ctx, dst validator) error {
	body := bytes.TrimLeft(c.Body(), " \t\r\n")
	if len(body) > 0 && body[0] != '{' {
		// null, arrays and scalars would decode into a zero request
		// (found by the hostile-input suite: `null` started a sweep).
		return veza.Errorf(veza.KindInvalid, "invalid_json", "request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return invalidJSON(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return veza.Errorf(veza.KindInvalid, "invalid_json", "request body must be a single JSON object")
	}
	if escapesNUL(body) {
		// PostgreSQL's TEXT refuses NUL: a refund reason holding one was a
		// 500 with the refund rolled back (found by FuzzJSONBodies' seeds).
		return veza.Errorf(veza.KindInvalid, "invalid_json", `strings must not contain NUL (\u0000)`)
	}
	return dst.Validate()
}

// escapesNUL reports whether a well-formed JSON text has \u0000 in a
// string. In valid JSON a backslash only starts an escape, so reading the
// escapes pairwise cannot mistake "\\u0000" (a backslash, then text).
// decoded is a middleware that decodes and validates the body into a new R
// (decodeJSON) before the handlers after it run: a request that does not
// parse or validate is refused before anything else, an Idempotency-Key
// claim included, and writes nothing. They read it with requestOf.
func decoded[R any, P interface {
	*R
	validator
}]() fiber.Handler {
	return func(c *fiber.Ctx) error {
		req := P(new(R))
		if err := decodeJSON(c, req); err != nil {
			return err
		}
		c.Locals(requestLocal, req)
		return c.Next()
	}
}

const requestLocal = "veza.request"

// requestOf is the request decoded put in c.
func requestOf[R any](c *fiber.Ctx) *R {
	r, _ := c.Locals(requestLocal).(*R)
	return r
}

func escapesNUL(body []byte) bool {
	for i := 0; i+1 < len(body); i++ {
		if body[i] != '\\' {
			continue
		}
		if body[i+1] == 'u' && bytes.HasPrefix(body[i+2:], []byte("0000")) {
			return true
		}
		i++ // skip the escaped character
	}
	return false
}

func invalidJSON(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF):
		return veza.Errorf(veza.KindInvalid, "invalid_json", "request body is empty; a JSON object is expected")
	case errors.As(err, &typeErr):
		return veza.Errorf(veza.KindInvalid, "invalid_json", "field %q must be of type %s", typeErr.Field, typeErr.Type)
	case errors.As(err, &syntaxErr):
		return veza.Errorf(veza.KindInvalid, "invalid_json", "malformed JSON at byte %d", syntaxErr.Offset)
	case bytes.HasPrefix([]byte(err.Error()), []byte("json: unknown field ")):
		return veza.Errorf(veza.KindInvalid, "invalid_json", "unknown field %s", err.Error()[len("json: unknown field "):])
	default:
		return veza.Errorf(veza.KindInvalid, "invalid_json", "request body is not valid JSON: %s", trimErr(err))
	}
}

func trimErr(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return fmt.Sprintf("%q", s)
}

// unprocessable is a 422 naming the field.
func unprocessable(field, format string, args ...any) error {
	return veza.Errorf(veza.KindUnprocessable, "validation_failed", "%s: %s", field, fmt.Sprintf(format, args...))
}

// plainText reports whether s is UTF-8 without control characters (NUL,
// which PostgreSQL's TEXT refuses, and the rest of C0, DEL and C1): what a
// title, a key or a filter may hold.
func plainText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}
