package files

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/parleychat/parley/runtime/files/blob"
)

// refSet is the References seam: the ids some message references.
type refSet struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (r *refSet) Referenced(_ context.Context, id string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ids[id], nil
}

// nobodyElse is the Sharing seam for tests where only uploaders read.
type nobodyElse struct{}

func (nobodyElse) CanRead(context.Context, string, File) (bool, error) { return false, nil }

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type serviceFixture struct {
	svc   *Service
	meta  *Memory
	blobs *blob.Local
	dir   string
	refs  *refSet
	clock *clock
	reg   *prometheus.Registry
}

func newServiceFixture(t *testing.T, cfg Config) serviceFixture {
	t.Helper()
	dir := t.TempDir()
	blobs, err := blob.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{now: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
	cfg.Now, cfg.Metrics = c.Now, m
	refs := &refSet{ids: map[string]bool{}}
	meta := NewMemory()
	return serviceFixture{svc: NewService(blobs, meta, nobodyElse{}, refs, cfg), meta: meta, blobs: blobs, dir: dir, refs: refs, clock: c, reg: reg}
}

// blobFiles lists the files in the blob directory.
func (f serviceFixture) blobFiles(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(f.dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, d.Name())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestUploadRecordsChecksumTypeAndName(t *testing.T) {
	f := newServiceFixture(t, Config{})
	ctx := context.Background()
	data := encodePNG(t, gradient(64, 64))
	sum := sha256.Sum256(data)
	got, err := f.svc.Upload(ctx, "alice", Upload{
		Body: bytes.NewReader(data), Name: "../../secret/holiday.html", ClaimedType: "text/html", Length: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := File{
		ID: got.ID, UploaderID: "alice", Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]),
		ContentType: "image/png", ClaimedType: "text/html", Name: "holiday.html",
		CreatedAt: f.clock.Now(), Status: StatusUploaded, ThumbnailID: got.ThumbnailID,
	}
	if got != want {
		t.Fatalf("upload = %+v\nwant     %+v", got, want)
	}
	if got.ThumbnailID == "" {
		t.Fatal("a PNG got no thumbnail")
	}
	stored, err := f.meta.Get(ctx, got.ID)
	if err != nil || stored != got {
		t.Fatalf("stored %+v, %v; want %+v", stored, err, got)
	}
	for _, name := range f.blobFiles(t) {
		if name != got.ID && name != got.ThumbnailID {
			t.Fatalf("unexpected file %q in the blob directory", name)
		}
	}
	if v := testutil.ToFloat64(f.svc.cfg.Metrics.bytesIn); v != float64(len(data)) {
		t.Fatalf("bytes in = %v, want %d", v, len(data))
	}
}

func TestUploadBombGetsNoThumbnail(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
	}{{"png", pngBomb(t)}, {"jpeg", jpegBomb(t)}, {"gif", gifBomb(t)}, {"webp", webpBomb(t)}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newServiceFixture(t, Config{})
			got, err := f.svc.Upload(context.Background(), "alice", Upload{Body: bytes.NewReader(tc.data), Name: "bomb", Length: -1})
			if err != nil {
				t.Fatalf("the upload itself must succeed: %v", err)
			}
			if got.ThumbnailID != "" {
				t.Fatal("a decompression bomb got a thumbnail")
			}
			if _, _, err := f.svc.OpenThumbnail(context.Background(), "alice", got.ID); !errors.Is(err, ErrNoThumbnail) {
				t.Fatalf("open thumbnail = %v, want ErrNoThumbnail", err)
			}
			if files := f.blobFiles(t); len(files) != 1 || files[0] != got.ID {
				t.Fatalf("blob directory holds %v, want only the upload", files)
			}
		})
	}
}

