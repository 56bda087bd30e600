package httpapi

import (
	"net/http"
	"testing"

	"github.com/parleychat/parley/runtime/chat"
)

// TestAPI_editDelete: edits and deletions over REST, announced once each, replayed by
// the events route, and shown in their current state by history.
func TestAPI_editDelete(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		events := &eventLog{}
		h.srv.SetEvents(events)
		alice, bob, carol := h.register("alice"), h.register("bob"), h.register("carol")
		var dm chat.Room
		h.do("POST", "/api/v1/rooms/direct", alice.Token, map[string]string{"user_id": bob.ID}, &dm)
		msgs := "/api/v1/rooms/" + dm.ID + "/messages"
		var sent struct{ Message chat.Message }
		h.do("POST", msgs, alice.Token, map[string]any{"client_id": "m1", "body": "helo"}, &sent)
		one := msgs + "/" + sent.Message.ID

		var got chat.Message
		if st, raw := h.do("PATCH", one, alice.Token, map[string]any{"client_id": "e1", "body": "hello"}, &got); st != http.StatusOK || got.Body != "hello" || got.EditedAt == nil || got.EventSeq != 1 {
			t.Fatalf("edit = %d %s", st, raw)
		}
		if st, raw := h.do("PATCH", one, alice.Token, map[string]any{"client_id": "e1", "body": "hello"}, &got); st != http.StatusOK || got.EventSeq != 1 {
			t.Fatalf("retried edit = %d %s", st, raw)
		}
		h.expect("PATCH", one, bob.Token, map[string]any{"client_id": "e2", "body": "mine now"}, http.StatusForbidden, "not_author")
		h.expect("PATCH", one, carol.Token, map[string]any{"client_id": "e3", "body": "x"}, http.StatusForbidden, "not_member")
		h.expect("PATCH", msgs+"/nope", alice.Token, map[string]any{"client_id": "e4", "body": "x"}, http.StatusNotFound, "message_not_found")
		h.expect("DELETE", one, bob.Token, nil, http.StatusForbidden, "not_author")
		if st, raw := h.do("DELETE", one, alice.Token, nil, &got); st != http.StatusOK || !got.Deleted || got.Body != "" || got.EventSeq != 2 {
			t.Fatalf("delete = %d %s", st, raw)
		}
		if st, _ := h.do("DELETE", one, alice.Token, nil, &got); st != http.StatusOK || !got.Deleted {
			t.Fatalf("deleting again = %d", st)
		}
		h.expect("PATCH", one, alice.Token, map[string]any{"client_id": "e5", "body": "undo"}, http.StatusConflict, "message_deleted")

		if len(events.changes) != 2 || events.changes[0].Kind != chat.EventEdit || events.changes[1].Kind != chat.EventDelete {
			t.Fatalf("announced changes = %+v, want one edit then one deletion", events.changes)
		}
		var evs struct {
			Events    []chat.RoomEvent
			NextAfter int64 `json:"next_after"`
		}
		if st, raw := h.do("GET", "/api/v1/rooms/"+dm.ID+"/events?after=1", bob.Token, nil, &evs); st != http.StatusOK || len(evs.Events) != 1 || evs.Events[0].EventSeq != 2 || !evs.Events[0].Message.Deleted || evs.NextAfter != 2 {
			t.Fatalf("events after 1 = %d %s", st, raw)
		}
		h.expect("GET", "/api/v1/rooms/"+dm.ID+"/events", carol.Token, nil, http.StatusForbidden, "not_member")
		var page struct {
			Messages []chat.Message
			EventSeq int64 `json:"event_seq"`
		}
		if h.do("GET", msgs, bob.Token, nil, &page); len(page.Messages) != 1 || !page.Messages[0].Deleted || page.EventSeq != 2 {
			t.Fatalf("history = %+v", page)
		}
	})
}

// TestAPI_reactions: a toggle over REST, idempotent on the client id, refused for an
// invalid emoji, announced once per recorded toggle.
func TestAPI_reactions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		events := &eventLog{}
		h.srv.SetEvents(events)
		alice, bob, carol := h.register("alice"), h.register("bob"), h.register("carol")
		var dm chat.Room
		h.do("POST", "/api/v1/rooms/direct", alice.Token, map[string]string{"user_id": bob.ID}, &dm)
		var sent struct{ Message chat.Message }
		h.do("POST", "/api/v1/rooms/"+dm.ID+"/messages", alice.Token, map[string]any{"client_id": "m1", "body": "party?"}, &sent)
		path := "/api/v1/rooms/" + dm.ID + "/messages/" + sent.Message.ID + "/reactions"
		var got chat.Message
		for range 2 { // the retry does not take it back
			if st, raw := h.do("POST", path, bob.Token, map[string]any{"client_id": "r1", "emoji": "🎉"}, &got); st != http.StatusOK ||
				len(got.Reactions) != 1 || got.Reactions[0].Count != 1 || got.Reactions[0].Users[0] != bob.ID {
				t.Fatalf("react = %d %s", st, raw)
			}
		}
		if len(events.changes) != 1 || events.changes[0].Kind != chat.EventReact {
			t.Fatalf("announced = %+v, want one react event", events.changes)
		}
		h.expect("POST", path, bob.Token, map[string]any{"client_id": "r2", "emoji": "hi"}, http.StatusBadRequest, "invalid_reaction")
		h.expect("POST", path, carol.Token, map[string]any{"client_id": "r3", "emoji": "🎉"}, http.StatusForbidden, "not_member")
		got = chat.Message{}
		if st, _ := h.do("POST", path, bob.Token, map[string]any{"client_id": "r4", "emoji": "🎉"}, &got); st != http.StatusOK || got.EventSeq != 2 || len(got.Reactions) != 0 {
			t.Fatalf("toggle off = %d %+v", st, got)
		}
	})
}
