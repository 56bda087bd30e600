package notification

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/runtime/bus"
	"github.com/parleychat/parley/runtime/presence"
	"github.com/parleychat/parley/runtime/protocol"
)

var errBlip = errors.New("redis: connection refused")

// flakyRouter fails the routes its fail function picks, and otherwise hands them on.
type flakyRouter struct {
	next Router
	mu   sync.Mutex
	fail func(gw string, d Delivery) bool
	seen map[string]int // gateway → Route calls
}

func (f *flakyRouter) Route(ctx context.Context, gw string, d Delivery) error {
	f.mu.Lock()
	if f.seen == nil {
		f.seen = map[string]int{}
	}
	f.seen[gw]++
	fail := f.fail != nil && f.fail(gw, d)
	f.mu.Unlock()
	if fail {
		return fmt.Errorf("route to gateway %s: %w", gw, errBlip)
	}
	return f.next.Route(ctx, gw, d)
}

func (f *flakyRouter) setFail(fn func(gw string, d Delivery) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = fn
}

// newFlakyWorld is newWorld with a router that fails on demand.
func newFlakyWorld(t *testing.T, opts ...Option) (*world, *flakyRouter) {
	w := newWorld(t)
	fr := &flakyRouter{next: w.n.router}
	w.n = New(w.n.rooms, w.n.locator, fr, w.pushes, nil, prometheus.NewRegistry(), opts...)
	return w, fr
}

func (p *pushLog) list() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.users...)
}

// One failing route no longer drops the message for the room and every push: the ack,
// each gateway and the pushes go independently, and the transient failure is retried
// within the event without sending twice what already went.
func TestPartialRoutingFailureIsRetriedAndNothingElseIsSkipped(t *testing.T) {
	tests := []struct {
		name string
		fail func(gw string, d Delivery) bool // fails once per gateway and frame type
	}{
		{"the ack's gateway fails", func(gw string, d Delivery) bool { return d.Frame.Type == protocol.FrameAck }},
		{"one member's gateway fails", func(gw string, d Delivery) bool { return gw == "gw2" }},
		{"every gateway fails", func(string, Delivery) bool { return true }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, fr := newFlakyWorld(t)
			failed := map[string]bool{}
			fr.setFail(func(gw string, d Delivery) bool {
				key := gw + string(d.Frame.Type)
				if tc.fail(gw, d) && !failed[key] {
					failed[key] = true
					return true
				}
				return false
			})
			// bob sends: carol (gw2) did not block bob, dave is offline.
			m := &protocol.MessageDelivered{RoomID: "group", SenderID: "bob", ClientID: "c1", ServerID: "m1", Seq: 1, Body: "hi", CreatedAt: time.Now()}
			if err := w.n.MessageDelivered(context.Background(), m); err != nil {
				t.Fatalf("a transient failure was not retried: %v", err)
			}
			gw1 := w.boxes["gw1"].waitLen(t, 2)
			gw2 := w.boxes["gw2"].waitLen(t, 1)
			time.Sleep(50 * time.Millisecond) // routing is synchronous; this only guards against extra sends
			if n := w.boxes["gw1"].len(); n != 2 {
				t.Fatalf("gw1 got %d deliveries, want the ack and the message once each: %+v", n, gw1)
			}
			if n := w.boxes["gw2"].len(); n != 1 || gw2[0].Frame.Type != protocol.FrameMessage {
				t.Fatalf("gw2 got %d deliveries, want the message once: %+v", n, gw2)
			}
			if got := w.pushes.list(); !slices.Equal(got, []string{"dave"}) {
				t.Fatalf("pushed %v, want dave once", got)
			}
		})
	}
}