func TestConcurrentUploadsNeverExceedTheQuota(t *testing.T) {
	f := newServiceFixture(t, Config{MaxUploadBytes: 1000, QuotaBytes: 100})
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = f.svc.Upload(ctx, "alice", Upload{Body: bytes.NewReader(make([]byte, 90)), Length: -1})
		}()
	}
	wg.Wait()
	used, err := f.meta.UsedBytes(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if used > 100 {
		t.Fatalf("five concurrent 90-byte uploads stored %d bytes against a 100-byte quota", used)
	}
}

func TestUploadLimits(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cfg        Config
		before     []int // sizes uploaded first, all accepted
		size       int
		length     int64 // declared; -1 unknown
		wantReason RejectReason
	}{
		{"over the file limit, streamed", Config{MaxUploadBytes: 1000}, nil, 1001, -1, RejectTooLarge},
		{"over the file limit, declared", Config{MaxUploadBytes: 1000}, nil, 5000, 5000, RejectTooLarge},
		{"over the quota", Config{MaxUploadBytes: 1000, QuotaBytes: 1500}, []int{800}, 800, -1, RejectQuota},
		{"quota already full", Config{MaxUploadBytes: 1000, QuotaBytes: 1000}, []int{1000}, 1, 1, RejectQuota},
		{"file limit below the quota", Config{MaxUploadBytes: 1000, QuotaBytes: 10000}, []int{800}, 1001, -1, RejectTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newServiceFixture(t, tc.cfg)
			ctx := context.Background()
			for _, n := range tc.before {
				if _, err := f.svc.Upload(ctx, "alice", Upload{Body: bytes.NewReader(make([]byte, n)), Length: -1}); err != nil {
					t.Fatalf("upload of %d: %v", n, err)
				}
			}
			usedBefore, _ := f.meta.UsedBytes(ctx, "alice")
			blobsBefore := len(f.blobFiles(t))
			body := make([]byte, tc.size)
			_, _ = rand.Read(body)
			_, err := f.svc.Upload(ctx, "alice", Upload{Body: bytes.NewReader(body), Length: tc.length})
			var le *LimitError
			if !errors.As(err, &le) || le.Reason != tc.wantReason {
				t.Fatalf("err = %v, want a LimitError for %s", err, tc.wantReason)
			}
			if used, _ := f.meta.UsedBytes(ctx, "alice"); used != usedBefore {
				t.Fatalf("used bytes %d after a refused upload, want %d", used, usedBefore)
			}
			if n := len(f.blobFiles(t)); n != blobsBefore {
				t.Fatalf("%d blobs after a refused upload, want %d", n, blobsBefore)
			}
			if v := testutil.ToFloat64(f.svc.cfg.Metrics.rejected.WithLabelValues(string(tc.wantReason))); v != 1 {
				t.Fatalf("rejected{%s} = %v, want 1", tc.wantReason, v)
			}
		})
	}
}

