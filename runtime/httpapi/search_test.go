package httpapi

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/parleychat/parley/runtime/chat"
)

func TestAPI_searchAndNotificationLevel(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		alice, bob, carol := h.register("alice"), h.register("bob"), h.register("carol")
		var dm, foreign chat.Room
		h.do("POST", "/api/v1/rooms/direct", alice.Token, map[string]string{"user_id": bob.ID}, &dm)
		h.do("POST", "/api/v1/rooms/direct", carol.Token, map[string]string{"user_id": bob.ID}, &foreign)
		for i, m := range []struct {
			tok, room, body string
		}{{alice.Token, dm.ID, "meet at the <b>harbour</b> & bring cake"}, {carol.Token, foreign.ID, "harbour secrets"}} {
			if st, raw := h.do("POST", "/api/v1/rooms/"+m.room+"/messages", m.tok, map[string]any{"client_id": string(rune('a' + i)), "body": m.body}, nil); st != http.StatusCreated {
				t.Fatalf("send = %d %s", st, raw)
			}
		}
		var page struct {
			Hits []struct {
				Message    chat.Message `json:"message"`
				Snippet    string       `json:"snippet"`
				Highlights [][2]int     `json:"highlights"`
			} `json:"hits"`
			NextCursor *string `json:"next_cursor"`
		}
		if st, raw := h.do("GET", "/api/v1/search?q=HARBOUR", alice.Token, nil, &page); st != 200 || len(page.Hits) != 1 || page.NextCursor != nil {
			t.Fatalf("search = %d %s", st, raw)
		}
		hit := page.Hits[0]
		if hit.Message.RoomID != dm.ID || hit.Snippet != "meet at the <b>harbour</b> & bring cake" || len(hit.Highlights) != 1 ||
			string([]rune(hit.Snippet)[hit.Highlights[0][0]:hit.Highlights[0][1]]) != "harbour" {
			t.Fatalf("hit = %+v: the snippet is the plain text, the hit a range", hit)
		}
		h.expect("GET", "/api/v1/search?q=harbour&room="+url.QueryEscape(foreign.ID), alice.Token, nil, http.StatusForbidden, "not_member")
		h.expect("GET", "/api/v1/search?q=", alice.Token, nil, http.StatusBadRequest, "invalid_search")
		h.expect("GET", "/api/v1/search?q=x&cursor=nope", alice.Token, nil, http.StatusBadRequest, "invalid_search")
		h.expect("GET", "/api/v1/search?q=x&limit=51", alice.Token, nil, http.StatusBadRequest, "invalid_argument")
		h.expect("GET", "/api/v1/search?q=x", "", nil, http.StatusUnauthorized, "unauthorized")

		notif := "/api/v1/rooms/" + dm.ID + "/notifications"
		var set struct{ Level string }
		if st, raw := h.do("PUT", notif, bob.Token, map[string]string{"level": "muted"}, &set); st != 200 || set.Level != "muted" {
			t.Fatalf("mute = %d %s", st, raw)
		}
		var rooms struct {
			Rooms []struct {
				Room              chat.Room `json:"room"`
				NotificationLevel string    `json:"notification_level"`
			} `json:"rooms"`
		}
		h.do("GET", "/api/v1/rooms", bob.Token, nil, &rooms)
		for _, r := range rooms.Rooms {
			want := "all"
			if r.Room.ID == dm.ID {
				want = "muted"
			}
			if r.NotificationLevel != want {
				t.Fatalf("room %s level = %q, want %q", r.Room.ID, r.NotificationLevel, want)
			}
		}
		var room struct {
			ID                string `json:"id"`
			Kind              string `json:"kind"`
			NotificationLevel string `json:"notification_level"`
		}
		if h.do("GET", "/api/v1/rooms/"+dm.ID, bob.Token, nil, &room); room.ID != dm.ID || room.Kind != "direct" || room.NotificationLevel != "muted" {
			t.Fatalf("room = %+v", room)
		}
		if h.do("GET", "/api/v1/rooms/"+dm.ID, alice.Token, nil, &room); room.NotificationLevel != "all" {
			t.Fatalf("alice's level = %q, want her own (all)", room.NotificationLevel)
		}
		h.expect("PUT", notif, bob.Token, map[string]string{"level": "loud"}, http.StatusBadRequest, "invalid_notification_level")
		h.expect("PUT", notif, bob.Token, map[string]string{"level": "muted", "extra": "x"}, http.StatusBadRequest, "unknown_field")
		h.expect("PUT", notif, carol.Token, map[string]string{"level": "muted"}, http.StatusForbidden, "not_member")
		h.expect("PUT", "/api/v1/rooms/missing/notifications", carol.Token, map[string]string{"level": "muted"}, http.StatusNotFound, "room_not_found")
	})
}
