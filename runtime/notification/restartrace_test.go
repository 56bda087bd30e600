package notification

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/runtime/presence"
	"github.com/parleychat/parley/runtime/protocol"
)

// A Redis restarted empty looks, to a reader, like the same Redis with everybody offline.
// These tests lose Redis's data (FLUSHDB of the test's own database) at the moments the
// chaos suite's redis-restart-empty hit: right after presence was found complete, and
// between locating a gateway and publishing to it.

// A check of the rebuild state made just before Redis lost its data must not vouch for
// the empty presence read just after it: the event would be committed with every member
// taken for offline (the messages in flight at a Redis crash, lost to their whole rooms).
func TestPresenceGuardNeverTrustsAStateReadBeforeRedisLostItsData(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.RedisClient(t)
	pres := presence.NewRedis(rdb, "", presence.Config{})
	alice := presence.Conn{UserID: "alice", GatewayID: "gw1", ConnID: "1"}
	if _, err := pres.Heartbeat(ctx, "gw1", []presence.Conn{alice}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Add(10 * time.Second) // well past the grace
	g := NewPresenceGuard(pres, rdb, "", 3*time.Second)
	g.now = func() time.Time { return now }
	got, err := g.Gateways(ctx, []string{"alice"})
	if err != nil || len(got["alice"]) != 1 {
		t.Fatalf("complete presence: %v, %v; want alice on gw1", got, err)
	}
	if err := rdb.FlushDB(ctx).Err(); err != nil { // Redis restarted empty, at the same instant
		t.Fatal(err)
	}
	got, err = g.Gateways(ctx, []string{"alice"})
	if !errors.Is(err, ErrPresenceRebuilding) {
		t.Fatalf("right after Redis lost its data: %v, %v; want ErrPresenceRebuilding", got, err)
	}
}

// restartingRouter loses Redis's data just before the first publish to gateway `at` (as
// a Redis crash between locating and publishing does), so that publish reaches nobody.
type restartingRouter struct {
	next Router
	rdb  *redis.Client
	at   string
	once sync.Once
}

func (r *restartingRouter) Route(ctx context.Context, gw string, d Delivery) error {
	hit := false
	if gw == r.at {
		r.once.Do(func() { hit = true })
	}
	if hit {
		if err := r.rdb.FlushDB(ctx).Err(); err != nil {
			return err
		}
		return fmt.Errorf("route to gateway %s: %w", gw, ErrNoReceiver)
	}
	return r.next.Route(ctx, gw, d)
}

// A publish that reached no subscriber because Redis restarted after the gateways were
// located is retried, not taken for "offline": no push, and the member gets the message
// once presence is rebuilt.
func TestNoReceiverAfterRedisLostItsDataIsRetriedNotPushed(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.RedisClient(t)
	pres := presence.NewRedis(rdb, "", presence.Config{})
	routes := NewRedisRoutes(rdb, fmt.Sprintf("test:%s:%d:", t.Name(), time.Now().UnixNano()), nil)
	boxes := map[string]*inbox{}
	held := map[string][]presence.Conn{
		"gw1": {{UserID: "alice", GatewayID: "gw1", ConnID: "a1"}},
		"gw2": {{UserID: "bob", GatewayID: "gw2", ConnID: "b1"}},
	}
	for gw := range held {
		boxes[gw] = newInbox()
		stop, err := routes.Subscribe(ctx, gw, boxes[gw].add)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
	}
	reassert := func() {
		t.Helper()
		for gw, conns := range held {
			if _, err := pres.Heartbeat(ctx, gw, conns); err != nil {
				t.Fatal(err)
			}
		}
	}
	reassert()
	const grace = 200 * time.Millisecond
	time.Sleep(2 * grace)
	pushes := &pushLog{}
	book := roomBook{members: map[string][]string{"r": {"alice", "bob"}}}
	router := &restartingRouter{next: routes, rdb: rdb, at: "gw2"}
	n := New(book, NewPresenceGuard(pres, rdb, "", grace), router, pushes, nil, prometheus.NewRegistry(),
		WithRetry(Retry{Attempts: 1}))
	m := &protocol.MessageDelivered{RoomID: "r", SenderID: "alice", ClientID: "c1", ServerID: "m1", Seq: 1, Body: "hi", CreatedAt: time.Now()}
	var st eventState
	err := n.messageDelivered(ctx, m, &st)
	if err == nil {
		t.Fatal("the fan-out counted as done though bob's gateway was never reached")
	}
	if got := pushes.list(); len(got) != 0 {
		t.Fatalf("pushed %v: a member of a live gateway was taken for offline", got)
	}
	reassert() // the gateways notice the restart and re-assert their connections
	time.Sleep(2 * grace)
	if err := n.messageDelivered(ctx, m, &st); err != nil {
		t.Fatalf("retry after presence was rebuilt: %v", err)
	}
	var frames []protocol.FrameType
	for _, d := range boxes["gw2"].waitLen(t, 1) {
		frames = append(frames, d.Frame.Type)
	}
	if len(frames) != 1 || frames[0] != protocol.FrameMessage {
		t.Fatalf("bob's gateway got %v, want the message once", frames)
	}
	if got := pushes.list(); len(got) != 0 {
		t.Fatalf("pushed %v after the retry", got)
	}
}
