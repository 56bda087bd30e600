package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.yaml.in/yaml/v3"

	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/runtime/chat"
	"github.com/parleychat/parley/runtime/chat/chattest"
	"github.com/parleychat/parley/runtime/files"
	"github.com/parleychat/parley/runtime/files/blob"
	"github.com/parleychat/parley/runtime/files/fileshttp"
	"github.com/parleychat/parley/runtime/store/memory"
	"github.com/parleychat/parley/runtime/store/postgres"
	"github.com/parleychat/parley/runtime/users"
	"github.com/parleychat/parley/runtime/users/userstest"
)

// backends run every HTTP test over the memory stores and over PostgreSQL.
var backends = []struct {
	name string
	new  func(t *testing.T) chattest.Backend
}{
	{"memory", func(*testing.T) chattest.Backend {
		return chattest.Backend{Chat: memory.NewChat(), Users: memory.NewUsers()}
	}},
	{"postgres", func(t *testing.T) chattest.Backend {
		pool := testenv.PostgresPool(t)
		if _, err := postgres.Migrate(context.Background(), pool); err != nil {
			t.Fatal(err)
		}
		return chattest.Backend{Chat: postgres.NewChat(pool), Users: postgres.NewUsers(pool)}
	}},
}

type harness struct {
	t   *testing.T
	srv *Server
	ts  *httptest.Server
	env *chattest.Env
}

func newHarness(t *testing.T, b chattest.Backend) *harness {
	env := chattest.NewEnv(t, b, chat.Limits{MaxMessageBytes: 256, MessagesPerSecond: 1000, MaxRoomMembers: 10})
	srv := New(Config{Users: env.Users, Chat: env.Chat})
	env.Chat.SetObserver(srv.Metrics())
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &harness{t: t, srv: srv, ts: ts, env: env}
}

// do sends body (a string is sent verbatim, anything else as JSON) and decodes the
// response into out when out is non-nil.
func (h *harness) do(method, path, token string, body any, out any) (int, []byte) {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, h.ts.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := h.ts.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			h.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, raw
}

// expect asserts status (and the error code when code is non-empty).
func (h *harness) expect(method, path, token string, body any, status int, code string) []byte {
	h.t.Helper()
	got, raw := h.do(method, path, token, body, nil)
	if got != status {
		h.t.Fatalf("%s %s = %d %s, want %d %s", method, path, got, raw, status, code)
	}
	if code != "" {
		var e ErrorBody
		if err := json.Unmarshal(raw, &e); err != nil || e.Code != code || e.Message == "" {
			h.t.Fatalf("%s %s body = %s, want code %q with a message", method, path, raw, code)
		}
	}
	return raw
}

type account struct {
	ID, Token, Refresh string
}

func (h *harness) register(name string) account {
	h.t.Helper()
	var out struct {
		User users.User `json:"user"`
		users.Tokens
	}
	if st, raw := h.do("POST", "/api/v1/auth/register", "", map[string]string{"username": name, "password": "correct horse"}, &out); st != http.StatusCreated {
		h.t.Fatalf("register %s = %d %s", name, st, raw)
	}
	return account{ID: out.User.ID, Token: out.AccessToken, Refresh: out.RefreshToken}
}

func forEachBackend(t *testing.T, f func(t *testing.T, h *harness)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, newHarness(t, b.new(t))) })
	}
}

