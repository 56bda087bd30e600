package notification

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/runtime/presence"
	"github.com/parleychat/parley/runtime/protocol"
)

// roomBook is the test's Rooms: members per room, and who blocked whom.
type roomBook struct {
	members map[string][]string
	blocked map[string][]string // blocker → blocked users
	quiet   map[string][]string // room → members whose level is not "all"
}

func (b roomBook) blocks(blocker, user string) bool {
	for _, u := range b.blocked[blocker] {
		if u == user {
			return true
		}
	}
	return false
}

func (b roomBook) Recipients(_ context.Context, room, actor string) ([]string, error) {
	ms, ok := b.members[room]
	if !ok {
		return nil, errors.New("no such room")
	}
	var out []string
	for _, m := range ms {
		if !b.blocks(m, actor) {
			out = append(out, m)
		}
	}
	return out, nil
}

func (b roomBook) Contacts(_ context.Context, user string) ([]string, error) {
	seen := map[string]bool{}
	for _, ms := range b.members {
		in := false
		for _, m := range ms {
			in = in || m == user
		}
		if !in {
			continue
		}
		for _, m := range ms {
			if m != user && !b.blocks(m, user) {
				seen[m] = true
			}
		}
	}
	var out []string
	for u := range seen {
		out = append(out, u)
	}
	sort.Strings(out)
	return out, nil
}

// PushTargets leaves out the members listed in quiet (muted, or mentions only).
func (b roomBook) PushTargets(_ context.Context, room string, users []string) ([]string, error) {
	var out []string
	for _, u := range users {
		if !slices.Contains(b.quiet[room], u) {
			out = append(out, u)
		}
	}
	return out, nil
}

type pushLog struct {
	mu    sync.Mutex
	users []string
}

func (p *pushLog) PushMessage(_ context.Context, users []string, _ *protocol.MessageDelivered) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.users = append(p.users, users...)
	return nil
}

type world struct {
	n      *Notifier
	boxes  map[string]*inbox
	pushes *pushLog
}

// newWorld: alice and bob on gw1, carol on gw2 (she blocked alice), dave offline,
// erin on gw3 in no shared room.
func newWorld(t *testing.T) *world {
	ctx := context.Background()
	routes := NewMemoryRoutes()
	pres := presence.NewMemory(presence.Config{})
	boxes := map[string]*inbox{}
	for _, gw := range []string{"gw1", "gw2", "gw3"} {
		boxes[gw] = newInbox()
		stop, _ := routes.Subscribe(ctx, gw, boxes[gw].add)
		t.Cleanup(stop)
	}
	for user, gw := range map[string]string{"alice": "gw1", "bob": "gw1", "carol": "gw2", "erin": "gw3"} {
		if _, err := pres.Connect(ctx, presence.Conn{UserID: user, GatewayID: gw, ConnID: user + "-1"}); err != nil {
			t.Fatal(err)
		}
	}
	book := roomBook{
		members: map[string][]string{"group": {"alice", "bob", "carol", "dave"}, "other": {"erin"}},
		blocked: map[string][]string{"carol": {"alice"}},
	}
	pushes := &pushLog{}
	return &world{n: New(book, pres, routes, pushes, nil, prometheus.NewRegistry()), boxes: boxes, pushes: pushes}
}

func (w *world) only(t *testing.T, gw string) Delivery {
	t.Helper()
	got := w.boxes[gw].waitLen(t, 1)
	if len(got) != 1 {
		t.Fatalf("%s received %d deliveries: %+v", gw, len(got), got)
	}
	return got[0]
}

