package http

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/veza/backend"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/jobs"
	"github.com/veza/backend/storage"
	"github.com/veza/backend/store"
)

// trackJSON is the public view of a track: storage_backend and storage_key
// are internal plumbing and never leave the server.
type trackJSON struct {
	ID          uuid.UUID `json:"id"`
	Title       string    `json:"title"`
	PriceCents  int64     `json:"price_cents"`
	Currency    string    `json:"currency"`
	OwnerID     uuid.UUID `json:"owner_id"`
	SizeBytes   int64     `json:"size_bytes"`
	ContentType *string   `json:"content_type"`
	CreatedAt   time.Time `json:"created_at"`
}

func toTrackJSON(t *store.Track) trackJSON {
	return trackJSON{ID: t.ID, Title: t.Title, PriceCents: t.PriceCents, Currency: t.Currency, OwnerID: t.OwnerID,
		SizeBytes: t.SizeBytes, ContentType: t.ContentType, CreatedAt: t.CreatedAt.UTC()}
}

var errTrackNotFound = veza.Errorf(veza.KindNotFound, "not_found", "track not found")

// sniffAudio names the audio format of a file's first bytes, or "" when it
// is not audio we accept. The client's Content-Type is not trusted.
func sniffAudio(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("ID3")):
		return "audio/mpeg"
	case len(head) >= 2 && head[0] == 0xFF && head[1]&0xE0 == 0xE0 && head[1]&0x06 != 0:
		return "audio/mpeg" // MPEG audio frame sync without an ID3 tag
	case bytes.HasPrefix(head, []byte("fLaC")):
		return "audio/flac"
	case bytes.HasPrefix(head, []byte("OggS")):
		return "audio/ogg"
	case len(head) >= 12 && bytes.HasPrefix(head, []byte("RIFF")) && string(head[8:12]) == "WAVE":
		return "audio/wav"
	case len(head) >= 12 && bytes.HasPrefix(head, []byte("FORM")) && (string(head[8:12]) == "AIFF" || string(head[8:12]) == "AIFC"):
		return "audio/aiff"
	case len(head) >= 12 && string(head[4:8]) == "ftyp" && (string(head[8:11]) == "M4A" || string(head[8:12]) == "mp42" || string(head[8:12]) == "isom"):
		return "audio/mp4"
	}
	if ct := http.DetectContentType(head); strings.HasPrefix(ct, "audio/") {
		return ct
	}
	return ""
}

type uploadFields struct {
	title, price, currency string
	seen                   map[string]bool
}

func (f *uploadFields) validate() (title string, price int64, currency string, err error) {
	for _, name := range []string{"title", "price_cents", "currency"} {
		if !f.seen[name] {
			return "", 0, "", unprocessable(name, "is required")
		}
	}
	title = strings.TrimSpace(f.title)
	if title == "" || !plainText(title) || utf8.RuneCountInString(title) > 200 {
		return "", 0, "", unprocessable("title", "must be 1 to 200 characters of text, without control characters")
	}
	price, perr := strconv.ParseInt(strings.TrimSpace(f.price), 10, 64)
	if perr != nil || price <= 0 || price > 100_000_000 {
		return "", 0, "", unprocessable("price_cents", "must be a positive integer of minor units (at most 100000000)")
	}
	currency = strings.ToUpper(strings.TrimSpace(f.currency))
	if !veza.ValidCurrency(currency) {
		return "", 0, "", unprocessable("currency", "must be a three-letter ISO 4217 code")
	}
	return title, price, currency, nil
}

// bodyReader keeps the first error reading the request body gave (other
// than its end), so a failed Put can tell a cut body from a failed write.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

var errUploadTooLarge = veza.Errorf(veza.KindTooLarge, "body_too_large", "the upload is over the size limit")

