package fileshttp

import (
	"bytes"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/runtime/files"
)

var signature = regexp.MustCompile(`sig=[A-Za-z0-9_-]+`)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// TestWireGolden pins the JSON the web client reads: the metadata document and the
// error bodies, status by status. Run with -update after an intended change.
func TestWireGolden(t *testing.T) {
	w := newWorld(t, backendLocal, files.Config{MaxUploadBytes: 100, QuotaBytes: 150, Now: func() time.Time { return epoch }})
	up := w.upload("alice", "notes ✓.txt", "text/markdown", []byte("hello, world\n"))
	var out bytes.Buffer
	show := func(label string, resp *http.Response) {
		body := strings.ReplaceAll(readAll(t, resp), up.ID, "<id>")
		body = signature.ReplaceAllString(body, "sig=<sig>") // signs the random id
		fmt.Fprintf(&out, "## %s\n%d %s\n%s\n", label, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	show("meta", w.request(http.MethodGet, Prefix+"/"+up.ID+"/meta", "alice", nil, nil))
	links := &linker{key: testLinkKey, ttl: testLinkTTL}
	show("expired link", w.request(http.MethodGet, links.url(variantContent, up.ID, "alice", epoch.Unix()), "", nil, nil))
	thumbLink := links.url(variantThumbnail, up.ID, "alice", epoch.Unix()+60)
	show("invalid link", w.request(http.MethodGet, Prefix+"/"+up.ID+query(thumbLink), "", nil, nil))
	show("anonymous", w.request(http.MethodGet, Prefix+"/"+up.ID, "", nil, nil))
	show("stranger", w.request(http.MethodGet, Prefix+"/"+up.ID, "carol", nil, nil))
	show("too large", w.request(http.MethodPut, Prefix, "alice", strings.NewReader(strings.Repeat("x", 101)), nil))
	w.upload("alice", "more", "", make([]byte, 100))
	show("quota", w.request(http.MethodPut, Prefix, "alice", strings.NewReader(strings.Repeat("x", 50)), nil))
	show("range", w.request(http.MethodGet, Prefix+"/"+up.ID, "alice", nil, map[string]string{"Range": "bytes=99-"}))
	show("no thumbnail", w.request(http.MethodGet, Prefix+"/"+up.ID+"/thumbnail", "alice", nil, nil))
	show("forbidden", func() *http.Response {
		w.rooms.send("r2", up.ID) // carol's room: she may read, not delete
		return w.request(http.MethodDelete, Prefix+"/"+up.ID, "carol", nil, nil)
	}())
	show("delete", w.request(http.MethodDelete, Prefix+"/"+up.ID, "alice", nil, nil))
	show("removed", w.request(http.MethodGet, Prefix+"/"+up.ID, "alice", nil, nil))
	show("bad upload", w.request(http.MethodPost, Prefix, "alice", strings.NewReader("x"), map[string]string{"Content-Type": "multipart/form-data; boundary=q"}))
	show("method", w.request(http.MethodPatch, Prefix, "alice", nil, nil))

	path := filepath.Join("testdata", "wire.golden")
	if *update {
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("wire format changed; run with -update if intended.\ngot:\n%s\nwant:\n%s", out.Bytes(), want)
	}
}
