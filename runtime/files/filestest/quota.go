package filestest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/runtime/files"
	"github.com/parleychat/parley/runtime/files/blob"
)

// onlyUploader is the Sharing seam of the quota contract: nobody reads anyone's files.
type onlyUploader struct{}

func (onlyUploader) CanRead(context.Context, string, files.File) (bool, error) { return false, nil }

// gatedBlobs holds every Put until `want` of them are in flight (or a short while has
// passed), so concurrent uploads really overlap while they stream and record.
type gatedBlobs struct {
	blob.Store
	want    int32
	arrived atomic.Int32
	all     chan struct{}
	once    sync.Once
}

func (g *gatedBlobs) Put(ctx context.Context, r io.Reader, limit int64) (blob.Info, error) {
	if g.arrived.Add(1) == g.want {
		g.once.Do(func() { close(g.all) })
	}
	select {
	case <-g.all:
	case <-time.After(300 * time.Millisecond): // not every upload reaches Put
	}
	return g.Store.Put(ctx, r, limit)
}

// QuotaContract runs concurrent uploads through files.Service over stores made by
// newStore: the quota must hold exactly, with no upload refused that fitted and no byte
// stored past the quota.
func QuotaContract(t *testing.T, newStore func(t *testing.T) files.MetaStore) {
	const (
		fileSize = 3 << 10
		quota    = 30 << 10
		parallel = 20
	)
	run := func(t *testing.T, maxUpload int64, declared bool) (accepted int, used int64, svc *files.Service, meta files.MetaStore) {
		t.Helper()
		meta = newStore(t)
		local, err := blob.NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		blobs := &gatedBlobs{Store: local, want: parallel, all: make(chan struct{})}
		svc = files.NewService(blobs, meta, onlyUploader{}, nil, files.Config{MaxUploadBytes: maxUpload, QuotaBytes: quota})
		ctx := context.Background()
		var wg sync.WaitGroup
		var ok atomic.Int32
		errs := make(chan error, parallel)
		for range parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				length := int64(-1)
				if declared {
					length = fileSize
				}
				_, err := svc.Upload(ctx, "alice", files.Upload{Body: bytes.NewReader(make([]byte, fileSize)), Name: "f.bin", Length: length})
				switch {
				case err == nil:
					ok.Add(1)
				case !errors.Is(err, files.ErrQuotaExceeded):
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("upload failed with other than quota_exceeded: %v", err)
		}
		used, err = meta.UsedBytes(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d parallel uploads of %d bytes under a quota of %d: %d accepted, %d bytes used", parallel, fileSize, quota, ok.Load(), used)
		return int(ok.Load()), used, svc, meta
	}

	t.Run("concurrent uploads of declared length fill the quota exactly", func(t *testing.T) {
		accepted, used, svc, _ := run(t, 25<<10, true)
		if used > quota {
			t.Fatalf("%d bytes stored against a quota of %d", used, quota)
		}
		if accepted != quota/fileSize || used != quota {
			t.Fatalf("%d uploads accepted (%d bytes), want %d: uploads that fitted were refused", accepted, used, quota/fileSize)
		}
		// Full now: the next upload is refused, one of 0 bytes still fits.
		if _, err := svc.Upload(context.Background(), "alice", files.Upload{Body: bytes.NewReader([]byte{1}), Length: 1}); !errors.Is(err, files.ErrQuotaExceeded) {
			t.Fatalf("upload into a full quota = %v, want quota exceeded", err)
		}
	})

	t.Run("concurrent uploads of unknown length bounded by the file limit fill the quota exactly", func(t *testing.T) {
		accepted, used, _, _ := run(t, fileSize, false)
		if used > quota || accepted != quota/fileSize || used != quota {
			t.Fatalf("%d uploads accepted (%d bytes) against a quota of %d, want %d", accepted, used, quota, quota/fileSize)
		}
	})

	t.Run("concurrent uploads of unknown length never overshoot and release what they held", func(t *testing.T) {
		accepted, used, svc, _ := run(t, 8<<10, false)
		if used > quota {
			t.Fatalf("%d bytes stored against a quota of %d", used, quota)
		}
		if accepted < quota/(8<<10) {
			t.Fatalf("only %d uploads accepted", accepted)
		}
		// Every hold was settled or released: what is left of the quota can be filled.
		left := min(quota-used, 8<<10)
		if _, err := svc.Upload(context.Background(), "alice", files.Upload{Body: bytes.NewReader(make([]byte, left)), Length: -1}); err != nil {
			t.Fatalf("upload of the %d bytes left: %v", left, err)
		}
	})
}