func TestCleanOrphans(t *testing.T) {
	f := newServiceFixture(t, Config{OrphanGrace: time.Hour})
	ctx := context.Background()
	upload := func(body string) File {
		t.Helper()
		got, err := f.svc.Upload(ctx, "alice", Upload{Body: strings.NewReader(body), Length: -1})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	referenced := upload("sent in a message")
	orphan := upload("never sent")
	img, err := f.svc.Upload(ctx, "alice", Upload{Body: bytes.NewReader(encodePNG(t, gradient(50, 50))), Length: -1})
	if err != nil || img.ThumbnailID == "" {
		t.Fatalf("image upload: %+v, %v", img, err)
	}
	f.refs.ids[referenced.ID] = true
	f.clock.Advance(59 * time.Minute)
	young := upload("uploaded just now")

	// Nothing is past the grace period yet.
	if n, err := f.svc.CleanOrphans(ctx); err != nil || n != 0 {
		t.Fatalf("within grace: removed %d, %v", n, err)
	}
	f.clock.Advance(2 * time.Minute)
	n, err := f.svc.CleanOrphans(ctx)
	if err != nil || n != 2 {
		t.Fatalf("removed %d, %v; want 2 (the orphan and the image)", n, err)
	}
	for _, tc := range []struct {
		f    File
		want Status
	}{{referenced, StatusUploaded}, {orphan, StatusRemoved}, {img, StatusRemoved}, {young, StatusUploaded}} {
		got, err := f.meta.Get(ctx, tc.f.ID)
		if err != nil || got.Status != tc.want {
			t.Errorf("%s: status %s, %v; want %s", tc.f.ID, got.Status, err, tc.want)
		}
	}
	left := map[string]bool{}
	for _, name := range f.blobFiles(t) {
		left[name] = true
	}
	if len(left) != 2 || !left[referenced.ID] || !left[young.ID] {
		t.Fatalf("blobs left %v; want only %s and %s", left, referenced.ID, young.ID)
	}
	// Idempotent: a second run finds nothing.
	if n, err := f.svc.CleanOrphans(ctx); err != nil || n != 0 {
		t.Fatalf("second run removed %d, %v", n, err)
	}
}

func TestCleanOrphansPages(t *testing.T) {
	f := newServiceFixture(t, Config{OrphanGrace: time.Minute})
	ctx := context.Background()
	const total = orphanPage*2 + 7
	for i := range total {
		got, err := f.svc.Upload(ctx, "alice", Upload{Body: strings.NewReader("x"), Length: -1})
		if err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			f.refs.ids[got.ID] = true
		}
	}
	f.clock.Advance(time.Hour)
	n, err := f.svc.CleanOrphans(ctx)
	wantRemoved := total - (total+2)/3
	if err != nil || n != wantRemoved {
		t.Fatalf("removed %d, %v; want %d", n, err, wantRemoved)
	}
	if left := len(f.blobFiles(t)); left != total-wantRemoved {
		t.Fatalf("%d blobs left, want %d", left, total-wantRemoved)
	}
}

