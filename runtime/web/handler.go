package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

// ContentSecurityPolicy is sent with every response of the client. No inline script or
// style, no third-party origin: an injected script could neither run nor phone home.
// 'self' in connect-src covers the same-origin WebSocket (ws:/wss:) in current browsers.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; worker-src 'self'; " +
	"manifest-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; " +
	"frame-ancestors 'none'; form-action 'self'"

// assetsDir holds Vite's content-hashed files: they never change under one name.
const assetsDir = "assets/"

// file is one file of the build, read once at start.
type file struct {
	name    string
	body    []byte
	gzipped []byte // nil when compression would not pay
	etag    string
	ctype   string
}

// Handler serves the client build. Construct it with NewHandler.
type Handler struct {
	files    map[string]*file
	index    *file
	modified time.Time
}

// NewHandler reads build (the output of `npm run build`) into memory, compressing what
// compresses. A nil build serves the "not built" page for every route.
func NewHandler(build fs.FS) (*Handler, error) {
	h := &Handler{files: map[string]*file{}, modified: time.Now()}
	if build == nil {
		return h, nil
	}
	err := fs.WalkDir(build, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		// Vite's manifest is for the build tooling, not for browsers.
		if strings.HasPrefix(name, ".vite/") {
			return nil
		}
		body, err := fs.ReadFile(build, name)
		if err != nil {
			return err
		}
		h.files[name] = newFile(name, body)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("web: read build: %w", err)
	}
	h.index = h.files["index.html"]
	if h.index == nil {
		return nil, fmt.Errorf("web: build has no index.html")
	}
	return h, nil
}

// Built tells whether the handler serves a client (rather than the "not built" page).
func (h *Handler) Built() bool { return h.index != nil }

func newFile(name string, body []byte) *file {
	sum := sha256.Sum256(body)
	f := &file{name: name, body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	f.ctype = mime.TypeByExtension(path.Ext(name))
	if f.ctype == "" {
		f.ctype = http.DetectContentType(body)
	}
	if compressible(f.ctype) && len(body) > 512 {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(body)
		_ = zw.Close()
		if buf.Len() < len(body)*9/10 {
			f.gzipped = buf.Bytes()
		}
	}
	return f
}

func compressible(ctype string) bool {
	base, _, _ := strings.Cut(ctype, ";")
	switch strings.TrimSpace(base) {
	case "text/html", "text/css", "text/javascript", "application/javascript", "application/json",
		"image/svg+xml", "application/manifest+json", "text/plain":
		return true
	}
	return false
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "same-origin")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
	hdr.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if h.index == nil {
		notBuilt(w, r)
		return
	}
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	f, ok := h.files[name]
	switch {
	case ok && strings.HasPrefix(name, assetsDir):
		hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	case ok && name != "index.html":
		// sw.js, icons, the manifest: stable names, so always revalidated.
		hdr.Set("Cache-Control", "no-cache")
	case !ok && (strings.HasPrefix(name, assetsDir) || path.Ext(name) != ""):
		// A missing asset must not turn into index.html: the browser would run HTML as a
		// script and report a confusing MIME error instead of a 404.
		hdr.Set("Cache-Control", "no-store")
		http.Error(w, "not found", http.StatusNotFound)
		return
	default:
		// "/" and every client-side route get the app shell, never cached, so a new
		// release reaches the next page load.
		f = h.index
		hdr.Set("Cache-Control", "no-store")
	}
	serveFile(w, r, f, h.modified)
}

func serveFile(w http.ResponseWriter, r *http.Request, f *file, modified time.Time) {
	hdr := w.Header()
	hdr.Set("Content-Type", f.ctype)
	body, etag := f.body, f.etag
	if f.gzipped != nil {
		hdr.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) && r.Header.Get("Range") == "" {
			body, etag = f.gzipped, strings.TrimSuffix(f.etag, `"`)+`-gz"`
			hdr.Set("Content-Encoding", "gzip")
		}
	}
	hdr.Set("ETag", etag)
	http.ServeContent(w, r, f.name, modified, bytes.NewReader(body))
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			return strings.ReplaceAll(strings.TrimSpace(params), " ", "") != "q=0"
		}
	}
	return false
}

// notBuilt is what a binary built without the client serves at every route.
func notBuilt(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	if r.Method == http.MethodHead {
		return
	}
	fmt.Fprint(w, notBuiltPage)
}

const notBuiltPage = `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Parley: web client not built</title></head>
<body><main>
<h1>Parley is running, but this binary has no web client</h1>
<p>It was built without the client's production build (Node.js was missing, or
<code>npm run build</code> had not run). The REST API (<code>/api/v1</code>) and the
WebSocket endpoint (<code>/ws</code>) work as usual.</p>
<p>To get the client, with Node.js 20 or newer, from the repository root:</p>
<pre>make run</pre>
<p>or by hand:</p>
<pre>cd runtime/web &amp;&amp; npm ci &amp;&amp; npm run build &amp;&amp; cd ../.. &amp;&amp; go run . dev</pre>
</main></body></html>
`
