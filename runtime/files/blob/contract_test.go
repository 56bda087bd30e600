package blob

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"
)

// leftovers lists whatever a store holds besides the given blobs: stray temp files,
// objects or unfinished multipart uploads. An empty result means nothing leaked.
type leftovers func(t *testing.T) []string

type fixture struct {
	store Store
	left  leftovers
}

func TestContractLocal(t *testing.T) {
	runContract(t, func(t *testing.T) fixture {
		dir := t.TempDir()
		s, err := NewLocal(dir)
		if err != nil {
			t.Fatal(err)
		}
		return fixture{store: s, left: func(t *testing.T) []string {
			var all []string
			err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if !d.IsDir() {
					all = append(all, d.Name())
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			return all
		}}
	})
}

func TestContractS3(t *testing.T) {
	runContract(t, func(t *testing.T) fixture {
		s, client := newFakeS3(t, 5<<20)
		return fixture{store: s, left: func(t *testing.T) []string {
			ctx := context.Background()
			var all []string
			for o := range client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Recursive: true}) {
				if o.Err != nil {
					t.Fatal(o.Err)
				}
				all = append(all, o.Key)
			}
			for u := range client.ListIncompleteUploads(ctx, s.bucket, "", true) {
				// gofakes3 answers NoSuchUpload for a bucket that never had an upload.
				if minio.ToErrorResponse(u.Err).Code == "NoSuchUpload" {
					break
				}
				if u.Err != nil {
					t.Fatal(u.Err)
				}
				all = append(all, "upload:"+u.Key)
			}
			return all
		}}
	})
}

