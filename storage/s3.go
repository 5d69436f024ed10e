package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Opts configures the S3/MinIO backend (AWS_S3_*).
type S3Opts struct {
	Endpoint  string // host:port, no scheme
	Bucket    string
	Region    string
	AccessKey string
	SecretKey string
	UseSSL    bool
	// CreateBucket makes the bucket when it is missing (development only).
	CreateBucket bool
	// Transport is for tests (a TLS test server's client transport).
	Transport http.RoundTripper
	// Wrap, when set, wraps the transport (metrics, traces).
	Wrap func(http.RoundTripper) http.RoundTripper
}

// S3 stores objects in one bucket through minio-go.
type S3 struct {
	client *minio.Client
	bucket string
}

// partSize bounds memory per upload: minio-go buffers one part at a time for
// streams of unknown size (5 MiB is S3's minimum part size).
const partSize = 5 << 20

// NewS3 connects and checks the bucket (creating it when asked). A missing
// bucket fails the boot with a clear message rather than every upload later.
func NewS3(ctx context.Context, o S3Opts) (*S3, error) {
	if o.Wrap != nil {
		base := o.Transport
		if base == nil {
			tr, err := minio.DefaultTransport(o.UseSSL)
			if err != nil {
				return nil, fmt.Errorf("storage: configuring S3 transport: %w", err)
			}
			base = tr
		}
		o.Transport = o.Wrap(base)
	}
	client, err := minio.New(o.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(o.AccessKey, o.SecretKey, ""),
		Secure:       o.UseSSL,
		Region:       o.Region,
		BucketLookup: minio.BucketLookupPath,
		Transport:    o.Transport,
	})
	if err != nil {
		return nil, fmt.Errorf("storage: configuring S3 client for %s: %w", o.Endpoint, err)
	}
	exists, err := client.BucketExists(ctx, o.Bucket)
	if err != nil {
		return nil, fmt.Errorf("storage: checking bucket %q at %s (AWS_S3_*): %w", o.Bucket, o.Endpoint, err)
	}
	if !exists {
		if !o.CreateBucket {
			return nil, fmt.Errorf("storage: bucket %q does not exist at %s (AWS_S3_BUCKET); create it first", o.Bucket, o.Endpoint)
		}
		if err := client.MakeBucket(ctx, o.Bucket, minio.MakeBucketOptions{Region: o.Region}); err != nil {
			return nil, fmt.Errorf("storage: creating bucket %q: %w", o.Bucket, err)
		}
	}
	return &S3{client: client, bucket: o.Bucket}, nil
}

func (s *S3) Name() string { return BackendS3 }

func isNoSuchKey(err error) bool {
	resp := minio.ToErrorResponse(err)
	return resp.Code == minio.NoSuchKey || resp.StatusCode == http.StatusNotFound
}

// Put streams with unknown size: minio-go sends a multipart upload holding
// one 5 MiB part in memory at a time, whatever the file's size.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, limit int64, contentType string) (Object, error) {
	if err := CleanKey(key); err != nil {
		return Object{}, err
	}
	hr := newHashingReader(r, limit)
	info, err := s.client.PutObject(ctx, s.bucket, key, hr, -1, minio.PutObjectOptions{
		ContentType: contentType, PartSize: partSize, NumThreads: 1,
	})
	if err != nil {
		if errors.Is(err, ErrTooLarge) || hr.limit > 0 && hr.n > hr.limit {
			_ = s.Delete(context.WithoutCancel(ctx), key)
			return Object{}, ErrTooLarge
		}
		return Object{}, err
	}
	return Object{Key: key, Size: info.Size, SHA256: hr.sum(), UpdatedAt: time.Now()}, nil
}

func (s *S3) Open(ctx context.Context, key string) (File, error) {
	if _, err := s.Stat(ctx, key); err != nil {
		return nil, err
	}
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	return obj, nil
}

func (s *S3) Stat(ctx context.Context, key string) (Object, error) {
	info, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		if isNoSuchKey(err) {
			return Object{}, ErrNotFound
		}
		return Object{}, err
	}
	return Object{Key: key, Size: info.Size, UpdatedAt: info.LastModified}, nil
}

func (s *S3) Delete(ctx context.Context, key string) error {
	err := s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{})
	if err != nil && isNoSuchKey(err) {
		return nil
	}
	return err
}

func (s *S3) URL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	u, err := s.client.PresignedGetObject(ctx, s.bucket, key, ttl, nil)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

func (s *S3) List(ctx context.Context, prefix string, fn func(Object) error) error {
	for info := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if info.Err != nil {
			return info.Err
		}
		if err := fn(Object{Key: info.Key, Size: info.Size, UpdatedAt: info.LastModified}); err != nil {
			return err
		}
	}
	return nil
}
