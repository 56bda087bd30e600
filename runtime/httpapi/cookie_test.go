package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/runtime/chat"
	"github.com/parleychat/parley/runtime/chat/chattest"
)

// authCall is one request to an auth endpoint, as a browser or another client sends it.
type authCall struct {
	path   string
	body   string // sent verbatim; "" sends no body
	json   bool   // Content-Type: application/json
	cookie string // parley_refresh value; "" sends none
	header map[string]string
	host   string // overrides the Host header
}

type authReply struct {
	status int
	body   map[string]any
	raw    string
	cookie *http.Cookie // the parley_refresh Set-Cookie, nil when none
	set    string       // its raw Set-Cookie line
}

func callAuth(t *testing.T, ts *httptest.Server, c authCall) authReply {
	t.Helper()
	var rd io.Reader
	if c.body != "" {
		rd = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(http.MethodPost, ts.URL+c.path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if c.json {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.cookie != "" {
		req.AddCookie(&http.Cookie{Name: RefreshCookie, Value: c.cookie})
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	if c.host != "" {
		req.Host = c.host
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := authReply{status: resp.StatusCode, raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			t.Fatalf("%s: decode %q: %v", c.path, raw, err)
		}
	}
	for _, line := range resp.Header.Values("Set-Cookie") {
		ck, err := http.ParseSetCookie(line)
		if err != nil {
			t.Fatalf("Set-Cookie %q: %v", line, err)
		}
		if ck.Name == RefreshCookie {
			if out.cookie != nil {
				t.Fatalf("two %s cookies set", RefreshCookie)
			}
			out.cookie, out.set = ck, line
		}
	}
	return out
}

// attributes are a Set-Cookie line's attributes, sorted, without the name=value pair.
func attributes(line string) []string {
	parts := strings.Split(line, "; ")[1:]
	slices.Sort(parts)
	return parts
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

func (a authReply) code() string {
	c, _ := a.body["code"].(string)
	return c
}

func (a authReply) want(t *testing.T, status int, code string) {
	t.Helper()
	if a.status != status || (code != "" && a.code() != code) {
		t.Fatalf("status %d %s, want %d %s", a.status, a.raw, status, code)
	}
}

const (
	creds     = `{"username":"alice","password":"correct horse"}`
	cookieMax = "Max-Age=2592000" // userstest's refresh TTL: 30 days
)

var cookieMode = map[string]string{RefreshModeHeader: RefreshModeCookie}

func newCookieServer(t *testing.T, tls bool) *httptest.Server {
	env := chattest.NewEnv(t, backends[0].new(t), chat.Limits{MaxMessageBytes: 256, MessagesPerSecond: 1000, MaxRoomMembers: 10})
	srv := New(Config{Users: env.Users, Chat: env.Chat})
	ts := httptest.NewUnstartedServer(srv.Handler())
	if tls {
		ts.StartTLS()
	} else {
		ts.Start()
	}
	t.Cleanup(ts.Close)
	if got := strconv.Itoa(int(env.Users.RefreshTTL() / time.Second)); "Max-Age="+got != cookieMax {
		t.Fatalf("refresh TTL %s; the test expects %s", env.Users.RefreshTTL(), cookieMax)
	}
	return ts
}

// TestRefreshCookie_attributes: cookie mode sets exactly these attributes, Secure
// everywhere but plain HTTP to a loopback host, and keeps the token out of the JSON.
func TestRefreshCookie_attributes(t *testing.T) {
	base := sorted(cookieMax, "HttpOnly", "Path=/api/v1/auth", "SameSite=Strict")
	secure := sorted(cookieMax, "HttpOnly", "Path=/api/v1/auth", "SameSite=Strict", "Secure")
	tests := []struct {
		name string
		tls  bool
		host string
		hdr  map[string]string
		want []string
	}{
		{"plain HTTP to 127.0.0.1", false, "", nil, base},
		{"plain HTTP to 127.1.2.3", false, "127.1.2.3:8080", nil, base},
		{"plain HTTP to localhost", false, "localhost:8080", nil, base},
		{"plain HTTP to ::1", false, "[::1]:8080", nil, base},
		{"plain HTTP to a name", false, "chat.example.com", nil, secure},
		{"plain HTTP to another address", false, "10.0.0.5:8080", nil, secure},
		{"loopback behind a proxy that says https", false, "", map[string]string{"X-Forwarded-Proto": "https"}, secure},
		{"TLS to 127.0.0.1", true, "", nil, secure},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newCookieServer(t, tc.tls)
			hdr := map[string]string{RefreshModeHeader: RefreshModeCookie}
			for k, v := range tc.hdr {
				hdr[k] = v
			}
			for _, path := range []string{"/api/v1/auth/register", "/api/v1/auth/login"} {
				got := callAuth(t, ts, authCall{path: path, body: creds, json: true, header: hdr, host: tc.host})
				if got.status != http.StatusCreated && got.status != http.StatusOK {
					t.Fatalf("%s: %d %s", path, got.status, got.raw)
				}
				if got.cookie == nil || got.cookie.Value == "" {
					t.Fatalf("%s: no %s cookie", path, RefreshCookie)
				}
				if a := attributes(got.set); !slices.Equal(a, tc.want) {
					t.Fatalf("%s: cookie attributes %v, want %v", path, a, tc.want)
				}
				if _, ok := got.body["refresh_token"]; ok || strings.Contains(got.raw, got.cookie.Value) {
					t.Fatalf("%s: the body shows the refresh token: %s", path, got.raw)
				}
				if got.body["access_token"] == "" || got.body["refresh_expires_at"] == nil || got.body["user"] == nil {
					t.Fatalf("%s: body %s lacks access_token, refresh_expires_at or user", path, got.raw)
				}
			}
		})
	}
}

// TestRefreshCookie_flow: refresh and logout through the cookie only, as fetch with
// credentials sends them; the JSON form is unchanged for other clients.
func TestRefreshCookie_flow(t *testing.T) {
	ts := newCookieServer(t, false)
	login := func(t *testing.T) string {
		t.Helper()
		got := callAuth(t, ts, authCall{path: "/api/v1/auth/register", body: creds, json: true, header: cookieMode})
		if got.status == http.StatusConflict {
			got = callAuth(t, ts, authCall{path: "/api/v1/auth/login", body: creds, json: true, header: cookieMode})
		}
		if got.cookie == nil {
			t.Fatalf("login: %d %s, no cookie", got.status, got.raw)
		}
		return got.cookie.Value
	}
	sameSite := map[string]string{"Origin": ts.URL}
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"refresh with an empty body rotates the cookie", func(t *testing.T) {
			old := login(t)
			got := callAuth(t, ts, authCall{path: "/api/v1/auth/refresh", cookie: old, header: sameSite})
			got.want(t, http.StatusOK, "")
			if got.cookie == nil || got.cookie.Value == "" || got.cookie.Value == old {
				t.Fatalf("refresh set cookie %+v; want a new token", got.cookie)
			}
			if a := attributes(got.set); !slices.Equal(a, sorted(cookieMax, "HttpOnly", "Path=/api/v1/auth", "SameSite=Strict")) {
				t.Fatalf("rotated cookie attributes %v", a)
			}
			if _, ok := got.body["refresh_token"]; ok || got.body["access_token"] == "" {
				t.Fatalf("refresh body %s", got.raw)
			}
			callAuth(t, ts, authCall{path: "/api/v1/auth/refresh", cookie: old}).want(t, http.StatusUnauthorized, "invalid_token")
			callAuth(t, ts, authCall{path: "/api/v1/auth/refresh", cookie: got.cookie.Value}).want(t, http.StatusOK, "")
		}},
		{"refresh with {} rotates the cookie", func(t *testing.T) {
			got := callAuth(t, ts, authCall{path: "/api/v1/auth/refresh", body: `{}`, json: true, cookie: login(t)})
			if got.want(t, http.StatusOK, ""); got.cookie == nil {
				t.Fatal("no rotated cookie")
			}
		}},
		{"logout through the cookie revokes and clears it", func(t *testing.T) {
			tok := login(t)
			got := callAuth(t, ts, authCall{path: "/api/v1/auth/logout", cookie: tok, header: sameSite})
			got.want(t, http.StatusNoContent, "")
			if got.cookie == nil || got.cookie.Value != "" || got.cookie.MaxAge >= 0 || !slices.Contains(attributes(got.set), "Max-Age=0") || got.cookie.Path != "/api/v1/auth" {
				t.Fatalf("logout Set-Cookie %q; want the cookie cleared with Max-Age=0 on its path", got.set)
			}
			callAuth(t, ts, authCall{path: "/api/v1/auth/refresh", cookie: tok}).want(t, http.StatusUnauthorized, "invalid_token")
		}},
		{"logout with the token in the body clears the cookie too", func(t *testing.T) {
			tok := login(t)
			got := callAuth(t, ts, authCall{path: "/api/v1/auth/logout", body: `{"refresh_token":"` + tok + `"}`, json: true})
			if got.want(t, http.StatusNoContent, ""); got.cookie == nil || got.cookie.Value != "" {
				t.Fatalf("logout Set-Cookie %q", got.set)
			}
			callAuth(t, ts, authCall{path: "/api/v1/auth/refresh", cookie: tok}).want(t, http.StatusUnauthorized, "invalid_token")
		}},
		{"logout of an unknown token still clears the cookie", func(t *testing.T) {
			got := callAuth(t, ts, authCall{path: "/api/v1/auth/logout", cookie: "no-such-token"})
			if got.want(t, http.StatusUnauthorized, "invalid_token"); got.cookie == nil || got.cookie.Value != "" || got.cookie.MaxAge >= 0 {
				t.Fatalf("logout Set-Cookie %q; want the cookie cleared", got.set)
			}
		}},
		{"a failed refresh leaves the cookie alone", func(t *testing.T) {
			got := callAuth(t, ts, authCall{path: "/api/v1/auth/refresh", cookie: "no-such-token"})
			if got.want(t, http.StatusUnauthorized, "invalid_token"); got.cookie != nil {
				t.Fatalf("failed refresh Set-Cookie %q", got.set)
			}
		}},
		{"no token anywhere", func(t *testing.T) {
			callAuth(t, ts, authCall{path: "/api/v1/auth/refresh"}).want(t, http.StatusUnauthorized, "invalid_token")
			callAuth(t, ts, authCall{path: "/api/v1/auth/logout", body: `{}`, json: true}).want(t, http.StatusUnauthorized, "invalid_token")
		}},
		{"a foreign Origin is refused and the session lives on", func(t *testing.T) {
			tok := login(t)
			for _, origin := range []string{"https://evil.example", "null", "http://127.0.0.1:1", "http://localhost" + ts.URL[len("http://127.0.0.1"):]} {
				for _, path := range []string{"/api/v1/auth/refresh", "/api/v1/auth/logout"} {
					got := callAuth(t, ts, authCall{path: path, cookie: tok, header: map[string]string{"Origin": origin}})
					if got.want(t, http.StatusForbidden, "forbidden_origin"); got.cookie != nil {
						t.Fatalf("%s from %s touched the cookie: %q", path, origin, got.set)
					}
				}
			}
			callAuth(t, ts, authCall{path: "/api/v1/auth/login", body: creds, json: true, header: map[string]string{RefreshModeHeader: RefreshModeCookie, "Origin": "https://evil.example"}}).
				want(t, http.StatusForbidden, "forbidden_origin")
			callAuth(t, ts, authCall{path: "/api/v1/auth/refresh", cookie: tok, header: sameSite}).want(t, http.StatusOK, "")
		}},
		{"another Content-Type is still refused", func(t *testing.T) {
			callAuth(t, ts, authCall{path: "/api/v1/auth/refresh", body: "x", cookie: login(t), header: map[string]string{"Content-Type": "text/plain"}}).
				want(t, http.StatusUnsupportedMediaType, "unsupported_media_type")
		}},
		{"JSON mode is unchanged", func(t *testing.T) {
			got := callAuth(t, ts, authCall{path: "/api/v1/auth/login", body: creds, json: true})
			tok, _ := got.body["refresh_token"].(string)
			if got.want(t, http.StatusOK, ""); tok == "" || got.cookie != nil {
				t.Fatalf("JSON login: body %s, cookie %q", got.raw, got.set)
			}
			got = callAuth(t, ts, authCall{path: "/api/v1/auth/refresh", body: `{"refresh_token":"` + tok + `"}`, json: true})
			next, _ := got.body["refresh_token"].(string)
			if got.want(t, http.StatusOK, ""); next == "" || next == tok || got.cookie != nil {
				t.Fatalf("JSON refresh: body %s, cookie %q", got.raw, got.set)
			}
			callAuth(t, ts, authCall{path: "/api/v1/auth/logout", body: `{"refresh_token":"` + next + `"}`, json: true}).want(t, http.StatusNoContent, "")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}
