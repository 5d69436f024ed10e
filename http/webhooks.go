package http

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/veza/backend"
	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/ingest"
	"github.com/veza/backend/obs"
	"github.com/veza/backend/store"
)

// MaxWebhookBody caps a Hyperswitch delivery (SPEC §4).
const MaxWebhookBody = 64 << 10

// InvalidWebhookPrefix is how much of an invalid-signature delivery's body
// is kept (with its SHA-256 and length).
const InvalidWebhookPrefix = 4 << 10

// handleHyperswitchWebhook receives Hyperswitch's deliveries. Every delivery
// under the cap writes exactly one log row, valid or not. A valid one
// commits its log row, its event id and its process-event job in one
// transaction (package ingest group-commits them) and answers 200 at once;
// processing happens in the job.
func (s *Server) handleHyperswitchWebhook() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if c.Request().Header.ContentLength() > MaxWebhookBody || len(c.Body()) > MaxWebhookBody {
			return veza.Errorf(veza.KindTooLarge, "body_too_large", "webhook body is over 64 KB")
		}
		body := c.Body()
		ctx := c.UserContext()
		// Fiber reuses its buffers once the handler returns, and a delivery
		// can outlive its handler in the committer's queue: copy.
		entry := &store.WebhookLog{
			RequestID: requestID(c),
			SourceIP:  optional(s.clientIP(c)),
			UserAgent: optional(truncate(string(c.Request().Header.UserAgent()), 512)),
			Payload:   storablePayload(body),
		}

		if !hyperswitch.VerifySignature(s.opts.WebhookSecret, body, c.Get(hyperswitch.SignatureHeader)) {
			setWebhookResult(c, obs.WebhookSignatureInvalid)
			inv, err := s.invalidDelivery(c, entry.SourceIP, body)
			if err != nil {
				return err
			}
			entry.Payload, entry.PayloadSHA256, entry.PayloadBytes = inv.prefix, &inv.digest, &inv.size
			entry.EventType = optional(truncate(hyperswitch.EventTypeOf(body), 64))
			entry.ProcessingResult = store.ResultSignatureInvalid
			if _, err := store.InsertWebhookLog(ctx, s.opts.DB.Primary(), entry); err != nil {
				// Evidence lost, but the answer to the sender stays 401.
				s.log.Error().Ctx(c.UserContext()).Err(err).Str("request_id", entry.RequestID).Msg("could not log an invalid webhook delivery")
			}
			return veza.Errorf(veza.KindUnauthorized, "invalid_signature", "missing or invalid webhook signature")
		}
		entry.SignatureValid = true

		event, perr := hyperswitch.ParseEvent(body)
		if perr != nil {
			entry.EventType = optional(truncate(hyperswitch.EventTypeOf(body), 64))
			entry.ProcessingResult = store.ResultError("unparseable event: " + perr.Error())
			if _, err := store.InsertWebhookLog(ctx, s.opts.DB.Primary(), entry); err != nil {
				s.log.Error().Ctx(c.UserContext()).Err(err).Str("request_id", entry.RequestID).Msg("could not log an unparseable webhook delivery")
			}
			return veza.Errorf(veza.KindInvalid, "invalid_event", "webhook body is not a Hyperswitch event")
		}
		// The log row's id is made here (time-ordered, kind to the index)
		// so one statement can store a whole batch and name each row.
		id, err := uuid.NewV7()
		if err != nil {
			return err
		}
		entry.ID, entry.EventID = id, &event.EventID
		entry.EventType = &event.EventType
		queued, err := s.deliveries.Store(ctx, ingest.Delivery{Log: entry, Object: event.Content.Object, Metadata: obs.TraceMetadata(ctx)})
		if err != nil {
			// Nothing could be stored: a 5xx makes Hyperswitch redeliver.
			return err
		}
		if queued {
			setWebhookResult(c, obs.WebhookQueued)
		} else {
			setWebhookResult(c, obs.WebhookSkipped)
		}
		return c.JSON(fiber.Map{"status": "accepted"})
	}
}

// storablePayload keeps the body as text when PostgreSQL can store it:
// invalid UTF-8 (and NUL, which TEXT refuses) is stored as empty.
func storablePayload(body []byte) string {
	if !utf8.Valid(body) || strings.IndexByte(string(body), 0) >= 0 {
		return ""
	}
	return string(body)
}

// invalidDelivery is what an invalid-signature delivery keeps: a bounded
// prefix of its body, the whole body's SHA-256 and length. Anyone can send
// these, so past WEBHOOK_INVALID_PER_MINUTE from the client's address the
// answer is 429 and nothing is stored (valid deliveries never count).
type invalidDelivery struct {
	prefix, digest string
	size           int
}

func (s *Server) invalidDelivery(c *fiber.Ctx, sourceIP *string, body []byte) (invalidDelivery, error) {
	if sourceIP != nil && !s.invalidWebhooks.Allow(limitKey(*sourceIP)) {
		c.Set(fiber.HeaderRetryAfter, "60")
		return invalidDelivery{}, veza.Errorf(veza.KindRateLimited, "rate_limited", "too many webhook deliveries with an invalid signature from this address")
	}
	sum := sha256.Sum256(body)
	return invalidDelivery{prefix: truncate(storablePayload(body), InvalidWebhookPrefix), digest: hex.EncodeToString(sum[:]), size: len(body)}, nil
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// handleAdminWebhooks lists recent deliveries for forensics.
func (s *Server) handleAdminWebhooks() fiber.Handler {
	return func(c *fiber.Ctx) error {
		var valid *bool
		switch c.Query("signature_valid") {
		case "":
		case "true":
			v := true
			valid = &v
		case "false":
			v := false
			valid = &v
		default:
			return unprocessable("signature_valid", "must be true or false")
		}
		limit, err := queryLimit(c, 50, 500)
		if err != nil {
			return err
		}
		eventType := c.Query("event_type")
		if len(eventType) > 64 || !plainText(eventType) {
			return unprocessable("event_type", "must be an event type (dispute_lost) or a family (dispute), at most 64 bytes")
		}
		logs, err := store.ListWebhookLogs(c.UserContext(), s.opts.DB.ForRead(), valid, eventType, limit)
		if err != nil {
			return err
		}
		if logs == nil {
			logs = []store.WebhookLog{}
		}
		return c.JSON(fiber.Map{"webhooks": logs})
	}
}

func queryLimit(c *fiber.Ctx, def, max int) (int, error) {
	raw := c.Query("limit")
	if raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > max {
		return 0, unprocessable("limit", "must be an integer between 1 and %d", max)
	}
	return n, nil
}
