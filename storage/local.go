package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// TempPrefix marks partial uploads of the local backend; the orphan sweep
// removes old ones.
const TempPrefix = ".upload-"

// Local stores objects as files under a root directory.
type Local struct {
	root string
}

// NewLocal creates the root if needed.
func NewLocal(root string) (*Local, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("storage: creating TRACK_STORAGE_DIR %s: %w", abs, err)
	}
	return &Local{root: abs}, nil
}

func (l *Local) Name() string { return BackendLocal }

// Path is the file of key (for serving with range support).
func (l *Local) Path(key string) (string, error) {
	if err := CleanKey(key); err != nil {
		return "", err
	}
	return filepath.Join(l.root, filepath.FromSlash(key)), nil
}

// Put writes to a temporary file in the target directory, syncs it and
// renames it into place: readers never see a partial object.
func (l *Local) Put(ctx context.Context, key string, r io.Reader, limit int64, contentType string) (Object, error) {
	dst, err := l.Path(key)
	if err != nil {
		return Object{}, err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return Object{}, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), TempPrefix+"*")
	if err != nil {
		return Object{}, err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	hr := newHashingReader(r, limit)
	if _, err := io.Copy(tmp, readerWithContext(ctx, hr)); err != nil {
		tmp.Close()
		return Object{}, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return Object{}, err
	}
	if err := tmp.Close(); err != nil {
		return Object{}, err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return Object{}, err
	}
	return Object{Key: key, Size: hr.n, SHA256: hr.sum(), UpdatedAt: time.Now()}, nil
}

func (l *Local) Open(ctx context.Context, key string) (File, error) {
	p, err := l.Path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	return f, err
}

func (l *Local) Stat(ctx context.Context, key string) (Object, error) {
	p, err := l.Path(key)
	if err != nil {
		return Object{}, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Object{}, ErrNotFound
	}
	if err != nil {
		return Object{}, err
	}
	return Object{Key: key, Size: fi.Size(), UpdatedAt: fi.ModTime()}, nil
}

func (l *Local) Delete(ctx context.Context, key string) error {
	p, err := l.Path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (l *Local) URL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	return "", ErrNoURL
}

// List walks the tree under prefix; partial uploads are listed too (their
// names start with TempPrefix) so the orphan sweep can remove stale ones.
func (l *Local) List(ctx context.Context, prefix string, fn func(Object) error) error {
	start := filepath.Join(l.root, filepath.FromSlash(prefix))
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // vanished meanwhile
		}
		rel, err := filepath.Rel(l.root, p)
		if err != nil {
			return err
		}
		return fn(Object{Key: filepath.ToSlash(rel), Size: info.Size(), UpdatedAt: info.ModTime()})
	})
	return err
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func readerWithContext(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx: ctx, r: r} }
