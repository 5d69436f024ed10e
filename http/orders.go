package http

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/veza/backend"
	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/ratelimit"
	"github.com/veza/backend/settle"
	"github.com/veza/backend/store"
)

const maxOrderTracks = 50

type createOrderRequest struct {
	TrackIDs []string `json:"track_ids"`

	ids []uuid.UUID
}

// idempotencyIdentity: an order request is its track ids, hashed as the
// keys stored before the idempotent middleware were (so a client retrying
// across that deploy gets its first answer).
func (r *createOrderRequest) idempotencyIdentity() any { return r.TrackIDs }

func (r *createOrderRequest) Validate() error {
	if len(r.TrackIDs) == 0 {
		return unprocessable("track_ids", "at least one track id is required")
	}
	if len(r.TrackIDs) > maxOrderTracks {
		return unprocessable("track_ids", "at most %d tracks per order", maxOrderTracks)
	}
	seen := map[uuid.UUID]bool{}
	for _, s := range r.TrackIDs {
		id, err := uuid.Parse(s)
		if err != nil || len(s) != 36 {
			return unprocessable("track_ids", "%q is not a track id", truncate(s, 64))
		}
		if seen[id] {
			return unprocessable("track_ids", "track %s is listed twice", id)
		}
		seen[id] = true
		r.ids = append(r.ids, id)
	}
	return nil
}

// truncate makes s storable and printable: invalid UTF-8 becomes U+FFFD,
// NUL (which PostgreSQL's TEXT refuses) goes, and the result is cut to at
// most n bytes on a character boundary.
func truncate(s string, n int) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// refundJSON is a refund as its buyer sees it: a failed one carries a
// stable code and message, never the provider's raw text (kept for ops in
// refunds.error_message and the logs).
type refundJSON struct {
	store.Refund
	// Always nil: it shadows the refund's error_message (the provider's
	// raw text, for ops). A "-" tag would not shadow it.
	ErrorMessage *string   `json:"error_message,omitempty"`
	Error        *apiError `json:"error"`
}

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

const automaticRefundReason = "returned automatically: the payment taken did not match the order"

var refundFailed = apiError{Code: "refund_failed",
	Message: "The payment provider could not make this refund. The order is as it was before the request; contact support if you still want your money back."}

func buyerRefunds(refunds []store.Refund) []refundJSON {
	out := make([]refundJSON, len(refunds))
	for i, r := range refunds {
		out[i] = refundJSON{Refund: r}
		if r.Automatic { // its reason is written for ops
			reason := automaticRefundReason
			out[i].Reason = &reason
		}
		if r.Status == veza.RefundFailed {
			e := refundFailed
			out[i].Error = &e
		}
	}
	return out
}

type orderItemJSON struct {
	ID       uuid.UUID `json:"id"`
	TrackID  uuid.UUID `json:"track_id"`
	Title    string    `json:"title"`
	SellerID uuid.UUID `json:"seller_id"`
	Amount   int64     `json:"amount"`
	Currency string    `json:"currency"`
}

type orderJSON struct {
	ID        uuid.UUID       `json:"id"`
	Status    string          `json:"status"`
	Amount    int64           `json:"amount"`
	Currency  string          `json:"currency"`
	PaymentID string          `json:"payment_id"`
	Items     []orderItemJSON `json:"items"`
	CreatedAt string          `json:"created_at"`
}

func toOrderJSON(o *store.Order) orderJSON {
	items := make([]orderItemJSON, len(o.Items))
	for i, it := range o.Items {
		items[i] = orderItemJSON{ID: it.ID, TrackID: it.TrackID, Title: it.Title, SellerID: it.SellerID, Amount: it.Amount, Currency: it.Currency}
	}
	return orderJSON{ID: o.ID, Status: string(o.Status), Amount: o.Amount, Currency: o.Currency, PaymentID: o.PaymentID,
		Items: items, CreatedAt: o.CreatedAt.UTC().Format("2006-01-02T15:04:05.000Z")}
}

var errPaymentsDisabled = veza.Errorf(veza.KindUnavailable, "payments_unavailable", "payments are not enabled on this server")

// requirePayments answers 503 when Hyperswitch is not configured: after the
// request's own checks (400, 422), before anything is claimed or written.
func (s *Server) requirePayments(c *fiber.Ctx) error {
	if s.opts.Hyperswitch == nil {
		return errPaymentsDisabled
	}
	return c.Next()
}

