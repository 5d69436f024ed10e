package http_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend"
	vezahttp "github.com/veza/backend/http"
	"github.com/veza/backend/storage"
	"github.com/veza/backend/storage/storagetest"
	"github.com/veza/backend/store"
	"github.com/veza/backend/store/dbtest"
)

// mp3 returns n bytes that sniff as MP3 (an ID3 header, then noise).
func mp3(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	copy(b, "ID3\x04\x00\x00\x00\x00\x00\x00")
	return b
}

type uploadForm struct {
	fields map[string]string
	file   []byte
	noFile bool
	second []byte // a second file part, when set
	cut    int    // bytes cut off the end of the body (a client that hung up)
}

func (f uploadForm) body() (string, []byte) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for k, v := range f.fields {
		_ = w.WriteField(k, v)
	}
	if !f.noFile {
		fw, _ := w.CreateFormFile("file", "song.mp3")
		_, _ = fw.Write(f.file)
	}
	if f.second != nil {
		fw, _ := w.CreateFormFile("file", "another.mp3")
		_, _ = fw.Write(f.second)
	}
	_ = w.Close()
	return w.FormDataContentType(), buf.Bytes()[:buf.Len()-f.cut]
}

func validForm(file []byte) uploadForm {
	return uploadForm{fields: map[string]string{"title": "Night Drive", "price_cents": "199", "currency": "eur"}, file: file}
}

