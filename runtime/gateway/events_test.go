package gateway

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parleychat/parley/runtime/presence"
	"github.com/parleychat/parley/runtime/protocol"
)

// eventHistory is a history that also replays room events: room → message_updated frames.
type eventHistory struct {
	history
	events map[string][]protocol.MessageUpdated
}

func (h eventHistory) EventsAfter(_ context.Context, _ string, room string, after int64, limit int) ([]protocol.ServerFrame, error) {
	evs, ok := h.events[room]
	if !ok {
		return nil, fmt.Errorf("room %s: %w", room, ErrForbidden)
	}
	var out []protocol.ServerFrame
	for i := range evs {
		if evs[i].EventSeq > after && len(out) < limit {
			out = append(out, protocol.MessageUpdatedFrame(&evs[i]))
		}
	}
	return out, nil
}

// TestResumeReplaysRoomEventsAfterMessages: a resume with an events cursor gets the
// missed messages first, then the room events after the cursor in order; one without
// (an older client) gets no message_updated frame.
func TestResumeReplaysRoomEventsAfterMessages(t *testing.T) {
	now := time.Now()
	msgs := []protocol.MessageDelivered{
		{RoomID: "r1", SenderID: "bob", ClientID: "1", ServerID: "m1", Seq: 1, Body: "one", CreatedAt: now},
		{RoomID: "r1", SenderID: "bob", ClientID: "2", ServerID: "m2", Seq: 2, Body: "two", CreatedAt: now},
	}
	var evs []protocol.MessageUpdated
	for i := int64(1); i <= 3; i++ {
		evs = append(evs, protocol.MessageUpdated{RoomID: "r1", MessageID: "m1", Seq: 1, SenderID: "bob", ActorID: "bob",
			EventSeq: i, Kind: protocol.UpdateEdit, Body: fmt.Sprint("one v", i), At: now})
	}
	f := newFixtureOver(t, Config{}, eventHistory{history: history{"r1": msgs}, events: map[string][]protocol.MessageUpdated{"r1": evs}}, presence.NewMemory(presence.Config{}))
	ws := f.dial(t, "tok-alice")
	send(t, ws, `{"type":"resume","rooms":{"r1":1},"events":{"r1":1}}`)
	if got := read(t, ws); got.Type != protocol.FrameMessage || got.Seq != 2 {
		t.Fatalf("first replayed frame = %+v, want message 2", got)
	}
	for want := int64(2); want <= 3; want++ {
		got := read(t, ws)
		if got.Type != protocol.FrameMessageUpdated || got.EventSeq != want || got.MessageID != "m1" || got.Body != fmt.Sprint("one v", want) {
			t.Fatalf("replayed event = %+v, want event %d", got, want)
		}
	}
	send(t, ws, `{"type":"resume","rooms":{"r1":1}}`)
	if got := read(t, ws); got.Type != protocol.FrameMessage || got.Seq != 2 {
		t.Fatalf("old client's replay = %+v", got)
	}
	send(t, ws, `{"type":"ping","id":"p"}`)
	if got := read(t, ws); got.Type != protocol.FramePong {
		t.Fatalf("after an old client's resume got %+v, want only the pong (no events)", got)
	}
}
