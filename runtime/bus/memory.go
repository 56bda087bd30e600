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
// use with the configured number of partitions.
//
// Retention is by consumption rather than time, so that a process that consumes what it
// produces (parley dev) stays flat: a partition keeps every record that some consumer
// group of its topic has not committed yet (a group that never committed holds
// everything it may still read), plus the last Retention records, so that a group that
// joins later still finds recent history. Older records are dropped. A group that
// subscribes after records were dropped starts at the earliest record kept, as a Kafka
// group starting at FirstOffset does after retention deleted old segments.
type Memory struct {
	partitions int
	retain     int64 // Retention, unless a test says otherwise

	mu      sync.Mutex
	topics  map[string]*memTopic
	groups  map[groupTopic]*memGroup
	changed chan struct{} // closed and replaced on a rebalance or Close: every fetch looks again
	closed  bool
	nextRR  int // partition for records without a key
}

// Retention is how many of its latest records a partition keeps beyond those a consumer
// group still has to commit.
const Retention = 256

type memTopic struct {
	parts  []memPartition
	groups []*memGroup // every group of the topic, once subscribed
	// changed is closed and replaced when records arrive: only the topic's fetches wake.
	changed chan struct{}
}

// memPartition is a log whose first kept record has offset base.
type memPartition struct {
	base int64
	recs []Message
}

// end is the offset the next record gets (the high-water mark).
func (p *memPartition) end() int64 { return p.base + int64(len(p.recs)) }

// trimTo drops the records before offset keep. The dropped slots are cleared so that
// their keys and values can be collected before the backing array is reallocated.
func (p *memPartition) trimTo(keep int64) {
	n := int(min(keep, p.end()) - p.base)
	if n <= 0 {
		return
	}
	clear(p.recs[:n])
	p.recs = p.recs[n:]
	p.base += int64(n)
	if len(p.recs) == 0 {
		p.recs = nil // let the old array go at once
	}
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
		retain:     Retention,
		topics:     map[string]*memTopic{},
		groups:     map[groupTopic]*memGroup{},
		changed:    make(chan struct{}),
	}, nil
}

// topicLocked returns topic, creating it on first use. m.mu must be held.
func (m *Memory) topicLocked(name string) *memTopic {
	t, ok := m.topics[name]
	if !ok {
		t = &memTopic{parts: make([]memPartition, m.partitions), changed: make(chan struct{})}
		m.topics[name] = t
	}
	return t
}

// wakeLocked tells every waiting fetch to look again. m.mu must be held.
func (m *Memory) wakeLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// wakeTopicLocked tells the fetches of t to look again. m.mu must be held.
func wakeTopicLocked(t *memTopic) {
	close(t.changed)
	t.changed = make(chan struct{})
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
		part := &t.parts[p]
		part.recs = append(part.recs, Message{
			Topic:     topic,
			Partition: p,
			Offset:    part.end(),
			Key:       slices.Clone(r.Key), // the caller may reuse its buffers
			Value:     slices.Clone(r.Value),
			Time:      now,
		})
		if int64(len(part.recs)) > 2*m.retain {
			// Amortized: trimming at twice the retention costs O(1) per record.
			m.trimLocked(t, p)
		}
	}
	wakeTopicLocked(t)
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
		for p := range t.parts {
			g.committed[p] = t.parts[p].base // the earliest record kept
		}
		m.groups[key] = g
		t.groups = append(t.groups, g)
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

// Fetch implements Subscription. It returns as soon as anything is there, with everything
// that is there (up to max): publishers are in process and synchronous, so waiting for
// more would only add latency, and whatever arrives while the caller works on this batch
// is the next one. linger is not waited for.
func (s *memSubscription) Fetch(ctx context.Context, max int, _ time.Duration) ([]Message, error) {
	if max < 1 {
		return nil, fmt.Errorf("%w: fetch max must be positive, got %d", ErrInvalidConfig, max)
	}
	for {
		s.bus.mu.Lock()
		if s.closed || s.bus.closed {
			s.bus.mu.Unlock()
			return nil, ErrClosed
		}
		out := s.takeLocked(nil, max)
		wait, arrived := s.bus.changed, s.group.topic.changed
		s.bus.mu.Unlock()
		if len(out) > 0 {
			return out, nil
		}
		select {
		case <-wait:
		case <-arrived:
		case <-ctx.Done():
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
		part := &parts[p]
		if pos < part.base {
			pos = part.base // never below what is kept (groups hold what they need)
		}
		for pos < part.end() && len(out) < max {
			msg := part.recs[pos-part.base]
			msg.HighWaterMark = part.end()
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
	moved := map[int]bool{}
	for _, msg := range msgs {
		if next := msg.Offset + 1; next > s.group.committed[msg.Partition] {
			s.group.committed[msg.Partition] = next
			moved[msg.Partition] = true
		}
	}
	for p := range moved {
		s.bus.trimLocked(s.group.topic, p)
	}
	return nil
}

// trimLocked drops partition p's records that every group of the topic has committed,
// except the last m.retain. m.mu must be held.
func (m *Memory) trimLocked(t *memTopic, p int) {
	part := &t.parts[p]
	keep := part.end() - m.retain
	for _, g := range t.groups {
		keep = min(keep, g.committed[p])
	}
	part.trimTo(keep)
}

// Retained reports how many records the topic keeps over all partitions (for tests and
// the soak check).
func (m *Memory) Retained(topic string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.topics[topic]
	if !ok {
		return 0
	}
	n := 0
	for _, p := range t.parts {
		n += len(p.recs)
	}
	return n
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