// A gateway that stays down does not hold back the others or the pushes, and the error
// says the event was not fully fanned out.
func TestAGatewayThatStaysDownDoesNotHoldBackTheRest(t *testing.T) {
	w, fr := newFlakyWorld(t, WithRetry(Retry{Attempts: 2, Backoff: time.Millisecond}))
	fr.setFail(func(gw string, _ Delivery) bool { return gw == "gw1" })
	m := &protocol.MessageDelivered{RoomID: "group", SenderID: "bob", ClientID: "c1", ServerID: "m1", Seq: 1, Body: "hi", CreatedAt: time.Now()}
	err := w.n.MessageDelivered(context.Background(), m)
	if !errors.Is(err, errBlip) {
		t.Fatalf("MessageDelivered = %v, want the routing failure", err)
	}
	if Permanent(err) {
		t.Fatal("a routing failure is classed permanent: it would be committed")
	}
	if got := w.boxes["gw2"].waitLen(t, 1); got[0].Frame.Type != protocol.FrameMessage {
		t.Fatalf("gw2 got %+v", got)
	}
	if got := w.pushes.list(); !slices.Equal(got, []string{"dave"}) {
		t.Fatalf("pushed %v, want dave", got)
	}
}

// recordingBus records the group each topic is subscribed in.
type recordingBus struct {
	*bus.Memory
	mu     sync.Mutex
	groups map[string]string // topic → group
}

func (b *recordingBus) Subscribe(ctx context.Context, group, topic string) (bus.Subscription, error) {
	b.mu.Lock()
	if b.groups == nil {
		b.groups = map[string]string{}
	}
	b.groups[topic] = group
	b.mu.Unlock()
	return b.Memory.Subscribe(ctx, group, topic)
}

func publishEvent(t *testing.T, b bus.Bus, topic, key string, p protocol.Payload) []byte {
	t.Helper()
	raw, err := protocol.Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), topic, bus.Record{Key: []byte(key), Value: raw}); err != nil {
		t.Fatal(err)
	}
	return raw
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// While a dependency is down the consumer neither drops nor commits the event: it
// retries with backoff and readiness says so; once the dependency is back the event is
// delivered, in order with the ones behind it, and readiness recovers.
func TestConsumerRetriesAFailedFanOutAndIsNotReadyMeanwhile(t *testing.T) {
	w, fr := newFlakyWorld(t, WithRetry(Retry{Attempts: 2, Backoff: time.Millisecond}))
	down := true
	var mu sync.Mutex
	fr.setFail(func(string, Delivery) bool { mu.Lock(); defer mu.Unlock(); return down })
	mem, err := bus.NewMemory(1)
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	b := &recordingBus{Memory: mem}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.n.Run(ctx, b) }()
	waitFor(t, "the consumer to run", w.n.Running)
	if err := w.n.Ready(); err != nil {
		t.Fatalf("idle consumer not ready: %v", err)
	}
	for i := 1; i <= 3; i++ {
		publishEvent(t, mem, protocol.TopicMessageDelivered, "group", &protocol.MessageDelivered{RoomID: "group", SenderID: "carol",
			ClientID: fmt.Sprint("c", i), ServerID: fmt.Sprint("m", i), Seq: int64(i), Body: "x", CreatedAt: time.Now()})
	}
	waitFor(t, "readiness to report the failing fan-out", func() bool { return w.n.Ready() != nil })
	time.Sleep(300 * time.Millisecond) // a few retries happen while down
	if n := w.boxes["gw1"].len(); n != 0 {
		t.Fatalf("gw1 got %d deliveries while routing was down", n)
	}
	mu.Lock()
	down = false
	mu.Unlock()
	got := w.boxes["gw1"].waitLen(t, 3)
	for i, d := range got[:3] {
		if d.Frame.Type != protocol.FrameMessage || d.Frame.Seq != int64(i+1) {
			t.Fatalf("delivery %d = %+v, want message seq %d (in order, none lost)", i, d.Frame, i+1)
		}
	}
	waitFor(t, "readiness to recover", func() bool { return w.n.Ready() == nil })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Each topic is consumed in a consumer group of its own, so one topic's rebalance never
// pauses the others; all of them are notification's (new ones start from the end).
func TestEachTopicHasItsOwnConsumerGroup(t *testing.T) {
	w := newWorld(t)
	mem, err := bus.NewMemory(1)
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	b := &recordingBus{Memory: mem}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.n.Run(ctx, b) }()
	waitFor(t, "the consumer to run", w.n.Running)
	cancel()
	<-done
	seen := map[string]bool{}
	for _, topic := range Topics() {
		g := b.groups[topic]
		if g == "" || seen[g] {
			t.Fatalf("groups by topic = %v: want one distinct group per topic", b.groups)
		}
		seen[g] = true
		if !IsGroup(g) {
			t.Fatalf("group %q of %s is not recognised as notification's", g, topic)
		}
	}
	if IsGroup("core") || IsGroup("notifications-x") {
		t.Fatal("IsGroup claims a group that is not notification's")
	}
}

