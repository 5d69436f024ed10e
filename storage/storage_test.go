package storage_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/veza/backend/storage"
	"github.com/veza/backend/storage/storagetest"
)

func backends(t *testing.T) map[string]storage.Store {
	t.Helper()
	local, err := storage.NewLocal(t.TempDir())
	require.NoError(t, err)
	return map[string]storage.Store{
		"local": local,
		"s3":    storagetest.Start(t).Store(t, "veza-test"),
	}
}

// onlyReader hides every interface but io.Reader, as a network stream would.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func TestStoreConformance(t *testing.T) {
	t.Parallel()
	for name, st := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			require.Equal(t, name, st.Name())

			// 20 MB of random bytes, streamed with unknown size (the
			// multipart path for S3), read back byte-identical.
			data := make([]byte, 20<<20)
			_, err := rand.Read(data)
			require.NoError(t, err)
			sum := sha256.Sum256(data)
			obj, err := st.Put(ctx, "tracks/u1/t1", onlyReader{bytes.NewReader(data)}, 0, "audio/mpeg")
			require.NoError(t, err)
			require.EqualValues(t, len(data), obj.Size)
			require.Equal(t, hex.EncodeToString(sum[:]), obj.SHA256)

			f, err := st.Open(ctx, "tracks/u1/t1")
			require.NoError(t, err)
			back, err := io.ReadAll(f)
			require.NoError(t, err)
			require.NoError(t, f.Close())
			require.True(t, bytes.Equal(data, back), "read back byte-identical")

			f, err = st.Open(ctx, "tracks/u1/t1")
			require.NoError(t, err)
			_, err = f.Seek(10, io.SeekStart)
			require.NoError(t, err)
			part := make([]byte, 5)
			_, err = io.ReadFull(f, part)
			require.NoError(t, err)
			require.Equal(t, data[10:15], part, "seekable for ranges")
			f.Close()

			info, err := st.Stat(ctx, "tracks/u1/t1")
			require.NoError(t, err)
			require.EqualValues(t, len(data), info.Size)

			var listed []string
			require.NoError(t, st.List(ctx, "tracks/", func(o storage.Object) error { listed = append(listed, o.Key); return nil }))
			require.Equal(t, []string{"tracks/u1/t1"}, listed)

			require.NoError(t, st.Delete(ctx, "tracks/u1/t1"))
			require.NoError(t, st.Delete(ctx, "tracks/u1/t1"), "deleting twice is fine")
			_, err = st.Stat(ctx, "tracks/u1/t1")
			require.ErrorIs(t, err, storage.ErrNotFound)
			_, err = st.Open(ctx, "tracks/u1/t1")
			require.ErrorIs(t, err, storage.ErrNotFound)
		})
	}
}

func TestPutOverLimitLeavesNothing(t *testing.T) {
	t.Parallel()
	for name, st := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			_, err := st.Put(ctx, "tracks/u/big", onlyReader{strings.NewReader(strings.Repeat("x", 6<<20))}, 1<<20, "audio/mpeg")
			require.ErrorIs(t, err, storage.ErrTooLarge)
			_, err = st.Stat(ctx, "tracks/u/big")
			require.ErrorIs(t, err, storage.ErrNotFound)
			n := 0
			require.NoError(t, st.List(ctx, "", func(storage.Object) error { n++; return nil }))
			require.Zero(t, n, "no partial object or temp file")
		})
	}
}

func TestURLs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := backends(t)
	_, err := st["local"].URL(ctx, "tracks/a/b", time.Minute)
	require.ErrorIs(t, err, storage.ErrNoURL)
	_, err = st["s3"].Put(ctx, "tracks/a/b", strings.NewReader("abc"), 0, "audio/mpeg")
	require.NoError(t, err)
	u, err := st["s3"].URL(ctx, "tracks/a/b", time.Minute)
	require.NoError(t, err)
	require.Contains(t, u, "X-Amz-Signature=")
	require.Contains(t, u, "X-Amz-Expires=60")
}

func TestKeysAreChecked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	local, err := storage.NewLocal(filepath.Join(dir, "root"))
	require.NoError(t, err)
	for _, key := range []string{"", "/etc/passwd", "../escape", "a/../../b", "a//b", "a/./b", `a\b`} {
		_, err := local.Put(context.Background(), key, strings.NewReader("x"), 0, "")
		require.Error(t, err, key)
	}
	_, err = os.Stat(filepath.Join(dir, "escape"))
	require.True(t, os.IsNotExist(err))
}

func TestMissingBucketFailsUnlessCreated(t *testing.T) {
	t.Parallel()
	srv := storagetest.Start(t)
	opts := srv.Opts("not-there")
	opts.CreateBucket = false
	_, err := storage.NewS3(context.Background(), opts)
	require.ErrorContains(t, err, `bucket "not-there" does not exist`)
}