func TestOpenAPI_matchesServedRoutes(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	h := newHarness(t, backends[0].new(t))
	var served []string
	for _, r := range h.srv.Routes() {
		served = append(served, r.Method+" "+r.Path)
	}
	// File transfer is its own handler, mounted beside this one by core (App.Handler);
	// the document describes both, so it is held to both lists.
	for _, r := range fileshttp.Routes() {
		served = append(served, r.Method+" "+r.Path)
	}
	sort.Strings(documented)
	sort.Strings(served)
	if !slices.Equal(documented, served) {
		t.Fatalf("openapi.yaml and the server disagree\ndocumented: %v\nserved:     %v", documented, served)
	}
	// Every documented route reaches a handler: no fallback 404 and no 405. The routes
	// are tried on the two handlers mounted as core mounts them.
	mux := http.NewServeMux()
	mux.Handle(fileshttp.Prefix, filesHandler(t))
	mux.Handle(fileshttp.Prefix+"/", filesHandler(t))
	mux.Handle("/", h.srv.Handler())
	both := httptest.NewServer(mux)
	t.Cleanup(both.Close)
	h.ts = both
	for _, op := range documented {
		method, path, _ := strings.Cut(op, " ")
		path = strings.NewReplacer("{roomID}", "r1", "{userID}", "u1", "{id}", strings.Repeat("a", 26)).Replace(path)
		st, raw := h.do(method, path, "", nil, nil)
		var e ErrorBody
		_ = json.Unmarshal(raw, &e)
		if st == http.StatusMethodNotAllowed || e.Code == "not_found" {
			t.Errorf("%s is documented but not served: %d %s", op, st, raw)
		}
		if method == "HEAD" && st != http.StatusUnauthorized {
			// HEAD has no body to read a code from: anonymous must meet the auth check.
			t.Errorf("%s without credentials = %d, want 401", op, st)
		}
	}
	h.expect("GET", "/api/v1/nothing-here", "", nil, http.StatusNotFound, "not_found")
}

// filesHandler is the files edge over throwaway stores; anonymous requests never get
// past its authentication, which is all the OpenAPI test asks of it.
func filesHandler(t *testing.T) http.Handler {
	blobs, err := blob.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	svc := files.NewService(blobs, files.NewMemory(), nobody{}, nil, files.Config{})
	return fileshttp.New(svc, nobody{}, fileshttp.WithSignedLinks(fileshttp.LinkKey([]byte(userstest.TestKey)), 0))
}

// nobody authenticates no one and shares nothing.
type nobody struct{}

func (nobody) UserID(context.Context, string) (string, error) { return "", errors.New("no users here") }
func (nobody) CanRead(context.Context, string, files.File) (bool, error) {
	return false, nil
}