func (b *apiBundle) upload(t *testing.T, token string, form uploadForm) response {
	t.Helper()
	ct, body := form.body()
	req := httptest.NewRequest("POST", "/v1/tracks", bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := b.app.App().Test(req, -1)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	_ = jsonUnmarshal(raw, &r.Body)
	return r
}

func (b *apiBundle) objects(t *testing.T) []string {
	t.Helper()
	st, err := b.stores.Get(b.stores.Active)
	require.NoError(t, err)
	var keys []string
	require.NoError(t, st.List(context.Background(), "", func(o storage.Object) error { keys = append(keys, o.Key); return nil }))
	return keys
}

func TestUploadAndRead(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	owner, token := b.newUser(t, "seller")
	file := mp3(300 << 10)
	r := b.upload(t, token, validForm(file))
	require.Equal(t, 201, r.Status, r.Raw)
	require.Equal(t, "Night Drive", r.Body["title"])
	require.EqualValues(t, 199, r.Body["price_cents"])
	require.Equal(t, "EUR", r.Body["currency"])
	require.Equal(t, owner.ID.String(), r.Body["owner_id"])
	require.EqualValues(t, len(file), r.Body["size_bytes"])
	require.Equal(t, "audio/mpeg", r.Body["content_type"])
	require.NotContains(t, r.Raw, "storage")
	id := r.Body["id"].(string)

	sum := sha256.Sum256(file)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tracks WHERE id = $1 AND storage_backend = 'local' AND sha256 = $2 AND storage_key = $3`,
		id, hex.EncodeToString(sum[:]), storage.TrackKey(owner.ID.String(), id)))
	require.Equal(t, []string{storage.TrackKey(owner.ID.String(), id)}, b.objects(t))

	got := b.do(t, "GET", "/v1/tracks/"+id, "", nil)
	require.Equal(t, 200, got.Status)
	require.NotContains(t, got.Raw, "storage")

	list := b.do(t, "GET", "/v1/tracks?q=nig", "", nil)
	require.Equal(t, 200, list.Status)
	require.Len(t, list.Body["tracks"], 1)
	require.Nil(t, list.Body["next_cursor"])
	require.Len(t, b.do(t, "GET", "/v1/tracks?q=drive+night", "", nil).Body["tracks"], 1)
	require.Len(t, b.do(t, "GET", "/v1/tracks?q=sunrise", "", nil).Body["tracks"], 0)
	for _, hostile := range []string{"'; DROP TABLE tracks; --", "a & | ! ( ) : *", "%00", "日本語", strings.Repeat("x", 199)} {
		r := b.do(t, "GET", "/v1/tracks?q="+url.QueryEscape(hostile), "", nil)
		require.Equal(t, 200, r.Status, hostile)
	}
	require.Equal(t, 422, b.do(t, "GET", "/v1/tracks?cursor=garbage", "", nil).Status)
	require.Equal(t, 422, b.do(t, "GET", "/v1/tracks?limit=1000", "", nil).Status)
	require.Equal(t, 404, b.do(t, "GET", "/v1/tracks/"+uuid.NewString(), "", nil).Status)
}

func TestListPagination(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	owner, _ := b.newUser(t, "seller")
	for i := 0; i < 5; i++ {
		b.newTrack(t, owner, 100, "EUR")
	}
	seen := map[string]bool{}
	cursor := ""
	pages := 0
	for {
		path := "/v1/tracks?limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := b.do(t, "GET", path, "", nil)
		require.Equal(t, 200, r.Status)
		for _, tr := range r.Body["tracks"].([]any) {
			id := tr.(map[string]any)["id"].(string)
			require.False(t, seen[id], "no track twice")
			seen[id] = true
		}
		pages++
		next, _ := r.Body["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	require.Len(t, seen, 5)
	require.Equal(t, 3, pages)
}

// TestUploadBadInputLeavesNothing: each bad upload answers in the API error
// shape and leaves no row and no object behind.
func TestUploadBadInputLeavesNothing(t *testing.T) {
	t.Parallel()
	b := setupAPI(t, func(o *vezahttp.ServerOpts) { o.MaxUploadBytes = 200 << 10 })
	_, token := b.newUser(t, "seller")
	withField := func(k, v string) uploadForm {
		f := validForm(mp3(1000))
		f.fields = map[string]string{"title": "T", "price_cents": "100", "currency": "EUR"}
		if v == "<absent>" {
			delete(f.fields, k)
		} else {
			f.fields[k] = v
		}
		return f
	}
	cases := []struct {
		name   string
		form   uploadForm
		status int
		code   string
	}{
		{"missing file", uploadForm{fields: validForm(nil).fields, noFile: true}, 422, "validation_failed"},
		{"two files", uploadForm{fields: validForm(nil).fields, file: mp3(1000), second: mp3(1000)}, 422, "validation_failed"},
		{"empty file", validForm([]byte{}), 422, "validation_failed"},
		{"not audio", validForm([]byte("%PDF-1.7 this is a document, not a song")), 422, "not_audio"},
		{"html", validForm([]byte("<html><script>alert(1)</script></html>")), 422, "not_audio"},
		{"oversize by Content-Length", validForm(mp3(300 << 10)), 413, "body_too_large"},
		{"oversize while streaming", validForm(mp3(230 << 10)), 413, "body_too_large"},
		{"bad price", withField("price_cents", "12.5"), 422, "validation_failed"},
		{"negative price", withField("price_cents", "-100"), 422, "validation_failed"},
		{"huge price", withField("price_cents", "99999999999999999999"), 422, "validation_failed"},
		{"no price", withField("price_cents", "<absent>"), 422, "validation_failed"},
		{"bad currency", withField("currency", "euro"), 422, "validation_failed"},
		{"empty title", withField("title", "   "), 422, "validation_failed"},
		{"long title", withField("title", strings.Repeat("é", 201)), 422, "validation_failed"},
		{"invalid utf-8 title", withField("title", "\xff\xfe"), 422, "validation_failed"},
		{"NUL in the title", withField("title", "a\x00b"), 422, "validation_failed"},
		{"control character in the title", withField("title", "a\x1bb"), 422, "validation_failed"},
		{"body cut inside the file", func() uploadForm { f := validForm(mp3(20 << 10)); f.cut = 10 << 10; return f }(), 422, "validation_failed"},
	}
	for _, tc := range cases {
		r := b.upload(t, token, tc.form)
		require.Equal(t, tc.status, r.Status, "%s: %s", tc.name, r.Raw)
		require.Equal(t, tc.code, r.errorCode(), tc.name)
	}

	// Not multipart at all, and no token.
	r := b.do(t, "POST", "/v1/tracks", token, map[string]string{"title": "x"})
	require.Equal(t, 422, r.Status)
	r = b.upload(t, "", validForm(mp3(1000)))
	require.Equal(t, 401, r.Status)

	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM tracks`))
	require.Empty(t, b.objects(t), "no object and no partial file left")
}

