// Package bus moves events between Parley's roles: keyed publishing, and consuming as a
// member of a consumer group with explicit offset commits. Kafka carries it in
// production (NewKafka); Memory carries it inside one process for `parley dev` and keeps
// the same contract: partitions chosen by key hash, order kept per partition, committed
// offsets per group, and redelivery of what a consumer fetched but did not commit.
package bus

import (
	"context"
	"errors"
	"time"
)

// Record is one event to publish. Records with the same Key land on the same partition
// and so are consumed in the order they were published.
type Record struct {
	Key   []byte
	Value []byte
}

// Message is one consumed record with its position.
type Message struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte
	Time      time.Time
	// HighWaterMark is the partition's end offset when the message was fetched, so that
	// HighWaterMark-Offset-1 is how far the consumer lags on that partition.
	HighWaterMark int64
}

// Bus publishes records and opens group subscriptions.
type Bus interface {
	// Publish appends the records to topic and returns once the bus has them durably
	// (for Kafka: acknowledged by all in-sync replicas). On error some records may have
	// been written; consumers must be idempotent.
	Publish(ctx context.Context, topic string, recs ...Record) error
	// Subscribe joins consumer group group on topic. Members of a group share the topic's
	// partitions; a new member resumes from the group's committed offsets.
	Subscribe(ctx context.Context, group, topic string) (Subscription, error)
	Close() error
}

// Subscription is one member of a consumer group.
type Subscription interface {
	// Fetch blocks until at least one message is available, then returns it with what is
	// available already, up to max: a batch is what accumulated while the caller worked
	// on the previous one, never a wait for more (smart batching). linger bounds the
	// gathering: an implementation whose messages arrive in bursts (Kafka's fetch
	// responses, decoded one by one) keeps taking while they come without a pause, for
	// at most linger after the first. If ctx ends before any message arrives, it returns
	// ctx.Err(). Messages come in order within a partition.
	Fetch(ctx context.Context, max int, linger time.Duration) ([]Message, error)
	// Commit marks msgs and everything before them in their partitions as processed for
	// the group. What is fetched and not committed is delivered again to whichever member
	// owns the partition next.
	Commit(ctx context.Context, msgs ...Message) error
	// Close leaves the group without committing anything.
	Close() error
}

// Errors.
var (
	ErrClosed        = errors.New("bus: closed")
	ErrUnknownTopic  = errors.New("bus: unknown topic")
	ErrNotAssigned   = errors.New("bus: partition not assigned to this member")
	ErrInvalidConfig = errors.New("bus: invalid configuration")
)

// Both implementations keep the one contract.
var (
	_ Bus = (*Memory)(nil)
	_ Bus = (*Kafka)(nil)
)
