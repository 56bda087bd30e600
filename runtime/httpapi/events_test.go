package httpapi

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/parleychat/parley/runtime/chat"
)

// eventLog is the test's Events: what the REST API announced.
type eventLog struct {
	mu       sync.Mutex
	messages []chat.Message // what the outbox relay handed out
	receipts []chat.Receipt
	changes  []chat.RoomEvent
}

func (e *eventLog) MessageChanged(_ context.Context, ev chat.RoomEvent) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.changes = append(e.changes, ev)
	return nil
}

// relayed is the outbox relay's publish.
func (e *eventLog) relayed(_ context.Context, ms []chat.Message) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.messages = append(e.messages, ms...)
	return nil
}

func (e *eventLog) ReceiptMoved(_ context.Context, r chat.Receipt) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.receipts = append(e.receipts, r)
	return nil
}

// TestRESTWritesAreAnnounced: a stored message (through the outbox) and a moved cursor
// are announced once; a retried send and a receipt that moves nothing are not.
func TestRESTWritesAreAnnounced(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		events := &eventLog{}
		h.srv.SetEvents(events)
		alice, bob := h.register("alice"), h.register("bob")
		var dm chat.Room
		if st, _ := h.do("POST", "/api/v1/rooms/direct", alice.Token, map[string]string{"user_id": bob.ID}, &dm); st != http.StatusCreated {
			t.Fatalf("open DM = %d", st)
		}
		msgs := "/api/v1/rooms/" + dm.ID + "/messages"
		for range 2 {
			if st, raw := h.do("POST", msgs, alice.Token, map[string]any{"client_id": "c1", "body": "hi"}, nil); st/100 != 2 {
				t.Fatalf("send = %d %s", st, raw)
			}
		}
		receipts := "/api/v1/rooms/" + dm.ID + "/receipts"
		for range 2 {
			if st, raw := h.do("POST", receipts, bob.Token, map[string]any{"kind": "read", "seq": 1}, nil); st != http.StatusOK {
				t.Fatalf("receipt = %d %s", st, raw)
			}
		}
		if st, _ := h.do("POST", receipts, alice.Token+"x", map[string]any{"kind": "read", "seq": 1}, nil); st != http.StatusUnauthorized {
			t.Fatalf("forged token = %d", st)
		}
		for {
			n, err := h.env.Chat.RelayAnnouncements(context.Background(), 100, events.relayed)
			if err != nil {
				t.Fatalf("relay: %v", err)
			}
			if n == 0 {
				break
			}
		}
		events.mu.Lock()
		defer events.mu.Unlock()
		if len(events.messages) != 1 || events.messages[0].ClientID != "c1" || events.messages[0].Seq != 1 {
			t.Fatalf("announced messages = %+v, want c1 once", events.messages)
		}
		if len(events.receipts) != 1 || events.receipts[0].UserID != bob.ID || events.receipts[0].ReadSeq != 1 {
			t.Fatalf("announced receipts = %+v, want bob's read up to 1 once", events.receipts)
		}
	})
}
