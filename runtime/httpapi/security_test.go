package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/parleychat/parley/runtime/chat"
	"github.com/parleychat/parley/runtime/chat/chattest"
	"github.com/parleychat/parley/runtime/store/memory"
	"github.com/parleychat/parley/runtime/users"
)

// Every API response says nosniff, no-referrer and a CSP that loads and frames nothing;
// a refused token is answered with a fixed message, not the JWT library's text.
func TestAPI_securityHeadersAndFixedTokenMessages(t *testing.T) {
	h := newHarness(t, chattest.Backend{Chat: memory.NewChat(), Users: memory.NewUsers()})
	alice := h.register("alice")
	forged := strings.Join(strings.Split(alice.Token, ".")[:2], ".") + ".c2lnbmF0dXJl" // a forged signature
	for _, tc := range []struct {
		path, token string
		status      int
	}{
		{"/api/v1/me", alice.Token, http.StatusOK},
		{"/api/v1/me", "", http.StatusUnauthorized},
		{"/api/v1/me", forged, http.StatusUnauthorized},
		{"/api/v1/me", "not.a.jwt", http.StatusUnauthorized},
		{"/api/v1/rooms/nope", alice.Token, http.StatusNotFound},
		{"/healthz", "", http.StatusOK},
		{"/api/v1/openapi.yaml", "", http.StatusOK},
	} {
		req, _ := http.NewRequest("GET", h.ts.URL+tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := h.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body ErrorBody
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Fatalf("GET %s = %d, want %d", tc.path, resp.StatusCode, tc.status)
		}
		for k, want := range map[string]string{
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
			"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
		} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("GET %s: %s = %q, want %q", tc.path, k, got, want)
			}
		}
		if body.Code == "invalid_token" && body.Message != "the access token is invalid or expired" {
			t.Errorf("GET %s: 401 message %q quotes the verifier", tc.path, body.Message)
		}
	}
}

// POST /rooms names at most chat.MaxGroupInitial members, and the OpenAPI document says
// so (maxItems), so clients learn it before the server refuses.
func TestOpenAPI_groupInitialMembersBound(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	var post struct {
		RequestBody struct {
			Content map[string]struct {
				Schema struct {
					Properties map[string]struct {
						MaxItems int `yaml:"maxItems"`
					} `yaml:"properties"`
				} `yaml:"schema"`
			} `yaml:"content"`
		} `yaml:"requestBody"`
	}
	node := doc.Paths["/api/v1/rooms"]["post"]
	if err := node.Decode(&post); err != nil {
		t.Fatal(err)
	}
	got := post.RequestBody.Content["application/json"].Schema.Properties["member_ids"].MaxItems
	if got != chat.MaxGroupInitial {
		t.Fatalf("openapi POST /rooms member_ids maxItems = %d, want %d", got, chat.MaxGroupInitial)
	}
	h := newHarness(t, chattest.Backend{Chat: memory.NewChat(), Users: memory.NewUsers()})
	alice := h.register("alice")
	ids := make([]string, chat.MaxGroupInitial+1)
	for i := range ids {
		ids[i] = fmt.Sprint("u", i)
	}
	h.expect("POST", "/api/v1/rooms", alice.Token, map[string]any{"name": "big", "member_ids": ids}, http.StatusBadRequest, "invalid_room")
}

// Registrations are throttled per client address (the users default: 50 per window).
func TestAPI_registrationThrottledPerAddress(t *testing.T) {
	h := newHarness(t, chattest.Backend{Chat: memory.NewChat(), Users: memory.NewUsers()})
	limit := users.DefaultConfig().MaxRegistrationsPerAddress
	for i := range limit {
		h.register(fmt.Sprint("user", i))
	}
	h.expect("POST", "/api/v1/auth/register", "", map[string]string{"username": "onemore", "password": "correct horse"}, http.StatusTooManyRequests, "throttled")
}
