package httpapi

import (
	"net/http"
	"testing"

	"github.com/parleychat/parley/runtime/chat"
)

// TestAPI_replies: reply_to over REST, refused across rooms, and one message fetched by id.
func TestAPI_replies(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		alice, bob, carol := h.register("alice"), h.register("bob"), h.register("carol")
		var dm, other chat.Room
		h.do("POST", "/api/v1/rooms/direct", alice.Token, map[string]string{"user_id": bob.ID}, &dm)
		h.do("POST", "/api/v1/rooms/direct", alice.Token, map[string]string{"user_id": carol.ID}, &other)
		var sent, elsewhere, reply struct{ Message chat.Message }
		h.do("POST", "/api/v1/rooms/"+dm.ID+"/messages", alice.Token, map[string]any{"client_id": "q", "body": "question?"}, &sent)
		h.do("POST", "/api/v1/rooms/"+other.ID+"/messages", alice.Token, map[string]any{"client_id": "e", "body": "elsewhere"}, &elsewhere)
		if st, raw := h.do("POST", "/api/v1/rooms/"+dm.ID+"/messages", bob.Token,
			map[string]any{"client_id": "r", "body": "answer", "reply_to": sent.Message.ID}, &reply); st != http.StatusCreated || reply.Message.ReplyTo != sent.Message.ID {
			t.Fatalf("reply = %d %s", st, raw)
		}
		h.expect("POST", "/api/v1/rooms/"+dm.ID+"/messages", bob.Token,
			map[string]any{"client_id": "r2", "body": "x", "reply_to": elsewhere.Message.ID}, http.StatusBadRequest, "invalid_reply")
		h.expect("POST", "/api/v1/rooms/"+dm.ID+"/messages", bob.Token,
			map[string]any{"client_id": "r3", "body": "x", "reply_to": "nope"}, http.StatusBadRequest, "invalid_reply")
		var got chat.Message
		if st, raw := h.do("GET", "/api/v1/rooms/"+dm.ID+"/messages/"+reply.Message.ID, alice.Token, nil, &got); st != http.StatusOK || got.ReplyTo != sent.Message.ID || got.Body != "answer" {
			t.Fatalf("get message = %d %s", st, raw)
		}
		h.expect("GET", "/api/v1/rooms/"+dm.ID+"/messages/"+elsewhere.Message.ID, alice.Token, nil, http.StatusNotFound, "message_not_found")
		h.expect("GET", "/api/v1/rooms/"+dm.ID+"/messages/"+sent.Message.ID, carol.Token, nil, http.StatusForbidden, "not_member")
	})
}
