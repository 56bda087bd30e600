package presence

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/internal/testenv"
)

// tracker is what both implementations promise; the contract below holds them to it.
type tracker interface {
	Connect(ctx context.Context, c Conn) (bool, error)
	Disconnect(ctx context.Context, c Conn) (bool, error)
	Heartbeat(ctx context.Context, gatewayID string, held []Conn) ([]string, error)
	Sweep(ctx context.Context) ([]Transition, error)
	Gateways(ctx context.Context, userIDs []string) (map[string][]string, error)
	Typing(ctx context.Context, userID, roomID string) (bool, error)
}

// fakeClock is moved by hand; both implementations read it through Config.Now.
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

type factory func(t *testing.T, cfg Config) tracker

func TestContractMemory(t *testing.T) {
	runContract(t, func(_ *testing.T, cfg Config) tracker { return NewMemory(cfg) })
}

func TestContractRedis(t *testing.T) {
	runContract(t, func(t *testing.T, cfg Config) tracker {
		return NewRedis(redis.NewClient(testenv.Redis(t)), "", cfg)
	})
}

// The same contract over a real Redis Cluster of three primaries: users and gateways
// spread over the nodes, and Redis refuses (CROSSSLOT) any script whose declared keys
// span slots, so a pass also proves every script is slot-local. Each subtest gets its
// own key prefix in the one cluster.
func TestContractRedisCluster(t *testing.T) {
	rdb := testenv.RedisClusterClient(t)
	var n atomic.Int64
	runContract(t, func(t *testing.T, cfg Config) tracker {
		return NewRedis(rdb, fmt.Sprintf("p%d:", n.Add(1)), cfg)
	})
}

const (
	ttl      = 30 * time.Second
	throttle = 3 * time.Second
)