// handleCreateOrder creates a pending order and its Hyperswitch payment,
// behind decoded, requirePayments and the idempotent middleware. The order is created in one transaction
// that links it to the request's key; the payment is created outside any
// transaction with payment_id derived from the order id. When the provider
// is unreachable the answer is a 503 the key does not keep, so the client's
// retry with the same key resumes the same order and payment.
func (s *Server) handleCreateOrder() fiber.Handler {
	return func(c *fiber.Ctx) error {
		req := requestOf[createOrderRequest](c)
		ctx := c.UserContext()
		key := idempotencyOf(c)
		order, err := s.pendingOrder(ctx, currentUser(c), key, req.ids)
		if err != nil {
			return err
		}
		payment, err := s.opts.Hyperswitch.CreatePayment(ctx, hyperswitch.CreatePaymentParams{
			PaymentID:   order.PaymentID,
			Amount:      order.Amount,
			Currency:    order.Currency,
			CaptureMode: "automatic",
			Description: fmt.Sprintf("Veza order %s", order.ID),
			Metadata:    map[string]string{"order_id": order.ID.String()},
		})
		if hyperswitch.IsTransient(err) {
			if d, paced := ratelimit.AsDelay(err); paced {
				// Our pace toward Hyperswitch, not an outage: say when.
				c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(d.After.Seconds()))))
			}
			return veza.Errorf(veza.KindUnavailable, "payment_provider_unavailable", "the payment provider is unavailable; retry with the same Idempotency-Key")
		}
		if err != nil {
			// The provider refused the payment for good: the order cannot
			// be paid, and the refusal is the answer repeats get.
			s.log.Error().Ctx(c.UserContext()).Err(err).Str("order_id", order.ID.String()).Msg("payment provider refused to create the payment")
			ferr := s.opts.DB.InTx(ctx, func(tx pgx.Tx) error {
				return store.TransitionOrder(ctx, tx, order.ID, veza.OrderPending, veza.OrderFailed)
			})
			if ferr != nil && !errors.Is(ferr, veza.ErrStaleState) {
				return ferr
			}
			return veza.Errorf(veza.KindUnprocessable, "payment_rejected", "the payment provider refused this payment")
		}
		return c.Status(fiber.StatusCreated).JSON(fiber.Map{"order": toOrderJSON(order), "client_secret": payment.ClientSecret})
	}
}

// pendingOrder is the order this request's key created on an earlier
// attempt, or a new pending order for the tracks, linked to the key in the
// transaction that creates it.
func (s *Server) pendingOrder(ctx context.Context, user *store.User, key *idempotencyKey, trackIDs []uuid.UUID) (*store.Order, error) {
	if key.Resource != nil {
		return store.GetOrder(ctx, s.opts.DB.Primary(), *key.Resource)
	}
	var order *store.Order
	err := s.opts.DB.InTx(ctx, func(tx pgx.Tx) error {
		tracks, err := store.GetPurchasableTracks(ctx, tx, trackIDs)
		if err != nil {
			return err
		}
		if err := checkPurchasable(user, trackIDs, tracks); err != nil {
			return err
		}
		if order, err = store.CreateOrder(ctx, tx, user.ID, orderTracks(trackIDs, tracks)); err != nil {
			return err
		}
		return key.Link(ctx, tx, order.ID)
	})
	return order, err
}

// checkPurchasable refuses unknown or deleted tracks, one's own tracks and
// mixed currencies (one payment has one currency).
func checkPurchasable(user *store.User, ids []uuid.UUID, tracks []store.Track) error {
	found := map[uuid.UUID]store.Track{}
	for _, t := range tracks {
		found[t.ID] = t
	}
	for _, id := range ids {
		t, ok := found[id]
		if !ok {
			return veza.Errorf(veza.KindUnprocessable, "track_unavailable", "track %s does not exist or is no longer for sale", id)
		}
		if t.OwnerID == user.ID {
			return veza.Errorf(veza.KindUnprocessable, "own_track", "track %s is yours", id)
		}
		if t.Currency != tracks[0].Currency {
			return veza.Errorf(veza.KindUnprocessable, "mixed_currency", "all tracks of an order must share one currency")
		}
	}
	return nil
}

// orderTracks keeps the request's order.
func orderTracks(ids []uuid.UUID, tracks []store.Track) []store.Track {
	byID := map[uuid.UUID]store.Track{}
	for _, t := range tracks {
		byID[t.ID] = t
	}
	out := make([]store.Track, len(ids))
	for i, id := range ids {
		out[i] = byID[id]
	}
	return out
}

// errOrderNotFound: an order that does not exist or is not the caller's.
var errOrderNotFound = settle.ErrOrderNotFound

// handleGetOrder shows an order to its buyer; everyone else gets 404 (an
// order's existence is not disclosed).
func (s *Server) handleGetOrder() fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := uuid.Parse(c.Params("id"))
		if err != nil {
			return errOrderNotFound
		}
		ctx := c.UserContext()
		order, err := store.GetOrder(ctx, s.opts.DB.Primary(), id)
		if errors.Is(err, store.ErrNotFound) || (err == nil && order.BuyerID != currentUser(c).ID) {
			return errOrderNotFound
		}
		if err != nil {
			return err
		}
		refunds, err := store.OrderRefunds(ctx, s.opts.DB.Primary(), order.ID)
		if err != nil {
			return err
		}
		o := toOrderJSON(order)
		return c.JSON(fiber.Map{"id": o.ID, "status": o.Status, "amount": o.Amount, "currency": o.Currency, "payment_id": o.PaymentID,
			"items": o.Items, "created_at": o.CreatedAt, "refunds": buyerRefunds(refunds)})
	}
}
