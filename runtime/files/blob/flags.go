package blob

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
)

// Flags selects and configures a Store from the command line (each flag defaults from
// PARLEY_<NAME>, see internal/cli), mirroring ChatCluster spec.files.
type Flags struct {
	Backend     string
	Dir         string
	S3Endpoint  string
	S3Bucket    string
	S3Region    string
	S3AccessKey string
	S3SecretKey string
	S3Prefix    string
}

// Backends.
const (
	BackendLocal = "local"
	BackendS3    = "s3"
)

// Register adds the flags to fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.Backend, "files-backend", BackendLocal, "where uploaded files are stored: local or s3")
	fs.StringVar(&f.Dir, "files-dir", "/var/lib/parley/files", "directory of the local backend")
	fs.StringVar(&f.S3Endpoint, "files-s3-endpoint", "", "S3-compatible endpoint URL, http:// or https://")
	fs.StringVar(&f.S3Bucket, "files-s3-bucket", "", "bucket of the s3 backend")
	fs.StringVar(&f.S3Region, "files-s3-region", "", "region of the bucket (empty: ask the service)")
	fs.StringVar(&f.S3AccessKey, "files-s3-access-key", "", "access key of the s3 backend")
	fs.StringVar(&f.S3SecretKey, "files-s3-secret-key", "", "secret key of the s3 backend")
	fs.StringVar(&f.S3Prefix, "files-s3-prefix", "", "prefix of every object key")
}

// ErrBadFlags marks a configuration that cannot work.
var ErrBadFlags = errors.New("invalid files configuration")

// Open returns the configured store, creating the directory or the bucket if missing.
func (f Flags) Open(ctx context.Context) (Store, error) {
	switch f.Backend {
	case BackendLocal:
		return NewLocal(f.Dir)
	case BackendS3:
		cfg, err := f.s3Config()
		if err != nil {
			return nil, err
		}
		s, err := NewS3(cfg)
		if err != nil {
			return nil, err
		}
		if err := s.EnsureBucket(ctx); err != nil {
			return nil, err
		}
		return s, nil
	default:
		return nil, fmt.Errorf("%w: --files-backend %q is neither %s nor %s", ErrBadFlags, f.Backend, BackendLocal, BackendS3)
	}
}

func (f Flags) s3Config() (S3Config, error) {
	u, err := url.Parse(f.S3Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return S3Config{}, fmt.Errorf("%w: --files-s3-endpoint %q must be http(s)://host[:port]", ErrBadFlags, f.S3Endpoint)
	}
	if f.S3Bucket == "" {
		return S3Config{}, fmt.Errorf("%w: --files-s3-bucket is required with the s3 backend", ErrBadFlags)
	}
	return S3Config{
		Endpoint: u.Host, Secure: u.Scheme == "https", Bucket: f.S3Bucket, Region: f.S3Region,
		AccessKey: f.S3AccessKey, SecretKey: f.S3SecretKey, Prefix: f.S3Prefix,
	}, nil
}
