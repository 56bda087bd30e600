package notification

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultMarksTTL is how long an event stays marked as fanned out: longer than any
// rebalance or rollout takes to redeliver what was fetched and not committed.
const DefaultMarksTTL = 10 * time.Minute

// RedisMarks keeps Marks in Redis, one small key per event with a TTL, so memory is
// bounded by the event rate times the TTL (about 100 bytes per event).
type RedisMarks struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
}

// NewRedisMarks uses keys prefix+key ("parley:fanned:" when empty) that expire after ttl
// (DefaultMarksTTL when zero).
func NewRedisMarks(rdb redis.UniversalClient, prefix string, ttl time.Duration) *RedisMarks {
	if prefix == "" {
		prefix = "parley:fanned:"
	}
	if ttl <= 0 {
		ttl = DefaultMarksTTL
	}
	return &RedisMarks{rdb: rdb, prefix: prefix, ttl: ttl}
}

// Seen implements Marks.
func (m *RedisMarks) Seen(ctx context.Context, key string) (bool, error) {
	n, err := m.rdb.Exists(ctx, m.prefix+key).Result()
	if err != nil {
		return false, fmt.Errorf("fan-out marks: %w", err)
	}
	return n > 0, nil
}

// Mark implements Marks.
func (m *RedisMarks) Mark(ctx context.Context, key string) error {
	if err := m.rdb.Set(ctx, m.prefix+key, 1, m.ttl).Err(); err != nil {
		return fmt.Errorf("fan-out marks: %w", err)
	}
	return nil
}