func TestAPI_conversation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		alice, bob := h.register("alice"), h.register("bob")
		var me users.User
		if st, _ := h.do("PATCH", "/api/v1/me", alice.Token, map[string]string{"display_name": "Alice A.", "status_text": "here"}, &me); st != 200 || me.DisplayName != "Alice A." || me.StatusText != "here" {
			t.Fatalf("patch me = %d %+v", st, me)
		}
		var found struct{ Users []users.User }
		if h.do("GET", "/api/v1/users?prefix=BO", alice.Token, nil, &found); len(found.Users) != 1 || found.Users[0].ID != bob.ID {
			t.Fatalf("search bo = %+v", found)
		}
		var dm chat.Room
		if st, _ := h.do("POST", "/api/v1/rooms/direct", alice.Token, map[string]string{"user_id": bob.ID}, &dm); st != http.StatusCreated || dm.Kind != chat.KindDirect {
			t.Fatalf("open DM = %d %+v", st, dm)
		}
		var again chat.Room
		if st, _ := h.do("POST", "/api/v1/rooms/direct", bob.Token, map[string]string{"user_id": alice.ID}, &again); st != http.StatusOK || again.ID != dm.ID {
			t.Fatalf("reopen DM from the other side = %d %+v", st, again)
		}
		msgs := "/api/v1/rooms/" + dm.ID + "/messages"
		var sent struct {
			Message   chat.Message
			Duplicate bool
		}
		for i := range 3 {
			if st, raw := h.do("POST", msgs, alice.Token, map[string]any{"client_id": fmt.Sprint("c", i), "body": fmt.Sprint("hello ", i)}, &sent); st != http.StatusCreated || sent.Message.Seq != int64(i+1) {
				t.Fatalf("send %d = %d %s", i, st, raw)
			}
		}
		if st, _ := h.do("POST", msgs, alice.Token, map[string]any{"client_id": "c0", "body": "retry"}, &sent); st != http.StatusOK || !sent.Duplicate || sent.Message.Body != "hello 0" {
			t.Fatalf("retry = %d %+v", st, sent)
		}
		var page struct {
			Messages   []chat.Message
			HasMore    bool  `json:"has_more"`
			NextBefore int64 `json:"next_before"`
			NextAfter  int64 `json:"next_after"`
		}
		h.do("GET", msgs+"?limit=2", bob.Token, nil, &page)
		if len(page.Messages) != 2 || page.Messages[0].Seq != 2 || !page.HasMore || page.NextBefore != 2 {
			t.Fatalf("latest page = %+v", page)
		}
		h.do("GET", fmt.Sprintf("%s?before=%d&limit=2", msgs, page.NextBefore), bob.Token, nil, &page)
		if len(page.Messages) != 1 || page.Messages[0].Seq != 1 || page.HasMore {
			t.Fatalf("older page = %+v", page)
		}
		h.do("GET", msgs+"?after=1", bob.Token, nil, &page)
		if len(page.Messages) != 2 || page.Messages[0].Seq != 2 || page.NextAfter != 3 {
			t.Fatalf("resume after 1 = %+v", page)
		}
		var rooms struct{ Rooms []chat.RoomSummary }
		if h.do("GET", "/api/v1/rooms", bob.Token, nil, &rooms); len(rooms.Rooms) != 1 || rooms.Rooms[0].Unread != 3 {
			t.Fatalf("bob's rooms = %+v", rooms)
		}
		var rc chat.Receipt
		if st, _ := h.do("POST", "/api/v1/rooms/"+dm.ID+"/receipts", bob.Token, map[string]any{"kind": "read", "seq": 2}, &rc); st != 200 || rc.ReadSeq != 2 || rc.DeliveredSeq != 2 {
			t.Fatalf("read receipt = %d %+v", st, rc)
		}
		if h.do("GET", "/api/v1/rooms", bob.Token, nil, &rooms); rooms.Rooms[0].Unread != 1 {
			t.Fatalf("unread after reading 2 = %d", rooms.Rooms[0].Unread)
		}
		var receipts struct{ Receipts []chat.Receipt }
		if h.do("GET", "/api/v1/rooms/"+dm.ID+"/receipts", alice.Token, nil, &receipts); len(receipts.Receipts) != 2 {
			t.Fatalf("receipts = %+v", receipts)
		}

		// Blocking: bob blocks alice; alice's DM messages are refused, bob's history hides hers.
		h.expect("PUT", "/api/v1/blocks/"+alice.ID, bob.Token, nil, http.StatusNoContent, "")
		h.expect("POST", msgs, alice.Token, map[string]any{"client_id": "c9", "body": "hi?"}, http.StatusForbidden, "blocked")
		h.expect("POST", "/api/v1/rooms/direct", alice.Token, map[string]string{"user_id": bob.ID}, http.StatusForbidden, "blocked")
		h.do("GET", msgs, bob.Token, nil, &page)
		if len(page.Messages) != 3 || !page.Messages[0].Hidden || page.Messages[0].Body != "" {
			t.Fatalf("bob's view of alice's messages = %+v", page.Messages)
		}
		var blocked struct{ Users []users.User }
		if h.do("GET", "/api/v1/blocks", bob.Token, nil, &blocked); len(blocked.Users) != 1 || blocked.Users[0].ID != alice.ID {
			t.Fatalf("bob's blocks = %+v", blocked)
		}
		h.expect("DELETE", "/api/v1/blocks/"+alice.ID, bob.Token, nil, http.StatusNoContent, "")
		h.expect("POST", msgs, alice.Token, map[string]any{"client_id": "c9", "body": "hi?"}, http.StatusCreated, "")

		// Groups.
		carol := h.register("carol")
		var g chat.Room
		if st, raw := h.do("POST", "/api/v1/rooms", alice.Token, map[string]any{"name": "team", "member_ids": []string{bob.ID}}, &g); st != http.StatusCreated {
			t.Fatalf("create group = %d %s", st, raw)
		}
		h.expect("POST", "/api/v1/rooms/"+g.ID+"/members", bob.Token, map[string]string{"user_id": carol.ID}, http.StatusNoContent, "")
		h.expect("DELETE", "/api/v1/rooms/"+g.ID+"/members/"+carol.ID, bob.Token, nil, http.StatusForbidden, "not_owner")
		h.expect("DELETE", "/api/v1/rooms/"+g.ID+"/members/"+alice.ID, alice.Token, nil, http.StatusConflict, "owner_must_transfer")
		h.expect("PUT", "/api/v1/rooms/"+g.ID+"/owner", alice.Token, map[string]string{"user_id": carol.ID}, http.StatusNoContent, "")
		h.expect("DELETE", "/api/v1/rooms/"+g.ID+"/members/"+alice.ID, alice.Token, nil, http.StatusNoContent, "")
		var members struct{ Members []chat.Member }
		if h.do("GET", "/api/v1/rooms/"+g.ID+"/members", carol.Token, nil, &members); len(members.Members) != 2 {
			t.Fatalf("members = %+v", members)
		}
		if st, _ := h.do("PATCH", "/api/v1/rooms/"+g.ID, carol.Token, map[string]string{"topic": "new topic"}, &g); st != 200 || g.Topic != "new topic" || g.OwnerID != carol.ID {
			t.Fatalf("patch room = %d %+v", st, g)
		}

		// Tokens: refresh rotates, logout revokes.
		var tok users.Tokens
		if st, _ := h.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": alice.Refresh}, &tok); st != 200 || tok.AccessToken == "" {
			t.Fatalf("refresh = %d %+v", st, tok)
		}
		h.expect("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": alice.Refresh}, http.StatusUnauthorized, "invalid_token")
		h.expect("POST", "/api/v1/auth/logout", "", map[string]string{"refresh_token": tok.RefreshToken}, http.StatusNoContent, "")
		h.expect("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": tok.RefreshToken}, http.StatusUnauthorized, "invalid_token")
		h.expect("POST", "/api/v1/auth/login", "", map[string]string{"username": "ALICE", "password": "correct horse"}, http.StatusOK, "")
		for range 3 {
			h.expect("POST", "/api/v1/auth/login", "", map[string]string{"username": "alice", "password": "nope nope"}, http.StatusUnauthorized, "invalid_credentials")
		}
		h.expect("POST", "/api/v1/auth/login", "", map[string]string{"username": "alice", "password": "correct horse"}, http.StatusTooManyRequests, "throttled")

		_, metrics := h.do("GET", "/metrics", "", nil, nil)
		for _, want := range []string{"parley_messages_persisted_total 4", "parley_message_batch_size_count", `parley_http_request_duration_seconds_count{code="201",method="POST",route="/api/v1/rooms/{roomID}/messages"}`} {
			if !strings.Contains(string(metrics), want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
	})
}

