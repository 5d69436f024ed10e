package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"

	"github.com/google/uuid"
)

// uploadMemory: peak RSS of serve across a 20 MB and a 200 MB upload.
func (b *bench) uploadMemory(ctx context.Context) error {
	token, err := b.token(ctx)
	if err != nil {
		return err
	}
	upload := func(size int64) error {
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(pw)
		go func() {
			_ = mw.WriteField("title", "Big")
			_ = mw.WriteField("price_cents", "100")
			_ = mw.WriteField("currency", "EUR")
			fw, _ := mw.CreateFormFile("file", "big.mp3")
			chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
			copy(chunk, "ID3\x04\x00\x00\x00\x00\x00\x00")
			var sent int64
			for sent < size {
				n := min(int64(len(chunk)), size-sent)
				if _, err := fw.Write(chunk[:n]); err != nil {
					pw.CloseWithError(err)
					return
				}
				sent += n
				chunk[0] = 'x' // only the first bytes sniff as audio
			}
			pw.CloseWithError(mw.Close())
		}()
		req, _ := http.NewRequest(http.MethodPost, b.base()+"/v1/tracks", pr)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 201 {
			return fmt.Errorf("upload answered %d: %s", resp.StatusCode, raw)
		}
		return nil
	}
	start := b.peakRSS()
	if err := upload(20 << 20); err != nil {
		return err
	}
	after20 := b.peakRSS()
	if err := upload(200 << 20); err != nil {
		return err
	}
	after200 := b.peakRSS()
	growth := after200 - after20
	b.add(Result{Name: "serve peak RSS after a 200 MB upload", Value: after200, Unit: "MiB", Baseline: after20,
		Target: "does not grow with file size (ratio <= 1.1)", Pass: pass(after200/after20 <= 1.1),
		Note: fmt.Sprintf("%.0f MiB before, %.0f after 20 MB, +%.1f MiB for 200 MB", start, after20, growth)})
	return nil
}

func (b *bench) token(ctx context.Context) (string, error) {
	email := uuid.NewString() + "@bench.test"
	post := func(path string, body any) (map[string]any, error) {
		raw, _ := json.Marshal(body)
		resp, err := http.Post(b.base()+path, "application/json", bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var out map[string]any
		err = json.NewDecoder(resp.Body).Decode(&out)
		return out, err
	}
	if _, err := post("/v1/auth/register", map[string]string{"email": email, "password": "bench password"}); err != nil {
		return "", err
	}
	out, err := post("/v1/auth/login", map[string]string{"email": email, "password": "bench password"})
	if err != nil {
		return "", err
	}
	tok, _ := out["token"].(string)
	if tok == "" {
		return "", fmt.Errorf("login: %v", out)
	}
	return tok, nil
}
