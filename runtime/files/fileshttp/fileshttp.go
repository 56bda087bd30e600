// Package fileshttp is the HTTP edge of file transfer: uploads, downloads, thumbnails,
// metadata and deletion under /api/v1/files. It translates the domain errors of package
// files into JSON {"code","message"} bodies with precise codes.
package fileshttp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gabriel-vasile/mimetype"

	"github.com/parleychat/parley/runtime/files"
	"github.com/parleychat/parley/runtime/files/blob"
)

// Error codes of this edge. They are stable: clients switch on them.
const (
	CodeUnauthorized     = "unauthorized"
	CodeNotFound         = "not_found"
	CodeForbidden        = "forbidden"
	CodeFileRemoved      = "file_removed"
	CodeNoThumbnail      = "no_thumbnail"
	CodeFileTooLarge     = "file_too_large"
	CodeQuotaExceeded    = "quota_exceeded"
	CodeInvalidRange     = "invalid_range"
	CodeInvalidUpload    = "invalid_upload"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeInternal         = "internal"
)

// Prefix is where the handler answers.
const Prefix = "/api/v1/files"

// inlineTypes are served inline; everything else is a download (attachment). SVG is not
// here: it can carry scripts.
var inlineTypes = map[string]bool{
	"image/png":  true,
	"image/jpeg": true,
	"image/gif":  true,
	"image/webp": true,
}

// Handler serves /api/v1/files.
type Handler struct {
	svc     *files.Service
	auth    files.Authenticator
	metrics *files.Metrics
	log     *slog.Logger
	mux     *http.ServeMux
	links   *linker // nil: no signed links
}

// Route is one served method and path, as OpenAPI spells it.
type Route struct{ Method, Path string }

// Routes lists what the handler serves (HEAD is answered by the GET handlers); the
// OpenAPI test in runtime/httpapi holds the document to it.
func Routes() []Route {
	return []Route{
		{"PUT", Prefix}, {"POST", Prefix},
		{"GET", Prefix + "/{id}"}, {"HEAD", Prefix + "/{id}"}, {"DELETE", Prefix + "/{id}"},
		{"GET", Prefix + "/{id}/thumbnail"}, {"HEAD", Prefix + "/{id}/thumbnail"},
		{"GET", Prefix + "/{id}/meta"},
	}
}