// handleUploadTrack streams a multipart upload straight to the storage
// backend (never the whole file in memory), sniffing the first bytes as
// audio and hashing as it goes. The object is written first, then the row
// committed; if anything after the write fails (bad fields, the commit), the
// object is deleted, so a row never points at a missing object and a failed
// upload leaves nothing.
func (s *Server) handleUploadTrack() fiber.Handler {
	return func(c *fiber.Ctx) error {
		// Whatever happens, do not parse what follows the multipart body
		// (an unread remainder, an epilogue) as another request.
		c.Context().SetConnectionClose()
		max := s.opts.MaxUploadBytes
		if cl := c.Request().Header.ContentLength(); cl > 0 && int64(cl) > max+64<<10 {
			return errUploadTooLarge // refused on the announced size, before reading
		}
		mediaType, params, err := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
		if err != nil || mediaType != "multipart/form-data" || params["boundary"] == "" {
			return veza.Errorf(veza.KindUnprocessable, "validation_failed", "the body must be multipart/form-data with a file part named \"file\"")
		}
		body := c.Context().RequestBodyStream()
		if body == nil {
			body = bytes.NewReader(c.Body())
		}
		st, err := s.opts.Stores.Get(s.opts.Stores.Active)
		if err != nil {
			return err
		}

		ctx := c.UserContext()
		user := currentUser(c)
		trackID := uuid.New()
		key := storage.TrackKey(user.ID.String(), trackID.String())
		var obj *storage.Object
		var contentType string
		cleanup := func() {
			if obj != nil {
				if err := st.Delete(ctx, key); err != nil {
					s.log.Error().Ctx(c.UserContext()).Err(err).Str("key", key).Msg("could not delete the object of a failed upload; the orphan sweep will")
				}
			}
		}
		fields := uploadFields{seen: map[string]bool{}}
		mr := multipart.NewReader(body, params["boundary"])
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				cleanup()
				return veza.Errorf(veza.KindUnprocessable, "validation_failed", "malformed multipart body")
			}
			name := part.FormName()
			switch name {
			case "file":
				if obj != nil {
					cleanup()
					return unprocessable("file", "send exactly one file")
				}
				br := bufio.NewReaderSize(part, 512)
				head, _ := br.Peek(512)
				if len(head) == 0 {
					return unprocessable("file", "is empty")
				}
				if contentType = sniffAudio(head); contentType == "" {
					return veza.Errorf(veza.KindUnprocessable, "not_audio", "file: the content is not an audio format we accept (mp3, flac, ogg, wav, aiff, m4a)")
				}
				body := &bodyReader{r: br}
				o, err := st.Put(ctx, key, body, max, contentType)
				if errors.Is(err, storage.ErrTooLarge) {
					return errUploadTooLarge
				}
				if err != nil && body.err != nil {
					// The body ended inside the file (a client that hung up,
					// a cut request): its fault, not the storage's.
					return veza.Errorf(veza.KindUnprocessable, "validation_failed", "malformed multipart body: the file part ends before its boundary")
				}
				if err != nil {
					return err
				}
				obj = &o
			case "title", "price_cents", "currency":
				raw, err := io.ReadAll(io.LimitReader(part, 1024))
				if err != nil {
					cleanup()
					return veza.Errorf(veza.KindUnprocessable, "validation_failed", "malformed multipart body")
				}
				fields.seen[name] = true
				switch name {
				case "title":
					fields.title = string(raw)
				case "price_cents":
					fields.price = string(raw)
				default:
					fields.currency = string(raw)
				}
			default:
				_, _ = io.Copy(io.Discard, io.LimitReader(part, 1<<20))
			}
		}
		if obj == nil {
			return unprocessable("file", "is required")
		}
		title, price, currency, err := fields.validate()
		if err != nil {
			cleanup()
			return err
		}
		var track *store.Track
		err = s.opts.DB.InTx(ctx, func(tx pgx.Tx) error {
			track, err = store.CreateTrack(ctx, tx, store.CreateTrackParams{
				ID: trackID, OwnerID: user.ID, Title: title, PriceCents: price, Currency: currency,
				StorageBackend: st.Name(), StorageKey: &key, SizeBytes: obj.Size, ContentType: &contentType, SHA256: &obj.SHA256,
			})
			return err
		})
		if err != nil {
			cleanup()
			return err
		}
		return c.Status(fiber.StatusCreated).JSON(toTrackJSON(track))
	}
}

// handleListTracks lists and searches live tracks from the read pool.
func (s *Server) handleListTracks() fiber.Handler {
	return func(c *fiber.Ctx) error {
		limit, err := queryLimit(c, 20, 100)
		if err != nil {
			return err
		}
		q := c.Query("q")
		if len(q) > 200 || !utf8.ValidString(q) {
			return unprocessable("q", "must be at most 200 bytes of text")
		}
		var after *store.TrackCursor
		if raw := c.Query("cursor"); raw != "" {
			cur, ok := store.ParseTrackCursor(raw)
			if !ok {
				return unprocessable("cursor", "is not a cursor this server made")
			}
			after = &cur
		}
		tracks, err := store.ListTracks(c.UserContext(), s.opts.DB.ForRead(), q, after, limit+1)
		if err != nil {
			return err
		}
		var next *string
		if len(tracks) > limit {
			tracks = tracks[:limit]
			last := tracks[len(tracks)-1]
			cur := store.TrackCursor{CreatedAt: last.CreatedAt, ID: last.ID}.Encode()
			next = &cur
		}
		out := make([]trackJSON, len(tracks))
		for i := range tracks {
			out[i] = toTrackJSON(&tracks[i])
		}
		return c.JSON(fiber.Map{"tracks": out, "next_cursor": next})
	}
}

// handleGetTrack reads one track from the read pool.
func (s *Server) handleGetTrack() fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := uuid.Parse(c.Params("id"))
		if err != nil {
			return errTrackNotFound
		}
		t, err := store.GetTrack(c.UserContext(), s.opts.DB.ForRead(), id)
		if errors.Is(err, store.ErrNotFound) {
			return errTrackNotFound
		}
		if err != nil {
			return err
		}
		return c.JSON(toTrackJSON(t))
	}
}

