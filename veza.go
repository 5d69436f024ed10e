// Package veza holds the domain types every layer of the Veza backend shares:
// the application error with its kinds and codes. Packages below this one
// (http, jobs, store, providers) import it; it imports none of them, so no
// cycle can form.
package veza

import (
	"errors"
	"fmt"
)

// ErrorKind classifies an application error. The HTTP layer maps a kind to a
// status code; everything else branches on kinds, never on message text.
type ErrorKind int

const (
	// KindInternal is an unexpected failure. Its message is never shown to
	// clients; it is logged once at the edge.
	KindInternal      ErrorKind = iota
	KindInvalid                 // 400: the request cannot be understood
	KindUnprocessable           // 422: understood, but a field is not acceptable
	KindUnauthorized            // 401
	KindForbidden               // 403
	KindNotFound                // 404
	KindConflict                // 409
	KindTooLarge                // 413
	KindRateLimited             // 429
	KindUnavailable             // 503
)

// Error is an error meant for a client: a stable snake_case Code and a human
// Message, both safe to show. Internal failures are plain errors instead.
type Error struct {
	Kind    ErrorKind
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error of the given kind and code.
func Errorf(kind ErrorKind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsError unwraps err to an *Error, or returns nil when err carries none.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// IsKind reports whether err carries an *Error of the given kind.
func IsKind(err error, kind ErrorKind) bool {
	e := AsError(err)
	return e != nil && e.Kind == kind
}