// New returns the handler. Metrics, logger and clock come from the service's
// configuration.
func New(svc *files.Service, auth files.Authenticator, opts ...Option) *Handler {
	cfg := svc.Config()
	h := &Handler{svc: svc, auth: auth, metrics: cfg.Metrics, log: cfg.Logger, mux: http.NewServeMux()}
	for _, o := range opts {
		o(h)
	}
	h.mux.HandleFunc("PUT "+Prefix, h.upload)
	h.mux.HandleFunc("POST "+Prefix, h.upload)
	// GET patterns answer HEAD too.
	h.mux.HandleFunc("GET "+Prefix+"/{id}", h.download)
	h.mux.HandleFunc("DELETE "+Prefix+"/{id}", h.delete)
	h.mux.HandleFunc("GET "+Prefix+"/{id}/thumbnail", h.thumbnail)
	h.mux.HandleFunc("GET "+Prefix+"/{id}/meta", h.meta)
	// Everything else under the prefix answers in JSON too.
	h.mux.HandleFunc(Prefix, h.fallback)
	h.mux.HandleFunc(Prefix+"/", h.fallback)
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// FileJSON is the metadata shown to clients.
type FileJSON struct {
	ID           string    `json:"id"`
	UploaderID   string    `json:"uploader_id"`
	Name         string    `json:"name"`
	Size         int64     `json:"size"`
	SHA256       string    `json:"sha256"`
	ContentType  string    `json:"content_type"`
	ClaimedType  string    `json:"claimed_type"`
	CreatedAt    time.Time `json:"created_at"`
	Status       string    `json:"status"`
	HasThumbnail bool      `json:"has_thumbnail"`
	// Signed links for the caller (see links.go); only when the caller may read the file
	// and it is not removed. Strings keep the struct comparable.
	URL          string `json:"url,omitempty"`
	DownloadURL  string `json:"download_url,omitempty"`
	ThumbnailURL string `json:"thumbnail_url,omitempty"`
	URLsExpireAt string `json:"urls_expire_at,omitempty"` // RFC 3339
}

func toJSON(f files.File) FileJSON {
	return FileJSON{
		ID: f.ID, UploaderID: f.UploaderID, Name: f.Name, Size: f.Size, SHA256: f.SHA256,
		ContentType: f.ContentType, ClaimedType: f.ClaimedType, CreatedAt: f.CreatedAt,
		Status: string(f.Status), HasThumbnail: f.ThumbnailID != "",
	}
}

// ErrorJSON is every error body.
type ErrorJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	// Served as application/json with nosniff, never inside HTML: links keep a plain "&".
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="parley"`)
	}
	writeJSON(w, status, ErrorJSON{Code: code, Message: message})
}

// fail maps a domain error to its status and code.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var limit *files.LimitError
	switch {
	case errors.As(err, &limit):
		code := CodeFileTooLarge
		if limit.Reason == files.RejectQuota {
			code = CodeQuotaExceeded
		}
		// The rest of the body is not wanted: closing beats draining a huge upload.
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestEntityTooLarge, code, limit.Error())
	case errors.Is(err, files.ErrUploadAborted):
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusBadRequest, CodeInvalidUpload, "the upload body broke off before its end")
	case errors.Is(err, files.ErrUnauthorized):
		writeError(w, http.StatusUnauthorized, CodeUnauthorized, "a valid bearer token is required")
	case errors.Is(err, files.ErrNotFound), errors.Is(err, blob.ErrInvalidID), errors.Is(err, blob.ErrNotFound):
		writeError(w, http.StatusNotFound, CodeNotFound, "no such file")
	case errors.Is(err, files.ErrRemoved):
		writeError(w, http.StatusGone, CodeFileRemoved, "the file was removed")
	case errors.Is(err, files.ErrNoThumbnail):
		writeError(w, http.StatusNotFound, CodeNoThumbnail, "this file has no thumbnail")
	case errors.Is(err, files.ErrForbidden):
		writeError(w, http.StatusForbidden, CodeForbidden, "only the uploader may delete a file")
	default:
		h.log.ErrorContext(r.Context(), "files request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, CodeInternal, "internal error")
	}
}

// user authenticates the request; the empty string means the response is written.
func (h *Handler) user(w http.ResponseWriter, r *http.Request) string {
	token, ok := bearer(r)
	if !ok {
		writeError(w, http.StatusUnauthorized, CodeUnauthorized, "a bearer token is required")
		return ""
	}
	id, err := h.auth.UserID(r.Context(), token)
	if err != nil || id == "" {
		writeError(w, http.StatusUnauthorized, CodeUnauthorized, "invalid or expired token")
		return ""
	}
	return id
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// fallback answers the rest of the prefix: 405 for paths that exist with other
// methods, 404 for anything else.
func (h *Handler) fallback(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == Prefix || isFilePath(r.URL.Path) {
		writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, r.Method+" is not allowed here")
		return
	}
	writeError(w, http.StatusNotFound, CodeNotFound, "no such resource")
}

// isFilePath matches /api/v1/files/{id}, .../{id}/thumbnail and .../{id}/meta.
func isFilePath(p string) bool {
	rest, ok := strings.CutPrefix(p, Prefix+"/")
	if !ok {
		return false
	}
	id, sub, hasSub := strings.Cut(rest, "/")
	return id != "" && (!hasSub || sub == "thumbnail" || sub == "meta")
}

// maxFormFieldBytes bounds each non-file part read (and discarded) before the file.
const (
	maxFormFieldBytes = 64 << 10
	maxFormParts      = 16
)

// upload accepts a raw body (PUT or POST with any non-multipart type; the name from
// ?name= or a Content-Disposition header) or multipart/form-data with the file in the
// part named "file". Either way the body streams straight into the blob store.
func (h *Handler) upload(w http.ResponseWriter, r *http.Request) {
	userID := h.user(w, r)
	if userID == "" {
		h.metrics.Rejected(files.RejectUnauthorized)
		return
	}
	in, err := uploadFromRequest(r)
	if err != nil {
		h.metrics.Rejected(files.RejectBadRequest)
		writeError(w, http.StatusBadRequest, CodeInvalidUpload, err.Error())
		return
	}
	f, err := h.svc.Upload(r.Context(), userID, in)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Location", Prefix+"/"+f.ID)
	writeJSON(w, http.StatusCreated, h.withLinks(toJSON(f), f, userID))
}

func uploadFromRequest(r *http.Request) (files.Upload, error) {
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType != "multipart/form-data" {
		name := r.URL.Query().Get("name")
		if name == "" {
			if _, params, err := mime.ParseMediaType(r.Header.Get("Content-Disposition")); err == nil {
				name = params["filename"] // mime decodes filename* into filename
			}
		}
		length := r.ContentLength
		if length < 0 {
			length = -1
		}
		return files.Upload{Body: r.Body, Name: name, ClaimedType: r.Header.Get("Content-Type"), Length: length}, nil
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return files.Upload{}, fmt.Errorf("multipart body: %w", err)
	}
	for range maxFormParts {
		part, err := mr.NextPart()
		if err == io.EOF {
			return files.Upload{}, errors.New(`multipart body has no part named "file"`)
		}
		if err != nil {
			return files.Upload{}, fmt.Errorf("multipart body: %w", err)
		}
		if part.FormName() == "file" {
			// The part is no longer than the request body: that bounds its quota hold.
			return files.Upload{Body: part, Name: rawFileName(part), ClaimedType: part.Header.Get("Content-Type"), Length: -1,
				AtMost: max(r.ContentLength, 0)}, nil
		}
		if n, _ := io.Copy(io.Discard, io.LimitReader(part, maxFormFieldBytes+1)); n > maxFormFieldBytes {
			return files.Upload{}, fmt.Errorf("multipart field %q is longer than %d bytes", part.FormName(), maxFormFieldBytes)
		}
	}
	return files.Upload{}, fmt.Errorf(`no part named "file" among the first %d parts`, maxFormParts)
}

// rawFileName returns the part's file name as sent; part.FileName would already strip
// directories, but the domain sanitizes every name the same way whatever the transport.
func rawFileName(p *multipart.Part) string {
	_, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
	if err != nil {
		return p.FileName()
	}
	return params["filename"]
}

func (h *Handler) download(w http.ResponseWriter, r *http.Request) {
	a, ok := h.reader(w, r, false)
	if !ok {
		return
	}
	f, rc, err := h.svc.Open(r.Context(), a.userID, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer rc.Close()
	hdr := w.Header()
	hdr.Set("Content-Type", f.ContentType)
	disposition := "attachment"
	if inlineTypes[f.ContentType] && !a.download {
		disposition = "inline"
	}
	hdr.Set("Content-Disposition", files.ContentDisposition(disposition, f.Name))
	hdr.Set("ETag", `"`+f.SHA256+`"`)
	h.serve(w, r, f.CreatedAt, rc, h.cacheControl(a))
}

func (h *Handler) thumbnail(w http.ResponseWriter, r *http.Request) {
	a, ok := h.reader(w, r, true)
	if !ok {
		return
	}
	f, rc, err := h.svc.OpenThumbnail(r.Context(), a.userID, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer rc.Close()
	// Thumbnails are JPEG or PNG, written by us; sniff which.
	mt, err := mimetype.DetectReader(io.LimitReader(rc, 512))
	if err != nil {
		h.fail(w, r, fmt.Errorf("sniff thumbnail of %s: %w", f.ID, err))
		return
	}
	if _, err := rc.Seek(0, io.SeekStart); err != nil {
		h.fail(w, r, fmt.Errorf("rewind thumbnail of %s: %w", f.ID, err))
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", mt.String())
	hdr.Set("Content-Disposition", files.ContentDisposition("inline", "thumbnail-"+f.Name+mt.Extension()))
	hdr.Set("ETag", `"thumb-`+f.ThumbnailID+`"`)
	h.serve(w, r, f.CreatedAt, rc, h.cacheControl(a))
}

// MaxRanges is the most ranges one Range header may ask for; with more, the header is
// ignored and the whole file is served.
const MaxRanges = 16

// tooManyRanges reports whether a Range header names more than MaxRanges ranges.
func tooManyRanges(h string) bool {
	return h != "" && strings.Count(h, ",")+1 > MaxRanges
}

// serve hands the blob to http.ServeContent for Range, If-Range, If-None-Match and HEAD,
// with the headers every file response carries.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, modTime time.Time, content io.ReadSeeker, cacheControl string) {
	hdr := w.Header()
	hdr.Set("X-Content-Type-Options", "nosniff")
	// Bearer requests are authorized anew each time: caches may keep the bytes but must
	// revalidate. Signed links may be kept while they live (cacheControl).
	hdr.Set("Cache-Control", cacheControl)
	// Even if a browser renders a file, it gets no scripts, no plugins and no origin.
	hdr.Set("Content-Security-Policy", "default-src 'none'; img-src 'self'; media-src 'self'; sandbox")
	if tooManyRanges(r.Header.Get("Range")) {
		// Many small ranges make a multipart answer far larger than the file: ignoring
		// Range (RFC 9110 allows it) serves the file once, with 200.
		r = r.Clone(r.Context())
		r.Header.Del("Range")
	}
	cw := &serveWriter{ResponseWriter: w}
	http.ServeContent(cw, r, "", modTime, content)
	h.metrics.AddBytesOut(cw.written)
}

func (h *Handler) meta(w http.ResponseWriter, r *http.Request) {
	userID := h.user(w, r)
	if userID == "" {
		return
	}
	f, err := h.svc.Meta(r.Context(), userID, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, h.withLinks(toJSON(f), f, userID))
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request) {
	userID := h.user(w, r)
	if userID == "" {
		return
	}
	f, err := h.svc.Delete(r.Context(), userID, r.PathValue("id"))
	if err != nil && f.ID == "" {
		h.fail(w, r, err)
		return
	}
	if err != nil {
		// The file is removed for everyone; only its bytes linger for a later retry.
		h.log.WarnContext(r.Context(), "file removed but its blobs were not all deleted", "file", f.ID, "err", err)
	}
	writeJSON(w, http.StatusOK, toJSON(f))
}

// serveWriter counts the bytes sent and turns ServeContent's plain-text 416 into this
// API's JSON error.
type serveWriter struct {
	http.ResponseWriter
	written  int64
	swallow  bool
	reported bool
}

func (s *serveWriter) WriteHeader(status int) {
	if s.reported {
		return
	}
	s.reported = true
	if status == http.StatusRequestedRangeNotSatisfiable {
		s.swallow = true
		body, _ := json.Marshal(ErrorJSON{Code: CodeInvalidRange, Message: "the requested range is not satisfiable"})
		body = append(body, '\n')
		hdr := s.ResponseWriter.Header()
		hdr.Set("Content-Type", "application/json")
		hdr.Set("Content-Length", strconv.Itoa(len(body)))
		s.ResponseWriter.WriteHeader(status)
		_, _ = s.ResponseWriter.Write(body)
		return
	}
	s.ResponseWriter.WriteHeader(status)
}

func (s *serveWriter) Write(p []byte) (int, error) {
	if s.swallow {
		return len(p), nil
	}
	if !s.reported {
		s.WriteHeader(http.StatusOK)
	}
	n, err := s.ResponseWriter.Write(p)
	s.written += int64(n)
	return n, err
}

// ReadFrom keeps the server's sendfile path for local blobs.
func (s *serveWriter) ReadFrom(r io.Reader) (int64, error) {
	if s.swallow {
		return io.Copy(io.Discard, r)
	}
	if !s.reported {
		s.WriteHeader(http.StatusOK)
	}
	n, err := io.Copy(s.ResponseWriter, r)
	s.written += n
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (s *serveWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
