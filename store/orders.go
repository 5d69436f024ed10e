package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	veza "github.com/veza/backend"
)

// Order is a purchase of one or more tracks.
type Order struct {
	ID            uuid.UUID
	BuyerID       uuid.UUID
	Status        veza.OrderStatus
	Amount        int64
	Currency      string
	PaymentID     string
	PaymentStatus *string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	CompletedAt   *time.Time
	Items         []OrderItem
}

// OrderItem is one track of an order, with its seller. The JSON names are
// those orderWithItems builds in SQL.
type OrderItem struct {
	ID       uuid.UUID `json:"id"`
	TrackID  uuid.UUID `json:"track_id"`
	Title    string    `json:"title"`
	SellerID uuid.UUID `json:"seller_id"`
	Amount   int64     `json:"amount"`
	Currency string    `json:"currency"`
}

// PaymentIDFor derives the Hyperswitch payment_id from the order id, so a
// retried create names the same payment and cannot charge twice.
func PaymentIDFor(orderID uuid.UUID) string { return "veza_ord_" + orderID.String() }

// CreateOrder inserts a pending order with one item per track.
func CreateOrder(ctx context.Context, tx pgx.Tx, buyerID uuid.UUID, tracks []Track) (*Order, error) {
	if len(tracks) == 0 {
		return nil, errors.New("an order needs at least one track")
	}
	id := uuid.New()
	var total int64
	for _, t := range tracks {
		total += t.PriceCents
	}
	o := &Order{ID: id, BuyerID: buyerID, Status: veza.OrderPending, Amount: total, Currency: tracks[0].Currency, PaymentID: PaymentIDFor(id)}
	err := tx.QueryRow(ctx, `INSERT INTO orders (id, buyer_id, amount, currency, payment_id) VALUES ($1, $2, $3, $4, $5)
		RETURNING created_at, updated_at`, o.ID, o.BuyerID, o.Amount, o.Currency, o.PaymentID).Scan(&o.CreatedAt, &o.UpdatedAt)
	if err != nil {
		return nil, fmt.Errorf("error inserting order: %w", err)
	}
	for _, t := range tracks {
		item := OrderItem{TrackID: t.ID, Title: t.Title, SellerID: t.OwnerID, Amount: t.PriceCents, Currency: t.Currency}
		if err := tx.QueryRow(ctx, `INSERT INTO order_items (order_id, track_id, seller_id, amount, currency) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
			o.ID, t.ID, t.OwnerID, t.PriceCents, t.Currency).Scan(&item.ID); err != nil {
			return nil, fmt.Errorf("error inserting order item: %w", err)
		}
		o.Items = append(o.Items, item)
	}
	return o, nil
}

const orderColumns = `id, buyer_id, status, amount, currency, COALESCE(payment_id, ''), payment_status, created_at, updated_at, completed_at`

func scanOrder(row pgx.Row) (*Order, error) {
	var o Order
	return one(&o, row.Scan(&o.ID, &o.BuyerID, &o.Status, &o.Amount, &o.Currency, &o.PaymentID, &o.PaymentStatus, &o.CreatedAt, &o.UpdatedAt, &o.CompletedAt))
}

// orderWithItems reads an order and its items in one round trip (two
// before: profiling settlement in `make bench`, every paid order read its
// items twice, for its payouts and for its receipt).
const orderWithItems = `SELECT ` + orderColumnsWithItems + ` FROM orders`

// orderColumnsWithItems is orderColumns and the items as JSON, for a SELECT
// or a RETURNING on orders.
const orderColumnsWithItems = orderColumns + `, COALESCE((
		SELECT json_agg(json_build_object('id', i.id, 'track_id', i.track_id, 'title', t.title,
			'seller_id', i.seller_id, 'amount', i.amount, 'currency', i.currency) ORDER BY i.id)
		FROM order_items i JOIN tracks t ON t.id = i.track_id WHERE i.order_id = orders.id), '[]')`

func scanOrderWithItems(row pgx.Row) (*Order, error) {
	var o Order
	var items []byte
	if _, err := one(&o, row.Scan(&o.ID, &o.BuyerID, &o.Status, &o.Amount, &o.Currency, &o.PaymentID, &o.PaymentStatus, &o.CreatedAt, &o.UpdatedAt, &o.CompletedAt, &items)); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(items, &o.Items); err != nil {
		return nil, fmt.Errorf("error decoding order items: %w", err)
	}
	return &o, nil
}

// GetOrder reads an order with its items.
func GetOrder(ctx context.Context, q Querier, id uuid.UUID) (*Order, error) {
	return scanOrderWithItems(q.QueryRow(ctx, orderWithItems+` WHERE id = $1`, id))
}

// GetUserAndOrder reads a user and an order with its items in one round
// trip: the receipt email needs both, for every paid order. A missing user
// is ErrNotFound with a nil user; a missing order is an error that names
// the order, with the user returned.
func GetUserAndOrder(ctx context.Context, q Batcher, userID, orderID uuid.UUID) (*User, *Order, error) {
	var user *User
	var order *Order
	b := &pgx.Batch{}
	b.Queue(`SELECT `+userColumns+` FROM users WHERE id = $1`, userID).QueryRow(func(row pgx.Row) (err error) {
		user, err = scanUser(row)
		return err
	})
	b.Queue(orderWithItems+` WHERE id = $1`, orderID).QueryRow(func(row pgx.Row) (err error) {
		if order, err = scanOrderWithItems(row); err != nil {
			return fmt.Errorf("error reading order %s: %w", orderID, err)
		}
		return nil
	})
	err := q.SendBatch(ctx, b).Close()
	return user, order, err
}

// GetOrderSummary reads an order without its items: one round trip, for
// workers that need only its status (payouts, reconcile).
func GetOrderSummary(ctx context.Context, q Querier, id uuid.UUID) (*Order, error) {
	return scanOrder(q.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = $1`, id))
}