// TestOversizeRefusedBeforeReading announces a body over the limit and
// sends only its start: the answer comes from the Content-Length alone.
func TestOversizeRefusedBeforeReading(t *testing.T) {
	t.Parallel()
	b := setupAPI(t, func(o *vezahttp.ServerOpts) { o.MaxUploadBytes = 1 << 20 })
	_, token := b.newUser(t, "seller")
	base := httptestListener(t, b.app.App())
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "POST /v1/tracks HTTP/1.1\r\nHost: veza\r\nAuthorization: Bearer %s\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: %d\r\n\r\n%s",
		token, 500<<20, strings.Repeat("a", 16<<10))
	require.NoError(t, err)
	resp, err := nethttp.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 413, resp.StatusCode)
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM tracks`))
}

func TestFailedCommitLeavesNoObject(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	_, token := b.newUser(t, "seller")
	_, err := b.pool.Exec(context.Background(), `CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected commit failure'; END $$;
		CREATE TRIGGER refuse_tracks BEFORE INSERT ON tracks FOR EACH ROW EXECUTE FUNCTION refuse();`)
	require.NoError(t, err)
	r := b.upload(t, token, validForm(mp3(50<<10)))
	require.Equal(t, 500, r.Status)
	require.Empty(t, b.objects(t), "the object written first was deleted")
}

func TestStreamAccess(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	owner, ownerToken := b.newUser(t, "seller")
	buyer, buyerToken := b.newUser(t, "user")
	_, strangerToken := b.newUser(t, "user")
	file := mp3(64 << 10)
	up := b.upload(t, ownerToken, validForm(file))
	require.Equal(t, 201, up.Status)
	id := up.Body["id"].(string)
	track, err := store.GetTrack(context.Background(), b.pool, uuid.MustParse(id))
	require.NoError(t, err)

	r := b.do(t, "GET", "/v1/tracks/"+id+"/stream", ownerToken, nil)
	require.Equal(t, 200, r.Status)
	require.Equal(t, string(file), r.Raw)
	require.Equal(t, "audio/mpeg", r.Header.Get("Content-Type"))

	ranged := b.doWith(t, "GET", "/v1/tracks/"+id+"/stream", ownerToken, nil, map[string]string{"Range": "bytes=100-199"})
	require.Equal(t, 206, ranged.Status)
	require.Equal(t, string(file[100:200]), ranged.Raw)

	require.Equal(t, 403, b.do(t, "GET", "/v1/tracks/"+id+"/stream", buyerToken, nil).Status, "not bought yet")
	ctx := context.Background()
	require.NoError(t, b.db.InTx(ctx, func(tx pgx.Tx) error {
		o, err := store.CreateOrder(ctx, tx, buyer.ID, []store.Track{*track})
		if err != nil {
			return err
		}
		return store.TransitionOrder(ctx, tx, o.ID, veza.OrderPending, veza.OrderCompleted)
	}))
	require.Equal(t, 200, b.do(t, "GET", "/v1/tracks/"+id+"/stream", buyerToken, nil).Status, "bought")
	require.Equal(t, 403, b.do(t, "GET", "/v1/tracks/"+id+"/stream", strangerToken, nil).Status)
	require.Equal(t, 401, b.do(t, "GET", "/v1/tracks/"+id+"/stream", "", nil).Status)
	require.Equal(t, 404, b.do(t, "GET", "/v1/tracks/"+uuid.NewString()+"/stream", ownerToken, nil).Status)
	_ = owner
}

func TestDeleteTrack(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	_, ownerToken := b.newUser(t, "seller")
	_, otherToken := b.newUser(t, "seller")
	up := b.upload(t, ownerToken, validForm(mp3(10<<10)))
	id := up.Body["id"].(string)

	require.Equal(t, 403, b.do(t, "DELETE", "/v1/tracks/"+id, otherToken, nil).Status)
	require.Equal(t, 401, b.do(t, "DELETE", "/v1/tracks/"+id, "", nil).Status)
	require.Equal(t, 204, b.do(t, "DELETE", "/v1/tracks/"+id, ownerToken, nil).Status)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'delete_object' AND args->>'backend' = 'local'`))
	require.Equal(t, 404, b.do(t, "GET", "/v1/tracks/"+id, "", nil).Status)
	require.Equal(t, 404, b.do(t, "GET", "/v1/tracks/"+id+"/stream", ownerToken, nil).Status)
	require.Equal(t, 404, b.do(t, "DELETE", "/v1/tracks/"+id, ownerToken, nil).Status)
	require.Len(t, b.do(t, "GET", "/v1/tracks", "", nil).Body["tracks"], 0)
}

