package store

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Track is an uploaded track. StorageBackend and StorageKey are internal
// plumbing: never in public JSON.
type Track struct {
	ID             uuid.UUID
	OwnerID        uuid.UUID
	Title          string
	PriceCents     int64
	Currency       string
	StorageBackend string
	StorageKey     *string
	SizeBytes      int64
	ContentType    *string
	SHA256         *string
	CreatedAt      time.Time
	DeletedAt      *time.Time
}

const trackColumns = `id, owner_id, title, price_cents, currency, storage_backend, storage_key, size_bytes, content_type, sha256, created_at, deleted_at`

func scanTrack(row pgx.Row) (*Track, error) {
	var t Track
	return one(&t, row.Scan(&t.ID, &t.OwnerID, &t.Title, &t.PriceCents, &t.Currency, &t.StorageBackend, &t.StorageKey, &t.SizeBytes,
		&t.ContentType, &t.SHA256, &t.CreatedAt, &t.DeletedAt))
}

var collectTracks = all(scanTrack)

// CreateTrackParams creates a track row. ID may be preset (the upload
// writes the object under the id before the row exists).
type CreateTrackParams struct {
	ID             uuid.UUID
	OwnerID        uuid.UUID
	Title          string
	PriceCents     int64
	Currency       string
	StorageBackend string
	StorageKey     *string
	SizeBytes      int64
	ContentType    *string
	SHA256         *string
}

// CreateTrack inserts a track.
func CreateTrack(ctx context.Context, q Querier, p CreateTrackParams) (*Track, error) {
	if p.ID == uuid.Nil {
		p.ID = uuid.New()
	}
	if p.StorageBackend == "" {
		p.StorageBackend = "local"
	}
	t, err := scanTrack(q.QueryRow(ctx, `INSERT INTO tracks (id, owner_id, title, price_cents, currency, storage_backend, storage_key, size_bytes, content_type, sha256)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING `+trackColumns,
		p.ID, p.OwnerID, p.Title, p.PriceCents, p.Currency, p.StorageBackend, p.StorageKey, p.SizeBytes, p.ContentType, p.SHA256))
	if err != nil {
		return nil, fmt.Errorf("error inserting track: %w", err)
	}
	return t, nil
}

// GetTrack reads a live (not deleted) track.
func GetTrack(ctx context.Context, q Querier, id uuid.UUID) (*Track, error) {
	return scanTrack(q.QueryRow(ctx, `SELECT `+trackColumns+` FROM tracks WHERE id = $1 AND deleted_at IS NULL`, id))
}

// GetTrackForUpdate reads and locks a track, deleted or not.
func GetTrackForUpdate(ctx context.Context, tx pgx.Tx, id uuid.UUID) (*Track, error) {
	return scanTrack(tx.QueryRow(ctx, `SELECT `+trackColumns+` FROM tracks WHERE id = $1 FOR UPDATE`, id))
}

// GetPurchasableTracks returns the live tracks among ids, share-locked: a
// delete (FOR UPDATE) waits for the order to commit, or the order sees the
// track deleted, so the delete job never misses an order being created.
func GetPurchasableTracks(ctx context.Context, q Querier, ids []uuid.UUID) ([]Track, error) {
	return collectTracks(q.Query(ctx, `SELECT `+trackColumns+` FROM tracks WHERE id = ANY($1) AND deleted_at IS NULL ORDER BY id FOR SHARE`, ids))
}

// SoftDeleteTrack marks a track deleted; false when it already was.
func SoftDeleteTrack(ctx context.Context, tx pgx.Tx, id uuid.UUID) (bool, error) {
	tag, err := tx.Exec(ctx, `UPDATE tracks SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL`, id)
	return tag.RowsAffected() == 1, err
}