// newFakeS3 starts an S3-compatible server (gofakes3, in memory) in this process and
// returns a store on a fresh bucket. partSize is small so that multipart uploads are
// exercised with small bodies.
func newFakeS3(t *testing.T, partSize uint64) (*S3, *minio.Client) {
	t.Helper()
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewS3(S3Config{
		Endpoint: u.Host, Bucket: "parley-files", Region: "us-east-1",
		AccessKey: "test", SecretKey: "test-secret", Prefix: "files/", PartSize: partSize,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, s.client
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func runContract(t *testing.T, newFixture func(t *testing.T) fixture) {
	ctx := context.Background()

	t.Run("put then read whole, at offsets and stat", func(t *testing.T) {
		for _, size := range []int{0, 1, 4096, 6<<20 + 123} { // the last spans two S3 parts
			f := newFixture(t)
			data := randomBytes(t, size)
			info, err := f.store.Put(ctx, bytes.NewReader(data), int64(size))
			if err != nil {
				t.Fatalf("size %d: put: %v", size, err)
			}
			if !ValidID(info.ID) || info.Size != int64(size) {
				t.Fatalf("size %d: put returned %+v", size, info)
			}
			st, err := f.store.Stat(ctx, info.ID)
			if err != nil || st.Size != int64(size) {
				t.Fatalf("size %d: stat = %+v, %v", size, st, err)
			}
			rc, err := f.store.Open(ctx, info.ID)
			if err != nil {
				t.Fatalf("size %d: open: %v", size, err)
			}
			got, err := io.ReadAll(rc)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("size %d: read back %d bytes, err %v; want the same bytes", size, len(got), err)
			}
			if size > 10 {
				off := int64(size / 3)
				if _, err := rc.Seek(off, io.SeekStart); err != nil {
					t.Fatalf("seek: %v", err)
				}
				part := make([]byte, 10)
				if _, err := io.ReadFull(rc, part); err != nil {
					t.Fatalf("read at %d: %v", off, err)
				}
				if !bytes.Equal(part, data[off:off+10]) {
					t.Fatalf("bytes at %d differ", off)
				}
				end, err := rc.Seek(0, io.SeekEnd)
				if err != nil || end != int64(size) {
					t.Fatalf("seek end = %d, %v", end, err)
				}
			}
			if err := rc.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
		}
	})

	t.Run("ids are fresh and unrelated to content", func(t *testing.T) {
		f := newFixture(t)
		a, err := f.store.Put(ctx, strings.NewReader("same"), -1)
		if err != nil {
			t.Fatal(err)
		}
		b, err := f.store.Put(ctx, strings.NewReader("same"), -1)
		if err != nil {
			t.Fatal(err)
		}
		if a.ID == b.ID {
			t.Fatalf("two puts got the same id %s", a.ID)
		}
	})

	t.Run("exactly the limit is accepted", func(t *testing.T) {
		f := newFixture(t)
		info, err := f.store.Put(ctx, bytes.NewReader(randomBytes(t, 1000)), 1000)
		if err != nil || info.Size != 1000 {
			t.Fatalf("put at limit = %+v, %v", info, err)
		}
	})

	t.Run("over the limit leaves nothing behind", func(t *testing.T) {
		for _, tc := range []struct {
			name        string
			size, limit int
		}{
			{"one byte over", 1001, 1000},
			{"far over, past one S3 part", 12 << 20, 5<<20 + 1},
			{"limit zero", 1, 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := newFixture(t)
				_, err := f.store.Put(ctx, bytes.NewReader(randomBytes(t, tc.size)), int64(tc.limit))
				if !errors.Is(err, ErrTooLarge) {
					t.Fatalf("put = %v, want ErrTooLarge", err)
				}
				var tl *TooLargeError
				if !errors.As(err, &tl) || tl.Limit != int64(tc.limit) {
					t.Fatalf("error %v does not carry the limit %d", err, tc.limit)
				}
				if left := f.left(t); len(left) != 0 {
					t.Fatalf("left behind: %v", left)
				}
			})
		}
	})

	t.Run("a failing reader leaves nothing behind", func(t *testing.T) {
		f := newFixture(t)
		boom := errors.New("client went away")
		r := io.MultiReader(bytes.NewReader(randomBytes(t, 6<<20)), errReader{boom})
		if _, err := f.store.Put(ctx, r, -1); !errors.Is(err, boom) {
			t.Fatalf("put = %v, want the reader's error", err)
		}
		if left := f.left(t); len(left) != 0 {
			t.Fatalf("left behind: %v", left)
		}
	})

	t.Run("a body breaking off with ErrUnexpectedEOF is not a short blob", func(t *testing.T) {
		for _, size := range []int{10, 6 << 20} {
			f := newFixture(t)
			r := io.MultiReader(bytes.NewReader(randomBytes(t, size)), errReader{io.ErrUnexpectedEOF})
			if _, err := f.store.Put(ctx, r, -1); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("size %d: put = %v, want io.ErrUnexpectedEOF", size, err)
			}
			if left := f.left(t); len(left) != 0 {
				t.Fatalf("size %d: left behind: %v", size, left)
			}
		}
	})

	t.Run("delete", func(t *testing.T) {
		f := newFixture(t)
		info, err := f.store.Put(ctx, strings.NewReader("bye"), -1)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.store.Delete(ctx, info.ID); err != nil {
			t.Fatalf("delete: %v", err)
		}
		if _, err := f.store.Open(ctx, info.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("open after delete = %v, want ErrNotFound", err)
		}
		if _, err := f.store.Stat(ctx, info.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("stat after delete = %v, want ErrNotFound", err)
		}
		if err := f.store.Delete(ctx, info.ID); err != nil {
			t.Fatalf("second delete = %v, want nil", err)
		}
		if left := f.left(t); len(left) != 0 {
			t.Fatalf("left behind: %v", left)
		}
	})

	t.Run("unknown and malformed ids", func(t *testing.T) {
		f := newFixture(t)
		if _, err := f.store.Open(ctx, NewID()); !errors.Is(err, ErrNotFound) {
			t.Fatalf("open unknown = %v, want ErrNotFound", err)
		}
		for _, id := range []string{"", "../../etc/passwd", "ab/../../x", strings.Repeat("A", idLen), NewID() + "x", "files/" + NewID()} {
			if _, err := f.store.Open(ctx, id); !errors.Is(err, ErrInvalidID) {
				t.Errorf("open %q = %v, want ErrInvalidID", id, err)
			}
			if _, err := f.store.Stat(ctx, id); !errors.Is(err, ErrInvalidID) {
				t.Errorf("stat %q = %v, want ErrInvalidID", id, err)
			}
			if err := f.store.Delete(ctx, id); !errors.Is(err, ErrInvalidID) {
				t.Errorf("delete %q = %v, want ErrInvalidID", id, err)
			}
		}
	})
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestLimitReader(t *testing.T) {
	for _, tc := range []struct {
		name    string
		size    int
		limit   int64
		wantErr bool
	}{
		{"under", 5, 10, false},
		{"at", 10, 10, false},
		{"over", 11, 10, true},
		{"no limit", 1 << 20, -1, false},
		{"zero limit, empty", 0, 0, false},
		{"zero limit, one byte", 1, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := io.ReadAll(LimitReader(bytes.NewReader(make([]byte, tc.size)), tc.limit))
			if tc.wantErr {
				if !errors.Is(err, ErrTooLarge) {
					t.Fatalf("err = %v, want ErrTooLarge", err)
				}
				if int64(len(got)) > tc.limit {
					t.Fatalf("passed %d bytes through a limit of %d", len(got), tc.limit)
				}
				return
			}
			if err != nil || len(got) != tc.size {
				t.Fatalf("read %d bytes, err %v; want %d, nil", len(got), err, tc.size)
			}
		})
	}
}

func TestLocalRemoveStaleTemp(t *testing.T) {
	dir := t.TempDir()
	s, err := NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := s.Put(context.Background(), strings.NewReader("kept"), -1)
	if err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "ab", tempPrefix+"crashed")
	if err := os.MkdirAll(filepath.Dir(stale), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stale, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(stale)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.RemoveStaleTemp(time.Hour, fi.ModTime().Add(30*time.Minute))
	if err != nil || n != 0 {
		t.Fatalf("young temp: removed %d, %v; want 0", n, err)
	}
	n, err = s.RemoveStaleTemp(time.Hour, fi.ModTime().Add(2*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("stale temp: removed %d, %v; want 1", n, err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale temp still there: %v", err)
	}
	if _, err := s.Stat(context.Background(), kept.ID); err != nil {
		t.Fatalf("a finished blob was touched: %v", err)
	}
}
