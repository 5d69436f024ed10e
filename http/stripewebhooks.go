package http

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/veza/backend"
	"github.com/veza/backend/obs"
	"github.com/veza/backend/store"
	"github.com/veza/backend/stripeconnect"
)

// StripeSignatureHeader carries Stripe's webhook signature.
const StripeSignatureHeader = "Stripe-Signature"

// stripeEvent is what we read of a Stripe event: leniently, whatever its
// API version (a signed event is never refused for a field we do not use).
type stripeEvent struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Account string `json:"account"`
	Data    struct {
		Object json.RawMessage `json:"object"`
	} `json:"data"`
}

type stripeObject struct {
	ID             string `json:"id"`
	PayoutsEnabled *bool  `json:"payouts_enabled"`
	Destination    string `json:"destination"`
	FailureCode    string `json:"failure_code"`
}

var errStripeWebhooksOff = veza.Errorf(veza.KindUnavailable, "stripe_webhooks_disabled", "Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET)")

// handleStripeWebhook receives Stripe Connect's deliveries. Each one under
// the cap writes one log row. The signature is checked with stripe-go
// (webhook.ValidatePayload, which also bounds the timestamp's age); a valid
// event is applied once, on its id, in the transaction that logs it:
// account.updated records the seller's payouts_enabled (read again at
// Stripe when it can be: deliveries are not ordered), payout.failed is
// told to ops.
func (s *Server) handleStripeWebhook() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if c.Request().Header.ContentLength() > MaxWebhookBody || len(c.Body()) > MaxWebhookBody {
			return veza.Errorf(veza.KindTooLarge, "body_too_large", "webhook body is over 64 KB")
		}
		if s.opts.StripeWebhookSecret == "" {
			return errStripeWebhooksOff
		}
		body := c.Body()
		ctx := c.UserContext()
		entry := &store.StripeWebhook{SourceIP: optional(s.clientIP(c)), Payload: storablePayload(body)}
		if err := webhook.ValidatePayload(body, c.Get(StripeSignatureHeader), s.opts.StripeWebhookSecret); err != nil {
			setWebhookResult(c, obs.WebhookSignatureInvalid)
			inv, err := s.invalidDelivery(c, entry.SourceIP, body)
			if err != nil {
				return err
			}
			entry.Payload, entry.PayloadSHA256, entry.PayloadBytes = inv.prefix, &inv.digest, &inv.size
			entry.ProcessingResult = store.ResultSignatureInvalid
			if _, err := store.InsertStripeWebhook(ctx, s.opts.DB.Primary(), entry); err != nil {
				s.log.Error().Ctx(c.UserContext()).Err(err).Msg("could not log an invalid Stripe webhook delivery")
			}
			return veza.Errorf(veza.KindInvalid, "invalid_signature", "missing or invalid Stripe signature")
		}
		entry.SignatureValid = true
		var ev stripeEvent
		if err := json.Unmarshal(body, &ev); err != nil || ev.ID == "" || len(ev.ID) > 255 || len(ev.Type) > 128 || len(ev.Account) > 255 ||
			strings.ContainsRune(ev.ID+ev.Type+ev.Account, 0) {
			entry.ProcessingResult = store.ResultError("unparseable Stripe event")
			if _, err := store.InsertStripeWebhook(ctx, s.opts.DB.Primary(), entry); err != nil {
				s.log.Error().Ctx(c.UserContext()).Err(err).Msg("could not log an unparseable Stripe webhook delivery")
			}
			return veza.Errorf(veza.KindInvalid, "invalid_event", "webhook body is not a Stripe event")
		}
		entry.EventID, entry.EventType = &ev.ID, optional(ev.Type)
		var obj stripeObject
		_ = json.Unmarshal(ev.Data.Object, &obj) // lenient: unused fields and types are ignored
		obj.ID = strings.ReplaceAll(obj.ID, "\x00", "")
		account := ev.Account
		if ev.Type == "account.updated" && obj.ID != "" && len(obj.ID) <= 255 {
			account = obj.ID
		}
		entry.AccountID = optional(account)

		// account.updated: Stripe's current word, read outside any
		// transaction (an older delivery must not win over a newer one).
		enabled := obj.PayoutsEnabled
		readAccount := func() (*bool, error) {
			fresh, err := s.opts.Stripe.GetAccount(ctx, account)
			switch {
			case errors.Is(err, stripeconnect.ErrAccountUnknown):
				f := false
				return &f, nil
			case err != nil:
				return nil, errStripeUnavailable // Stripe redelivers
			}
			return &fresh.PayoutsEnabled, nil
		}
		if ev.Type == "account.updated" && account != "" && s.opts.Stripe != nil {
			// A redelivery of an applied event reads nothing at Stripe:
			// it is logged as a duplicate below.
			seen, err := store.StripeEventSeen(ctx, s.opts.DB.Primary(), ev.ID)
			if err != nil {
				return err
			}
			if !seen {
				if enabled, err = readAccount(); err != nil {
					return s.stripeUnread(c, entry, ev.ID, account, err)
				}
			}
		}

		entry.ProcessingResult = store.ResultOK
		switch ev.Type {
		case "account.updated", "payout.failed", "transfer.reversed":
		default:
			entry.ProcessingResult = store.ResultSkipped
		}
		err := s.opts.DB.InTx(ctx, func(tx pgx.Tx) error {
			first, err := store.InsertStripeWebhook(ctx, tx, entry)
			if err != nil || !first {
				if err == nil {
					setWebhookResult(c, obs.WebhookSkipped)
					return c.JSON(fiber.Map{"status": "duplicate"})
				}
				return err
			}
			log := s.log.With().Str("stripe_event_id", ev.ID).Str("event_type", ev.Type).Str("account_id", account).Logger()
			switch ev.Type {
			case "account.updated":
				if enabled != nil && account != "" {
					// Two deliveries can read Stripe on either side of a
					// change and commit in the other order. A change is
					// read again under the sellers' row lock, so the last
					// write is a read made after every earlier write.
					// Changes are rare (onboarding), so the held read is.
					current, found, err := store.LockPayoutsEnabled(ctx, tx, account)
					if err != nil {
						return err
					}
					if found && (current == nil || *current != *enabled) && s.opts.Stripe != nil {
						if enabled, err = readAccount(); err != nil {
							return err
						}
					}
					n, err := store.SetPayoutsEnabled(ctx, tx, account, *enabled)
					if err != nil {
						return err
					}
					released := 0
					if *enabled {
						if released, err = s.opts.Settle.ReleaseAccountPayouts(ctx, tx, s.opts.Inserter, account); err != nil {
							return err
						}
					}
					log.Info().Bool("payouts_enabled", *enabled).Int64("sellers", n).Int("payouts_released", released).Msg("Stripe account updated")
				}
			case "payout.failed":
				log.Error().Str("payout_id", obj.ID).Str("failure_code", obj.FailureCode).
					Msg("a seller's bank payout failed at Stripe: the money stays in their Stripe balance; ask them to fix their bank details in Stripe")
			case "transfer.reversed":
				log.Info().Str("transfer_id", obj.ID).Msg("Stripe reports a transfer reversed")
			}
			setWebhookResult(c, entry.ProcessingResult) // ok, or skipped: a type we do not act on
			return c.JSON(fiber.Map{"status": "accepted"})
		})
		if errors.Is(err, errStripeUnavailable) {
			return s.stripeUnread(c, entry, ev.ID, account, err) // the read under the lock: rolled back
		}
		return err
	}
}

// stripeUnread answers a delivery that needed a Stripe read Stripe did not
// answer: logged, not recorded as seen, so Stripe's redelivery is applied.
func (s *Server) stripeUnread(c *fiber.Ctx, entry *store.StripeWebhook, eventID, account string, err error) error {
	ctx := c.UserContext()
	entry.ProcessingResult = store.ResultError("the account could not be read at Stripe; not applied (Stripe redelivers)")
	if lerr := store.LogStripeWebhook(ctx, s.opts.DB.Primary(), entry); lerr != nil {
		s.log.Error().Ctx(ctx).Err(lerr).Msg("could not log a Stripe webhook delivery")
	}
	s.log.Warn().Ctx(ctx).Str("stripe_event_id", eventID).Str("account_id", account).
		Msg("Stripe account.updated not applied: Stripe could not be read; answered 503 so Stripe delivers it again")
	return err
}
