package httpapi

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/parleychat/parley/runtime/users"
)

// Browsers keep the refresh token in an HttpOnly cookie that scripts cannot read; the
// access token stays in the page's memory. Other clients keep the JSON form.
const (
	// RefreshCookie holds the refresh token in cookie mode.
	RefreshCookie = "parley_refresh"
	// RefreshModeHeader set to RefreshModeCookie on register, login (or refresh) asks for
	// cookie mode.
	RefreshModeHeader = "X-Parley-Refresh"
	RefreshModeCookie = "cookie"
	// refreshCookiePath limits the cookie to the auth endpoints: no other request carries it.
	refreshCookiePath = "/api/v1/auth"
)

// withCookies is a handler's body plus cookies for wrap to set.
type withCookies struct {
	body    any
	cookies []*http.Cookie
}

// cookieError is a handler's error plus cookies for wrap to set anyway.
type cookieError struct {
	err     error
	cookies []*http.Cookie
}

func (e *cookieError) Error() string { return e.err.Error() }
func (e *cookieError) Unwrap() error { return e.err }

// cookieTokens is users.Tokens without the refresh token, which travels in the cookie.
type cookieTokens struct {
	AccessToken     string    `json:"access_token"`
	AccessExpiresAt time.Time `json:"access_expires_at"`
	RefreshExpires  time.Time `json:"refresh_expires_at"`
	TokenType       string    `json:"token_type"`
}

func withoutRefresh(t users.Tokens) cookieTokens {
	return cookieTokens{AccessToken: t.AccessToken, AccessExpiresAt: t.AccessExpiresAt, RefreshExpires: t.RefreshExpires, TokenType: t.TokenType}
}

func wantsCookie(r *http.Request) bool {
	return strings.EqualFold(strings.TrimSpace(r.Header.Get(RefreshModeHeader)), RefreshModeCookie)
}

// refreshCookie sets token (empty: clears the cookie).
func (s *Server) refreshCookie(r *http.Request, token string) *http.Cookie {
	c := &http.Cookie{
		Name: RefreshCookie, Value: token, Path: refreshCookiePath,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secureRequest(r),
		MaxAge: int(s.cfg.Users.RefreshTTL() / time.Second),
	}
	if token == "" {
		c.MaxAge = -1 // written as Max-Age=0: delete now
	}
	return c
}

// secureRequest: the cookie is Secure unless the request is plain HTTP to a loopback
// host with no proxy saying https, so `parley dev` on http://127.0.0.1 works while every
// real deployment, where TLS ends at the ingress, gets Secure cookies.
func secureRequest(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	for _, v := range r.Header.Values("X-Forwarded-Proto") {
		for _, p := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "https") {
				return true
			}
		}
	}
	return !loopbackHost(r.Host)
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// errForeignOrigin refuses cookie-authenticated auth requests from other sites. SameSite
// Strict already keeps browsers from sending the cookie cross-site; this is the second
// lock.
var errForeignOrigin = &apiError{http.StatusForbidden, "forbidden_origin", "the Origin header does not match the Host of this request"}

// sameOrigin: no Origin header (not a browser, or a same-origin GET-like request) or an
// Origin whose host and port are the request's Host.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false // includes "null", sent by sandboxed and privacy-sensitive contexts
	}
	def := "80"
	if u.Scheme == "https" {
		def = "443"
	}
	return canonHost(u.Host, def) == canonHost(r.Host, def)
}

func canonHost(hostport, defaultPort string) string {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, defaultPort
	}
	return strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")) + ":" + port
}

// refreshToken picks the token of a refresh or logout: the body's, else the cookie's
// (only from this site).
func refreshToken(r *http.Request, fromBody string) (token string, fromCookie bool, err error) {
	if fromBody != "" {
		return fromBody, false, nil
	}
	c, err := r.Cookie(RefreshCookie)
	if err != nil || c.Value == "" {
		return "", false, &apiError{http.StatusUnauthorized, "invalid_token", "no refresh token: send refresh_token in the body or the " + RefreshCookie + " cookie"}
	}
	if !sameOrigin(r) {
		return "", false, errForeignOrigin
	}
	return c.Value, true, nil
}

// decodeOptional is decode for bodies that may be absent: an empty body, with or
// without a Content-Type, leaves v as it is, so fetch(url, {method: "POST"}) works.
func decodeOptional(r *http.Request, v any) error {
	br := bufio.NewReader(r.Body)
	if _, err := br.Peek(1); errors.Is(err, io.EOF) {
		return nil
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{br, r.Body}
	return decode(r, v)
}
