package blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config locates a bucket on an S3-compatible service.
type S3Config struct {
	Endpoint  string // host[:port], no scheme
	Bucket    string
	Region    string
	AccessKey string
	SecretKey string
	Secure    bool // HTTPS
	// Prefix is prepended to every object key, so one bucket can hold several clusters.
	Prefix string
	// PartSize bounds the memory of one upload: an upload of unknown length is sent in
	// parts of this size, each held in memory once. 0 means DefaultS3PartSize.
	PartSize uint64
	// Transport overrides the HTTP transport (tests, custom CA roots).
	Transport http.RoundTripper
}

// DefaultS3PartSize is the smallest part S3 accepts rounded up to minio-go's floor; with
// 10,000 parts it allows blobs up to 160 GiB.
const DefaultS3PartSize = 16 << 20

// smallPutSize is the largest body sent as a single PUT.
const smallPutSize = 1 << 20

// headBuffers recycles the buffers of the first chunk: most uploads are small, and a
// fresh megabyte per upload would be garbage at once.
var headBuffers = sync.Pool{New: func() any { b := make([]byte, smallPutSize); return &b }}

// S3 keeps blobs as objects in a bucket.
type S3 struct {
	client   *minio.Client
	bucket   string
	prefix   string
	partSize uint64
}

// NewS3 connects to the service described by cfg. It does not create the bucket; see
// EnsureBucket.
func NewS3(cfg S3Config) (*S3, error) {
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, errors.New("blob: S3 endpoint and bucket are required")
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:    cfg.Secure,
		Region:    cfg.Region,
		Transport: cfg.Transport,
	})
	if err != nil {
		return nil, fmt.Errorf("blob: S3 client for %s: %w", cfg.Endpoint, err)
	}
	part := cfg.PartSize
	if part == 0 {
		part = DefaultS3PartSize
	}
	return &S3{client: client, bucket: cfg.Bucket, prefix: cfg.Prefix, partSize: part}, nil
}

// EnsureBucket creates the bucket when it does not exist yet.
func (s *S3) EnsureBucket(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("blob: bucket %s: %w", s.bucket, err)
	}
	if ok {
		return nil
	}
	if err := s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{}); err != nil {
		return fmt.Errorf("blob: create bucket %s: %w", s.bucket, err)
	}
	return nil
}

func (s *S3) key(id string) string { return s.prefix + id }

// Put streams r as a multipart upload of unknown length: minio-go holds one part in
// memory at a time and aborts the multipart upload on error, so an over-limit upload
// leaves no object and no parts behind.
func (s *S3) Put(ctx context.Context, r io.Reader, limit int64) (Info, error) {
	id := NewID()
	r = strictReader{LimitReader(r, limit)}
	opts := minio.PutObjectOptions{
		PartSize:    s.partSize,
		ContentType: "application/octet-stream",
		// Over plain HTTP minio-go would otherwise frame bodies with aws-chunked
		// streaming signatures, which not every S3-compatible server decodes (and which
		// fail on empty bodies); over HTTPS it sends UNSIGNED-PAYLOAD anyway, so this
		// makes both transports behave the same. Integrity is ours: SHA-256 is computed
		// while streaming and stored in the file's metadata.
		DisableContentSha256: true,
	}
	// Small blobs (most chat attachments) go up in one PUT of known length; only a body
	// longer than the first chunk becomes a multipart upload. This also avoids sending an
	// empty part, which some S3 implementations refuse.
	bufp := headBuffers.Get().(*[]byte)
	defer headBuffers.Put(bufp)
	head := (*bufp)[:min(uint64(smallPutSize), s.partSize)]
	n, err := fill(r, head)
	var body io.Reader
	size := int64(-1)
	switch {
	case err == io.EOF:
		body, size = bytes.NewReader(head[:n]), int64(n)
	case err != nil:
		return Info{}, fmt.Errorf("blob: put %s: %w", id, err)
	default:
		body = io.MultiReader(bytes.NewReader(head), r)
	}
	info, err := s.client.PutObject(ctx, s.bucket, s.key(id), body, size, opts)
	if err != nil {
		// Belt and braces: a failure after completion must not leave an orphan object.
		_ = s.client.RemoveObject(context.WithoutCancel(ctx), s.bucket, s.key(id), minio.RemoveObjectOptions{})
		return Info{}, fmt.Errorf("blob: put %s: %w", id, err)
	}
	return Info{ID: id, Size: info.Size}, nil
}

// strictReader hides io.ErrUnexpectedEOF behind another error value: minio-go compares
// read errors with == and takes io.ErrUnexpectedEOF for a normal end of stream, which
// would store a body that broke off as a complete, shorter object.
type strictReader struct{ r io.Reader }

func (s strictReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.ErrUnexpectedEOF {
		err = &brokenBodyError{err: err}
	}
	return n, err
}

// brokenBodyError is a read error that is not io.ErrUnexpectedEOF by ==, yet matches it
// with errors.Is.
type brokenBodyError struct{ err error }

func (e *brokenBodyError) Error() string { return "body broke off: " + e.err.Error() }
func (e *brokenBodyError) Unwrap() error { return e.err }

// fill reads until buf is full (nil error) or the reader ends (io.EOF). Unlike
// io.ReadFull it passes every other error through untouched: a body that breaks off with
// io.ErrUnexpectedEOF must fail the upload, not be stored as a short file.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Open stats the object first: minio-go's GetObject is lazy and would report a missing
// object only on the first read, after the HTTP headers are gone.
func (s *S3) Open(ctx context.Context, id string) (io.ReadSeekCloser, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	obj, err := s.client.GetObject(ctx, s.bucket, s.key(id), minio.GetObjectOptions{})
	if err != nil {
		return nil, s.wrap("open", id, err)
	}
	if _, err := obj.Stat(); err != nil {
		_ = obj.Close()
		return nil, s.wrap("open", id, err)
	}
	return obj, nil
}

// Stat returns the object's size.
func (s *S3) Stat(ctx context.Context, id string) (Info, error) {
	if err := checkID(id); err != nil {
		return Info{}, err
	}
	oi, err := s.client.StatObject(ctx, s.bucket, s.key(id), minio.StatObjectOptions{})
	if err != nil {
		return Info{}, s.wrap("stat", id, err)
	}
	return Info{ID: id, Size: oi.Size}, nil
}

// Delete removes the object; S3 reports success for a missing key as well.
func (s *S3) Delete(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.bucket, s.key(id), minio.RemoveObjectOptions{}); err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("blob: delete %s: %w", id, err)
	}
	return nil
}

func (s *S3) wrap(op, id string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("blob %s: %w", id, ErrNotFound)
	}
	return fmt.Errorf("blob: %s %s: %w", op, id, err)
}

func isNotFound(err error) bool {
	resp := minio.ToErrorResponse(err)
	return resp.Code == minio.NoSuchKey || resp.StatusCode == http.StatusNotFound
}
