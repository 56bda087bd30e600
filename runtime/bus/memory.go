package bus

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"time"
)

// Memory is an in-process bus for `parley dev` and tests. Topics are created on first
// use with the configured number of partitions. It keeps everything forever: it is meant
// for one development session, not for production traffic.
type Memory struct {
	partitions int

	mu      sync.Mutex
	topics  map[string]*memTopic
	groups  map[groupTopic]*memGroup
	changed chan struct{} // closed and replaced whenever a fetch could make progress
	closed  bool
	nextRR  int // partition for records without a key
}

type memTopic struct {
	parts [][]Message
}

type groupTopic struct{ group, topic string }

type memGroup struct {
	topic     *memTopic
	name      string
	committed []int64
	members   []*memSubscription // in join order; partition p belongs to members[p%len]
}

// NewMemory returns a memory bus whose topics have partitions partitions.
func NewMemory(partitions int) (*Memory, error) {
	if partitions < 1 {
		return nil, fmt.Errorf("%w: memory bus needs at least one partition, got %d", ErrInvalidConfig, partitions)
	}
	return &Memory{
		partitions: partitions,
		topics:     map[string]*memTopic{},
		groups:     map[groupTopic]*memGroup{},
		changed:    make(chan struct{}),
	}, nil
}

// topicLocked returns topic, creating it on first use. m.mu must be held.
func (m *Memory) topicLocked(name string) *memTopic {
	t, ok := m.topics[name]
	if !ok {
		t = &memTopic{parts: make([][]Message, m.partitions)}
		m.topics[name] = t
	}
	return t
}

// wakeLocked tells waiting fetches to look again. m.mu must be held.
func (m *Memory) wakeLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// partitionFor hashes the key like a hash balancer would, so that a key keeps its partition.
func (m *Memory) partitionFor(key []byte) int {
	if len(key) == 0 {
		m.nextRR = (m.nextRR + 1) % m.partitions
		return m.nextRR
	}
	h := fnv.New32a()
	_, _ = h.Write(key)
	return int(h.Sum32() % uint32(m.partitions))
}

// Publish implements Bus.
func (m *Memory) Publish(ctx context.Context, topic string, recs ...Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if topic == "" {
		return fmt.Errorf("%w: empty topic name", ErrUnknownTopic)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	t := m.topicLocked(topic)
	now := time.Now()
	for _, r := range recs {
		p := m.partitionFor(r.Key)
		t.parts[p] = append(t.parts[p], Message{
			Topic:     topic,
			Partition: p,
			Offset:    int64(len(t.parts[p])),
			Key:       slices.Clone(r.Key), // the caller may reuse its buffers
			Value:     slices.Clone(r.Value),
			Time:      now,
		})
	}
	m.wakeLocked()
	return nil
}

// Subscribe implements Bus.
func (m *Memory) Subscribe(ctx context.Context, group, topic string) (Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if group == "" || topic == "" {
		return nil, fmt.Errorf("%w: group and topic are required", ErrInvalidConfig)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	key := groupTopic{group, topic}
	g, ok := m.groups[key]
	if !ok {
		t := m.topicLocked(topic)
		g = &memGroup{topic: t, name: group, committed: make([]int64, len(t.parts))}
		m.groups[key] = g
	}
	s := &memSubscription{bus: m, group: g, topic: topic}
	g.members = append(g.members, s)
	m.rebalanceLocked(g)
	return s, nil
}

// rebalanceLocked hands the partitions out again and rewinds every member to the group's
// committed offsets, as Kafka's eager rebalance does: what was fetched and not committed
// is delivered again. m.mu must be held.
func (m *Memory) rebalanceLocked(g *memGroup) {
	for _, s := range g.members {
		s.position = map[int]int64{}
	}
	if len(g.members) > 0 {
		for p := range g.committed {
			g.members[p%len(g.members)].position[p] = g.committed[p]
		}
	}
	m.wakeLocked()
}

// Close implements Bus; open subscriptions fail with ErrClosed afterwards.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.closed = true
		m.wakeLocked()
	}
	return nil
}

type memSubscription struct {
	bus   *Memory
	group *memGroup
	topic string

	// guarded by bus.mu
	position map[int]int64 // next offset to fetch, for each assigned partition
	closed   bool
	start    int // partition to read first next time, so no partition starves
}

// Fetch implements Subscription.
func (s *memSubscription) Fetch(ctx context.Context, max int, linger time.Duration) ([]Message, error) {
	if max < 1 {
		return nil, fmt.Errorf("%w: fetch max must be positive, got %d", ErrInvalidConfig, max)
	}
	var (
		out      []Message
		deadline <-chan time.Time
	)
	for {
		s.bus.mu.Lock()
		if s.closed || s.bus.closed {
			s.bus.mu.Unlock()
			return nil, ErrClosed
		}
		out = s.takeLocked(out, max)
		wait := s.bus.changed
		s.bus.mu.Unlock()

		if len(out) >= max {
			return out, nil
		}
		if len(out) > 0 && deadline == nil {
			if linger <= 0 {
				return out, nil
			}
			timer := time.NewTimer(linger)
			defer timer.Stop()
			deadline = timer.C
		}
		select {
		case <-wait:
		case <-deadline:
			return out, nil
		case <-ctx.Done():
			if len(out) > 0 {
				// Hand over what we took: leaving it fetched-but-unreturned would skip it
				// until the next rebalance.
				return out, nil
			}
			return nil, ctx.Err()
		}
	}
}

// takeLocked appends up to max-len(out) messages from the assigned partitions.
func (s *memSubscription) takeLocked(out []Message, max int) []Message {
	parts := s.group.topic.parts
	n := len(parts)
	for i := 0; i < n && len(out) < max; i++ {
		p := (s.start + i) % n
		pos, ok := s.position[p]
		if !ok {
			continue
		}
		log := parts[p]
		for pos < int64(len(log)) && len(out) < max {
			msg := log[pos]
			msg.HighWaterMark = int64(len(log))
			out = append(out, msg)
			pos++
		}
		s.position[p] = pos
	}
	s.start = (s.start + 1) % n
	return out
}

// Commit implements Subscription.
func (s *memSubscription) Commit(ctx context.Context, msgs ...Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	if s.closed || s.bus.closed {
		return ErrClosed
	}
	for _, msg := range msgs {
		if msg.Topic != s.topic {
			return fmt.Errorf("%w: message of topic %q committed on a subscription to %q", ErrNotAssigned, msg.Topic, s.topic)
		}
		if _, ok := s.position[msg.Partition]; !ok {
			return fmt.Errorf("%w: %s/%d", ErrNotAssigned, msg.Topic, msg.Partition)
		}
	}
	for _, msg := range msgs {
		if next := msg.Offset + 1; next > s.group.committed[msg.Partition] {
			s.group.committed[msg.Partition] = next
		}
	}
	return nil
}

// Close implements Subscription: the member leaves and its partitions go to the others,
// from the committed offsets.
func (s *memSubscription) Close() error {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	g := s.group
	g.members = slices.DeleteFunc(g.members, func(o *memSubscription) bool { return o == s })
	s.bus.rebalanceLocked(g)
	return nil
}

// Ping reports whether the bus is open; it matches (*Kafka).Ping for readiness probes.
func (m *Memory) Ping(ctx context.Context, _ ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	return nil
}
