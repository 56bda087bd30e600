package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/runtime/presence"
	"github.com/parleychat/parley/runtime/protocol"
)

// These tests hold the gateway to issue 15: a connection is either live (routed to, kept
// online) or closed, never a zombie or a ghost.

// A close request the client never answers (it stopped reading) must still end the
// connection at once when the writer gives up, not when the reader's deadline expires.
func TestWriterStopClosesTheConnection(t *testing.T) {
	f := newFixture(t, Config{PingInterval: time.Minute}, nil)
	f.dial(t, "tok-alice") // never reads, so never answers the close frame
	waitConns(t, f.gw, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	if err := f.gw.Drain(ctx); err != nil {
		t.Fatalf("drain waited for a reader whose writer had stopped: %v", err)
	}
	if n := f.gw.Connections(); n != 0 {
		t.Fatalf("connections after drain = %d, want 0", n)
	}
}

// A write that times out (a client that stopped reading) ends the writer; the connection
// must leave the hub then, not when the reader's deadline expires minutes later.
func TestWriteErrorClosesTheConnection(t *testing.T) {
	f := newFixture(t, Config{PingInterval: time.Minute, WriteTimeout: 200 * time.Millisecond, SendQueue: 1000}, nil)
	f.dial(t, "tok-alice") // never reads
	waitConns(t, f.gw, 1)
	body := strings.Repeat("z", 60<<10)
	for i := range 600 { // ~36 MB: more than any socket buffers hold
		if f.gw.Connections() == 0 {
			break
		}
		f.gw.Deliver([]string{"alice"}, protocol.ServerFrame{Type: protocol.FrameMessage, Room: "r", Seq: int64(i + 1), Body: body})
	}
	waitConns(t, f.gw, 0)
	if v := testutil.ToFloat64(f.gw.metrics.queueDrops); v != 0 {
		t.Fatalf("the client was dropped as slow (%v), not by the write timeout", v)
	}
	// A write that timed out is a client that stopped reading: counted as slow.
	if v := testutil.ToFloat64(f.gw.metrics.disconnects.WithLabelValues(string(protocol.CodeSlowConsumer))); v != 1 {
		t.Fatalf("slow_consumer disconnects = %v, want 1", v)
	}
}

// slowHistory answers like history, after a delay (a busy database).
type slowHistory struct {
	history
	delay time.Duration
}

func (h slowHistory) MessagesAfter(ctx context.Context, user, room string, after int64, limit int) ([]protocol.ServerFrame, error) {
	time.Sleep(h.delay)
	return h.history.MessagesAfter(ctx, user, room, after, limit)
}

// A replay that lasts longer than the read deadline must not stop the reader: a ping sent
// right after the resume is answered before the replay, and the connection survives it.
func TestResumeKeepsReadingWhileReplaying(t *testing.T) {
	rooms := map[string][]protocol.MessageDelivered{}
	resume := map[string]int64{}
	for r := range 6 {
		room := fmt.Sprint("r", r)
		resume[room] = 0
		for i := 1; i <= 50; i++ {
			rooms[room] = append(rooms[room], protocol.MessageDelivered{RoomID: room, SenderID: "bob", ClientID: fmt.Sprint(i), ServerID: fmt.Sprintf("%s-m%d", room, i), Seq: int64(i), Body: "x", CreatedAt: time.Now()})
		}
	}
	// Silence is 2 s; the replay takes about 6 x 600 ms. (A shorter silence made the test
	// flaky on a loaded machine: the client itself could stay unscheduled that long.)
	hist := slowHistory{history: rooms, delay: 600 * time.Millisecond}
	f := newFixture(t, Config{SendQueue: 4, PingInterval: time.Second}, nil)
	f.gw.history = hist
	ws := f.dial(t, "tok-alice")
	raw, _ := json.Marshal(protocol.ClientFrame{Type: protocol.FrameResume, Rooms: resume})
	send(t, ws, string(raw))
	send(t, ws, `{"type":"ping","id":"p1"}`)
	if got := read(t, ws); got.Type != protocol.FramePong || got.ID != "p1" {
		t.Fatalf("first frame after resume and ping = %+v, want pong p1 (the reader waited for the replay)", got)
	}
	for r := range 6 {
		for i := int64(1); i <= 50; i++ {
			got := read(t, ws)
			if got.Type != protocol.FrameMessage || got.Room != fmt.Sprint("r", r) || got.Seq != i {
				t.Fatalf("replay frame %+v, want r%d seq %d", got, r, i)
			}
			if i%10 == 0 {
				time.Sleep(5 * time.Millisecond) // a reader slower than the socket
			}
		}
	}
	send(t, ws, `{"type":"ping","id":"p2"}`)
	if got := read(t, ws); got.Type != protocol.FramePong || got.ID != "p2" {
		t.Fatalf("after the replay: %+v, want pong p2", got)
	}
}

// A slow presence fan-out (contacts in many rooms) must not keep the writer from
// starting: deliveries to the new connection flow while it runs.
func TestPresenceFanOutDoesNotHoldTheWriter(t *testing.T) {
	f := newFixture(t, Config{SendQueue: 4}, nil)
	f.pub.hold, f.pub.entered = make(chan struct{}), make(chan struct{}, 16)
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(f.pub.hold) }) })
	ws := f.dial(t, "tok-alice")
	select {
	case <-f.pub.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("alice's presence was never announced")
	}
	for i := 1; i <= 20; i++ {
		f.gw.Deliver([]string{"alice"}, protocol.ServerFrame{Type: protocol.FrameMessage, Room: "busy", Seq: int64(i), Body: "hi"})
		_ = ws.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, raw, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("delivery %d while presence is announced: %v", i, err)
		}
		if want := fmt.Sprintf(`"seq":%d`, i); !strings.Contains(string(raw), want) {
			t.Fatalf("delivery %d = %s", i, raw)
		}
	}
	release.Do(func() { close(f.pub.hold) })
}

