// Package storagetest runs an in-process S3 (gofakes3) for tests. It is
// served over TLS: over plain HTTP gofakes3 stores minio-go's aws-chunked
// streaming uploads raw (DEPS.md), which would hide real bugs.
package storagetest

import (
	"context"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/veza/backend/storage"
)

// Server is a fake S3 endpoint.
type Server struct {
	Endpoint string // host:port
	srv      *httptest.Server
}

// Start runs a fake S3 until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	faker := gofakes3.New(s3mem.New())
	srv := httptest.NewTLSServer(faker.Server())
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return &Server{Endpoint: u.Host, srv: srv}
}

// Opts returns options for a store on bucket at this server.
func (s *Server) Opts(bucket string) storage.S3Opts {
	return storage.S3Opts{
		Endpoint: s.Endpoint, Bucket: bucket, Region: "us-east-1", AccessKey: "test", SecretKey: "test-secret",
		UseSSL: true, CreateBucket: true, Transport: s.srv.Client().Transport,
	}
}

// Store returns a connected store on bucket (created when missing).
func (s *Server) Store(t testing.TB, bucket string) *storage.S3 {
	t.Helper()
	st, err := storage.NewS3(context.Background(), s.Opts(bucket))
	if err != nil {
		t.Fatalf("storagetest: %v", err)
	}
	return st
}
