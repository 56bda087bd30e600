package notification

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/runtime/presence"
	"github.com/parleychat/parley/runtime/protocol"
)

// A muted member (or one at mentions only, while mentions do not exist) gets no Web
// Push; other offline members still do, and live connections get the message either way.
func TestMutedMemberGetsNoPush(t *testing.T) {
	ctx := context.Background()
	routes := NewMemoryRoutes()
	pres := presence.NewMemory(presence.Config{})
	box := newInbox()
	stop, _ := routes.Subscribe(ctx, "gw1", box.add)
	t.Cleanup(stop)
	for _, u := range []string{"alice", "bob"} {
		if _, err := pres.Connect(ctx, presence.Conn{UserID: u, GatewayID: "gw1", ConnID: u + "-1"}); err != nil {
			t.Fatal(err)
		}
	}
	book := roomBook{
		members: map[string][]string{"group": {"alice", "bob", "dave", "frank", "gina"}},
		quiet:   map[string][]string{"group": {"bob", "dave", "gina"}}, // bob muted but online
	}
	pushes := &pushLog{}
	n := New(book, pres, routes, pushes, nil, prometheus.NewRegistry())
	m := &protocol.MessageDelivered{RoomID: "group", SenderID: "alice", ClientID: "c1", ServerID: "m1", Seq: 1, Body: "hi", CreatedAt: time.Now()}
	if err := n.MessageDelivered(ctx, m); err != nil {
		t.Fatal(err)
	}
	got := box.waitLen(t, 2)
	if msg := got[1]; msg.Frame.Type != protocol.FrameMessage || !slices.Equal(msg.Users, []string{"alice", "bob"}) {
		t.Fatalf("live delivery = %+v, want the message to alice and bob (muting silences pushes only)", msg)
	}
	pushes.mu.Lock()
	defer pushes.mu.Unlock()
	if !slices.Equal(pushes.users, []string{"frank"}) {
		t.Fatalf("pushed to %v, want only frank (dave and gina are quiet)", pushes.users)
	}
}

// A mention pushes to the member mentioned whatever their level: in a muted room the
// mentioned member is pushed and the other muted members are not.
func TestMentionPushesMutedMember(t *testing.T) {
	ctx := context.Background()
	routes := NewMemoryRoutes()
	pres := presence.NewMemory(presence.Config{})
	book := roomBook{
		members: map[string][]string{"group": {"alice", "bob", "dave", "frank", "gina"}},
		quiet:   map[string][]string{"group": {"bob", "dave", "gina"}}, // all offline
	}
	pushes := &pushLog{}
	n := New(book, pres, routes, pushes, nil, prometheus.NewRegistry())
	m := &protocol.MessageDelivered{RoomID: "group", SenderID: "alice", ClientID: "c1", ServerID: "m1", Seq: 1,
		Body: "@dave look", Mentions: []string{"dave"}, CreatedAt: time.Now()}
	if err := n.MessageDelivered(ctx, m); err != nil {
		t.Fatal(err)
	}
	pushes.mu.Lock()
	defer pushes.mu.Unlock()
	got := slices.Sorted(slices.Values(pushes.users))
	if !slices.Equal(got, []string{"dave", "frank"}) {
		t.Fatalf("pushed to %v, want dave (muted but mentioned) and frank (all); not bob nor gina (muted)", got)
	}
}
