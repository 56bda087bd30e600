package fileshttp

import (
	"fmt"
	"image"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/runtime/files"
)

// withoutLinks is f without its signed links (they differ per caller and per clock).
func withoutLinks(f FileJSON) FileJSON {
	f.URL, f.DownloadURL, f.ThumbnailURL, f.URLsExpireAt = "", "", "", ""
	return f
}

// clock is a settable time source shared by the service and the test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// linkFixture: alice uploaded a PNG (with thumbnail) and a text file and attached both
// in r1; bob fetched their metadata, so he holds signed links to both.
type linkFixture struct {
	w         *world
	clock     *clock
	img, txt  []byte
	imgMeta   FileJSON // bob's view
	txtMeta   FileJSON // bob's view
	imgUpload FileJSON // alice's upload response
}

func newLinkFixture(t *testing.T) *linkFixture {
	t.Helper()
	c := &clock{t: epoch}
	w := newWorld(t, backendLocal, files.Config{Now: c.Now})
	fx := &linkFixture{w: w, clock: c, img: pngImage(t, 200, 100), txt: []byte("<html><script>alert(1)</script></html>")}
	fx.imgUpload = w.upload("alice", "cat.png", "image/png", fx.img)
	txt := w.upload("alice", "notes.html", "text/html", fx.txt)
	w.rooms.send("r1", fx.imgUpload.ID)
	w.rooms.send("r1", txt.ID)
	fx.imgMeta = fx.meta(t, fx.imgUpload.ID, "bob")
	fx.txtMeta = fx.meta(t, txt.ID, "bob")
	return fx
}

func (fx *linkFixture) meta(t *testing.T, id, user string) FileJSON {
	t.Helper()
	r := fx.w.request(http.MethodGet, Prefix+"/"+id+"/meta", user, nil, nil)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("meta %s as %s: %d %s", id, user, r.StatusCode, readAll(t, r))
	}
	return decode[FileJSON](t, r)
}

