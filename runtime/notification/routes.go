package notification

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/runtime/presence"
	"github.com/parleychat/parley/runtime/protocol"
)

// Delivery is one frame for some users, all of whom hold a connection on the gateway it
// is routed to.
type Delivery struct {
	Users []string             `json:"users"`
	Frame protocol.ServerFrame `json:"frame"`
}

// MemoryRoutes routes deliveries to gateways in the same process (`parley dev`).
type MemoryRoutes struct {
	mu   sync.RWMutex
	subs map[string]map[int]func(Delivery)
	next int
}

// NewMemoryRoutes returns routes with no gateway subscribed.
func NewMemoryRoutes() *MemoryRoutes {
	return &MemoryRoutes{subs: map[string]map[int]func(Delivery){}}
}

// ErrNoReceiver is returned by Route when no subscriber listens for the gateway (it is
// dead, or resubscribing): the delivery went nowhere.
var ErrNoReceiver = errors.New("no subscriber for the gateway")

// Route hands d to the gateway's subscribers, or returns ErrNoReceiver when there are none.
func (m *MemoryRoutes) Route(_ context.Context, gatewayID string, d Delivery) error {
	m.mu.RLock()
	fns := make([]func(Delivery), 0, len(m.subs[gatewayID]))
	for _, fn := range m.subs[gatewayID] {
		fns = append(fns, fn)
	}
	m.mu.RUnlock()
	if len(fns) == 0 {
		return fmt.Errorf("route to gateway %s: %w", gatewayID, ErrNoReceiver)
	}
	for _, fn := range fns {
		fn(d)
	}
	return nil
}

// Subscribe calls fn for every delivery routed to gatewayID until the returned stop is called.
func (m *MemoryRoutes) Subscribe(_ context.Context, gatewayID string, fn func(Delivery)) (func(), error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.subs[gatewayID] == nil {
		m.subs[gatewayID] = map[int]func(Delivery){}
	}
	id := m.next
	m.next++
	m.subs[gatewayID][id] = fn
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		delete(m.subs[gatewayID], id)
	}, nil
}

// RedisRoutes routes deliveries through one Redis sharded pub/sub channel per gateway
// (SPUBLISH/SSUBSCRIBE, Redis 7 or later), so an event reaches only the gateways that
// hold a recipient, never every gateway. On Redis Cluster a sharded message travels only
// within the shard owning the channel's slot, where classic PUBLISH is broadcast to every
// node; on one Redis server both behave the same, so there is one code path.
//
// The channel carries the gateway's hash tag (presence.GatewayTag), so it lives on the
// node that holds the gateway's presence index.
type RedisRoutes struct {
	rdb    redis.UniversalClient
	prefix string
	log    *slog.Logger
}

// NewRedisRoutes uses channels named prefix+"{g:<gatewayID>}" ("parley:gw:" when empty).
func NewRedisRoutes(rdb redis.UniversalClient, prefix string, log *slog.Logger) *RedisRoutes {
	if prefix == "" {
		prefix = "parley:gw:"
	}
	if log == nil {
		log = slog.Default()
	}
	return &RedisRoutes{rdb: rdb, prefix: prefix, log: log}
}

// Channel is the name of gatewayID's channel.
func (r *RedisRoutes) Channel(gatewayID string) string {
	return r.prefix + presence.GatewayTag(gatewayID)
}

// Route publishes d on the gateway's channel; ErrNoReceiver when no subscriber got it.
// Callers keep d small (RouteChunk users).
func (r *RedisRoutes) Route(ctx context.Context, gatewayID string, d Delivery) error {
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode delivery: %w", err)
	}
	// SPUBLISH counts the subscribers of the channel's shard, which is where every
	// subscriber is (subscriptions follow the slot's primary, never a replica).
	n, err := r.rdb.SPublish(ctx, r.Channel(gatewayID), b).Result()
	if err != nil {
		return fmt.Errorf("route to gateway %s: %w", gatewayID, err)
	}
	if n == 0 {
		return fmt.Errorf("route to gateway %s: %w", gatewayID, ErrNoReceiver)
	}
	return nil
}