func TestAPI_authorizationMatrix(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		alice, bob, mallory := h.register("alice"), h.register("bob"), h.register("mallory")
		var g chat.Room
		h.do("POST", "/api/v1/rooms", alice.Token, map[string]any{"name": "private", "member_ids": []string{bob.ID}}, &g)
		h.expect("POST", "/api/v1/rooms/"+g.ID+"/messages", alice.Token, map[string]any{"client_id": "a1", "body": "secret"}, http.StatusCreated, "")
		room := "/api/v1/rooms/" + g.ID
		tests := []struct {
			method, path string
			body         any
		}{
			{"GET", room, nil},
			{"PATCH", room, map[string]string{"name": "pwned"}},
			{"GET", room + "/members", nil},
			{"POST", room + "/members", map[string]string{"user_id": mallory.ID}},
			{"DELETE", room + "/members/" + bob.ID, nil},
			{"DELETE", room + "/members/" + mallory.ID, nil},
			{"PUT", room + "/owner", map[string]string{"user_id": mallory.ID}},
			{"GET", room + "/messages", nil},
			{"GET", room + "/messages?after=0", nil},
			{"POST", room + "/messages", map[string]any{"client_id": "m1", "body": "let me in"}},
			{"GET", room + "/receipts", nil},
			{"POST", room + "/receipts", map[string]any{"kind": "read", "seq": 1}},
		}
		for _, tc := range tests {
			t.Run("non-member "+tc.method+" "+strings.TrimPrefix(tc.path, room), func(t *testing.T) {
				h.t = t
				h.expect(tc.method, tc.path, mallory.Token, tc.body, http.StatusForbidden, "not_member")
			})
		}
		h.t = t
		var members struct{ Members []chat.Member }
		h.do("GET", room+"/members", alice.Token, nil, &members)
		var r chat.Room
		h.do("GET", room, alice.Token, nil, &r)
		if len(members.Members) != 2 || r.Name != "private" || r.LastSeq != 1 {
			t.Fatalf("after the attempts: members %+v, room %+v", members, r)
		}
		h.expect("GET", "/api/v1/rooms/nope/messages", mallory.Token, nil, http.StatusNotFound, "room_not_found")

		now := h.env.Clock.Now()
		sign := func(m jwt.SigningMethod, key any, exp time.Time) string {
			s, err := jwt.NewWithClaims(m, jwt.RegisteredClaims{Issuer: "parley", Subject: alice.ID, ExpiresAt: jwt.NewNumericDate(exp)}).SignedString(key)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		parts := strings.Split(alice.Token, ".")
		forged, _ := json.Marshal(map[string]any{"iss": "parley", "sub": mallory.ID, "exp": now.Add(time.Hour).Unix()})
		tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2]
		tokens := []struct {
			name, header, code string
		}{
			{"missing", "", "unauthorized"},
			{"not bearer", "Basic YWxpY2U6cGFzcw==", "unauthorized"},
			{"tampered", "Bearer " + tampered, "invalid_token"},
			{"expired", "Bearer " + sign(jwt.SigningMethodHS256, userstest.TestKey, now.Add(-time.Minute)), "invalid_token"},
			{"other key", "Bearer " + sign(jwt.SigningMethodHS256, []byte("some other key some other key 32"), now.Add(time.Hour)), "invalid_token"},
			{"alg none", "Bearer " + sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, now.Add(time.Hour)), "invalid_token"},
			{"refresh token as access", "Bearer " + alice.Refresh, "invalid_token"},
		}
		for _, tc := range tokens {
			t.Run("token "+tc.name, func(t *testing.T) {
				req, _ := http.NewRequest("GET", h.ts.URL+room+"/messages", nil)
				if tc.header != "" {
					req.Header.Set("Authorization", tc.header)
				}
				resp, err := h.ts.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var e ErrorBody
				_ = json.NewDecoder(resp.Body).Decode(&e)
				if resp.StatusCode != http.StatusUnauthorized || e.Code != tc.code || resp.Header.Get("WWW-Authenticate") == "" {
					t.Fatalf("status %d body %+v, want 401 %s with WWW-Authenticate", resp.StatusCode, e, tc.code)
				}
			})
		}
	})
}

