package http

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/veza/backend"
	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/store"
)

const maxOrderTracks = 50

type createOrderRequest struct {
	TrackIDs []string `json:"track_ids"`

	ids []uuid.UUID
}

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

// handleCreateOrder creates a pending order and its Hyperswitch payment.
//
// Idempotency: the first request with a key claims it (with a lease), creates
// the order in one transaction, then creates the payment outside any
// transaction with payment_id derived from the order id, and stores its
// answer on the key. A repeat with the same body replays that answer; with
// another body it is 422. If the provider is unreachable the key is released
// unanswered, so the client's retry resumes the same order and payment.
func (s *Server) handleCreateOrder() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if s.opts.Hyperswitch == nil {
			return errPaymentsDisabled
		}
		key := c.Get("Idempotency-Key")
		if key == "" {
			return veza.Errorf(veza.KindInvalid, "idempotency_key_required", "the Idempotency-Key header is required")
		}
		if len(key) > 255 {
			return veza.Errorf(veza.KindInvalid, "invalid_idempotency_key", "Idempotency-Key must be at most 255 characters")
		}
		key = strings.Clone(key) // Fiber reuses its buffers
		var req createOrderRequest
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		canonical, _ := json.Marshal(req.TrackIDs)
		hash := sha256.Sum256(canonical)

		ctx := c.UserContext()
		user := currentUser(c)
		rec, claimed, err := store.ClaimIdempotencyKey(ctx, s.opts.DB.Primary(), user.ID, key, hash[:])
		if err != nil {
			return err
		}
		if string(rec.RequestHash) != string(hash[:]) {
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

		status, body, err := s.createOrder(c, user, key, req.ids, rec.OrderID)
		if err != nil {
			// Transient or internal: no answer stored, the lease is dropped
			// so a retry resumes.
			_ = store.ReleaseIdempotencyKey(ctx, s.opts.DB.Primary(), user.ID, key)
			return err
		}
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		if err := store.FinishIdempotencyKey(ctx, s.opts.DB.Primary(), user.ID, key, status, raw); err != nil {
			return err
		}
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Status(status).Send(raw)
	}
}

// createOrder does the work behind a claimed key and returns the answer to
// store: 201 with the order, or a 4xx client error. A returned error is not
// stored (transient).
func (s *Server) createOrder(c *fiber.Ctx, user *store.User, key string, trackIDs []uuid.UUID, existing *uuid.UUID) (int, any, error) {
	ctx := c.UserContext()
	var order *store.Order
	if existing != nil {
		var err error
		if order, err = store.GetOrder(ctx, s.opts.DB.Primary(), *existing); err != nil {
			return 0, nil, err
		}
	} else {
		err := s.opts.DB.InTx(ctx, func(tx pgx.Tx) error {
			tracks, err := store.GetPurchasableTracks(ctx, tx, trackIDs)
			if err != nil {
				return err
			}
			if verr := checkPurchasable(user, trackIDs, tracks); verr != nil {
				return verr
			}
			if order, err = store.CreateOrder(ctx, tx, user.ID, orderTracks(trackIDs, tracks)); err != nil {
				return err
			}
			return store.SetIdempotencyOrder(ctx, tx, user.ID, key, order.ID)
		})
		var ve *veza.Error
		if errors.As(err, &ve) {
			return kindStatus[ve.Kind], errorBody{Error: errorDetail{Code: ve.Code, Message: ve.Message}}, nil
		}
		if err != nil {
			return 0, nil, err
		}
	}

	payment, err := s.opts.Hyperswitch.CreatePayment(ctx, hyperswitch.CreatePaymentParams{
		PaymentID:   order.PaymentID,
		Amount:      order.Amount,
		Currency:    order.Currency,
		CaptureMode: "automatic",
		Description: fmt.Sprintf("Veza order %s", order.ID),
		Metadata:    map[string]string{"order_id": order.ID.String()},
	})
	if err != nil {
		if hyperswitch.IsTransient(err) {
			return 0, nil, veza.Errorf(veza.KindUnavailable, "payment_provider_unavailable", "the payment provider is unavailable; retry with the same Idempotency-Key")
		}
		// The provider refused the payment for good: the order cannot be
		// paid, and the refusal is the answer repeats get.
		s.log.Error().Err(err).Str("order_id", order.ID.String()).Msg("payment provider refused to create the payment")
		ferr := s.opts.DB.InTx(ctx, func(tx pgx.Tx) error {
			return store.TransitionOrder(ctx, tx, order.ID, veza.OrderPending, veza.OrderFailed)
		})
		if ferr != nil && !errors.Is(ferr, veza.ErrStaleState) {
			return 0, nil, ferr
		}
		return fiber.StatusUnprocessableEntity, errorBody{Error: errorDetail{Code: "payment_rejected", Message: "the payment provider refused this payment"}}, nil
	}
	return fiber.StatusCreated, fiber.Map{"order": toOrderJSON(order), "client_secret": payment.ClientSecret}, nil
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

var errOrderNotFound = veza.Errorf(veza.KindNotFound, "not_found", "order not found")

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
		if refunds == nil {
			refunds = []store.Refund{}
		}
		o := toOrderJSON(order)
		return c.JSON(fiber.Map{"id": o.ID, "status": o.Status, "amount": o.Amount, "currency": o.Currency, "payment_id": o.PaymentID,
			"items": o.Items, "created_at": o.CreatedAt, "refunds": refunds})
	}
}