func TestMessageDeliveredRespectsBlocksAndPushesOffline(t *testing.T) {
	w := newWorld(t)
	m := &protocol.MessageDelivered{RoomID: "group", SenderID: "alice", ClientID: "c1", ServerID: "m1", Seq: 3, Body: "hi", CreatedAt: time.Now()}
	if err := w.n.MessageDelivered(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := w.boxes["gw1"].waitLen(t, 2)
	if len(got) != 2 {
		t.Fatalf("gw1 got %d deliveries, want ack + message", len(got))
	}
	ack, msg := got[0], got[1]
	if ack.Frame.Type != protocol.FrameAck || ack.Frame.ID != "c1" || ack.Frame.Seq != 3 || len(ack.Users) != 1 || ack.Users[0] != "alice" {
		t.Fatalf("ack delivery = %+v", ack)
	}
	if msg.Frame.Type != protocol.FrameMessage || msg.Frame.MessageID != "m1" || len(msg.Users) != 2 {
		t.Fatalf("message delivery = %+v, want one delivery for alice and bob", msg)
	}
	if n := w.boxes["gw2"].len(); n != 0 {
		t.Fatalf("carol, who blocked alice, got %d deliveries", n)
	}
	if n := w.boxes["gw3"].len(); n != 0 {
		t.Fatalf("erin, not a member, got %d deliveries", n)
	}
	w.pushes.mu.Lock()
	defer w.pushes.mu.Unlock()
	if len(w.pushes.users) != 1 || w.pushes.users[0] != "dave" {
		t.Fatalf("pushed to %v, want only dave", w.pushes.users)
	}
}

func TestRejectionGoesToSenderOnly(t *testing.T) {
	w := newWorld(t)
	err := w.n.MessageRejected(context.Background(), &protocol.MessageRejected{RoomID: "group", SenderID: "carol", ClientID: "c9", Reason: protocol.ReasonRateLimited})
	if err != nil {
		t.Fatal(err)
	}
	d := w.only(t, "gw2")
	if d.Frame.Type != protocol.FrameError || d.Frame.Code != protocol.CodeRateLimited || d.Frame.ID != "c9" || d.Frame.Ref != protocol.FrameSend {
		t.Fatalf("rejection frame = %+v", d.Frame)
	}
	if w.boxes["gw1"].len() != 0 {
		t.Fatal("other gateways saw the rejection")
	}
}

func TestReceiptTypingAndPresenceFanOut(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	if err := w.n.ReceiptUpdated(ctx, &protocol.ReceiptUpdated{RoomID: "group", UserID: "bob", DeliveredSeq: 5, ReadSeq: 4}); err != nil {
		t.Fatal(err)
	}
	d := w.boxes["gw1"].waitLen(t, 1)[0]
	if d.Frame.Type != protocol.FrameReceipt || d.Frame.User != "bob" || d.Frame.DeliveredSeq != 5 || d.Frame.ReadSeq != 4 {
		t.Fatalf("receipt frame = %+v", d.Frame)
	}
	if err := w.n.Typing(ctx, "group", "alice"); err != nil {
		t.Fatal(err)
	}
	got := w.boxes["gw1"].waitLen(t, 2)
	if typ := got[1]; typ.Frame.Type != protocol.FrameTypingOut || len(typ.Users) != 1 || typ.Users[0] != "bob" {
		t.Fatalf("typing delivery = %+v, want bob only (not alice herself)", typ)
	}
	if err := w.n.Presence(ctx, "alice", false); err != nil {
		t.Fatal(err)
	}
	got = w.boxes["gw1"].waitLen(t, 3)
	if p := got[2]; p.Frame.Type != protocol.FramePresence || p.Frame.Online == nil || *p.Frame.Online || p.Users[0] != "bob" {
		t.Fatalf("presence delivery = %+v", p)
	}
	if n := w.boxes["gw2"].len(); n != 1 {
		// carol gets bob's receipt only: she blocked alice, so no typing or presence of alice.
		t.Fatalf("carol's gateway got %d deliveries, want 1 (bob's receipt)", n)
	}
}

// Typing from someone outside the room reaches nobody.
func TestTypingOfANonMemberGoesNowhere(t *testing.T) {
	w := newWorld(t)
	if err := w.n.Typing(context.Background(), "group", "erin"); !errors.Is(err, ErrNotMember) {
		t.Fatalf("typing of a non-member: %v, want ErrNotMember", err)
	}
	time.Sleep(50 * time.Millisecond) // deliveries are synchronous; this only guards a regression to async
	for gw, box := range w.boxes {
		if n := box.len(); n != 0 {
			t.Fatalf("%s got %d deliveries of a non-member's typing", gw, n)
		}
	}
}

// A message announced again (a retried client id answered with the stored original, or a
// replayed batch) is acked to its sender only: the room saw it already.
func TestMessageAnnouncedAgainIsAckedToTheSenderOnly(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	m := &protocol.MessageDelivered{RoomID: "group", SenderID: "bob", ClientID: "c1", ServerID: "m1", Seq: 1, Body: "hi", CreatedAt: time.Now()}
	if err := w.n.MessageDelivered(ctx, m); err != nil {
		t.Fatal(err)
	}
	w.boxes["gw1"].waitLen(t, 2) // bob's ack, the message to alice and bob
	w.boxes["gw2"].waitLen(t, 1) // the message to carol
	again := *m
	again.SentAt = time.Now()
	if err := w.n.MessageDelivered(ctx, &again); err != nil {
		t.Fatal(err)
	}
	got := w.boxes["gw1"].waitLen(t, 3)
	if ack := got[2]; ack.Frame.Type != protocol.FrameAck || ack.Frame.ID != "c1" || len(ack.Users) != 1 || ack.Users[0] != "bob" {
		t.Fatalf("second announcement → %+v, want an ack to bob", ack)
	}
	time.Sleep(50 * time.Millisecond)
	if n := w.boxes["gw1"].len(); n != 3 {
		t.Fatalf("gw1 got %d deliveries, want 3 (the message was broadcast again)", n)
	}
	if n := w.boxes["gw2"].len(); n != 1 {
		t.Fatalf("carol's gateway got %d deliveries, want 1 (the message was broadcast again)", n)
	}
	w.pushes.mu.Lock()
	defer w.pushes.mu.Unlock()
	if len(w.pushes.users) != 1 {
		t.Fatalf("pushed %v, want dave once", w.pushes.users)
	}
}

func TestIDMemoryForgetsTheOldestFirst(t *testing.T) {
	m := newIDMemory(3)
	for _, id := range []string{"a", "b", "c", "a", "d"} {
		m.add(id)
	}
	for id, want := range map[string]bool{"a": false, "b": true, "c": true, "d": true, "": false} {
		if m.has(id) != want {
			t.Errorf("has(%q) = %v, want %v", id, !want, want)
		}
	}
	if len(m.set) != 3 {
		t.Fatalf("%d ids kept, want 3", len(m.set))
	}
}

// A new connection starts from its online contacts: offline members and people who
// blocked the user are not among them.
func TestOnlineContacts(t *testing.T) {
	w := newWorld(t)
	tests := []struct {
		user string
		want []string
	}{
		{"alice", []string{"bob"}},          // carol blocked alice; dave is offline
		{"bob", []string{"alice", "carol"}}, // dave is offline
		{"erin", nil},                       // alone in her room
	}
	for _, tc := range tests {
		t.Run(tc.user, func(t *testing.T) {
			got, err := w.n.OnlineContacts(context.Background(), tc.user)
			if err != nil {
				t.Fatal(err)
			}
			sort.Strings(got)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("OnlineContacts(%s) = %v, want %v", tc.user, got, tc.want)
			}
		})
	}
}

