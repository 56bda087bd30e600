package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/runtime/presence"
)

// Redis restarted empty: nobody on this gateway looks online until its hub is
// re-asserted. The trigger (the routed subscription coming back) re-asserts at once,
// not at the next heartbeat an interval later, and the alive key says presence is being
// rebuilt.
func TestReassertOnTriggerRebuildsPresenceAtOnce(t *testing.T) {
	rdb := redis.NewClient(testenv.Redis(t))
	t.Cleanup(func() { _ = rdb.Close() })
	pres := presence.NewRedis(rdb, "", presence.Config{TTL: presenceTTL})
	f := newFixtureWith(t, Config{ID: "gw-x", HeartbeatInterval: time.Hour}, nil, pres)
	f.dial(t, "tok-alice")
	waitGateways(t, pres, []string{"alice"}, map[string][]string{"alice": {"gw-x"}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	trigger := make(chan struct{}, 1)
	go f.gw.RunHeartbeatOn(ctx, trigger)

	waitCond(t, "the first heartbeat's alive key", func() bool { return rdb.Exists(ctx, "p:"+presence.AliveKey).Val() == 1 })
	if err := rdb.FlushDB(ctx).Err(); err != nil { // this test's own database
		t.Fatal(err)
	}
	waitGateways(t, pres, []string{"alice"}, map[string][]string{})
	trigger <- struct{}{}
	waitGateways(t, pres, []string{"alice"}, map[string][]string{"alice": {"gw-x"}})
	// The heartbeat sets the key after the connections, so it may come a moment later.
	waitCond(t, "the re-assert to set the alive key", func() bool { return rdb.Exists(ctx, "p:"+presence.AliveKey).Val() == 1 })
}

func waitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