// GetOrderByPaymentIDForUpdate reads and locks an order by its payment id,
// so an event's checks and its transition see the same row.
func GetOrderByPaymentIDForUpdate(ctx context.Context, tx pgx.Tx, paymentID string) (*Order, error) {
	return scanOrderWithItems(tx.QueryRow(ctx, orderWithItems+` WHERE payment_id = $1 FOR UPDATE OF orders`, paymentID))
}

// TransitionOrder is the one way an order's status changes (with
// TransitionOrderWithPayment and CompletePaidOrder, its variants): a guarded
// UPDATE ... WHERE status = from, checked against the status machine. Zero
// rows is veza.ErrStaleState.
func TransitionOrder(ctx context.Context, tx pgx.Tx, id uuid.UUID, from, to veza.OrderStatus) error {
	return TransitionOrderWithPayment(ctx, tx, id, from, to, "")
}

// TransitionOrderWithPayment is TransitionOrder that also records the PSP's
// payment status ("" keeps it) in the same statement: a payment event
// needs both, and it saves the round trip of SetOrderPaymentStatus.
func TransitionOrderWithPayment(ctx context.Context, tx pgx.Tx, id uuid.UUID, from, to veza.OrderStatus, paymentStatus string) error {
	if err := veza.CheckOrderMove(from, to); err != nil {
		return err
	}
	tag, err := tx.Exec(ctx, `UPDATE orders SET status = $3::text, updated_at = now(),
		completed_at = CASE WHEN $3::text = 'completed' AND completed_at IS NULL THEN now() ELSE completed_at END,
		payment_status = COALESCE(NULLIF(left($4::text, 64), ''), payment_status)
		WHERE id = $1 AND status = $2::text`, id, string(from), string(to), paymentStatus)
	if err != nil {
		return fmt.Errorf("error moving order %s %s → %s: %w", id, from, to, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("order %s %s → %s: %w", id, from, to, veza.ErrStaleState)
	}
	return nil
}

// CompletePaidOrder moves the pending order of a payment to completed when
// the payment is the order's amount and currency (case-insensitive), records
// the PSP's payment status, and returns the order with its items, in one
// statement: the common payment_succeeded event costs one round trip, not a
// locked read and an update. Anything else (no such payment, an order that
// is not pending, another amount) is veza.ErrStaleState and changes nothing,
// for the caller's general path to sort out.
func CompletePaidOrder(ctx context.Context, tx pgx.Tx, paymentID string, amount int64, currency, paymentStatus string) (*Order, error) {
	if err := veza.CheckOrderMove(veza.OrderPending, veza.OrderCompleted); err != nil {
		return nil, err
	}
	o, err := scanOrderWithItems(tx.QueryRow(ctx, `UPDATE orders SET status = $2::text, updated_at = now(),
		completed_at = COALESCE(completed_at, now()),
		payment_status = COALESCE(NULLIF(left($6::text, 64), ''), payment_status)
		WHERE payment_id = $1 AND status = $3::text AND amount = $4 AND lower(currency) = lower($5::text)
		RETURNING `+orderColumnsWithItems,
		paymentID, string(veza.OrderCompleted), string(veza.OrderPending), amount, currency, paymentStatus))
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("no pending order of payment %s for %d %s: %w", paymentID, amount, currency, veza.ErrStaleState)
	}
	if err != nil {
		return nil, fmt.Errorf("error completing the order of payment %s: %w", paymentID, err)
	}
	return o, nil
}