// presignTTL is how long a streaming URL for S3 works.
const presignTTL = 5 * time.Minute

// handleStreamTrack serves the file to its owner or a buyer: the bytes with
// range support for local disk, a short-lived presigned redirect for S3.
// Reads go to the primary: a purchase that just completed must count.
func (s *Server) handleStreamTrack() fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := uuid.Parse(c.Params("id"))
		if err != nil {
			return errTrackNotFound
		}
		ctx := c.UserContext()
		pool := s.opts.DB.Primary()
		t, err := store.GetTrackEvenDeleted(ctx, pool, id)
		if errors.Is(err, store.ErrNotFound) {
			return errTrackNotFound
		}
		if err != nil {
			return err
		}
		user := currentUser(c).ID
		if t.DeletedAt != nil && t.OwnerID == user {
			return errTrackNotFound // the owner deleted it
		}
		ok, err := store.CanStream(ctx, pool, user, t)
		if err != nil {
			return err
		}
		if !ok && t.DeletedAt != nil {
			return errTrackNotFound // deleted: it exists only for its buyers
		}
		if !ok {
			return veza.Errorf(veza.KindForbidden, "forbidden", "only the owner or a buyer of this track may stream it")
		}
		if t.StorageKey == nil {
			return veza.Errorf(veza.KindNotFound, "file_missing", "this track has no stored file")
		}
		st, err := s.opts.Stores.Get(t.StorageBackend)
		if err != nil {
			return err
		}
		if u, err := st.URL(ctx, *t.StorageKey, presignTTL); err == nil {
			c.Set(fiber.HeaderCacheControl, "private, no-store")
			return c.Redirect(u, fiber.StatusFound)
		} else if !errors.Is(err, storage.ErrNoURL) {
			return err
		}
		local, ok := st.(*storage.Local)
		if !ok {
			return errors.New("backend without URLs is not local disk")
		}
		path, err := local.Path(*t.StorageKey)
		if err != nil {
			return err
		}
		if t.ContentType != nil {
			c.Set(fiber.HeaderContentType, *t.ContentType)
		}
		c.Set(fiber.HeaderCacheControl, "private, no-store")
		// fasthttp's file server honours Range and If-Range.
		if err := c.SendFile(path, false); err != nil {
			return err
		}
		if c.Response().StatusCode() == fiber.StatusNotFound {
			return veza.Errorf(veza.KindNotFound, "file_missing", "this track's file is missing")
		}
		return nil
	}
}

// handleDeleteTrack soft-deletes the caller's track and enqueues the
// object's removal in the same transaction.
func (s *Server) handleDeleteTrack() fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := uuid.Parse(c.Params("id"))
		if err != nil {
			return errTrackNotFound
		}
		ctx := c.UserContext()
		err = s.opts.DB.InTx(ctx, func(tx pgx.Tx) error {
			t, err := store.GetTrackForUpdate(ctx, tx, id)
			if errors.Is(err, store.ErrNotFound) || (err == nil && t.DeletedAt != nil) {
				return errTrackNotFound
			}
			if err != nil {
				return err
			}
			if t.OwnerID != currentUser(c).ID {
				return veza.Errorf(veza.KindForbidden, "forbidden", "only the owner may delete this track")
			}
			if _, err := store.SoftDeleteTrack(ctx, tx, id); err != nil {
				return err
			}
			if t.StorageKey == nil {
				return nil
			}
			_, err = s.opts.Inserter.InsertTx(ctx, tx, jobargs.DeleteObjectArgs{Backend: t.StorageBackend, Key: *t.StorageKey}, nil)
			return err
		})
		if err != nil {
			return err
		}
		return c.SendStatus(fiber.StatusNoContent)
	}
}

// handleStorageMigration reports how many tracks live on each backend.
func (s *Server) handleStorageMigration() fiber.Handler {
	return func(c *fiber.Ctx) error {
		local, s3, err := store.StorageCounts(c.UserContext(), s.opts.DB.Primary())
		if err != nil {
			return err
		}
		return c.JSON(fiber.Map{"local": local, "s3": s3})
	}
}

// handleStartStorageMigration enqueues one migration job per local track.
func (s *Server) handleStartStorageMigration() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if _, err := s.opts.Stores.Get(storage.BackendS3); err != nil {
			return veza.Errorf(veza.KindConflict, "s3_not_configured", "S3 is not enabled (AWS_S3_ENABLED): nothing to migrate to")
		}
		n, err := jobs.EnqueueStorageMigration(c.UserContext(), s.opts.Inserter, s.opts.DB)
		if err != nil {
			return err
		}
		return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"enqueued": n})
	}
}
