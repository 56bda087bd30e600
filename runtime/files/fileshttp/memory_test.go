package fileshttp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/runtime/files"
)

// heapPeak samples the live heap until stopped and reports the highest value seen.
type heapPeak struct {
	stop chan struct{}
	done sync.WaitGroup
	peak atomic.Uint64
}

const heapMetric = "/memory/classes/heap/objects:bytes"

func watchHeap() *heapPeak {
	h := &heapPeak{stop: make(chan struct{})}
	h.done.Add(1)
	go func() {
		defer h.done.Done()
		sample := []metrics.Sample{{Name: heapMetric}}
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > h.peak.Load() {
				h.peak.Store(v) // one writer: no lost update
			}
			select {
			case <-h.stop:
				metrics.Read(sample) // a last look, so Stop sees what is live when called
				if v := sample[0].Value.Uint64(); v > h.peak.Load() {
					h.peak.Store(v)
				}
				return
			case <-tick.C:
			}
		}
	}()
	return h
}

func (h *heapPeak) Stop() uint64 {
	close(h.stop)
	h.done.Wait()
	return h.peak.Load()
}

// Peak is the highest value so far.
func (h *heapPeak) Peak() uint64 { return h.peak.Load() }

var sink []byte

// TestHeapWatcherSeesAllocations proves the sampler used below would notice a buffered
// file: a live 16 MiB allocation shows up in its peak.
func TestHeapWatcherSeesAllocations(t *testing.T) {
	runtime.GC()
	watch := watchHeap()
	sink = make([]byte, 16<<20)
	for i := range sink {
		sink[i] = byte(i)
	}
	peak := watch.Stop() // samples once more while sink is live
	sink = nil
	if peak < 16<<20 {
		t.Fatalf("peak %d bytes with 16 MiB live", peak)
	}
}

// TestMemoryFlatWhileStreaming pushes a 256 MiB file through upload (raw and multipart)
// and download with the soft memory limit at 32 MiB, and checks that the live heap never
// comes anywhere near the size of the file: nothing buffers whole files.
func TestMemoryFlatWhileStreaming(t *testing.T) {
	const (
		size     = 256 << 20
		memLimit = 32 << 20
		// Far below the file size, with room for the HTTP machinery, the test's own
		// buffers and the sampler.
		maxHeap = 64 << 20
	)
	old := debug.SetMemoryLimit(memLimit)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })

	for _, enc := range []string{"raw", "multipart"} {
		t.Run(enc, func(t *testing.T) {
			w := newWorld(t, backendLocal, files.Config{MaxUploadBytes: size})
			runtime.GC()
			watch := watchHeap()

			// The body is generated as it is sent: the test holds no copy of it either.
			src := io.LimitReader(rand.NewChaCha8([32]byte{1, 2, 3}), size)
			sent := sha256.New()
			body, contentType, length := streamBody(enc, io.TeeReader(src, sent), size)
			req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, w.srv.URL+Prefix+"?name=big.bin", body)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = length
			req.Header.Set("Content-Type", contentType)
			req.Header.Set("Authorization", "Bearer tok-alice")
			resp, err := w.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("upload: %d %s", resp.StatusCode, readAll(t, resp))
			}
			up := decode[FileJSON](t, resp)
			if want := hex.EncodeToString(sent.Sum(nil)); up.SHA256 != want || up.Size != size {
				t.Fatalf("stored %d bytes with sha256 %s, sent %d with %s", up.Size, up.SHA256, size, want)
			}
			uploadPeak := watch.Peak()

			dl := w.request(http.MethodGet, Prefix+"/"+up.ID, "alice", nil, nil)
			if dl.StatusCode != http.StatusOK {
				t.Fatalf("download: %d", dl.StatusCode)
			}
			got := sha256.New()
			n, err := io.Copy(got, dl.Body)
			if err != nil || n != size {
				t.Fatalf("downloaded %d bytes, %v", n, err)
			}
			if hex.EncodeToString(got.Sum(nil)) != up.SHA256 {
				t.Fatal("downloaded bytes differ from the uploaded ones")
			}
			peak := watch.Stop()
			t.Logf("file %d MiB, memory limit %d MiB, peak live heap: upload %.1f MiB, overall %.1f MiB",
				size>>20, memLimit>>20, float64(uploadPeak)/(1<<20), float64(peak)/(1<<20))
			if peak > maxHeap {
				t.Fatalf("peak live heap %d MiB while streaming a %d MiB file; want under %d MiB", peak>>20, size>>20, maxHeap>>20)
			}
		})
	}
}

// streamBody wraps src as the request body of the given encoding without buffering it:
// multipart is written through a pipe as the client reads.
func streamBody(enc string, src io.Reader, size int64) (io.Reader, string, int64) {
	if enc == "raw" {
		return src, "application/octet-stream", size
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		part, err := mw.CreateFormFile("file", "big.bin")
		if err == nil {
			_, err = io.Copy(part, src)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr, mw.FormDataContentType(), -1
}
