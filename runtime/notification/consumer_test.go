package notification

import (
	"context"
	"testing"
	"time"

	"github.com/parleychat/parley/runtime/bus"
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