// SetOrderPaymentStatus records the PSP's last reported payment status
// (the caller decides it is the payment's newer word).
func SetOrderPaymentStatus(ctx context.Context, q Querier, id uuid.UUID, status string) error {
	_, err := q.Exec(ctx, `UPDATE orders SET payment_status = left($2, 64), updated_at = now() WHERE id = $1`, id, status)
	return err
}

// IdempotencyRecord is the state of one Idempotency-Key.
type IdempotencyRecord struct {
	RequestHash    []byte
	OrderID        *uuid.UUID
	ResponseStatus *int
	ResponseBody   []byte
}

// IdempotencyLease is how long a request may hold a key before another
// request with the same key may take over (the first one died).
const IdempotencyLease = 60 * time.Second

// ClaimIdempotencyKey inserts the key, or takes over an unfinished one whose
// lease ran out. claimed is false when another request holds it, or when it
// is finished (rec.ResponseStatus set) or belongs to another body: the caller
// compares rec.RequestHash.
func ClaimIdempotencyKey(ctx context.Context, q Querier, userID uuid.UUID, key string, hash []byte) (rec *IdempotencyRecord, claimed bool, err error) {
	tag, err := q.Exec(ctx, `INSERT INTO idempotency_keys (user_id, key, request_hash, locked_until)
		VALUES ($1, $2, $3, now() + make_interval(secs => $4)) ON CONFLICT DO NOTHING`, userID, key, hash, IdempotencyLease.Seconds())
	if err != nil {
		return nil, false, fmt.Errorf("error claiming idempotency key: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return &IdempotencyRecord{RequestHash: hash}, true, nil
	}
	rec = &IdempotencyRecord{}
	var lockedUntil *time.Time
	var now time.Time
	err = q.QueryRow(ctx, `SELECT request_hash, order_id, response_status, response_body, locked_until, now()
		FROM idempotency_keys WHERE user_id = $1 AND key = $2`, userID, key).
		Scan(&rec.RequestHash, &rec.OrderID, &rec.ResponseStatus, &rec.ResponseBody, &lockedUntil, &now)
	if err != nil {
		return nil, false, fmt.Errorf("error reading idempotency key: %w", err)
	}
	if rec.ResponseStatus != nil || string(rec.RequestHash) != string(hash) {
		return rec, false, nil
	}
	tag, err = q.Exec(ctx, `UPDATE idempotency_keys SET locked_until = now() + make_interval(secs => $3)
		WHERE user_id = $1 AND key = $2 AND response_status IS NULL AND (locked_until IS NULL OR locked_until < now())`,
		userID, key, IdempotencyLease.Seconds())
	if err != nil {
		return nil, false, fmt.Errorf("error taking over idempotency key: %w", err)
	}
	return rec, tag.RowsAffected() == 1, nil
}

// SetIdempotencyOrder links the key to the order its request created.
func SetIdempotencyOrder(ctx context.Context, tx pgx.Tx, userID uuid.UUID, key string, orderID uuid.UUID) error {
	_, err := tx.Exec(ctx, `UPDATE idempotency_keys SET order_id = $3 WHERE user_id = $1 AND key = $2`, userID, key, orderID)
	return err
}

// FinishIdempotencyKey stores the answer repeats will get (a JSON body, or
// none for a 204) and releases the lease.
func FinishIdempotencyKey(ctx context.Context, q Querier, userID uuid.UUID, key string, status int, body []byte) error {
	var stored any // an empty body is NULL: "" is not JSON
	if len(body) > 0 {
		stored = body
	}
	_, err := q.Exec(ctx, `UPDATE idempotency_keys SET response_status = $3, response_body = $4, locked_until = NULL
		WHERE user_id = $1 AND key = $2`, userID, key, status, stored)
	return err
}

// ReleaseIdempotencyKey drops the lease without an answer: the next request
// with the key resumes the work (after a transient failure).
func ReleaseIdempotencyKey(ctx context.Context, q Querier, userID uuid.UUID, key string) error {
	_, err := q.Exec(ctx, `UPDATE idempotency_keys SET locked_until = NULL WHERE user_id = $1 AND key = $2`, userID, key)
	return err
}

// GetOrderSummaryForUpdate reads an order without its items and locks it.
func GetOrderSummaryForUpdate(ctx context.Context, tx pgx.Tx, id uuid.UUID) (*Order, error) {
	return scanOrder(tx.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = $1 FOR UPDATE`, id))
}

// ReleaseOrderKeys forgets the Idempotency-Keys that created an order, so
// a client may use them again for a new order (the order expired).
func ReleaseOrderKeys(ctx context.Context, tx pgx.Tx, orderID uuid.UUID) error {
	_, err := tx.Exec(ctx, `DELETE FROM idempotency_keys WHERE order_id = $1`, orderID)
	return err
}