// edit changes one query parameter of a link ("" deletes it).
func edit(t *testing.T, link, name, value string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if value == "" {
		q.Del(name)
	} else {
		q.Set(name, value)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// query is the query string of a link, with its "?".
func query(link string) string { return link[strings.IndexByte(link, '?'):] }

// TestSignedLinks: links from /meta fetch the file without a bearer header, with ranges,
// validators and HEAD; anything altered, expired or reused elsewhere is refused; and
// authorization still runs at request time.
func TestSignedLinks(t *testing.T) {
	type request struct {
		method string
		path   string
		header map[string]string
	}
	tests := []struct {
		name string
		// req builds the request (after any change to the world it needs).
		req    func(t *testing.T, fx *linkFixture) request
		status int
		code   string // error code; "" for success
		check  func(t *testing.T, fx *linkFixture, resp *http.Response)
	}{
		{
			name:   "content",
			req:    func(t *testing.T, fx *linkFixture) request { return request{path: fx.imgMeta.URL} },
			status: http.StatusOK,
			check: func(t *testing.T, fx *linkFixture, resp *http.Response) {
				if b := readAll(t, resp); b != string(fx.img) {
					t.Fatal("bytes differ")
				}
				wantHeaders(t, resp, map[string]string{
					"Content-Type":           "image/png",
					"Cache-Control":          "private, max-age=600",
					"Referrer-Policy":        "no-referrer",
					"X-Content-Type-Options": "nosniff",
					"ETag":                   `"` + fx.imgMeta.SHA256 + `"`,
				})
				wantDisposition(t, resp, "inline")
			},
		},
		{
			name: "range",
			req: func(t *testing.T, fx *linkFixture) request {
				return request{path: fx.imgMeta.URL, header: map[string]string{"Range": "bytes=10-19"}}
			},
			status: http.StatusPartialContent,
			check: func(t *testing.T, fx *linkFixture, resp *http.Response) {
				if b := readAll(t, resp); b != string(fx.img[10:20]) {
					t.Fatalf("range bytes %q", b)
				}
				wantHeaders(t, resp, map[string]string{"Content-Range": fmt.Sprintf("bytes 10-19/%d", len(fx.img))})
			},
		},
		{
			name: "if-range resumes",
			req: func(t *testing.T, fx *linkFixture) request {
				return request{path: fx.imgMeta.URL, header: map[string]string{"Range": "bytes=50-", "If-Range": `"` + fx.imgMeta.SHA256 + `"`}}
			},
			status: http.StatusPartialContent,
			check: func(t *testing.T, fx *linkFixture, resp *http.Response) {
				if b := readAll(t, resp); b != string(fx.img[50:]) {
					t.Fatal("resumed bytes differ")
				}
			},
		},
		{
			name: "if-none-match",
			req: func(t *testing.T, fx *linkFixture) request {
				return request{path: fx.imgMeta.URL, header: map[string]string{"If-None-Match": `"` + fx.imgMeta.SHA256 + `"`}}
			},
			status: http.StatusNotModified,
		},
		{
			name: "HEAD",
			req: func(t *testing.T, fx *linkFixture) request {
				return request{method: http.MethodHead, path: fx.imgMeta.URL}
			},
			status: http.StatusOK,
			check: func(t *testing.T, fx *linkFixture, resp *http.Response) {
				wantHeaders(t, resp, map[string]string{"Content-Length": strconv.Itoa(len(fx.img)), "Content-Type": "image/png"})
				if b := readAll(t, resp); b != "" {
					t.Fatalf("HEAD body %q", b)
				}
			},
		},
		{
			name:   "download",
			req:    func(t *testing.T, fx *linkFixture) request { return request{path: fx.imgMeta.DownloadURL} },
			status: http.StatusOK,
			check: func(t *testing.T, fx *linkFixture, resp *http.Response) {
				wantDisposition(t, resp, "attachment")
				wantHeaders(t, resp, map[string]string{"Content-Disposition": `attachment; filename="cat.png"; filename*=UTF-8''cat.png`})
			},
		},
		{
			name:   "HTML is never inline",
			req:    func(t *testing.T, fx *linkFixture) request { return request{path: fx.txtMeta.URL} },
			status: http.StatusOK,
			check: func(t *testing.T, fx *linkFixture, resp *http.Response) {
				// The sniffed type is served, but only ever as a download, sandboxed.
				wantDisposition(t, resp, "attachment")
				if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") {
					t.Fatalf("CSP %q", csp)
				}
			},
		},
		{
			name:   "thumbnail",
			req:    func(t *testing.T, fx *linkFixture) request { return request{path: fx.imgMeta.ThumbnailURL} },
			status: http.StatusOK,
			check: func(t *testing.T, fx *linkFixture, resp *http.Response) {
				if _, _, err := image.DecodeConfig(resp.Body); err != nil {
					t.Fatalf("thumbnail: %v", err)
				}
				wantHeaders(t, resp, map[string]string{"Referrer-Policy": "no-referrer"})
			},
		},
		{
			name: "HEAD thumbnail",
			req: func(t *testing.T, fx *linkFixture) request {
				return request{method: http.MethodHead, path: fx.imgMeta.ThumbnailURL}
			},
			status: http.StatusOK,
		},
		{
			name: "expired",
			req: func(t *testing.T, fx *linkFixture) request {
				fx.clock.Add(testLinkTTL + time.Second)
				return request{path: fx.imgMeta.URL}
			},
			status: http.StatusUnauthorized, code: CodeLinkExpired,
		},
		{
			name: "expired at its second",
			req: func(t *testing.T, fx *linkFixture) request {
				exp, _ := time.Parse(time.RFC3339, fx.imgMeta.URLsExpireAt)
				fx.clock.Add(exp.Sub(fx.clock.Now()))
				return request{path: fx.imgMeta.URL}
			},
			status: http.StatusUnauthorized, code: CodeLinkExpired,
		},
		{
			name: "tampered signature",
			req: func(t *testing.T, fx *linkFixture) request {
				sig := []byte(mustQuery(t, fx.imgMeta.URL, "sig"))
				sig[3] ^= 1
				return request{path: edit(t, fx.imgMeta.URL, "sig", string(sig))}
			},
			status: http.StatusUnauthorized, code: CodeInvalidLink,
		},
		{
			name: "malformed signature",
			req: func(t *testing.T, fx *linkFixture) request {
				return request{path: edit(t, fx.imgMeta.URL, "sig", "not base64!")}
			},
			status: http.StatusUnauthorized, code: CodeInvalidLink,
		},
		{
			name:   "no signature",
			req:    func(t *testing.T, fx *linkFixture) request { return request{path: edit(t, fx.imgMeta.URL, "sig", "")} },
			status: http.StatusUnauthorized, code: CodeInvalidLink,
		},
		{
			name: "signature twice",
			req: func(t *testing.T, fx *linkFixture) request {
				return request{path: fx.imgMeta.URL + "&sig=" + mustQuery(t, fx.imgMeta.URL, "sig")}
			},
			status: http.StatusUnauthorized, code: CodeInvalidLink,
		},
		{
			name: "later expiry",
			req: func(t *testing.T, fx *linkFixture) request {
				exp, _ := strconv.ParseInt(mustQuery(t, fx.imgMeta.URL, "exp"), 10, 64)
				return request{path: edit(t, fx.imgMeta.URL, "exp", strconv.FormatInt(exp+3600, 10))}
			},
			status: http.StatusUnauthorized, code: CodeInvalidLink,
		},
		{
			name: "another user",
			req: func(t *testing.T, fx *linkFixture) request {
				return request{path: edit(t, fx.imgMeta.URL, "u", "alice")}
			},
			status: http.StatusUnauthorized, code: CodeInvalidLink,
		},
		{
			name: "signature of another file",
			req: func(t *testing.T, fx *linkFixture) request {
				return request{path: Prefix + "/" + fx.txtMeta.ID + query(fx.imgMeta.URL)}
			},
			status: http.StatusUnauthorized, code: CodeInvalidLink,
		},
		{
			name: "thumbnail signature on content",
			req: func(t *testing.T, fx *linkFixture) request {
				return request{path: Prefix + "/" + fx.imgMeta.ID + query(fx.imgMeta.ThumbnailURL)}
			},
			status: http.StatusUnauthorized, code: CodeInvalidLink,
		},
		{
			name: "content signature on thumbnail",
			req: func(t *testing.T, fx *linkFixture) request {
				return request{path: Prefix + "/" + fx.imgMeta.ID + "/thumbnail" + query(fx.imgMeta.URL)}
			},
			status: http.StatusUnauthorized, code: CodeInvalidLink,
		},
		{
			name: "download without dl",
			req: func(t *testing.T, fx *linkFixture) request {
				return request{path: edit(t, fx.imgMeta.DownloadURL, "dl", "")}
			},
			status: http.StatusUnauthorized, code: CodeInvalidLink,
		},
		{
			name:   "content with dl added",
			req:    func(t *testing.T, fx *linkFixture) request { return request{path: edit(t, fx.imgMeta.URL, "dl", "1")} },
			status: http.StatusUnauthorized, code: CodeInvalidLink,
		},
		{
			name: "a bad link with a good bearer header is still a bad link",
			req: func(t *testing.T, fx *linkFixture) request {
				return request{path: edit(t, fx.imgMeta.URL, "u", "alice"), header: map[string]string{"Authorization": "Bearer tok-alice"}}
			},
			status: http.StatusUnauthorized, code: CodeInvalidLink,
		},
		{
			name: "reader blocked after the link was issued",
			req: func(t *testing.T, fx *linkFixture) request {
				fx.w.rooms.block("alice", "bob")
				return request{path: fx.imgMeta.URL}
			},
			status: http.StatusNotFound, code: CodeNotFound,
		},
		{
			name: "reader left the room after the link was issued",
			req: func(t *testing.T, fx *linkFixture) request {
				fx.w.rooms.leave("r1", "bob")
				return request{path: fx.imgMeta.ThumbnailURL}
			},
			status: http.StatusNotFound, code: CodeNotFound,
		},
		{
			name: "file removed after the link was issued",
			req: func(t *testing.T, fx *linkFixture) request {
				if r := fx.w.request(http.MethodDelete, Prefix+"/"+fx.imgMeta.ID, "alice", nil, nil); r.StatusCode != http.StatusOK {
					t.Fatalf("delete: %d", r.StatusCode)
				}
				return request{path: fx.imgMeta.URL}
			},
			status: http.StatusGone, code: CodeFileRemoved,
		},
		{
			name: "bearer download with dl=1",
			req: func(t *testing.T, fx *linkFixture) request {
				return request{path: Prefix + "/" + fx.imgMeta.ID + "?dl=1", header: map[string]string{"Authorization": "Bearer tok-bob"}}
			},
			status: http.StatusOK,
			check: func(t *testing.T, fx *linkFixture, resp *http.Response) {
				wantDisposition(t, resp, "attachment")
				wantHeaders(t, resp, map[string]string{"Cache-Control": "private, no-cache"})
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := newLinkFixture(t)
			rq := tc.req(t, fx)
			if rq.method == "" {
				rq.method = http.MethodGet
			}
			// No bearer header unless the case sets one: the link is the credential.
			resp := fx.w.request(rq.method, rq.path, "", nil, rq.header)
			if tc.code != "" {
				wantError(t, resp, tc.status, tc.code)
				return
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.status, readAll(t, resp))
			}
			if tc.check != nil {
				tc.check(t, fx, resp)
			}
		})
	}
}