// An event redelivered (same event id: a rebalance or a rollout handed the partition on
// before the commit) is not fanned out again, even by another notification process
// that shares the marks; a different announcement of the same message is acked only.
func TestRedeliveredEventsAreNotSentAgain(t *testing.T) {
	marks := NewRedisMarks(testenv.RedisClient(t), "", time.Minute)
	first := newWorld(t)
	first.n = New(first.n.rooms, first.n.locator, first.n.router, first.pushes, nil, prometheus.NewRegistry(), WithMarks(marks))
	second := newWorld(t)
	second.n = New(second.n.rooms, second.n.locator, second.n.router, second.pushes, nil, prometheus.NewRegistry(), WithMarks(marks))

	raw, err := protocol.Encode(&protocol.MessageDelivered{RoomID: "group", SenderID: "bob", ClientID: "c1", ServerID: "m1", Seq: 1, Body: "hi", CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	msg := bus.Message{Topic: protocol.TopicMessageDelivered, Value: raw}
	for _, n := range []*Notifier{first.n, first.n, second.n} {
		if !n.handle(ctx, msg) {
			t.Fatal("handle gave up")
		}
	}
	first.boxes["gw1"].waitLen(t, 2)
	time.Sleep(50 * time.Millisecond)
	if n := first.boxes["gw1"].len(); n != 2 {
		t.Fatalf("first process: gw1 got %d deliveries, want ack + message once", n)
	}
	if n := second.boxes["gw1"].len() + second.boxes["gw2"].len(); n != 0 {
		t.Fatalf("second process re-sent a redelivered event (%d deliveries)", n)
	}
	if got := append(first.pushes.list(), second.pushes.list()...); !slices.Equal(got, []string{"dave"}) {
		t.Fatalf("pushed %v, want dave once", got)
	}
}

// A routed delivery that reached no subscriber (the gateway died, or is resubscribing)
// falls back to a push and prunes that gateway's presence entries for those users.
func TestDeliveryToAGatewayNobodyListensForIsPushedAndPruned(t *testing.T) {
	rdb := testenv.RedisClient(t)
	noReceiverIsPushedAndPruned(t, rdb, fmt.Sprintf("test:%s:%d:", t.Name(), time.Now().UnixNano()))
}

// noReceiverIsPushedAndPruned: alice's gateway listens, bob's and carol's does not; a
// message from alice reaches her gateway (ack and message), is pushed to bob and carol,
// and their presence entries are pruned. Shared by the single-node and cluster tests.
func noReceiverIsPushedAndPruned(t *testing.T, rdb redis.UniversalClient, routePrefix string) {
	t.Helper()
	ctx := context.Background()
	pres := presence.NewRedis(rdb, "", presence.Config{})
	routes := NewRedisRoutes(rdb, routePrefix, nil)
	live := newInbox()
	stop, err := routes.Subscribe(ctx, "gw-live", live.add)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for user, gw := range map[string]string{"alice": "gw-live", "bob": "gw-dead", "carol": "gw-dead"} {
		if _, err := pres.Connect(ctx, presence.Conn{UserID: user, GatewayID: gw, ConnID: user + "-1"}); err != nil {
			t.Fatal(err)
		}
	}
	book := roomBook{members: map[string][]string{"r": {"alice", "bob", "carol"}}}
	pushes := &pushLog{}
	n := New(book, pres, routes, pushes, nil, prometheus.NewRegistry())
	m := &protocol.MessageDelivered{RoomID: "r", SenderID: "alice", ClientID: "c1", ServerID: "m1", Seq: 1, Body: "hi", CreatedAt: time.Now()}
	if err := n.MessageDelivered(ctx, m); err != nil {
		t.Fatal(err)
	}
	got := pushes.list()
	sort.Strings(got)
	if !slices.Equal(got, []string{"bob", "carol"}) {
		t.Fatalf("pushed %v, want bob and carol (their gateway has no subscriber)", got)
	}
	gws, err := pres.Gateways(ctx, []string{"alice", "bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	if len(gws["bob"]) != 0 || len(gws["carol"]) != 0 || len(gws["alice"]) != 1 {
		t.Fatalf("presence after the fallback = %v, want bob and carol pruned, alice kept", gws)
	}
	if live.waitLen(t, 2); live.len() != 2 {
		t.Fatalf("the live gateway got %d deliveries, want ack + message", live.len())
	}
}

// countingRouter records the size of every routed delivery.
type countingRouter struct {
	mu    sync.Mutex
	sizes []int
	users map[string]int
}

func (c *countingRouter) Route(_ context.Context, _ string, d Delivery) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sizes = append(c.sizes, len(d.Users))
	if c.users == nil {
		c.users = map[string]int{}
	}
	for _, u := range d.Users {
		c.users[u]++
	}
	return nil
}

// A big room's members on one gateway go out in bounded chunks, each member once.
func TestBigRoomIsRoutedInBoundedChunks(t *testing.T) {
	ctx := context.Background()
	pres := presence.NewMemory(presence.Config{})
	members := make([]string, 0, 1000)
	for i := range 1000 {
		u := fmt.Sprintf("u%04d", i)
		members = append(members, u)
		if _, err := pres.Connect(ctx, presence.Conn{UserID: u, GatewayID: "gw", ConnID: "c"}); err != nil {
			t.Fatal(err)
		}
	}
	r := &countingRouter{}
	n := New(roomBook{members: map[string][]string{"big": members}}, pres, r, nil, nil, nil)
	m := &protocol.MessageDelivered{RoomID: "big", SenderID: "u0000", ClientID: "c1", ServerID: "m1", Seq: 1, Body: "hi", CreatedAt: time.Now()}
	if err := n.MessageDelivered(ctx, m); err != nil {
		t.Fatal(err)
	}
	for _, s := range r.sizes {
		if s > RouteChunk {
			t.Fatalf("a routed delivery carried %d users, more than %d", s, RouteChunk)
		}
	}
	for _, u := range members {
		want := 1
		if u == "u0000" {
			want = 2 // the ack and the message
		}
		if r.users[u] != want {
			t.Fatalf("%s routed %d times, want %d", u, r.users[u], want)
		}
	}
}

// Readiness notices a consumer that makes no progress while events wait.
func TestReadinessNoticesAStuckConsumer(t *testing.T) {
	now := time.Unix(1000, 0)
	h := consumerHealth{now: func() time.Time { return now }, stuckAfter: 30 * time.Second}
	msgs := []bus.Message{{Partition: 0, Offset: 10, HighWaterMark: 50}}
	tests := []struct {
		name    string
		step    func()
		healthy bool
	}{
		{"fresh batch", func() { h.fetched("t", msgs) }, true},
		{"batch in hand past the bound", func() { now = now.Add(31 * time.Second) }, false},
		{"committed, 39 behind", func() { h.committed("t") }, true},
		{"no progress past the bound with events behind", func() { now = now.Add(31 * time.Second) }, false},
		{"caught up", func() {
			h.fetched("t", []bus.Message{{Partition: 0, Offset: 49, HighWaterMark: 50}})
			h.committed("t")
		}, true},
		{"idle for long with nothing behind", func() { now = now.Add(10 * time.Minute) }, true},
	}
	for _, tc := range tests {
		tc.step()
		if err := h.check(); (err == nil) != tc.healthy {
			t.Fatalf("%s: check() = %v, want healthy %v", tc.name, err, tc.healthy)
		}
	}
}

// Typing and presence fan-out failures are counted by kind.
func TestTypingAndPresenceFailuresAreCounted(t *testing.T) {
	w, fr := newFlakyWorld(t)
	fr.setFail(func(string, Delivery) bool { return true })
	ctx := context.Background()
	_ = w.n.Typing(ctx, "group", "alice")
	_ = w.n.Presence(ctx, "alice", true)
	for _, stage := range []string{"typing", "presence"} {
		if v := testutil.ToFloat64(w.n.failed.WithLabelValues(stage)); v != 1 {
			t.Fatalf("failures{stage=%q} = %v, want 1", stage, v)
		}
	}
}