// Subscribe listens on the gateway's channel; it returns once Redis confirmed the
// subscription, so nothing routed afterwards is missed.
func (r *RedisRoutes) Subscribe(ctx context.Context, gatewayID string, fn func(Delivery)) (func(), error) {
	return r.SubscribeWatch(ctx, gatewayID, fn, nil)
}

// subscriptionProbe is how long a quiet subscription waits before pinging Redis, so a
// silently lost connection is noticed.
const subscriptionProbe = 5 * time.Second

// SubscribeWatch is Subscribe, and also calls onState (when not nil) with false each time
// the subscription is lost (Redis unreachable or restarted, or on a cluster the
// channel's slot moved to another node: deliveries routed meanwhile reach nobody) and
// with true each time it is back, from the receiving goroutine. It keeps reconnecting
// until stopped.
func (r *RedisRoutes) SubscribeWatch(ctx context.Context, gatewayID string, fn func(Delivery), onState func(up bool)) (func(), error) {
	channel := r.Channel(gatewayID)
	ps, err := r.subscribe(ctx, channel)
	if err != nil {
		return nil, fmt.Errorf("subscribe gateway %s: %w", gatewayID, err)
	}
	if onState == nil {
		onState = func(bool) {}
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var mu sync.Mutex // guards ps, replaced when the server drops the subscription
	current := func() *redis.PubSub {
		mu.Lock()
		defer mu.Unlock()
		return ps
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { current().Close() }() // a resubscription may have replaced ps
		up := true
		setUp := func(v bool) {
			if v != up {
				up = v
				onState(v)
			}
		}
		pause := func() bool {
			select {
			case <-rctx.Done():
				return false
			case <-time.After(200 * time.Millisecond):
				return true
			}
		}
		for rctx.Err() == nil {
			sub := current()
			msg, err := sub.ReceiveTimeout(rctx, subscriptionProbe)
			if err != nil {
				if rctx.Err() != nil {
					return
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					// Quiet: make sure the connection is alive (a lost one reconnects on
					// the next receive, which then fails or resubscribes).
					if perr := sub.Ping(rctx); perr != nil && rctx.Err() == nil {
						setUp(false)
					}
					continue
				}
				setUp(false)
				if !pause() {
					return
				}
				continue
			}
			switch m := msg.(type) {
			case *redis.Subscription:
				switch m.Kind {
				case "ssubscribe":
					setUp(true)
				case "sunsubscribe":
					// Not asked for: the cluster moved the channel's slot (resharding or
					// failover). Subscribe afresh, on the slot's current owner, once the
					// client learnt who that is.
					setUp(false)
					for rctx.Err() == nil {
						if c, ok := r.rdb.(interface{ ReloadState(context.Context) }); ok {
							c.ReloadState(rctx)
						}
						fresh, err := r.subscribe(rctx, channel)
						if err == nil {
							mu.Lock()
							old := ps
							ps = fresh
							mu.Unlock()
							old.Close()
							setUp(true)
							break
						}
						r.log.Warn("resubscribe after the server dropped the channel", "gateway", gatewayID, "err", err)
						if !pause() {
							return
						}
					}
				}
			case *redis.Message:
				setUp(true)
				var d Delivery
				if err := json.Unmarshal([]byte(m.Payload), &d); err != nil {
					r.log.Error("undecodable delivery", "gateway", gatewayID, "err", err)
					continue
				}
				fn(d)
			case *redis.Pong:
				setUp(true)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			current().Close()
			<-done
		})
	}, nil
}

// subscribe opens a sharded subscription to channel and waits for its confirmation.
func (r *RedisRoutes) subscribe(ctx context.Context, channel string) (*redis.PubSub, error) {
	ps := r.rdb.SSubscribe(ctx, channel)
	if _, err := ps.Receive(ctx); err != nil {
		ps.Close()
		return nil, err
	}
	return ps, nil
}
