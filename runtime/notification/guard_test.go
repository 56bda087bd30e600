package notification

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/runtime/presence"
)

// Presence counts only once the gateways had the time to re-assert it after Redis lost
// its data: before the first heartbeat, and for the grace after it, locating waits.
func TestPresenceGuardWaitsForTheRebuild(t *testing.T) {
	runGuardRebuild(t, testenv.RedisClient(t))
}

func runGuardRebuild(t *testing.T, rdb redis.UniversalClient) {
	ctx := context.Background()
	pres := presence.NewRedis(rdb, "", presence.Config{})
	if _, err := pres.Connect(ctx, presence.Conn{UserID: "alice", GatewayID: "gw1", ConnID: "1"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	g := NewPresenceGuard(pres, rdb, "", 3*time.Second)
	g.now = func() time.Time { return now }
	if _, err := g.Gateways(ctx, []string{"alice"}); !errors.Is(err, ErrPresenceRebuilding) {
		t.Fatalf("before any heartbeat: %v, want ErrPresenceRebuilding", err)
	}
	if _, err := pres.Heartbeat(ctx, "gw1", []presence.Conn{{UserID: "alice", GatewayID: "gw1", ConnID: "1"}}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Second)
	if _, err := g.Gateways(ctx, []string{"alice"}); !errors.Is(err, ErrPresenceRebuilding) {
		t.Fatalf("within the grace: %v, want ErrPresenceRebuilding", err)
	}
	now = now.Add(3 * time.Second)
	got, err := g.Gateways(ctx, []string{"alice"})
	if err != nil || len(got["alice"]) != 1 {
		t.Fatalf("after the grace: %v, %v", got, err)
	}
	if Permanent(ErrPresenceRebuilding) {
		t.Fatal("a rebuild is classed permanent: the event would be committed")
	}
}