func TestAPI_badInput(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		alice, bob := h.register("alice"), h.register("bob")
		var dm chat.Room
		h.do("POST", "/api/v1/rooms/direct", alice.Token, map[string]string{"user_id": bob.ID}, &dm)
		msgs := "/api/v1/rooms/" + dm.ID + "/messages"
		huge := `{"client_id":"x","body":"` + strings.Repeat("a", DefaultMaxBodyBytes) + `"}`
		sqlish := `x'); DELETE FROM messages; --`
		tests := []struct {
			name, method, path string
			body               any
			status             int
			code               string
		}{
			{"oversized body", "POST", msgs, huge, 413, "body_too_large"},
			{"malformed JSON", "POST", msgs, `{"client_id": "x", "body": `, 400, "invalid_json"},
			{"not an object", "POST", msgs, `["x"]`, 400, "invalid_json"},
			{"wrong type", "POST", msgs, `{"client_id": 7, "body": "x"}`, 400, "invalid_json"},
			{"trailing data", "POST", msgs, `{"client_id": "x", "body": "y"} {"again": 1}`, 400, "invalid_json"},
			{"empty body", "POST", msgs, ``, 400, "invalid_json"},
			{"unknown field", "POST", msgs, `{"client_id": "x", "body": "y", "seq": 99}`, 400, "unknown_field"},
			{"message over max bytes", "POST", msgs, map[string]any{"client_id": "x", "body": strings.Repeat("é", 200)}, 413, "message_too_large"},
			{"empty message", "POST", msgs, map[string]any{"client_id": "x", "body": "   "}, 400, "empty_message"},
			{"client id with SQL", "POST", msgs, map[string]any{"client_id": sqlish, "body": "y"}, 400, "invalid_client_id"},
			{"attachment with SQL", "POST", msgs, map[string]any{"client_id": "x", "body": "y", "attachments": []string{sqlish}}, 400, "invalid_attachment"},
			{"NUL in body", "POST", msgs, map[string]any{"client_id": "x", "body": "a\u0000b"}, 400, "invalid_body"},
			{"room id with SQL", "POST", "/api/v1/rooms/x'%20OR%20'1'='1/messages", map[string]any{"client_id": "x", "body": "y"}, 404, "room_not_found"},
			{"negative limit", "GET", msgs + "?limit=-1", nil, 400, "invalid_argument"},
			{"limit not a number", "GET", msgs + "?limit=1;DROP", nil, 400, "invalid_argument"},
			{"before and after", "GET", msgs + "?before=3&after=1", nil, 400, "invalid_argument"},
			{"receipt kind", "POST", "/api/v1/rooms/" + dm.ID + "/receipts", map[string]any{"kind": sqlish, "seq": 1}, 400, "invalid_receipt"},
			{"receipt seq negative", "POST", "/api/v1/rooms/" + dm.ID + "/receipts", map[string]any{"kind": "read", "seq": -5}, 400, "invalid_receipt"},
			{"group name blank", "POST", "/api/v1/rooms", map[string]any{"name": ""}, 400, "invalid_room"},
			{"group with SQL member id", "POST", "/api/v1/rooms", map[string]any{"name": "g", "member_ids": []string{sqlish}}, 404, "user_not_found"},
			{"group unknown field", "POST", "/api/v1/rooms", map[string]any{"name": "g", "owner_id": bob.ID}, 400, "unknown_field"},
			{"DM with SQL user id", "POST", "/api/v1/rooms/direct", map[string]any{"user_id": sqlish}, 404, "user_not_found"},
			{"display name control chars", "PATCH", "/api/v1/me", map[string]any{"display_name": "a\nb"}, 400, "invalid_profile"},
			{"status too long", "PATCH", "/api/v1/me", map[string]any{"status_text": strings.Repeat("s", 141)}, 400, "invalid_profile"},
			{"avatar with SQL", "PATCH", "/api/v1/me", map[string]any{"avatar_file_id": sqlish}, 400, "invalid_profile"},
			{"search without prefix", "GET", "/api/v1/users", nil, 400, "invalid_username"},
			{"block SQL id", "PUT", "/api/v1/blocks/x'%20OR%201=1", nil, 404, "user_not_found"},
			{"content type", "POST", msgs, nil, 415, "unsupported_media_type"},
			{"NUL in user path", "GET", "/api/v1/users/%00", nil, 404, "user_not_found"},
			{"invalid UTF-8 in room path", "GET", "/api/v1/rooms/%ff%fe/messages", nil, 404, "room_not_found"},
			{"NUL in receipt room path", "POST", "/api/v1/rooms/a%00b/receipts", map[string]any{"kind": "read", "seq": 1}, 404, "room_not_found"},
			{"NUL in search prefix", "GET", "/api/v1/users?prefix=a%00", nil, 400, "invalid_username"},
			{"NUL in DM user id", "POST", "/api/v1/rooms/direct", map[string]any{"user_id": "a\u0000b"}, 404, "user_not_found"},
			{"NUL in block path", "PUT", "/api/v1/blocks/%00", nil, 404, "user_not_found"},
			{"NUL in login name", "POST", "/api/v1/auth/login", map[string]any{"username": "al\u0000ice", "password": "correct horse"}, 401, "invalid_credentials"},
			{"huge login name", "POST", "/api/v1/auth/login", map[string]any{"username": strings.Repeat("n", 20000), "password": "correct horse"}, 401, "invalid_credentials"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				h.t = t
				if tc.code == "unsupported_media_type" {
					req, _ := http.NewRequest(tc.method, h.ts.URL+tc.path, strings.NewReader(`client_id=x`))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.Header.Set("Authorization", "Bearer "+alice.Token)
					resp, err := h.ts.Client().Do(req)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode != tc.status {
						t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
					}
					return
				}
				h.expect(tc.method, tc.path, alice.Token, tc.body, tc.status, tc.code)
			})
		}
		h.t = t
		for _, name := range []string{"ab", "x'; DROP TABLE users; --", "robert'); --", "名前", "a b c", strings.Repeat("z", 33)} {
			h.expect("POST", "/api/v1/auth/register", "", map[string]string{"username": name, "password": "correct horse"}, 400, "invalid_username")
		}
		h.expect("POST", "/api/v1/auth/register", "", map[string]string{"username": "dave", "password": "short"}, 400, "weak_password")
		h.expect("POST", "/api/v1/auth/register", "", map[string]string{"username": "ALICE", "password": "correct horse"}, 409, "username_taken")
		h.expect("POST", "/api/v1/auth/register", "", map[string]any{"username": "dave", "password": "correct horse", "admin": true}, 400, "unknown_field")

		// Nothing was written by any of the above.
		var page struct{ Messages []chat.Message }
		if h.do("GET", msgs, bob.Token, nil, &page); len(page.Messages) != 0 {
			t.Fatalf("bad input stored messages: %+v", page.Messages)
		}
		var rooms struct{ Rooms []chat.RoomSummary }
		if h.do("GET", "/api/v1/rooms", alice.Token, nil, &rooms); len(rooms.Rooms) != 1 {
			t.Fatalf("bad input created rooms: %+v", rooms.Rooms)
		}
		var found struct{ Users []users.User }
		for _, p := range []string{"d", "x", "r", "a", "z"} {
			h.do("GET", "/api/v1/users?prefix="+p, alice.Token, nil, &found)
			for _, u := range found.Users {
				if u.ID != alice.ID {
					t.Fatalf("bad input created user %+v", u)
				}
			}
		}
		var me users.User
		if h.do("GET", "/api/v1/me", alice.Token, nil, &me); me.DisplayName != "alice" || me.StatusText != "" || me.AvatarFileID != "" {
			t.Fatalf("bad input changed the profile: %+v", me)
		}
		// SQL metacharacters in free text are just text: stored and returned verbatim.
		var sent struct{ Message chat.Message }
		h.do("POST", msgs, alice.Token, map[string]any{"client_id": "ok", "body": sqlish}, &sent)
		h.do("PATCH", "/api/v1/me", alice.Token, map[string]any{"status_text": sqlish}, &me)
		if sent.Message.Body != sqlish || me.StatusText != sqlish {
			t.Fatalf("free text round trip: %q / %q", sent.Message.Body, me.StatusText)
		}
		if h.do("GET", msgs, bob.Token, nil, &page); len(page.Messages) != 1 || page.Messages[0].Body != sqlish {
			t.Fatalf("history after the SQL-looking body: %+v", page.Messages)
		}
	})
}

func TestAPI_healthAndReadiness(t *testing.T) {
	h := newHarness(t, backends[0].new(t))
	h.expect("GET", "/healthz", "", nil, 200, "")
	h.expect("GET", "/readyz", "", nil, 200, "")
	fail := errors.New("consumer not running")
	var broken bool
	h.srv.AddReadiness("consumer", func(context.Context) error {
		if broken {
			return fail
		}
		return nil
	})
	h.expect("GET", "/readyz", "", nil, 200, "")
	broken = true
	raw := h.expect("GET", "/readyz", "", nil, 503, "")
	if !strings.Contains(string(raw), `"consumer":"failing"`) {
		t.Fatalf("readyz body %s does not name the failing check", raw)
	}
	if strings.Contains(string(raw), "consumer not running") {
		t.Fatalf("readyz body %s shows the check's error to anonymous callers", raw)
	}
	if _, raw := h.do("GET", "/api/v1/openapi.yaml", "", nil, nil); !bytes.Equal(raw, OpenAPI()) {
		t.Fatal("/api/v1/openapi.yaml does not serve the embedded document")
	}
}
