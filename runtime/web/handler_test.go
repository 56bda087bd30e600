package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

var index = []byte(`<!doctype html><html><head><script type="module" src="/assets/index-abc123.js"></script></head><body><div id="root"></div></body></html>`)

func testBuild() fstest.MapFS {
	js := []byte("console.log('" + strings.Repeat("parley ", 400) + "');")
	return fstest.MapFS{
		"index.html":             {Data: index},
		"assets/index-abc123.js": {Data: js},
		"assets/logo-def456.png": {Data: []byte("\x89PNG\r\n\x1a\nnot really")},
		"sw.js":                  {Data: []byte("self.addEventListener('push', () => {});")},
		".vite/manifest.json":    {Data: []byte(`{}`)},
	}
}

func get(t *testing.T, h http.Handler, method, target string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHandlerRoutes(t *testing.T) {
	h, err := NewHandler(testBuild())
	if err != nil {
		t.Fatal(err)
	}
	if !h.Built() {
		t.Fatal("Built() = false with an index.html")
	}
	tests := []struct {
		name, method, target string
		status               int
		cache                string // Cache-Control
		ctype                string // Content-Type prefix
		bodyHas              string
	}{
		{"root is the app shell", "GET", "/", 200, "no-store", "text/html", `<div id="root">`},
		{"client route is the app shell", "GET", "/rooms/r1", 200, "no-store", "text/html", `<div id="root">`},
		{"index.html itself", "GET", "/index.html", 200, "no-store", "text/html", `<div id="root">`},
		{"hashed asset is immutable", "GET", "/assets/index-abc123.js", 200, "public, max-age=31536000, immutable", "text/javascript", "parley"},
		{"binary asset", "GET", "/assets/logo-def456.png", 200, "public, max-age=31536000, immutable", "image/png", "PNG"},
		{"service worker revalidates", "GET", "/sw.js", 200, "no-cache", "text/javascript", "push"},
		{"missing asset is 404, not the shell", "GET", "/assets/index-gone.js", 404, "no-store", "text/plain", "not found"},
		{"missing file with extension is 404", "GET", "/favicon.ico", 404, "no-store", "text/plain", "not found"},
		{"vite manifest is not served", "GET", "/.vite/manifest.json", 404, "no-store", "text/plain", "not found"},
		{"dot segments cannot climb out", "GET", "/assets/../../embed.go", 404, "no-store", "text/plain", "not found"},
		{"HEAD works", "HEAD", "/", 200, "no-store", "text/html", ""},
		{"POST refused", "POST", "/", 405, "", "text/plain", "method not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := get(t, h, tc.method, tc.target, nil)
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			if got := resp.Header.Get("Cache-Control"); got != tc.cache {
				t.Errorf("Cache-Control = %q, want %q", got, tc.cache)
			}
			if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, tc.ctype) {
				t.Errorf("Content-Type = %q, want prefix %q", got, tc.ctype)
			}
			if got := resp.Header.Get("Content-Security-Policy"); got != ContentSecurityPolicy {
				t.Errorf("CSP = %q", got)
			}
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q", got)
			}
			if b := body(t, resp); !strings.Contains(b, tc.bodyHas) || (tc.method == "HEAD" && b != "") {
				t.Errorf("body %q does not contain %q", b, tc.bodyHas)
			}
		})
	}
}

func TestHandlerCSPForbidsInlineAndForeignOrigins(t *testing.T) {
	for _, directive := range []string{"script-src 'self'", "style-src 'self'", "connect-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"} {
		if !strings.Contains(ContentSecurityPolicy, directive+";") && !strings.HasSuffix(ContentSecurityPolicy, directive) {
			t.Errorf("CSP lacks %q", directive)
		}
	}
	for _, loose := range []string{"unsafe-inline", "unsafe-eval", "*", "http:", "https:"} {
		if strings.Contains(ContentSecurityPolicy, loose) {
			t.Errorf("CSP allows %q", loose)
		}
	}
}

func TestHandlerGzipAndConditionalRequests(t *testing.T) {
	h, err := NewHandler(testBuild())
	if err != nil {
		t.Fatal(err)
	}
	plain := get(t, h, "GET", "/assets/index-abc123.js", nil)
	plainBody := body(t, plain)
	if plain.Header.Get("Content-Encoding") != "" {
		t.Fatalf("gzip without Accept-Encoding")
	}
	zipped := get(t, h, "GET", "/assets/index-abc123.js", map[string]string{"Accept-Encoding": "br, gzip"})
	if zipped.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(zipped.Header.Get("Vary"), "Accept-Encoding") {
		t.Fatalf("headers = %v, want gzip with Vary", zipped.Header)
	}
	zr, err := gzip.NewReader(bytes.NewReader([]byte(body(t, zipped))))
	if err != nil {
		t.Fatal(err)
	}
	unzipped, _ := io.ReadAll(zr)
	if string(unzipped) != plainBody {
		t.Fatal("gzipped body differs from the plain one")
	}
	if plain.Header.Get("ETag") == zipped.Header.Get("ETag") {
		t.Error("the gzipped and plain representations share an ETag")
	}
	refused := get(t, h, "GET", "/assets/index-abc123.js", map[string]string{"Accept-Encoding": "gzip;q=0"})
	if refused.Header.Get("Content-Encoding") != "" {
		t.Error("gzip sent although q=0")
	}
	again := get(t, h, "GET", "/assets/index-abc123.js", map[string]string{"If-None-Match": plain.Header.Get("ETag")})
	if again.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: status %d, want 304", again.StatusCode)
	}
	ranged := get(t, h, "GET", "/assets/index-abc123.js", map[string]string{"Range": "bytes=0-6", "Accept-Encoding": "gzip"})
	if ranged.StatusCode != http.StatusPartialContent || body(t, ranged) != plainBody[:7] {
		t.Errorf("Range: status %d", ranged.StatusCode)
	}
}

func TestHandlerWithoutBuildSaysHowToBuild(t *testing.T) {
	h, err := NewHandler(nil)
	if err != nil {
		t.Fatal(err)
	}
	if h.Built() {
		t.Fatal("Built() = true without a build")
	}
	for _, target := range []string{"/", "/rooms/x", "/assets/a.js"} {
		resp := get(t, h, "GET", target, nil)
		b := body(t, resp)
		if resp.StatusCode != http.StatusOK || !strings.Contains(b, "npm run build") || !strings.Contains(b, "make run") {
			t.Errorf("%s: status %d, body %q", target, resp.StatusCode, b)
		}
		if resp.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("%s: no CSP on the fallback page", target)
		}
	}
}

func TestNewHandlerRefusesBuildWithoutIndex(t *testing.T) {
	if _, err := NewHandler(fstest.MapFS{"assets/a.js": {Data: []byte("x")}}); err == nil {
		t.Fatal("a build without index.html was accepted")
	}
}
