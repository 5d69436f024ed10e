// Package storage keeps track files on local disk or in S3/MinIO behind one
// small interface. Objects are written whole before any row points at them
// (the caller commits the row after Put returns, and deletes the object if
// the commit fails), so a committed row never points at a missing object.
package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"strings"
	"time"
)

// Backend names, as stored in tracks.storage_backend.
const (
	BackendLocal = "local"
	BackendS3    = "s3"
)

// ErrNotFound is returned for a key with no object.
var ErrNotFound = errors.New("storage: object not found")

// ErrNoURL is returned by URL for backends that cannot hand out a URL
// (local disk): the caller proxies the bytes instead.
var ErrNoURL = errors.New("storage: backend has no URLs; serve the bytes")

// ErrTooLarge is returned by Put when the reader exceeds the limit.
var ErrTooLarge = errors.New("storage: object is over the size limit")

// Object describes a stored object.
type Object struct {
	Key       string
	Size      int64
	SHA256    string // hex; set by Put
	UpdatedAt time.Time
}

// File is an open object: readable and seekable (HTTP ranges).
type File interface {
	io.ReadSeekCloser
}

// Store is one backend.
type Store interface {
	// Name is BackendLocal or BackendS3.
	Name() string
	// Put streams r into key (never buffering it whole), refusing more than
	// limit bytes (0: no limit) with ErrTooLarge and leaving nothing behind.
	Put(ctx context.Context, key string, r io.Reader, limit int64, contentType string) (Object, error)
	// Open opens key for reading; ErrNotFound when absent.
	Open(ctx context.Context, key string) (File, error)
	// Stat describes key; ErrNotFound when absent.
	Stat(ctx context.Context, key string) (Object, error)
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// URL returns a short-lived URL to read key, or ErrNoURL.
	URL(ctx context.Context, key string, ttl time.Duration) (string, error)
	// List calls fn for every object under prefix.
	List(ctx context.Context, prefix string, fn func(Object) error) error
}

// TrackKey is the object key of a track's file.
func TrackKey(ownerID, trackID string) string { return "tracks/" + ownerID + "/" + trackID }

// CleanKey validates a key: relative, slash-separated, no "..", no empty
// segments. Keys come from our own code, but the local backend turns them
// into paths, so they are checked anyway.
func CleanKey(key string) error {
	if key == "" || len(key) > 512 || strings.HasPrefix(key, "/") || strings.Contains(key, "\\") || path.Clean(key) != key {
		return fmt.Errorf("storage: invalid key %q", key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("storage: invalid key %q", key)
		}
	}
	return nil
}

// hashingReader hashes and counts what passes through, failing once more
// than limit bytes went by.
type hashingReader struct {
	r     io.Reader
	h     hash.Hash
	n     int64
	limit int64
}

func newHashingReader(r io.Reader, limit int64) *hashingReader {
	return &hashingReader{r: r, h: sha256.New(), limit: limit}
}

func (hr *hashingReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	hr.n += int64(n)
	hr.h.Write(p[:n])
	if hr.limit > 0 && hr.n > hr.limit {
		return n, ErrTooLarge
	}
	return n, err
}

func (hr *hashingReader) sum() string { return hex.EncodeToString(hr.h.Sum(nil)) }

// SHA256Of reads f to the end and returns its hex SHA-256 and size.
func SHA256Of(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return hex.EncodeToString(h.Sum(nil)), n, err
}