// TestMetaLinks: /meta and the upload response carry links exactly when the caller may
// read a file that is not removed, each link naming the caller, and the expiry they
// state is the one the links carry.
func TestMetaLinks(t *testing.T) {
	fx := newLinkFixture(t)
	tests := []struct {
		name      string
		f         FileJSON
		user      string
		thumbnail bool
	}{
		{"uploader's upload response", fx.imgUpload, "alice", true},
		{"reader's image", fx.imgMeta, "bob", true},
		{"reader's text file", fx.txtMeta, "bob", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			exp, err := time.Parse(time.RFC3339, tc.f.URLsExpireAt)
			if err != nil {
				t.Fatalf("urls_expire_at %q: %v", tc.f.URLsExpireAt, err)
			}
			if life := exp.Sub(epoch); life < testLinkTTL*3/4 || life > testLinkTTL {
				t.Fatalf("links live %s, want between 3/4 of %s and %[2]s", life, testLinkTTL)
			}
			links := map[string]string{"url": tc.f.URL, "download_url": tc.f.DownloadURL}
			if tc.thumbnail {
				links["thumbnail_url"] = tc.f.ThumbnailURL
			} else if tc.f.ThumbnailURL != "" {
				t.Fatalf("thumbnail_url %q for a file without thumbnail", tc.f.ThumbnailURL)
			}
			for name, link := range links {
				wantPath := Prefix + "/" + tc.f.ID
				if name == "thumbnail_url" {
					wantPath += "/thumbnail"
				}
				u, err := url.Parse(link)
				if err != nil || u.Path != wantPath || u.Host != "" {
					t.Fatalf("%s = %q, want a relative link to %s", name, link, wantPath)
				}
				q := u.Query()
				if q.Get("u") != tc.user || q.Get("exp") != strconv.FormatInt(exp.Unix(), 10) || q.Get("sig") == "" {
					t.Fatalf("%s = %q, want u=%s, exp=%d and a signature", name, link, tc.user, exp.Unix())
				}
				if (q.Get("dl") == "1") != (name == "download_url") {
					t.Fatalf("%s = %q: dl=1 belongs to download_url only", name, link)
				}
			}
		})
	}
	// Asking again within the step gives the same links (browser caches key on them).
	if again := fx.meta(t, fx.imgMeta.ID, "bob"); again != fx.imgMeta {
		t.Fatalf("meta asked twice at once gives other links:\n%+v\n%+v", again, fx.imgMeta)
	}
	t.Run("removed file has none", func(t *testing.T) {
		fx := newLinkFixture(t)
		del := fx.w.request(http.MethodDelete, Prefix+"/"+fx.imgMeta.ID, "alice", nil, nil)
		if d := decode[FileJSON](t, del); d.Status != "removed" || d.URL != "" || d.DownloadURL != "" || d.ThumbnailURL != "" || d.URLsExpireAt != "" {
			t.Fatalf("delete response %+v carries links", d)
		}
		if m := fx.meta(t, fx.imgMeta.ID, "bob"); m.Status != "removed" || m != withoutLinks(m) {
			t.Fatalf("meta of a removed file %+v carries links", m)
		}
	})
	t.Run("unreadable file has no meta at all", func(t *testing.T) {
		wantError(t, fx.w.request(http.MethodGet, Prefix+"/"+fx.imgMeta.ID+"/meta", "carol", nil, nil), http.StatusNotFound, CodeNotFound)
	})
}