func runContract(t *testing.T, newTracker factory) {
	setup := func(t *testing.T) (tracker, *fakeClock) {
		clock := &fakeClock{now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
		return newTracker(t, Config{TTL: ttl, TypingThrottle: throttle, Now: clock.Now}), clock
	}
	ctx := context.Background()

	t.Run("first device online, last device offline", func(t *testing.T) {
		p, _ := setup(t)
		must := check(t)
		phone := Conn{UserID: "alice", GatewayID: "gw1", ConnID: "c1"}
		laptop := Conn{UserID: "alice", GatewayID: "gw2", ConnID: "c2"}
		if !must(p.Connect(ctx, phone)) {
			t.Fatal("first connection did not bring alice online")
		}
		if must(p.Connect(ctx, laptop)) {
			t.Fatal("second device reported alice coming online again")
		}
		gws, err := p.Gateways(ctx, []string{"alice", "bob"})
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string][]string{"alice": {"gw1", "gw2"}}; !reflect.DeepEqual(gws, want) {
			t.Fatalf("gateways = %v, want %v", gws, want)
		}
		if must(p.Disconnect(ctx, phone)) {
			t.Fatal("alice went offline while her laptop is connected")
		}
		if !must(p.Disconnect(ctx, laptop)) {
			t.Fatal("last disconnect did not take alice offline")
		}
		if must(p.Disconnect(ctx, laptop)) {
			t.Fatal("a repeated disconnect reported a second transition")
		}
		gws, _ = p.Gateways(ctx, []string{"alice"})
		if len(gws) != 0 {
			t.Fatalf("gateways after disconnect = %v", gws)
		}
	})

	t.Run("two connections on one gateway count separately", func(t *testing.T) {
		p, _ := setup(t)
		must := check(t)
		a := Conn{UserID: "u", GatewayID: "gw", ConnID: "1"}
		b := Conn{UserID: "u", GatewayID: "gw", ConnID: "2"}
		must(p.Connect(ctx, a))
		must(p.Connect(ctx, b))
		if must(p.Disconnect(ctx, a)) {
			t.Fatal("offline with a tab still open")
		}
		gws, _ := p.Gateways(ctx, []string{"u"})
		if !reflect.DeepEqual(gws["u"], []string{"gw"}) {
			t.Fatalf("gateways = %v", gws)
		}
	})

	t.Run("dead gateway expires within the TTL, heartbeats keep others", func(t *testing.T) {
		p, clock := setup(t)
		must := check(t)
		bob, carol := Conn{UserID: "bob", GatewayID: "lives", ConnID: "1"}, Conn{UserID: "carol", GatewayID: "lives", ConnID: "3"}
		must(p.Connect(ctx, Conn{UserID: "alice", GatewayID: "dies", ConnID: "1"}))
		must(p.Connect(ctx, bob))
		must(p.Connect(ctx, Conn{UserID: "carol", GatewayID: "dies", ConnID: "2"}))
		must(p.Connect(ctx, carol))
		for range 3 {
			clock.Advance(ttl / 2)
			back, err := p.Heartbeat(ctx, "lives", []Conn{bob, carol})
			if err != nil {
				t.Fatal(err)
			}
			if len(back) != 0 {
				t.Fatalf("heartbeat of live connections reported %v coming online", back)
			}
		}
		gws, _ := p.Gateways(ctx, []string{"alice", "bob", "carol"})
		if want := map[string][]string{"bob": {"lives"}, "carol": {"lives"}}; !reflect.DeepEqual(gws, want) {
			t.Fatalf("gateways after the TTL = %v, want %v", gws, want)
		}
		got, err := p.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := []Transition{{UserID: "alice"}}; !reflect.DeepEqual(got, want) {
			t.Fatalf("sweep = %v, want %v (carol still has a live device)", got, want)
		}
		if got, _ := p.Sweep(ctx); len(got) != 0 {
			t.Fatalf("second sweep reported again: %v", got)
		}
		if !must(p.Connect(ctx, Conn{UserID: "alice", GatewayID: "lives", ConnID: "9"})) {
			t.Fatal("alice reconnecting elsewhere did not come online")
		}
	})

	t.Run("heartbeat re-adds a held connection the sweeper took", func(t *testing.T) {
		p, clock := setup(t)
		must := check(t)
		alice := Conn{UserID: "alice", GatewayID: "gw", ConnID: "b1-1"}
		bob := Conn{UserID: "bob", GatewayID: "gw", ConnID: "b1-2"}
		must(p.Connect(ctx, alice))
		must(p.Connect(ctx, bob))
		clock.Advance(ttl + time.Second) // one heartbeat lost
		if got, _ := p.Sweep(ctx); len(got) != 2 {
			t.Fatalf("sweep = %v, want alice and bob", got)
		}
		// bob's Connect never made it (a failed registration): the hub holds him anyway.
		back, err := p.Heartbeat(ctx, "gw", []Conn{bob, alice})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"alice", "bob"}; !reflect.DeepEqual(back, want) {
			t.Fatalf("heartbeat reported %v back online, want %v", back, want)
		}
		gws, _ := p.Gateways(ctx, []string{"alice", "bob"})
		if want := map[string][]string{"alice": {"gw"}, "bob": {"gw"}}; !reflect.DeepEqual(gws, want) {
			t.Fatalf("gateways after the heartbeat = %v, want %v", gws, want)
		}
		clock.Advance(ttl / 2)
		if back, _ := p.Heartbeat(ctx, "gw", []Conn{alice, bob}); len(back) != 0 {
			t.Fatalf("second heartbeat reported %v again", back)
		}
		if got, _ := p.Sweep(ctx); len(got) != 0 {
			t.Fatalf("sweep after re-adding = %v", got)
		}
		if !must(p.Disconnect(ctx, alice)) {
			t.Fatal("a re-added connection did not take alice offline when it closed")
		}
	})

	t.Run("heartbeat expires what the gateway no longer holds", func(t *testing.T) {
		p, clock := setup(t)
		must := check(t)
		// The previous incarnation of gw held alice and carol; the new one holds bob.
		must(p.Connect(ctx, Conn{UserID: "alice", GatewayID: "gw", ConnID: "old-1"}))
		must(p.Connect(ctx, Conn{UserID: "carol", GatewayID: "gw", ConnID: "old-2"}))
		must(p.Connect(ctx, Conn{UserID: "carol", GatewayID: "other", ConnID: "1"}))
		bob := Conn{UserID: "bob", GatewayID: "gw", ConnID: "new-1"}
		must(p.Connect(ctx, bob))
		clock.Advance(time.Second)
		if _, err := p.Heartbeat(ctx, "gw", []Conn{bob}); err != nil {
			t.Fatal(err)
		}
		gws, _ := p.Gateways(ctx, []string{"alice", "bob", "carol"})
		if want := map[string][]string{"bob": {"gw"}, "carol": {"other"}}; !reflect.DeepEqual(gws, want) {
			t.Fatalf("gateways after the heartbeat = %v, want %v", gws, want)
		}
		clock.Advance(time.Millisecond)
		got, err := p.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := []Transition{{UserID: "alice"}}; !reflect.DeepEqual(got, want) {
			t.Fatalf("sweep = %v, want %v (carol is still on another gateway)", got, want)
		}
		if back, _ := p.Heartbeat(ctx, "gw", nil); len(back) != 0 {
			t.Fatalf("empty heartbeat reported %v", back)
		}
		if got, _ := p.Sweep(ctx); !reflect.DeepEqual(got, []Transition{{UserID: "bob"}}) {
			t.Fatalf("sweep after bob left the hub = %v, want bob", got)
		}
		if _, err := p.Heartbeat(ctx, "gw", []Conn{{UserID: "x", GatewayID: "elsewhere", ConnID: "1"}}); !errors.Is(err, ErrInvalidID) {
			t.Fatalf("heartbeat with another gateway's connection: %v, want ErrInvalidID", err)
		}
	})

	t.Run("heartbeat of a gateway larger than one batch", func(t *testing.T) {
		p, clock := setup(t)
		must := check(t)
		var held []Conn
		var heldUsers, staleUsers []string
		for i := range 600 { // two devices each: 1 200 connections held
			u := fmt.Sprint("h", i)
			heldUsers = append(heldUsers, u)
			for d := range 2 {
				c := Conn{UserID: u, GatewayID: "big", ConnID: fmt.Sprint("new-", i, "-", d)}
				held = append(held, c)
				must(p.Connect(ctx, c))
			}
		}
		for i := range 700 {
			u := fmt.Sprint("s", i)
			staleUsers = append(staleUsers, u)
			must(p.Connect(ctx, Conn{UserID: u, GatewayID: "big", ConnID: fmt.Sprint("old-", i)}))
		}
		clock.Advance(ttl - time.Second)
		if back, err := p.Heartbeat(ctx, "big", held); err != nil || len(back) != 0 {
			t.Fatalf("heartbeat = %v, %v", back, err)
		}
		clock.Advance(2 * time.Second) // past the first TTL: only the heartbeat keeps anyone
		gws, err := p.Gateways(ctx, append(heldUsers, staleUsers...))
		if err != nil {
			t.Fatal(err)
		}
		if len(gws) != len(heldUsers) {
			t.Fatalf("%d users live after the heartbeat, want the %d held", len(gws), len(heldUsers))
		}
		got, err := p.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(staleUsers) || got[0].UserID[0] != 's' || got[len(got)-1].UserID[0] != 's' {
			t.Fatalf("sweep reported %d users (%v…), want the %d stale ones", len(got), got[:min(3, len(got))], len(staleUsers))
		}
	})

	t.Run("expired but unswept connection does not keep a user online", func(t *testing.T) {
		p, clock := setup(t)
		must := check(t)
		must(p.Connect(ctx, Conn{UserID: "dave", GatewayID: "gone", ConnID: "1"}))
		clock.Advance(ttl + time.Second)
		if !must(p.Connect(ctx, Conn{UserID: "dave", GatewayID: "new", ConnID: "2"})) {
			t.Fatal("reconnect after expiry did not count as coming online")
		}
		if got, _ := p.Sweep(ctx); len(got) != 0 {
			t.Fatalf("sweep reported dave offline while he is connected: %v", got)
		}
	})

	t.Run("typing is throttled per user and room and expires", func(t *testing.T) {
		p, clock := setup(t)
		must := check(t)
		steps := []struct {
			user, room string
			advance    time.Duration
			want       bool
		}{
			{"alice", "r1", 0, true},
			{"alice", "r1", time.Second, false},
			{"alice", "r2", 0, true},
			{"bob", "r1", 0, true},
			{"alice", "r1", throttle, true},
			{"alice", "r1", throttle - time.Millisecond, false},
		}
		for i, s := range steps {
			clock.Advance(s.advance)
			if got := must(p.Typing(ctx, s.user, s.room)); got != s.want {
				t.Fatalf("step %d (%s in %s): forward = %v, want %v", i, s.user, s.room, got, s.want)
			}
		}
	})

	t.Run("ids with the separator are refused", func(t *testing.T) {
		p, _ := setup(t)
		for _, c := range []Conn{{"a|b", "gw", "1"}, {"a", "", "1"}, {"a", "gw", "x|y"}} {
			if _, err := p.Connect(ctx, c); !errors.Is(err, ErrInvalidID) {
				t.Fatalf("Connect(%+v) err = %v, want ErrInvalidID", c, err)
			}
		}
		if _, err := p.Typing(ctx, "a", "r|1"); !errors.Is(err, ErrInvalidID) {
			t.Fatalf("Typing err = %v", err)
		}
	})

	t.Run("concurrent connects report exactly one coming online", func(t *testing.T) {
		p, _ := setup(t)
		var mu sync.Mutex
		online := 0
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := p.Connect(ctx, Conn{UserID: "erin", GatewayID: fmt.Sprintf("gw%d", i%3), ConnID: fmt.Sprint(i)})
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					online++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if online != 1 {
			t.Fatalf("%d connects reported coming online, want 1", online)
		}
	})
}

// check turns a (bool, error) result into the bool, failing the test on an error.
func check(t *testing.T) func(bool, error) bool {
	return func(ok bool, err error) bool {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
}