// failingConnect is presence whose registrations fail (Redis unreachable).
type failingConnect struct{ Presence }

func (failingConnect) Connect(context.Context, presence.Conn) (bool, error) {
	return false, errors.New("redis: connection refused")
}

// A connection that cannot be registered is invisible to routing: it must be closed with
// 1013 (try again later) so the client reconnects, not left open and deaf.
func TestUnregisteredConnectionIsClosedWith1013(t *testing.T) {
	f := newFixtureWith(t, Config{}, nil, failingConnect{presence.NewMemory(presence.Config{})})
	ws := f.dial(t, "tok-alice")
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseTryAgainLater {
		t.Fatalf("read on an unregistered connection: %v, want close 1013", err)
	}
	waitConns(t, f.gw, 0)
}

// fakeClock is moved by hand; presence reads it through Config.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

const presenceTTL = 30 * time.Second

func redisPresence(t *testing.T) (*presence.Redis, *fakeClock) {
	t.Helper()
	rdb := redis.NewClient(testenv.Redis(t))
	t.Cleanup(func() { _ = rdb.Close() })
	clock := &fakeClock{now: time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)}
	return presence.NewRedis(rdb, "", presence.Config{TTL: presenceTTL, Now: clock.Now}), clock
}

// waitGateways polls presence until users are routed to want.
func waitGateways(t *testing.T, pres *presence.Redis, users []string, want map[string][]string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := pres.Gateways(context.Background(), users)
		if err != nil {
			t.Fatal(err)
		}
		if reflect.DeepEqual(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateways of %v = %v, want %v", users, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A heartbeat missed once (a Redis blip) lets the sweeper remove a live connection; the
// next heartbeat must put it back, and announce the user online again.
func TestHeartbeatReassertsAConnectionTheSweeperRemoved(t *testing.T) {
	pres, clock := redisPresence(t)
	f := newFixtureWith(t, Config{ID: "gw-a", HeartbeatInterval: 20 * time.Millisecond}, nil, pres)
	f.dial(t, "tok-alice")
	f.pub.waitFor(t, "alice online", func() bool { return len(f.pub.presence) == 1 })
	waitGateways(t, pres, []string{"alice"}, map[string][]string{"alice": {"gw-a"}})

	clock.Advance(presenceTTL + time.Second) // no heartbeat in time
	gone, err := pres.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := []presence.Transition{{UserID: "alice"}}; !reflect.DeepEqual(gone, want) {
		t.Fatalf("sweep = %v, want %v", gone, want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.gw.RunHeartbeat(ctx)
	waitGateways(t, pres, []string{"alice"}, map[string][]string{"alice": {"gw-a"}})
	f.pub.waitFor(t, "alice online again", func() bool {
		return fmt.Sprint(f.pub.presence) == "[alice:true alice:true]"
	})
}

// A gateway container restarted in place keeps its id (the pod name) but not its
// connections: the previous incarnation's users must not stay online.
func TestRestartedGatewayLeavesNoGhosts(t *testing.T) {
	pres, clock := redisPresence(t)
	ctx := context.Background()
	// The previous process of gw-r held alice and carol, then died without cleaning up.
	for i, u := range []string{"alice", "carol"} {
		if _, err := pres.Connect(ctx, presence.Conn{UserID: u, GatewayID: "gw-r", ConnID: fmt.Sprint(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	f := newFixtureWith(t, Config{ID: "gw-r", HeartbeatInterval: 20 * time.Millisecond}, nil, pres)
	f.dial(t, "tok-bob")
	f.pub.waitFor(t, "bob online", func() bool { return len(f.pub.presence) == 1 })
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go f.gw.RunHeartbeat(hctx)

	clock.Advance(presenceTTL + time.Second)
	users := []string{"alice", "bob", "carol"}
	// bob stays (the heartbeat refreshes him); alice and carol are gone.
	waitGateways(t, pres, users, map[string][]string{"bob": {"gw-r"}})
	gone, err := pres.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []presence.Transition{{UserID: "alice"}, {UserID: "carol"}}; !reflect.DeepEqual(gone, want) {
		t.Fatalf("sweep = %v, want %v", gone, want)
	}
}