// TestLinksDisabled: a handler built without WithSignedLinks hands out none and refuses
// signed requests.
func TestLinksDisabled(t *testing.T) {
	fx := newLinkFixture(t)
	svc := files.NewService(fx.w.blobs, fx.w.meta, fx.w.rooms, fx.w.rooms, files.Config{Now: fx.clock.Now})
	plain := New(svc, tokens{"tok-bob": "bob"})
	rec := func(path, token string) *http.Response {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		plain.ServeHTTP(w, req)
		return w.Result()
	}
	m := rec(Prefix+"/"+fx.imgMeta.ID+"/meta", "tok-bob")
	if got := decode[FileJSON](t, m); got.ID != fx.imgMeta.ID || got != withoutLinks(got) {
		t.Fatalf("meta without links configured = %+v", got)
	}
	wantError(t, rec(fx.imgMeta.URL, ""), http.StatusUnauthorized, CodeInvalidLink)
}

func mustQuery(t *testing.T, link, name string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil || u.Query().Get(name) == "" {
		t.Fatalf("link %q has no %s", link, name)
	}
	return u.Query().Get(name)
}

func wantHeaders(t *testing.T, resp *http.Response, want map[string]string) {
	t.Helper()
	for h, v := range want {
		if got := resp.Header.Get(h); got != v {
			t.Errorf("%s = %q, want %q", h, got, v)
		}
	}
}

func wantDisposition(t *testing.T, resp *http.Response, want string) {
	t.Helper()
	if d, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); d != want {
		t.Fatalf("Content-Disposition %q, want %s", resp.Header.Get("Content-Disposition"), want)
	}
}
