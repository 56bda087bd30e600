package presence

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/internal/testenv"
)

// pipelineCounter counts the pipelines each cluster node receives.
type pipelineCounter struct {
	mu    sync.Mutex
	count map[string]int
}

// nodeHook is the hook of one node's client.
type nodeHook struct {
	addr string
	into *pipelineCounter
}

func (h nodeHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h nodeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h nodeHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.into.mu.Lock()
		h.into.count[h.addr]++
		h.into.mu.Unlock()
		return next(ctx, cmds)
	}
}

// Looking up a room's members reads users living on every node of the cluster in one
// round trip per node: go-redis splits the pipeline by slot owner.
func TestClusterGatewaysOneRoundTripPerNode(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.RedisClusterClient(t)
	p := NewRedis(rdb, "", Config{})
	var users []string
	want := map[string][]string{}
	for i := range 300 {
		u := fmt.Sprint("m", i)
		users = append(users, u)
		gw := fmt.Sprint("gw", i%4)
		if _, err := p.Connect(ctx, Conn{UserID: u, GatewayID: gw, ConnID: "1"}); err != nil {
			t.Fatal(err)
		}
		want[u] = []string{gw}
	}
	// Warm up: a new connection's handshake goes out as a pipeline of its own.
	if _, _, err := p.GatewaysAlive(ctx, users); err != nil {
		t.Fatal(err)
	}
	counter := &pipelineCounter{count: map[string]int{}}
	var mu sync.Mutex
	var nodes []string
	if err := rdb.ForEachShard(ctx, func(_ context.Context, n *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		for _, a := range nodes {
			if a == n.Options().Addr {
				return nil // already hooked (the callback may see a node twice)
			}
		}
		nodes = append(nodes, n.Options().Addr)
		n.AddHook(nodeHook{addr: n.Options().Addr, into: counter})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, _, err := p.GatewaysAlive(ctx, users)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("gateways of %d users: %d answered, want all", len(users), len(got))
	}
	counter.mu.Lock()
	defer counter.mu.Unlock()
	if len(nodes) != 3 {
		t.Fatalf("%d nodes, want 3", len(nodes))
	}
	for _, a := range nodes {
		if counter.count[a] != 1 {
			t.Fatalf("pipelines per node for one look-up = %v, want exactly 1 on each of %v", counter.count, nodes)
		}
	}
}

// A crash between the two slot-local steps of an update leaves nothing wrong behind: an
// index entry without its user entry (connect stopped after the gateway's side) is
// forgotten by the sweeper without announcing anyone, and a user entry left behind by a
// disconnect that stopped after the user's side is not there at all.
func TestClusterCrashBetweenSteps(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.RedisClusterClient(t)
	clock := &fakeClock{now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	p := NewRedis(rdb, "", Config{TTL: ttl, Now: clock.Now})
	now := p.nowMS()
	// Connect of ghost on gw died after indexing it.
	if err := p.gwAdd(ctx, "gw", now, now+ttl.Milliseconds(), []string{"ghost|1"}); err != nil {
		t.Fatal(err)
	}
	if gws, _ := p.Gateways(ctx, []string{"ghost"}); len(gws) != 0 {
		t.Fatalf("a half-done connect shows ghost on %v", gws)
	}
	// Disconnect of dora on gw died after removing her entry.
	dora := Conn{UserID: "dora", GatewayID: "gw", ConnID: "2"}
	if _, err := p.Connect(ctx, dora); err != nil {
		t.Fatal(err)
	}
	if _, err := disconnectScript.Run(ctx, rdb, []string{p.userKey("dora")}, "gw|2", now).Result(); err != nil {
		t.Fatal(err)
	}
	if gws, _ := p.Gateways(ctx, []string{"dora"}); len(gws) != 0 {
		t.Fatalf("a half-done disconnect shows dora on %v", gws)
	}
	clock.Advance(ttl + time.Second) // the gateway died too
	got, err := p.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("sweep announced %v: neither ghost nor dora was ever online to readers at the end", got)
	}
	if n := rdb.ZCard(ctx, p.gwKey("gw")).Val(); n != 0 {
		t.Fatalf("gateway index keeps %d entries after the sweep", n)
	}
	if n := rdb.ZCard(ctx, p.gwsKey()).Val(); n != 0 {
		t.Fatalf("dead gateway still registered after its index emptied")
	}
}

// Nodes that lost their script cache (a restart, a failover to a replica that never ran
// the scripts) answer NOSCRIPT to the pipelined per-user steps: the scripts are loaded
// again and the heartbeat still re-asserts every connection.
func TestClusterHeartbeatAfterScriptCacheLoss(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.RedisClusterClient(t)
	p := NewRedis(rdb, "", Config{})
	var held []Conn
	var users []string
	for i := range 700 {
		u := fmt.Sprint("f", i)
		users = append(users, u)
		held = append(held, Conn{UserID: u, GatewayID: "gw", ConnID: "1"})
	}
	if _, err := p.Heartbeat(ctx, "gw", held[:10]); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	back, err := p.Heartbeat(ctx, "gw", held)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(held)-10 {
		t.Fatalf("%d users back online, want the %d new ones", len(back), len(held)-10)
	}
	gws, err := p.Gateways(ctx, users)
	if err != nil {
		t.Fatal(err)
	}
	if len(gws) != len(users) {
		t.Fatalf("%d users online after the heartbeat, want %d", len(gws), len(users))
	}
}