// TestUploadToS3 streams a 20 MB upload through a real listener to the
// in-process S3 and reads it back byte-identical; streaming answers with a
// presigned redirect.
func TestUploadToS3(t *testing.T) {
	t.Parallel()
	s3 := storagetest.Start(t).Store(t, "veza-tracks")
	b := setupAPI(t, func(o *vezahttp.ServerOpts) {
		o.Stores.ByName[storage.BackendS3] = s3
		o.Stores.Active = storage.BackendS3
	})
	_, token := b.newUser(t, "seller")
	base := httptestListener(t, b.app.App())
	file := mp3(20 << 20)
	ct, body := validForm(file).body()
	req, _ := nethttp.NewRequest("POST", base+"/v1/tracks", bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := nethttp.DefaultClient.Do(req)
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 201, resp.StatusCode, string(raw))
	var created map[string]any
	require.NoError(t, jsonUnmarshal(raw, &created))
	id := created["id"].(string)

	var key string
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT storage_key FROM tracks WHERE id = $1 AND storage_backend = 's3'`, id).Scan(&key))
	f, err := s3.Open(context.Background(), key)
	require.NoError(t, err)
	back, err := io.ReadAll(f)
	f.Close()
	require.NoError(t, err)
	require.True(t, bytes.Equal(file, back), "byte-identical")

	r := b.do(t, "GET", "/v1/tracks/"+id+"/stream", token, nil)
	require.Equal(t, 302, r.Status)
	require.Contains(t, r.Header.Get("Location"), "X-Amz-Signature=")
}

// TestReadsUseTheReadPool points the read pool at another database that
// refuses writes: list, search and get answer from it, writes still land on
// the primary.
func TestReadsUseTheReadPool(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	replicaURL := dbtest.URL(t)
	seed := dbtest.PoolFor(t, replicaURL)
	var replicaTrack string
	require.NoError(t, seed.QueryRow(ctx, `WITH u AS (INSERT INTO users (email, password_hash) VALUES ('r@x.test', 'h') RETURNING id)
		INSERT INTO tracks (owner_id, title, price_cents, currency) SELECT id, 'Only On Replica', 100, 'EUR' FROM u RETURNING id::text`).Scan(&replicaTrack))
	readOnly := dbtest.PoolFor(t, replicaURL+"&options=-c%20default_transaction_read_only%3Don")
	_, err := readOnly.Exec(ctx, `INSERT INTO users (email, password_hash) VALUES ('w@x.test', 'h')`)
	require.ErrorContains(t, err, "read-only transaction", "the read pool cannot write")

	b := setupAPI(t, func(o *vezahttp.ServerOpts) { o.DB = store.New(o.DB.Primary(), readOnly) })
	_, token := b.newUser(t, "seller")
	require.Len(t, b.do(t, "GET", "/v1/tracks", "", nil).Body["tracks"], 1)
	require.Equal(t, 1, len(b.do(t, "GET", "/v1/tracks?q=replica", "", nil).Body["tracks"].([]any)))
	require.Equal(t, 200, b.do(t, "GET", "/v1/tracks/"+replicaTrack, "", nil).Status, "served by the read pool")

	up := b.upload(t, token, validForm(mp3(1000)))
	require.Equal(t, 201, up.Status, "writes go to the primary")
	id := up.Body["id"].(string)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tracks WHERE id = $1`, id))
	require.Equal(t, 200, b.do(t, "GET", "/v1/tracks/"+id+"/stream", token, nil).Status, "read-your-own-write on the primary")
	require.Equal(t, 204, b.do(t, "DELETE", "/v1/tracks/"+id, token, nil).Status)
}

