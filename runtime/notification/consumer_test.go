package notification

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/runtime/bus"
	"github.com/parleychat/parley/runtime/presence"
	"github.com/parleychat/parley/runtime/protocol"
)

func TestRunConsumesBusEventsAndSkipsPoison(t *testing.T) {
	w := newWorld(t)
	b, err := bus.NewMemory(4)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.n.Run(ctx, b) }()

	publish := func(topic, key string, raw []byte) {
		t.Helper()
		if err := b.Publish(ctx, topic, bus.Record{Key: []byte(key), Value: raw}); err != nil {
			t.Fatal(err)
		}
	}
	// An undecodable event first: it must not block the partition behind it.
	publish(protocol.TopicMessageRejected, "group", []byte(`{"v":9,"type":"nope"}`))
	rejected, err := protocol.Encode(&protocol.MessageRejected{RoomID: "group", SenderID: "bob", ClientID: "c2", Reason: protocol.ReasonNotMember})
	if err != nil {
		t.Fatal(err)
	}
	publish(protocol.TopicMessageRejected, "group", rejected)
	delivered, err := protocol.Encode(&protocol.MessageDelivered{RoomID: "group", SenderID: "carol", ClientID: "c1", ServerID: "m1", Seq: 1, Body: "x", CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	publish(protocol.TopicMessageDelivered, "group", delivered)

	// gw1 holds alice and bob: bob's rejection, and carol's message for both.
	got := w.boxes["gw1"].waitLen(t, 2)
	var sawRejection, sawMessage bool
	for _, d := range got {
		switch d.Frame.Type {
		case protocol.FrameError:
			sawRejection = d.Frame.Code == protocol.ErrorCode(protocol.ReasonNotMember) && d.Frame.ID == "c2"
		case protocol.FrameMessage:
			sawMessage = d.Frame.MessageID == "m1" && len(d.Users) == 2
		}
	}
	if !sawRejection || !sawMessage {
		t.Fatalf("gw1 deliveries = %+v", got)
	}
	if !w.n.Running() {
		t.Fatal("Running() is false while consuming")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// holdRooms holds the recipients of one room until released, as a database lock would.
type holdRooms struct {
	Rooms
	room    string
	once    sync.Once
	held    chan struct{}
	release chan struct{}
}

func (h *holdRooms) Recipients(ctx context.Context, roomID, actorID string) ([]string, error) {
	if roomID == h.room {
		h.once.Do(func() { close(h.held) })
		select {
		case <-h.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return h.Rooms.Recipients(ctx, roomID, actorID)
}

// Several members of chat.message_delivered's group work their partitions at once: a
// fan-out held on one room holds back only its member's partitions, and the other
// rooms' messages reach their gateways meanwhile. With one member nothing would.
func TestMembersFanOutPartitionsInParallel(t *testing.T) {
	const rooms = 16
	book := roomBook{members: map[string][]string{"slow": {"alice", "bob"}}}
	for i := range rooms {
		book.members[fmt.Sprintf("r%02d", i)] = []string{"alice", "bob"}
	}
	hold := &holdRooms{Rooms: book, room: "slow", held: make(chan struct{}), release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	routes := NewMemoryRoutes()
	box := newInbox()
	stop, err := routes.Subscribe(ctx, "gw1", box.add)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	pres := presence.NewMemory(presence.Config{})
	if _, err := pres.Connect(ctx, presence.Conn{UserID: "alice", GatewayID: "gw1", ConnID: "alice-1"}); err != nil {
		t.Fatal(err)
	}
	n := New(hold, pres, routes, nil, nil, prometheus.NewRegistry(), WithMembers(2))
	b, err := bus.NewMemory(4)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx, b) }()

	publish := func(room string, seq int64) {
		t.Helper()
		raw, err := protocol.Encode(&protocol.MessageDelivered{RoomID: room, SenderID: "bob", ClientID: fmt.Sprintf("%s-%d", room, seq),
			ServerID: fmt.Sprintf("m-%s-%d", room, seq), Seq: seq, Body: "x", CreatedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(ctx, protocol.TopicMessageDelivered, bus.Record{Key: []byte(room), Value: raw}); err != nil {
			t.Fatal(err)
		}
	}
	messagesFor := func() map[string]bool { // rooms whose message reached alice
		out := map[string]bool{}
		for _, d := range box.snapshot() {
			if d.Frame.Type == protocol.FrameMessage {
				out[d.Frame.Room] = true
			}
		}
		return out
	}
	publish("slow", 1)
	select {
	case <-hold.held:
	case <-time.After(30 * time.Second):
		t.Fatal("the slow room's fan-out never started")
	}
	for i := range rooms {
		publish(fmt.Sprintf("r%02d", i), 1)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(messagesFor()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no other room was fanned out while one was held")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if messagesFor()["slow"] {
		t.Fatal("the held room was fanned out before its release")
	}
	close(hold.release)
	for len(messagesFor()) < rooms+1 {
		if time.Now().After(deadline) {
			t.Fatalf("fanned out %d rooms of %d after the release", len(messagesFor()), rooms+1)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
