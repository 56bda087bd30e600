package notification

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/runtime/presence"
)

// ErrPresenceRebuilding is returned while presence cannot be trusted: Redis lost its data
// (restarted empty) and the gateways have not all re-asserted their connections yet.
// Treating everyone as offline then would drop live deliveries, so the event waits.
var ErrPresenceRebuilding = errors.New("presence is being rebuilt")

// DefaultRebuildGrace is how long after the first heartbeat that follows a Redis restart
// presence counts as complete. Gateways re-assert within about a second of Redis coming
// back (they notice through their routed subscription).
const DefaultRebuildGrace = 3 * time.Second

// AliveLocator is a Locator that also tells, from the very state it located from, when
// presence started being rebuilt (presence.Redis.GatewaysAlive).
type AliveLocator interface {
	Locator
	GatewaysAlive(ctx context.Context, userIDs []string) (map[string][]string, time.Time, error)
}

// PresenceGuard is a Locator that answers only once presence is complete: the key the
// gateways' heartbeats set (presence.AliveKey) exists and is older than the grace. When
// the key is missing but presence holds connections (gateways older than the key, or a
// client connected first), the guard sets it itself: the grace starts then.
//
// The key is read with the users, in one round trip, on every call: a state checked a
// moment earlier proves nothing, since Redis may have restarted empty in between, and an
// empty presence taken for complete sends every recipient to push and commits the event
// (the messages in flight at a Redis crash were lost that way to every live member).
type PresenceGuard struct {
	AliveLocator
	rdb   redis.UniversalClient
	gws   string
	key   string
	grace time.Duration
	now   func() time.Time
}

// NewPresenceGuard guards l with the keys of presence under prefix ("p:" when empty) in
// rdb; grace zero means DefaultRebuildGrace.
func NewPresenceGuard(l AliveLocator, rdb redis.UniversalClient, prefix string, grace time.Duration) *PresenceGuard {
	if prefix == "" {
		prefix = "p:"
	}
	if grace <= 0 {
		grace = DefaultRebuildGrace
	}
	return &PresenceGuard{AliveLocator: l, rdb: rdb, key: prefix + presence.AliveKey, gws: prefix + presence.GatewaysKey, grace: grace, now: time.Now}
}

// Gateways implements Locator.
func (g *PresenceGuard) Gateways(ctx context.Context, userIDs []string) (map[string][]string, error) {
	gws, since, err := g.GatewaysAlive(ctx, userIDs)
	if err != nil {
		return nil, err
	}
	if since.IsZero() {
		return nil, g.noHeartbeat(ctx)
	}
	if age := g.now().Sub(since); age < g.grace {
		return nil, fmt.Errorf("%w: first heartbeat %s ago, waiting %s", ErrPresenceRebuilding, age.Round(time.Millisecond), g.grace)
	}
	return gws, nil
}

// Prune implements Pruner when the guarded locator does.
func (g *PresenceGuard) Prune(ctx context.Context, gatewayID string, userIDs []string) error {
	if p, ok := g.AliveLocator.(Pruner); ok {
		return p.Prune(ctx, gatewayID, userIDs)
	}
	return nil
}

// noHeartbeat is the answer while no heartbeat marked presence since Redis lost its data.
func (g *PresenceGuard) noHeartbeat(ctx context.Context) error {
	// A registered gateway means presence holds (or held) connections.
	held, err := g.rdb.ZCard(ctx, g.gws).Result()
	if err != nil {
		return fmt.Errorf("presence state: %w", err)
	}
	if held > 0 {
		if err := g.rdb.SetNX(ctx, g.key, g.now().UnixMilli(), 0).Err(); err != nil {
			return fmt.Errorf("presence state: %w", err)
		}
	}
	return fmt.Errorf("%w: no gateway heartbeat since Redis lost its data", ErrPresenceRebuilding)
}