func TestAdminStorage(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	_, admin := b.newUser(t, "admin")
	_, seller := b.newUser(t, "seller")
	b.upload(t, seller, validForm(mp3(1000)))
	r := b.do(t, "GET", "/admin/storage/migration", admin, nil)
	require.Equal(t, 200, r.Status)
	require.EqualValues(t, 1, r.Body["local"])
	require.EqualValues(t, 0, r.Body["s3"])
	require.Equal(t, 409, b.do(t, "POST", "/admin/storage/migrate", admin, nil).Status, "no S3 configured")
	require.Equal(t, 403, b.do(t, "GET", "/admin/storage/migration", seller, nil).Status)

	s3 := storagetest.Start(t).Store(t, "veza-tracks")
	b2 := setupAPI(t, func(o *vezahttp.ServerOpts) { o.Stores.ByName[storage.BackendS3] = s3 })
	_, admin2 := b2.newUser(t, "admin")
	_, seller2 := b2.newUser(t, "seller")
	b2.upload(t, seller2, validForm(mp3(1000)))
	b2.upload(t, seller2, validForm(mp3(1000)))
	r = b2.do(t, "POST", "/admin/storage/migrate", admin2, nil)
	require.Equal(t, 202, r.Status, r.Raw)
	require.EqualValues(t, 2, r.Body["enqueued"])
	require.Equal(t, 2, b2.count(t, `SELECT count(*) FROM river_job WHERE kind = 'migrate_track_storage'`))
}

// Deleting a track hides it from the catalogue and from new orders, but its
// buyers keep what they paid for: the stream still works for them.
func TestDeletedTrackStillStreamsForItsBuyers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupAPI(t)
	_, ownerToken := b.newUser(t, "seller")
	buyer, buyerToken := b.newUser(t, "user")
	_, strangerToken := b.newUser(t, "user")
	up := b.upload(t, ownerToken, validForm(mp3(10<<10)))
	require.Equal(t, 201, up.Status)
	id := up.Body["id"].(string)
	track, err := store.GetTrack(ctx, b.pool, mustUUID(id))
	require.NoError(t, err)
	require.NoError(t, b.db.InTx(ctx, func(tx pgx.Tx) error {
		order, err := store.CreateOrder(ctx, tx, buyer.ID, []store.Track{*track})
		if err != nil {
			return err
		}
		return store.TransitionOrder(ctx, tx, order.ID, veza.OrderPending, veza.OrderCompleted)
	}))

	require.Equal(t, 204, b.do(t, "DELETE", "/v1/tracks/"+id, ownerToken, nil).Status)
	require.Equal(t, 200, b.do(t, "GET", "/v1/tracks/"+id+"/stream", buyerToken, nil).Status, "the buyer keeps it")
	require.Equal(t, 404, b.do(t, "GET", "/v1/tracks/"+id+"/stream", strangerToken, nil).Status, "hidden from everyone else")
	require.Equal(t, 404, b.do(t, "GET", "/v1/tracks/"+id, "", nil).Status, "gone from the catalogue")
	r := b.doWith(t, "POST", "/v1/orders", buyerToken, map[string]any{"track_ids": []string{id}}, map[string]string{"Idempotency-Key": uuid.NewString()})
	require.GreaterOrEqual(t, r.Status, 400, "no new orders: %s", r.Raw)
	require.Less(t, r.Status, 500, r.Raw)
}