// CanStream reports whether user may stream the track: its owner, or the
// buyer of a completed order of it (a refund in flight, or a dispute, keeps
// access until it succeeds; a charged-back order has none).
func CanStream(ctx context.Context, q Querier, userID uuid.UUID, t *Track) (bool, error) {
	if t.OwnerID == userID {
		return true, nil
	}
	var ok bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM order_items i JOIN orders o ON o.id = i.order_id
		WHERE i.track_id = $1 AND o.buyer_id = $2 AND o.status IN ('completed', 'refund_pending', 'disputed'))`, t.ID, userID).Scan(&ok)
	return ok, err
}

// streamableOrders matches (as o) the orders whose buyers stream, or may
// yet (pending: being paid; failed within 30 days: a retry at the provider
// can still complete it), a track's file.
const streamableOrders = `(o.status IN ('pending', 'completed', 'refund_pending', 'disputed')
	OR (o.status = 'failed' AND o.updated_at > now() - interval '30 days'))`

// GetTrackEvenDeleted reads a track, deleted or not (its buyers still
// stream a deleted one).
func GetTrackEvenDeleted(ctx context.Context, q Querier, id uuid.UUID) (*Track, error) {
	return scanTrack(q.QueryRow(ctx, `SELECT `+trackColumns+` FROM tracks WHERE id = $1`, id))
}

// TrackCursor is the position after the last track of a page.
type TrackCursor struct {
	CreatedAt time.Time
	ID        uuid.UUID
}

// Encode makes the opaque cursor string.
func (c TrackCursor) Encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte(c.CreatedAt.UTC().Format(time.RFC3339Nano) + "|" + c.ID.String()))
}

// ParseTrackCursor reads a cursor; ok is false for garbage.
func ParseTrackCursor(s string) (TrackCursor, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return TrackCursor{}, false
	}
	ts, id, found := strings.Cut(string(raw), "|")
	if !found {
		return TrackCursor{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return TrackCursor{}, false
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return TrackCursor{}, false
	}
	return TrackCursor{CreatedAt: t, ID: u}, true
}

// SearchQuery turns free text into a prefix-matching tsquery of its words,
// or "" when it has none. Only letters and digits survive, so no input can
// be a tsquery syntax error.
func SearchQuery(q string) string {
	words := strings.FieldsFunc(q, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) })
	if len(words) > 8 {
		words = words[:8]
	}
	parts := make([]string, 0, len(words))
	for _, w := range words {
		if len(w) > 64 {
			w = w[:64]
		}
		parts = append(parts, strings.ToLower(w)+":*")
	}
	return strings.Join(parts, " & ")
}

// ListTracks returns live tracks, newest first, after cursor, optionally
// matching the search text (words of the title, by prefix). It fetches one
// more than limit so the caller knows whether a next page exists.
func ListTracks(ctx context.Context, q Querier, search string, after *TrackCursor, limit int) ([]Track, error) {
	var afterAt *time.Time
	var afterID *uuid.UUID
	if after != nil {
		afterAt, afterID = &after.CreatedAt, &after.ID
	}
	tsq := SearchQuery(search)
	return collectTracks(q.Query(ctx, `SELECT `+trackColumns+` FROM tracks
		WHERE deleted_at IS NULL
		AND ($1 = '' OR to_tsvector('simple', title) @@ to_tsquery('simple', $1))
		AND ($2::timestamptz IS NULL OR (created_at, id) < ($2::timestamptz, $3::uuid))
		ORDER BY created_at DESC, id DESC LIMIT $4`, tsq, afterAt, afterID, limit))
}

// neededTrack matches (as t) a track whose file is needed: live, or
// deleted with an order that still streams it (streamableOrders).
const neededTrack = `(t.deleted_at IS NULL OR EXISTS (SELECT 1 FROM order_items i JOIN orders o ON o.id = i.order_id
	WHERE i.track_id = t.id AND ` + streamableOrders + `))`

// LocalTracks returns tracks still on the local backend whose file is
// needed (live, or deleted but still streamed by buyers), after id.
func LocalTracks(ctx context.Context, q Querier, after uuid.UUID, limit int) ([]uuid.UUID, error) {
	return collectIDs(q.Query(ctx, `SELECT id FROM tracks t WHERE storage_backend = 'local' AND storage_key IS NOT NULL
		AND `+neededTrack+` AND id > $1 ORDER BY id LIMIT $2`, after, limit))
}

// FlipTrackToS3 records that a track's object now lives in S3; false when
// the row was no longer local (already migrated).
func FlipTrackToS3(ctx context.Context, tx pgx.Tx, id uuid.UUID, sha string) (bool, error) {
	tag, err := tx.Exec(ctx, `UPDATE tracks SET storage_backend = 's3', sha256 = COALESCE(sha256, $2)
		WHERE id = $1 AND storage_backend = 'local'`, id, sha)
	return tag.RowsAffected() == 1, err
}

// SetTrackChecksum fills a legacy row's size and sha256.
func SetTrackChecksum(ctx context.Context, q Querier, id uuid.UUID, sha string, size int64) error {
	_, err := q.Exec(ctx, `UPDATE tracks SET sha256 = $2, size_bytes = $3 WHERE id = $1 AND sha256 IS NULL`, id, sha, size)
	return err
}

// StorageCounts counts live tracks per backend; the s3 count uses the
// partial index.
func StorageCounts(ctx context.Context, q Querier) (local, s3 int64, err error) {
	if err = q.QueryRow(ctx, `SELECT count(*) FROM tracks WHERE storage_backend = 's3'`).Scan(&s3); err != nil {
		return 0, 0, err
	}
	// Left to migrate: the local rows whose file is needed.
	err = q.QueryRow(ctx, `SELECT count(*) FROM tracks t WHERE storage_backend = 'local' AND `+neededTrack).Scan(&local)
	return local, s3, err
}

// KnownKeys returns which of keys a track row of backend still needs: a
// live track, or a deleted one that an order being paid, paid, refunding or
// disputed references (its buyers keep what they paid for).
func KnownKeys(ctx context.Context, q Querier, backend string, keys []string) (map[string]bool, error) {
	rows, err := q.Query(ctx, `SELECT storage_key FROM tracks t WHERE storage_backend = $1 AND storage_key = ANY($2)
		AND `+neededTrack, backend, keys)
	if err != nil {
		return nil, err
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(found))
	for _, k := range found {
		out[k] = true
	}
	return out, nil
}
