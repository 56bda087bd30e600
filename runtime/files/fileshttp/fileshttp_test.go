package fileshttp

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/runtime/files"
)

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func pngImage(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func jpegImage(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 90, 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestUploadAttachDownload is the main path over both blob backends and both upload
// encodings: alice uploads, attaches the file to a message in r1, bob downloads the same
// bytes, whole and by ranges, resuming with If-Range.
func TestUploadAttachDownload(t *testing.T) {
	for _, be := range []backend{backendLocal, backendS3} {
		for _, enc := range []string{"raw", "multipart"} {
			t.Run(string(be)+"/"+enc, func(t *testing.T) {
				w := newWorld(t, be, files.Config{Now: func() time.Time { return epoch }})
				data := randomBytes(t, 6<<20+4321) // spans two S3 parts
				var resp *http.Response
				switch enc {
				case "raw":
					resp = w.request(http.MethodPut, Prefix+"?name=report.bin", "alice", bytes.NewReader(data), map[string]string{"Content-Type": "application/x-custom"})
				case "multipart":
					body, ct := multipartBody(t, map[string]string{"note": "hello"}, "report.bin", "application/x-custom", data)
					resp = w.request(http.MethodPost, Prefix, "alice", body, map[string]string{"Content-Type": ct})
				}
				if resp.StatusCode != http.StatusCreated {
					t.Fatalf("upload: %d %s", resp.StatusCode, readAll(t, resp))
				}
				up := decode[FileJSON](t, resp)
				if resp.Header.Get("Location") != Prefix+"/"+up.ID {
					t.Fatalf("Location %q", resp.Header.Get("Location"))
				}
				want := FileJSON{ID: up.ID, UploaderID: "alice", Name: "report.bin", Size: int64(len(data)), SHA256: sha(data),
					ContentType: "application/octet-stream", ClaimedType: "application/x-custom", CreatedAt: epoch, Status: "uploaded"}
				if got := withoutLinks(up); got != want {
					t.Fatalf("upload = %+v\nwant     %+v", got, want)
				}
				if up.URL == "" || up.DownloadURL == "" || up.ThumbnailURL != "" || up.URLsExpireAt == "" {
					t.Fatalf("upload links = %+v; want url, download_url and an expiry, no thumbnail_url", up)
				}

				// Before the message, bob cannot see it.
				wantError(t, w.request(http.MethodGet, Prefix+"/"+up.ID, "bob", nil, nil), http.StatusNotFound, CodeNotFound)
				w.rooms.send("r1", up.ID)

				full := w.request(http.MethodGet, Prefix+"/"+up.ID, "bob", nil, nil)
				if full.StatusCode != http.StatusOK {
					t.Fatalf("download: %d %s", full.StatusCode, readAll(t, full))
				}
				got, err := io.ReadAll(full.Body)
				if err != nil || sha(got) != up.SHA256 {
					t.Fatalf("downloaded %d bytes with sha256 %s, want %s (err %v)", len(got), sha(got), up.SHA256, err)
				}
				for h, want := range map[string]string{
					"ETag":                   `"` + up.SHA256 + `"`,
					"Last-Modified":          epoch.Format(http.TimeFormat),
					"X-Content-Type-Options": "nosniff",
					"Content-Type":           "application/octet-stream",
					"Accept-Ranges":          "bytes",
					"Content-Disposition":    `attachment; filename="report.bin"; filename*=UTF-8''report.bin`,
				} {
					if got := full.Header.Get(h); got != want {
						t.Errorf("%s = %q, want %q", h, got, want)
					}
				}

				// A range in the middle.
				part := w.request(http.MethodGet, Prefix+"/"+up.ID, "bob", nil, map[string]string{"Range": "bytes=1000-1999"})
				if part.StatusCode != http.StatusPartialContent {
					t.Fatalf("range: %d", part.StatusCode)
				}
				if b, _ := io.ReadAll(part.Body); !bytes.Equal(b, data[1000:2000]) {
					t.Fatal("range bytes differ")
				}
				if cr := part.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes 1000-1999/%d", len(data)) {
					t.Fatalf("Content-Range %q", cr)
				}

				// Resume after a broken download: the rest, only if the file is unchanged.
				half := len(data) / 2
				rest := w.request(http.MethodGet, Prefix+"/"+up.ID, "bob", nil, map[string]string{
					"Range": fmt.Sprintf("bytes=%d-", half), "If-Range": `"` + up.SHA256 + `"`,
				})
				if rest.StatusCode != http.StatusPartialContent {
					t.Fatalf("resume: %d", rest.StatusCode)
				}
				tail, _ := io.ReadAll(rest.Body)
				if sha(append(bytes.Clone(data[:half]), tail...)) != up.SHA256 {
					t.Fatal("resumed download does not reassemble the file")
				}
				stale := w.request(http.MethodGet, Prefix+"/"+up.ID, "bob", nil, map[string]string{
					"Range": "bytes=10-", "If-Range": `"0000"`,
				})
				if stale.StatusCode != http.StatusOK {
					t.Fatalf("If-Range with another ETag: %d, want the whole file", stale.StatusCode)
				}
				// Revalidation.
				nm := w.request(http.MethodGet, Prefix+"/"+up.ID, "bob", nil, map[string]string{"If-None-Match": `"` + up.SHA256 + `"`})
				if nm.StatusCode != http.StatusNotModified {
					t.Fatalf("If-None-Match: %d", nm.StatusCode)
				}
				// Metadata for a reader.
				meta := w.request(http.MethodGet, Prefix+"/"+up.ID+"/meta", "bob", nil, nil)
				bobMeta := decode[FileJSON](t, meta)
				if meta.StatusCode != http.StatusOK || withoutLinks(bobMeta) != withoutLinks(up) {
					t.Fatalf("meta for bob differs from the upload")
				}
				if !strings.Contains(bobMeta.URL, "&u=bob&") || bobMeta.URL == up.URL {
					t.Fatalf("bob's link %q is not bob's own", bobMeta.URL)
				}
				if out := w.counter("parley_files_bytes_out_total", ""); out < float64(len(data)) {
					t.Fatalf("bytes out %v, want at least %d", out, len(data))
				}
			})
		}
	}
}

// TestRefused: strangers, blocked users, anonymous clients and bad tokens get nothing,
// and a stranger cannot tell an existing file from a missing one.
func TestRefused(t *testing.T) {
	w := newWorld(t, backendLocal, files.Config{})
	img := pngImage(t, 64, 64)
	up := w.upload("alice", "cat.png", "image/png", img)
	w.rooms.send("r1", up.ID)
	missing := Prefix + "/" + strings.Repeat("a", 26)
	for _, suffix := range []string{"", "/meta", "/thumbnail"} {
		path := Prefix + "/" + up.ID + suffix
		t.Run("path"+suffix, func(t *testing.T) {
			// Sanity: the member can.
			if r := w.request(http.MethodGet, path, "bob", nil, nil); r.StatusCode != http.StatusOK {
				t.Fatalf("member: %d", r.StatusCode)
			}
			wantError(t, w.request(http.MethodGet, path, "", nil, nil), http.StatusUnauthorized, CodeUnauthorized)
			bad := w.request(http.MethodGet, path, "", nil, map[string]string{"Authorization": "Bearer forged"})
			if bad.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			wantError(t, bad, http.StatusUnauthorized, CodeUnauthorized)
			wantError(t, w.request(http.MethodGet, path, "", nil, map[string]string{"Authorization": "Basic YTpi"}), http.StatusUnauthorized, CodeUnauthorized)
			stranger := w.request(http.MethodGet, path, "carol", nil, nil)
			strangerBody := readAll(t, stranger)
			if stranger.StatusCode != http.StatusNotFound {
				t.Fatalf("non-member: %d %s", stranger.StatusCode, strangerBody)
			}
			wantError(t, w.request(http.MethodGet, path, "dave", nil, nil), http.StatusNotFound, CodeNotFound) // blocked by alice
			gone := w.request(http.MethodGet, missing+suffix, "carol", nil, nil)
			if goneBody := readAll(t, gone); gone.StatusCode != stranger.StatusCode || goneBody != strangerBody {
				t.Fatalf("a missing file answers %d %q, an unreadable one %d %q: ids can be probed",
					gone.StatusCode, goneBody, stranger.StatusCode, strangerBody)
			}
		})
	}
	// A block the other way round closes the path too.
	up2 := w.upload("bob", "b.txt", "text/plain", []byte("from bob"))
	w.rooms.send("r1", up2.ID)
	if r := w.request(http.MethodGet, Prefix+"/"+up2.ID, "alice", nil, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("alice reads bob's file: %d", r.StatusCode)
	}
	w.rooms.block("bob", "alice")
	wantError(t, w.request(http.MethodGet, Prefix+"/"+up2.ID, "alice", nil, nil), http.StatusNotFound, CodeNotFound)
	// Anonymous uploads are refused and counted.
	wantError(t, w.request(http.MethodPut, Prefix, "", strings.NewReader("x"), nil), http.StatusUnauthorized, CodeUnauthorized)
	if v := w.counter("parley_files_uploads_rejected_total", "unauthorized"); v != 1 {
		t.Fatalf("rejected{unauthorized} = %v", v)
	}
	// Malformed ids are simply not found.
	for _, id := range []string{"..%2F..%2Fetc%2Fpasswd", "x", strings.Repeat("Z", 26)} {
		wantError(t, w.request(http.MethodGet, Prefix+"/"+id, "alice", nil, nil), http.StatusNotFound, CodeNotFound)
	}
}

// TestOverLimit: a body over the configured size is refused with 413 file_too_large,
// whether its length is declared, unknown (chunked) or inside multipart, and neither the
// blob store nor the metadata keeps anything.
func TestOverLimit(t *testing.T) {
	for _, be := range []backend{backendLocal, backendS3} {
		t.Run(string(be), func(t *testing.T) {
			const limit = 64 << 10
			w := newWorld(t, be, files.Config{MaxUploadBytes: limit})
			data := randomBytes(t, 3*limit)
			cases := []struct {
				name string
				send func() *http.Response
			}{
				{"declared length", func() *http.Response {
					return w.request(http.MethodPut, Prefix+"?name=big", "alice", bytes.NewReader(data), nil)
				}},
				{"chunked", func() *http.Response {
					// io.MultiReader hides the length, so the client streams chunked.
					return w.request(http.MethodPut, Prefix+"?name=big", "alice", io.MultiReader(bytes.NewReader(data)), nil)
				}},
				{"one byte over", func() *http.Response {
					return w.request(http.MethodPut, Prefix+"?name=big", "alice", io.MultiReader(bytes.NewReader(data[:limit+1])), nil)
				}},
				{"multipart", func() *http.Response {
					body, ct := multipartBody(t, nil, "big.bin", "application/octet-stream", data)
					return w.request(http.MethodPost, Prefix, "alice", body, map[string]string{"Content-Type": ct})
				}},
			}
			for i, tc := range cases {
				wantError(t, tc.send(), http.StatusRequestEntityTooLarge, CodeFileTooLarge)
				if left := w.leftovers(); len(left) != 0 {
					t.Fatalf("%s: blob store keeps %v", tc.name, left)
				}
				if used, _ := w.meta.UsedBytes(t.Context(), "alice"); used != 0 {
					t.Fatalf("%s: metadata counts %d bytes", tc.name, used)
				}
				if listed, _ := w.meta.UploadedBefore(t.Context(), time.Now().Add(time.Hour), "", 10); len(listed) != 0 {
					t.Fatalf("%s: metadata keeps %v", tc.name, listed)
				}
				if v := w.counter("parley_files_uploads_rejected_total", "file_too_large"); v != float64(i+1) {
					t.Fatalf("%s: rejected{file_too_large} = %v, want %d", tc.name, v, i+1)
				}
			}
			// Exactly the limit is fine.
			if up := w.upload("alice", "fits", "", data[:limit]); up.Size != limit {
				t.Fatalf("size %d", up.Size)
			}
		})
	}
}

func TestQuota(t *testing.T) {
	w := newWorld(t, backendLocal, files.Config{MaxUploadBytes: 1000, QuotaBytes: 1500})
	first := w.upload("alice", "a", "", randomBytes(t, 800))
	wantError(t, w.request(http.MethodPut, Prefix, "alice", bytes.NewReader(randomBytes(t, 800)), nil), http.StatusRequestEntityTooLarge, CodeQuotaExceeded)
	wantError(t, w.request(http.MethodPut, Prefix, "alice", io.MultiReader(bytes.NewReader(randomBytes(t, 800))), nil), http.StatusRequestEntityTooLarge, CodeQuotaExceeded)
	if left := w.leftovers(); len(left) != 1 || left[0] != first.ID {
		t.Fatalf("blob store holds %v, want only the first upload", left)
	}
	// Bob's quota is his own.
	w.upload("bob", "b", "", randomBytes(t, 800))
	// Deleting frees the quota.
	if r := w.request(http.MethodDelete, Prefix+"/"+first.ID, "alice", nil, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("delete: %d", r.StatusCode)
	}
	w.upload("alice", "c", "", randomBytes(t, 800))
	if v := w.counter("parley_files_uploads_rejected_total", "quota_exceeded"); v != 2 {
		t.Fatalf("rejected{quota_exceeded} = %v", v)
	}
}

// TestNameTricks: hostile names are stored sanitized and offered back harmlessly; the
// blob store only ever sees server-generated ids.
func TestNameTricks(t *testing.T) {
	w := newWorld(t, backendLocal, files.Config{})
	for _, tc := range []struct {
		name, in, want string
	}{
		{"traversal", "../../../etc/passwd", "passwd"},
		{"windows traversal", `..\..\boot.ini`, "boot.ini"},
		{"NUL", "shell.php\x00.jpg", "shell.php.jpg"},
		{"bidi override", "photo\u202Egpj.exe", "photogpj.exe"},
		{"header injection", "a\r\nX-Evil: 1", "aX-Evil: 1"},
		{"very long", strings.Repeat("ü", 2000) + ".txt", strings.Repeat("ü", (files.MaxNameBytes-4)/2) + ".txt"},
		{"nothing left", "../..", files.FallbackName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Multipart carries the name in a quoted parameter (without CR, LF and NUL: a
			// part header holding them is refused outright, see TestInvalidRequests);
			// raw PUT carries it in the query.
			quoted := strings.NewReplacer(`"`, `\"`, "\r", "", "\n", "", "\x00", "").Replace(tc.in)
			body, ct := multipartBody(t, nil, quoted, "text/plain", []byte("content"))
			raw := w.request(http.MethodPut, Prefix+"?name="+url.QueryEscape(tc.in), "alice", strings.NewReader("content"), nil)
			if raw.StatusCode != http.StatusCreated {
				t.Fatalf("raw upload: %d %s", raw.StatusCode, readAll(t, raw))
			}
			up := decode[FileJSON](t, raw)
			if up.Name != tc.want {
				t.Fatalf("stored name %q, want %q", up.Name, tc.want)
			}
			dl := w.request(http.MethodGet, Prefix+"/"+up.ID, "alice", nil, nil)
			cd := dl.Header.Get("Content-Disposition")
			disp, params, err := mime.ParseMediaType(cd)
			if err != nil || disp != "attachment" || params["filename"] != tc.want {
				t.Fatalf("Content-Disposition %q parses to %q %v %v", cd, disp, params, err)
			}
			if dl.Header.Get("X-Evil") != "" || strings.ContainsAny(cd, "\r\n\x00") {
				t.Fatalf("header injection through the name: %q", cd)
			}
			mp := w.request(http.MethodPost, Prefix, "alice", body, map[string]string{"Content-Type": ct})
			if mp.StatusCode != http.StatusCreated {
				t.Fatalf("multipart upload: %d %s", mp.StatusCode, readAll(t, mp))
			}
			if got := decode[FileJSON](t, mp).Name; strings.ContainsAny(got, "/\\\x00\r\n\u202E") || len(got) > files.MaxNameBytes {
				t.Fatalf("multipart name %q not sanitized", got)
			}
		})
	}
	for _, name := range w.leftovers() {
		if len(name) != 26 || strings.ContainsAny(name, "./\\") {
			t.Fatalf("blob store holds %q, which is not a generated id", name)
		}
	}
}

// TestLyingContentType: what is served is what the bytes are, never what the client said.
func TestLyingContentType(t *testing.T) {
	w := newWorld(t, backendLocal, files.Config{})
	for _, tc := range []struct {
		name, claimed, filename string
		data                    []byte
		wantType, wantDisp      string
	}{
		{"png claimed as html", "text/html", "x.html", pngImage(t, 8, 8), "image/png", "inline"},
		{"html claimed as png", "image/png", "cat.png", []byte("<!DOCTYPE html><html><script>alert(1)</script></html>"), "text/html; charset=utf-8", "attachment"},
		{"svg claimed as png", "image/png", "logo.png", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`), "image/svg+xml", "attachment"},
		{"exe claimed as jpeg", "image/jpeg", "a.jpg", append([]byte("MZ\x90\x00\x03\x00\x00\x00"), make([]byte, 120)...), "application/vnd.microsoft.portable-executable", "attachment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := w.upload("alice", tc.filename, tc.claimed, tc.data)
			if up.ContentType != tc.wantType || up.ClaimedType != tc.claimed {
				t.Fatalf("content type %q (claimed %q), want %q (claimed %q)", up.ContentType, up.ClaimedType, tc.wantType, tc.claimed)
			}
			dl := w.request(http.MethodGet, Prefix+"/"+up.ID, "alice", nil, nil)
			if got := dl.Header.Get("Content-Type"); got != tc.wantType {
				t.Fatalf("served as %q, want %q", got, tc.wantType)
			}
			if dl.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatal("no nosniff")
			}
			if disp, _, _ := mime.ParseMediaType(dl.Header.Get("Content-Disposition")); disp != tc.wantDisp {
				t.Fatalf("disposition %q, want %q", disp, tc.wantDisp)
			}
		})
	}
}

func TestThumbnailEndpoint(t *testing.T) {
	w := newWorld(t, backendS3, files.Config{})
	webp, err := os.ReadFile("../testdata/photo.webp")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{{"jpeg", jpegImage(t, 1200, 800)}, {"png", pngImage(t, 500, 700)}, {"webp", webp}} {
		t.Run(tc.name, func(t *testing.T) {
			up := w.upload("alice", "pic", "", tc.data)
			if !up.HasThumbnail {
				t.Fatal("no thumbnail")
			}
			w.rooms.send("r1", up.ID)
			r := w.request(http.MethodGet, Prefix+"/"+up.ID+"/thumbnail", "bob", nil, nil)
			if r.StatusCode != http.StatusOK {
				t.Fatalf("thumbnail: %d %s", r.StatusCode, readAll(t, r))
			}
			ct := r.Header.Get("Content-Type")
			if ct != "image/jpeg" && ct != "image/png" {
				t.Fatalf("thumbnail type %q", ct)
			}
			cfg, _, err := image.DecodeConfig(r.Body)
			if err != nil || max(cfg.Width, cfg.Height) != files.DefaultThumbnailSide {
				t.Fatalf("thumbnail %dx%d, %v", cfg.Width, cfg.Height, err)
			}
		})
	}
	// A text file has none.
	txt := w.upload("alice", "a.txt", "", []byte("hello"))
	wantError(t, w.request(http.MethodGet, Prefix+"/"+txt.ID+"/thumbnail", "alice", nil, nil), http.StatusNotFound, CodeNoThumbnail)
}

// TestDecompressionBomb: a PNG whose header claims 10 gigapixels is stored and
// downloadable, gets no thumbnail, and the server survives.
func TestDecompressionBomb(t *testing.T) {
	w := newWorld(t, backendLocal, files.Config{MaxImagePixels: 1_000_000})
	bomb := pngBomb(t)
	up := w.upload("alice", "bomb.png", "image/png", bomb)
	if up.HasThumbnail || up.ContentType != "image/png" {
		t.Fatalf("bomb upload = %+v; want a PNG without thumbnail", up)
	}
	wantError(t, w.request(http.MethodGet, Prefix+"/"+up.ID+"/thumbnail", "alice", nil, nil), http.StatusNotFound, CodeNoThumbnail)
	dl := w.request(http.MethodGet, Prefix+"/"+up.ID, "alice", nil, nil)
	if b, _ := io.ReadAll(dl.Body); !bytes.Equal(b, bomb) {
		t.Fatal("the bomb's bytes did not round-trip")
	}
	// Just over the configured pixel limit is refused too; just under gets a thumbnail.
	if w.upload("alice", "big.png", "", pngImage(t, 1001, 1000)).HasThumbnail {
		t.Fatal("1001x1000 > 1,000,000 pixels got a thumbnail")
	}
	if !w.upload("alice", "ok.png", "", pngImage(t, 1000, 1000)).HasThumbnail {
		t.Fatal("1000x1000 pixels got no thumbnail")
	}
}

// pngBomb is a valid 8×8 PNG whose IHDR claims 100000×100000 pixels.
func pngBomb(t *testing.T) []byte {
	b := pngImage(t, 8, 8)
	binary.BigEndian.PutUint32(b[16:], 100_000) // IHDR width
	binary.BigEndian.PutUint32(b[20:], 100_000) // IHDR height
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

func TestDelete(t *testing.T) {
	for _, be := range []backend{backendLocal, backendS3} {
		t.Run(string(be), func(t *testing.T) {
			w := newWorld(t, be, files.Config{})
			up := w.upload("alice", "pic.jpg", "", jpegImage(t, 400, 400))
			w.rooms.send("r1", up.ID)
			if len(w.leftovers()) != 2 {
				t.Fatalf("want the file and its thumbnail stored, have %v", w.leftovers())
			}
			wantError(t, w.request(http.MethodDelete, Prefix+"/"+up.ID, "bob", nil, nil), http.StatusForbidden, CodeForbidden)
			wantError(t, w.request(http.MethodDelete, Prefix+"/"+up.ID, "carol", nil, nil), http.StatusNotFound, CodeNotFound)
			wantError(t, w.request(http.MethodDelete, Prefix+"/"+up.ID, "", nil, nil), http.StatusUnauthorized, CodeUnauthorized)
			del := w.request(http.MethodDelete, Prefix+"/"+up.ID, "alice", nil, nil)
			if del.StatusCode != http.StatusOK {
				t.Fatalf("delete: %d %s", del.StatusCode, readAll(t, del))
			}
			if got := decode[FileJSON](t, del); got.Status != "removed" || got.HasThumbnail {
				t.Fatalf("after delete: %+v", got)
			}
			if left := w.leftovers(); len(left) != 0 {
				t.Fatalf("blob store keeps %v", left)
			}
			wantError(t, w.request(http.MethodGet, Prefix+"/"+up.ID, "bob", nil, nil), http.StatusGone, CodeFileRemoved)
			wantError(t, w.request(http.MethodGet, Prefix+"/"+up.ID+"/thumbnail", "bob", nil, nil), http.StatusGone, CodeFileRemoved)
			meta := w.request(http.MethodGet, Prefix+"/"+up.ID+"/meta", "bob", nil, nil)
			if meta.StatusCode != http.StatusOK || decode[FileJSON](t, meta).Status != "removed" {
				t.Fatal("a member cannot see that the attachment was removed")
			}
			wantError(t, w.request(http.MethodDelete, Prefix+"/"+up.ID, "alice", nil, nil), http.StatusGone, CodeFileRemoved)
		})
	}
}

func TestInvalidRequests(t *testing.T) {
	w := newWorld(t, backendLocal, files.Config{})
	up := w.upload("alice", "a.bin", "", randomBytes(t, 100))
	wantError(t, w.request(http.MethodGet, Prefix+"/"+up.ID, "alice", nil, map[string]string{"Range": "bytes=500-600"}), http.StatusRequestedRangeNotSatisfiable, CodeInvalidRange)
	body, ct := multipartBody(t, map[string]string{"other": "x"}, "", "", nil)
	mp := strings.Replace(mustRead(t, body), `name="file"`, `name="notfile"`, 1)
	wantError(t, w.request(http.MethodPost, Prefix, "alice", strings.NewReader(mp), map[string]string{"Content-Type": ct}), http.StatusBadRequest, CodeInvalidUpload)
	wantError(t, w.request(http.MethodPost, Prefix, "alice", strings.NewReader("garbage"), map[string]string{"Content-Type": "multipart/form-data; boundary=zzz"}), http.StatusBadRequest, CodeInvalidUpload)
	nul := "--zzz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\x00.txt\"\r\n\r\nx\r\n--zzz--\r\n"
	wantError(t, w.request(http.MethodPost, Prefix, "alice", strings.NewReader(nul), map[string]string{"Content-Type": "multipart/form-data; boundary=zzz"}), http.StatusBadRequest, CodeInvalidUpload)
	wantError(t, w.request(http.MethodPatch, Prefix+"/"+up.ID, "alice", nil, nil), http.StatusMethodNotAllowed, CodeMethodNotAllowed)
	wantError(t, w.request(http.MethodGet, Prefix, "alice", nil, nil), http.StatusMethodNotAllowed, CodeMethodNotAllowed)
	wantError(t, w.request(http.MethodGet, Prefix+"/"+up.ID+"/nope", "alice", nil, nil), http.StatusNotFound, CodeNotFound)
	wantError(t, w.request(http.MethodGet, Prefix+"/", "alice", nil, nil), http.StatusNotFound, CodeNotFound)
	wantError(t, w.request(http.MethodPost, Prefix+"/"+up.ID+"/meta", "alice", nil, nil), http.StatusMethodNotAllowed, CodeMethodNotAllowed)
	if v := w.counter("parley_files_uploads_rejected_total", "bad_request"); v != 3 {
		t.Fatalf("rejected{bad_request} = %v", v)
	}
}

func mustRead(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAbortedUpload: a client that hangs up halfway, or a multipart body that breaks off,
// leaves nothing behind.
func TestAbortedUpload(t *testing.T) {
	for _, be := range []backend{backendLocal, backendS3} {
		t.Run(string(be), func(t *testing.T) {
			w := newWorld(t, be, files.Config{})
			u, _ := url.Parse(w.srv.URL)
			conn, err := net.Dial("tcp", u.Host)
			if err != nil {
				t.Fatal(err)
			}
			head := "PUT " + Prefix + "?name=half HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-alice\r\nContent-Length: 3000000\r\n\r\n"
			if _, err := conn.Write(append([]byte(head), randomBytes(t, 1_500_000)...)); err != nil {
				t.Fatal(err)
			}
			conn.Close()
			deadline := time.Now().Add(30 * time.Second) // a deadline for waiting, not a speed assertion
			for w.counter("parley_files_uploads_rejected_total", "aborted") != 1 {
				if time.Now().After(deadline) {
					t.Fatal("the aborted upload was never counted")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if left := w.leftovers(); len(left) != 0 {
				t.Fatalf("blob store keeps %v", left)
			}

			body, ct := multipartBody(t, nil, "cut.bin", "", randomBytes(t, 100_000))
			cut := mustRead(t, body)
			cut = cut[:len(cut)-50] // no closing boundary
			wantError(t, w.request(http.MethodPost, Prefix, "alice", strings.NewReader(cut), map[string]string{"Content-Type": ct}), http.StatusBadRequest, CodeInvalidUpload)
			if left := w.leftovers(); len(left) != 0 {
				t.Fatalf("blob store keeps %v", left)
			}
			if used, _ := w.meta.UsedBytes(t.Context(), "alice"); used != 0 {
				t.Fatalf("metadata counts %d bytes", used)
			}
		})
	}
}

// TestConcurrentTraffic runs uploads and downloads of several users at once (meant for
// -race): every download returns exactly the bytes its upload sent.
func TestConcurrentTraffic(t *testing.T) {
	w := newWorld(t, backendLocal, files.Config{})
	users := []string{"alice", "bob", "carol", "dave"}
	var wg sync.WaitGroup
	errs := make(chan error, 4*len(users))
	for i, user := range users {
		for j := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				data := make([]byte, 100_000+1000*(i*4+j))
				_, _ = rand.Read(data)
				req, _ := http.NewRequest(http.MethodPut, w.srv.URL+Prefix, bytes.NewReader(data))
				req.Header.Set("Authorization", "Bearer tok-"+user)
				resp, err := w.srv.Client().Do(req)
				if err != nil {
					errs <- err
					return
				}
				var up FileJSON
				err = json.NewDecoder(resp.Body).Decode(&up)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusCreated {
					errs <- fmt.Errorf("%s upload: %d %v", user, resp.StatusCode, err)
					return
				}
				req, _ = http.NewRequest(http.MethodGet, w.srv.URL+Prefix+"/"+up.ID, nil)
				req.Header.Set("Authorization", "Bearer tok-"+user)
				resp, err = w.srv.Client().Do(req)
				if err != nil {
					errs <- err
					return
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || !bytes.Equal(got, data) {
					errs <- fmt.Errorf("%s: downloaded %d bytes (%v), uploaded %d", user, len(got), err, len(data))
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(w.leftovers()); n != 16 {
		t.Fatalf("%d blobs stored, want 16", n)
	}
}

// A Range header naming more than MaxRanges ranges is ignored: the whole file comes back
// with 200, never a multipart many times the file's size. Up to MaxRanges still work.
func TestManyRangesServeTheWholeFile(t *testing.T) {
	w := newWorld(t, backendLocal, files.Config{})
	data := randomBytes(t, 4096)
	up := w.upload("alice", "a.bin", "", data)
	ranges := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf("%d-%d", i*2, i*2)
		}
		return "bytes=" + strings.Join(parts, ",")
	}
	many := w.request(http.MethodGet, Prefix+"/"+up.ID, "alice", nil, map[string]string{"Range": ranges(1000)})
	body := mustReadAll(t, many.Body)
	if many.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("1000 ranges: %d with %d bytes, want 200 with the whole file (%d bytes)", many.StatusCode, len(body), len(data))
	}
	few := w.request(http.MethodGet, Prefix+"/"+up.ID, "alice", nil, map[string]string{"Range": ranges(MaxRanges)})
	_ = mustReadAll(t, few.Body)
	if few.StatusCode != http.StatusPartialContent || !strings.HasPrefix(few.Header.Get("Content-Type"), "multipart/byteranges") {
		t.Fatalf("%d ranges: %d %s, want 206 multipart", MaxRanges, few.StatusCode, few.Header.Get("Content-Type"))
	}
}

func mustReadAll(t *testing.T, r io.ReadCloser) []byte {
	t.Helper()
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
