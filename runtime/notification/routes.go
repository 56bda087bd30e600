package notification

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"

	"github.com/redis/go-redis/v9"

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

// Route hands d to the gateway's subscribers; a gateway nobody listens for drops it, as
// real-time delivery may (history never loses a message).
func (m *MemoryRoutes) Route(_ context.Context, gatewayID string, d Delivery) error {
	m.mu.RLock()
	fns := make([]func(Delivery), 0, len(m.subs[gatewayID]))
	for _, fn := range m.subs[gatewayID] {
		fns = append(fns, fn)
	}
	m.mu.RUnlock()
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

// RedisRoutes routes deliveries through one Redis pub/sub channel per gateway, so an
// event reaches only the gateways that hold a recipient, never every gateway.
type RedisRoutes struct {
	rdb    redis.UniversalClient
	prefix string
	log    *slog.Logger
}

// NewRedisRoutes uses channels named prefix+gatewayID ("parley:gw:" when empty).
func NewRedisRoutes(rdb redis.UniversalClient, prefix string, log *slog.Logger) *RedisRoutes {
	if prefix == "" {
		prefix = "parley:gw:"
	}
	if log == nil {
		log = slog.Default()
	}
	return &RedisRoutes{rdb: rdb, prefix: prefix, log: log}
}

// Route publishes d on the gateway's channel.
func (r *RedisRoutes) Route(ctx context.Context, gatewayID string, d Delivery) error {
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode delivery: %w", err)
	}
	if err := r.rdb.Publish(ctx, r.prefix+gatewayID, b).Err(); err != nil {
		return fmt.Errorf("route to gateway %s: %w", gatewayID, err)
	}
	return nil
}

// Subscribe listens on the gateway's channel; it returns once Redis confirmed the
// subscription, so nothing routed afterwards is missed.
func (r *RedisRoutes) Subscribe(ctx context.Context, gatewayID string, fn func(Delivery)) (func(), error) {
	ps := r.rdb.Subscribe(ctx, r.prefix+gatewayID)
	if _, err := ps.Receive(ctx); err != nil {
		ps.Close()
		return nil, fmt.Errorf("subscribe gateway %s: %w", gatewayID, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for msg := range ps.Channel() {
			var d Delivery
			if err := json.Unmarshal([]byte(msg.Payload), &d); err != nil {
				r.log.Error("undecodable delivery", "gateway", gatewayID, "err", err)
				continue
			}
			fn(d)
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			ps.Close()
			<-done
		})
	}, nil
}
