package http

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	veza "github.com/veza/backend"
	"github.com/veza/backend/store"
)

const idempotencyLocal = "veza.idempotency"

// idempotencyKey is the claimed Idempotency-Key of the request being served.
type idempotencyKey struct {
	userID uuid.UUID
	key    string
	// Resource is what an earlier attempt with this key created (an order)
	// before it failed in a way worth retrying; nil on a first attempt.
	Resource *uuid.UUID
}

// Link records, in the handler's transaction, what this key's request
// created, so a retry after a transient failure resumes it instead of
// creating another.
func (k *idempotencyKey) Link(ctx context.Context, tx pgx.Tx, id uuid.UUID) error {
	return store.SetIdempotencyOrder(ctx, tx, k.userID, k.key, id)
}

// idempotencyOf is the key the idempotent middleware claimed.
func idempotencyOf(c *fiber.Ctx) *idempotencyKey {
	k, _ := c.Locals(idempotencyLocal).(*idempotencyKey)
	return k
}

// requireIdempotencyKey refuses a request without a usable Idempotency-Key
// (400), before anything that would make it a 503 or claim the key.
func requireIdempotencyKey(c *fiber.Ctx) error {
	key := c.Get("Idempotency-Key")
	if key == "" {
		return veza.Errorf(veza.KindInvalid, "idempotency_key_required", "the Idempotency-Key header is required")
	}
	if len(key) > 255 || !plainText(key) {
		// The key is stored as text: PostgreSQL would refuse bytes that
		// are not UTF-8 with a 500.
		return veza.Errorf(veza.KindInvalid, "invalid_idempotency_key", "Idempotency-Key must be at most 255 characters of UTF-8 text without control characters")
	}
	return c.Next()
}

// idempotent makes a mutating endpoint safe to retry (API.md). The first
// request with a key claims it with a lease, runs the handler and stores
// its answer; a repeat of the same request gets that answer again (header
// Idempotent-Replayed: true); another request with the key, 422
// idempotency_key_reused; while the first still runs, 409
// idempotency_key_in_progress. An answer that says "try again" (5xx, 429)
// is not stored: the key is released, and the retry resumes. Errors are
// rendered by the one error handler before the answer is stored.
//
// It runs after requireAuth (keys are per user), decoded (a request that
// does not validate claims no key; the decoded request is what identifies
// it) and requireIdempotencyKey.
func (s *Server) idempotent(c *fiber.Ctx) error {
	hash, err := requestHash(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	k := &idempotencyKey{userID: currentUser(c).ID, key: strings.Clone(c.Get("Idempotency-Key"))} // Fiber reuses its buffers
	rec, claimed, err := store.ClaimIdempotencyKey(ctx, s.opts.DB.Primary(), k.userID, k.key, hash)
	if err != nil {
		return err
	}
	if !bytes.Equal(rec.RequestHash, hash) {
		return veza.Errorf(veza.KindUnprocessable, "idempotency_key_reused", "this Idempotency-Key was used with a different request body")
	}
	if rec.ResponseStatus != nil {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		c.Set("Idempotent-Replayed", "true")
		return c.Status(*rec.ResponseStatus).Send(rec.ResponseBody)
	}
	if !claimed {
		return veza.Errorf(veza.KindConflict, "idempotency_key_in_progress", "a request with this Idempotency-Key is still being processed; retry shortly")
	}
	k.Resource = rec.OrderID
	c.Locals(idempotencyLocal, k)

	if err := c.Next(); err != nil {
		if err := s.handleError(c, err); err != nil {
			return err
		}
	}
	status := c.Response().StatusCode()
	if status >= fiber.StatusInternalServerError || status == fiber.StatusTooManyRequests {
		if err := store.ReleaseIdempotencyKey(context.WithoutCancel(ctx), s.opts.DB.Primary(), k.userID, k.key); err != nil {
			// The answer stands; the retry waits for the lease to run out.
			s.log.Error().Ctx(c.UserContext()).Err(err).Str("request_id", requestID(c)).Msg("could not release an idempotency key")
		}
		return nil
	}
	var body []byte
	if status != fiber.StatusNoContent { // Fiber fills a 204's unsent body with its status text
		body = bytes.Clone(c.Response().Body())
	}
	return store.FinishIdempotencyKey(ctx, s.opts.DB.Primary(), k.userID, k.key, status, body)
}

// identified is a request that says what identifies it for its key, when
// that is not the whole decoded request.
type identified interface{ idempotencyIdentity() any }

// requestHash identifies a request for its key: the SHA-256 of its decoded
// form (what decoded put in c) as JSON, so the same request reformatted, or
// with a field name in another case, is the same request.
func requestHash(c *fiber.Ctx) ([]byte, error) {
	req := c.Locals(requestLocal)
	if req == nil {
		return nil, errors.New("idempotent needs decoded before it on the route")
	}
	if id, ok := req.(identified); ok {
		req = id.idempotencyIdentity()
	}
	raw, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	return sum[:], nil
}