func TestDeleteByUploaderOnly(t *testing.T) {
	f := newServiceFixture(t, Config{})
	ctx := context.Background()
	up, err := f.svc.Upload(ctx, "alice", Upload{Body: bytes.NewReader(encodePNG(t, gradient(20, 20))), Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Delete(ctx, "mallory", up.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stranger delete = %v, want ErrNotFound", err)
	}
	got, err := f.svc.Delete(ctx, "alice", up.ID)
	if err != nil || got.Status != StatusRemoved {
		t.Fatalf("delete = %+v, %v", got, err)
	}
	if left := f.blobFiles(t); len(left) != 0 {
		t.Fatalf("blobs left after delete: %v", left)
	}
	if _, _, err := f.svc.Open(ctx, "alice", up.ID); !errors.Is(err, ErrRemoved) {
		t.Fatalf("open after delete = %v, want ErrRemoved", err)
	}
	if _, err := f.svc.Attachable(ctx, "alice", up.ID); !errors.Is(err, ErrRemoved) {
		t.Fatalf("attachable after delete = %v, want ErrRemoved", err)
	}
	if _, err := f.svc.Delete(ctx, "alice", up.ID); !errors.Is(err, ErrRemoved) {
		t.Fatalf("second delete = %v, want ErrRemoved", err)
	}
	if used, _ := f.meta.UsedBytes(ctx, "alice"); used != 0 {
		t.Fatalf("a removed file still counts %d bytes against the quota", used)
	}
}

func TestRunOrphanCleanupRemovesAndStops(t *testing.T) {
	f := newServiceFixture(t, Config{OrphanGrace: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	up, err := f.svc.Upload(ctx, "alice", Upload{Body: strings.NewReader("orphan"), Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Hour)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.svc.RunOrphanCleanup(ctx, time.Millisecond)
	}()
	deadline := time.Now().Add(10 * time.Second) // a deadline for waiting, not an assertion on speed
	for {
		got, err := f.meta.Get(context.Background(), up.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == StatusRemoved {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the orphan was never removed")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("RunOrphanCleanup did not return after cancel")
	}
}

func TestConfigFlags(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"--files-max-upload-bytes", "1048576", "--files-quota-bytes", "5000000", "--files-orphan-grace", "2h"}); err != nil {
		t.Fatal(err)
	}
	want := Config{MaxUploadBytes: 1 << 20, QuotaBytes: 5_000_000, MaxImagePixels: DefaultMaxImagePixels, OrphanGrace: 2 * time.Hour}
	if c.MaxUploadBytes != want.MaxUploadBytes || c.QuotaBytes != want.QuotaBytes || c.MaxImagePixels != want.MaxImagePixels || c.OrphanGrace != want.OrphanGrace {
		t.Fatalf("config %+v, want %+v", c, want)
	}
}

// slowBody yields its chunks one per Read and runs between() before each but the first.
type slowBody struct {
	chunks  [][]byte
	between func()
	reads   int
}

func (b *slowBody) Read(p []byte) (int, error) {
	if len(b.chunks) == 0 {
		return 0, io.EOF
	}
	if b.reads > 0 && b.between != nil {
		b.between()
	}
	b.reads++
	n := copy(p, b.chunks[0])
	b.chunks[0] = b.chunks[0][n:]
	if len(b.chunks[0]) == 0 {
		b.chunks = b.chunks[1:]
	}
	return n, nil
}

func TestQuotaHoldIsRenewedWhileBytesComeAndGivenBackAfter(t *testing.T) {
	f := newServiceFixture(t, Config{MaxUploadBytes: 1000, QuotaBytes: 1000})
	ctx := context.Background()
	// Each pause outlasts a hold's lifetime; the upload renews its hold as bytes arrive,
	// so another upload can never take the bytes it holds.
	other := func() int64 {
		got, err := f.meta.Reserve(ctx, Hold{ID: blob.NewID(), UploaderID: "alice", Expires: f.clock.Now().Add(time.Second)}, 1000, 1000, f.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	var seen []int64
	body := &slowBody{chunks: [][]byte{make([]byte, 100), make([]byte, 100), make([]byte, 100)}, between: func() {
		f.clock.Advance(holdTTL - time.Second)
		seen = append(seen, other())
	}}
	got, err := f.svc.Upload(ctx, "alice", Upload{Body: body, Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range seen {
		if n != 0 {
			t.Fatalf("pause %d: another hold got %d bytes while the upload held the whole quota", i, n)
		}
	}
	f.clock.Advance(2 * time.Second) // the probes' own holds lapse
	if n := other(); n != 1000-got.Size {
		t.Fatalf("after the upload another hold gets %d bytes, want %d (the upload keeps only its size)", n, 1000-got.Size)
	}
}

// An upload of unknown length holds its upper bound (AtMost, for multipart the request's
// Content-Length), not the whole per-file limit, so a concurrent upload that fits beside
// it is not refused while it streams.
func TestUnknownLengthHoldsItsBoundNotTheFileLimit(t *testing.T) {
	f := newServiceFixture(t, Config{MaxUploadBytes: 1000, QuotaBytes: 1000})
	ctx := context.Background()
	pr, pw := io.Pipe()
	first := make(chan error, 1)
	go func() {
		_, err := f.svc.Upload(ctx, "alice", Upload{Body: pr, Length: -1, AtMost: 450})
		first <- err
	}()
	if _, err := pw.Write(make([]byte, 100)); err != nil { // the first upload is streaming
		t.Fatal(err)
	}
	if _, err := f.svc.Upload(ctx, "alice", Upload{Body: bytes.NewReader(make([]byte, 400)), Length: -1, AtMost: 450}); err != nil {
		t.Fatalf("second upload while the first streams: %v", err)
	}
	if _, err := pw.Write(make([]byte, 300)); err != nil {
		t.Fatal(err)
	}
	_ = pw.Close()
	if err := <-first; err != nil {
		t.Fatalf("first upload: %v", err)
	}
	if used, _ := f.meta.UsedBytes(ctx, "alice"); used != 800 {
		t.Fatalf("used %d bytes, want 800", used)
	}
}
