package fileshttp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/parleychat/parley/runtime/files"
)

// Signed links let a browser fetch a file with <img src> or <a download>, which cannot
// carry a bearer header: GET /api/v1/files/{id}[/thumbnail]?exp=&u=[&dl=1]&sig=. The
// signature names the file, the variant, the user and the expiry; authorization still
// runs at request time as that user.

// Error codes of signed links.
const (
	CodeLinkExpired = "link_expired"
	CodeInvalidLink = "invalid_link"
)

// DefaultLinkTTL is how long a signed link lives (--files-link-ttl).
const DefaultLinkTTL = 15 * time.Minute

// maxLinkCacheAge caps the max-age of responses to signed links, whatever the TTL.
const maxLinkCacheAge = time.Hour

// linkKeyLabel separates the link key from every other use of the JWT signing key.
const linkKeyLabel = "parley file links v1"

// LinkKey derives the key that signs file links from the access-token signing key, so
// every core replica agrees without configuration of its own, and a link signature can
// never be mistaken for a token signature.
func LinkKey(signingKey []byte) []byte {
	m := hmac.New(sha256.New, signingKey)
	m.Write([]byte(linkKeyLabel))
	return m.Sum(nil)
}

// Option configures the handler.
type Option func(*Handler)

// WithSignedLinks makes /meta and uploads return signed links valid about ttl (0: the
// default) and lets content and thumbnail requests authenticate with them. key is
// LinkKey(signing key).
func WithSignedLinks(key []byte, ttl time.Duration) Option {
	if ttl <= 0 {
		ttl = DefaultLinkTTL
	}
	return func(h *Handler) {
		h.links = &linker{key: append([]byte(nil), key...), ttl: ttl, now: h.svc.Config().Now}
	}
}

// variant is what a link serves; it is part of the signature.
type variant string

const (
	variantContent   variant = "content"
	variantDownload  variant = "download"
	variantThumbnail variant = "thumbnail"
)

type linker struct {
	key []byte
	ttl time.Duration
	now func() time.Time
}

// sign is base64url(HMAC-SHA256(key, fields)), each field length-prefixed so that no
// two field lists encode alike whatever bytes a user id holds.
func (l *linker) sign(v variant, fileID, userID string, exp int64) []byte {
	m := hmac.New(sha256.New, l.key)
	var n [binary.MaxVarintLen64]byte
	for _, s := range []string{"v1", string(v), fileID, userID, strconv.FormatInt(exp, 10)} {
		m.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		m.Write([]byte(s))
	}
	return m.Sum(nil)
}

// expiry steps in quarters of the TTL, so a client asking again soon gets the same URLs
// (browser caches key on them); a link lives between 3/4 of the TTL and the TTL.
func (l *linker) expiry() time.Time {
	step := (l.ttl / 4).Truncate(time.Second)
	if step < time.Second {
		step = time.Second
	}
	return l.now().Add(l.ttl).Truncate(step).UTC()
}

func (l *linker) url(v variant, fileID, userID string, exp int64) string {
	path := Prefix + "/" + fileID
	if v == variantThumbnail {
		path += "/thumbnail"
	}
	q := "?exp=" + strconv.FormatInt(exp, 10) + "&u=" + url.QueryEscape(userID)
	if v == variantDownload {
		q += "&dl=1"
	}
	return path + q + "&sig=" + base64.RawURLEncoding.EncodeToString(l.sign(v, fileID, userID, exp))
}

// withLinks adds the signed links of f for userID, who may read it; removed files and a
// handler without links get none.
func (h *Handler) withLinks(j FileJSON, f files.File, userID string) FileJSON {
	if h.links == nil || f.Status != files.StatusUploaded {
		return j
	}
	expAt := h.links.expiry()
	exp := expAt.Unix()
	j.URL = h.links.url(variantContent, f.ID, userID, exp)
	j.DownloadURL = h.links.url(variantDownload, f.ID, userID, exp)
	if f.ThumbnailID != "" {
		j.ThumbnailURL = h.links.url(variantThumbnail, f.ID, userID, exp)
	}
	j.URLsExpireAt = expAt.Format(time.RFC3339)
	return j
}

// access is how a content or thumbnail request was authenticated.
type access struct {
	userID   string
	download bool      // serve as an attachment whatever the type
	expires  time.Time // zero for bearer requests
}

// reader authenticates a content or thumbnail request: by signed link when the query
// carries any of exp, u or sig (the Authorization header is then not consulted, so a
// link is judged on its own), by bearer token otherwise. ok false: the answer is written.
func (h *Handler) reader(w http.ResponseWriter, r *http.Request, thumbnail bool) (access, bool) {
	q := r.URL.Query()
	if !q.Has("sig") && !q.Has("exp") && !q.Has("u") {
		id := h.user(w, r)
		return access{userID: id, download: !thumbnail && q.Get("dl") == "1"}, id != ""
	}
	// The URL carries a credential: keep it out of Referer headers the response causes.
	w.Header().Set("Referrer-Policy", "no-referrer")
	invalid := func() (access, bool) {
		writeError(w, http.StatusUnauthorized, CodeInvalidLink, "the link is not valid")
		return access{}, false
	}
	if h.links == nil {
		return invalid()
	}
	one := func(name string) (string, bool) {
		v := q[name]
		if len(v) > 1 {
			return "", false
		}
		if len(v) == 0 {
			return "", true
		}
		return v[0], true
	}
	expRaw, ok1 := one("exp")
	userID, ok2 := one("u")
	sigRaw, ok3 := one("sig")
	dl, ok4 := one("dl")
	if !ok1 || !ok2 || !ok3 || !ok4 || userID == "" || (dl != "" && dl != "1") {
		return invalid()
	}
	v := variantContent
	switch {
	case thumbnail && dl != "":
		return invalid()
	case thumbnail:
		v = variantThumbnail
	case dl == "1":
		v = variantDownload
	}
	exp, err := strconv.ParseInt(expRaw, 10, 64)
	if err != nil {
		return invalid()
	}
	sig, err := base64.RawURLEncoding.DecodeString(sigRaw)
	if err != nil {
		return invalid()
	}
	// The signature first: an expiry is only news once it is known to be ours.
	if !hmac.Equal(sig, h.links.sign(v, r.PathValue("id"), userID, exp)) {
		return invalid()
	}
	expires := time.Unix(exp, 0)
	if !h.links.now().Before(expires) {
		writeError(w, http.StatusUnauthorized, CodeLinkExpired, "the link has expired; fetch the file's metadata for a new one")
		return access{}, false
	}
	return access{userID: userID, download: v == variantDownload, expires: expires}, true
}

// cacheControl: bearer responses revalidate every time; a signed URL is itself the
// credential, so the browser may keep its answer while the link lives (capped).
func (h *Handler) cacheControl(a access) string {
	if a.expires.IsZero() {
		return "private, no-cache"
	}
	left := max(min(a.expires.Sub(h.links.now()), maxLinkCacheAge), 0)
	return "private, max-age=" + strconv.FormatInt(int64(left/time.Second), 10)
}