// TestMessageUpdatedSkipsBlockersOfAuthorAndActor: an edit reaches the room's members
// except those who blocked who made it, and a deletion by someone else also skips those
// who blocked the message's author.
func TestMessageUpdatedSkipsBlockersOfAuthorAndActor(t *testing.T) {
	w := newWorld(t)
	edit := &protocol.MessageUpdated{RoomID: "group", MessageID: "m1", Seq: 3, SenderID: "bob", ActorID: "bob",
		EventSeq: 1, Kind: protocol.UpdateEdit, Body: "hi!", At: time.Now()}
	if err := w.n.MessageUpdated(context.Background(), edit); err != nil {
		t.Fatal(err)
	}
	d := w.only(t, "gw1")
	if d.Frame.Type != protocol.FrameMessageUpdated || d.Frame.EventSeq != 1 || d.Frame.Body != "hi!" || len(d.Users) != 2 {
		t.Fatalf("edit delivery = %+v, want alice and bob", d)
	}
	if w.boxes["gw2"].waitLen(t, 1); w.boxes["gw2"].len() != 1 {
		t.Fatal("carol (who blocked only alice) did not get bob's edit")
	}
	// Bob deletes alice's message: carol blocked alice, so she is not told.
	del := &protocol.MessageUpdated{RoomID: "group", MessageID: "m2", Seq: 4, SenderID: "alice", ActorID: "bob",
		EventSeq: 2, Kind: protocol.UpdateDelete, Deleted: true, At: time.Now()}
	if err := w.n.MessageUpdated(context.Background(), del); err != nil {
		t.Fatal(err)
	}
	if got := w.boxes["gw1"].waitLen(t, 2); len(got) != 2 || !got[1].Frame.Deleted {
		t.Fatalf("gw1 deliveries = %+v", got)
	}
	time.Sleep(50 * time.Millisecond)
	if n := w.boxes["gw2"].len(); n != 1 {
		t.Fatalf("carol, who blocked alice, got %d deliveries, want only the first edit", n)
	}
}
