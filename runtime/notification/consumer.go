package notification

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/parleychat/parley/runtime/bus"
	"github.com/parleychat/parley/runtime/protocol"
)

// Group prefixes the consumer groups of notification: each topic has a group of its own
// (GroupOf), so a rebalance of one topic never pauses the others.
const Group = "notification"

// GroupOf is the consumer group that consumes topic.
func GroupOf(topic string) string { return Group + "." + topic }

// IsGroup reports whether group is one of notification's. A new (or expired) one starts
// from the end of its topic: real-time delivery of old events would resend days of
// messages and pushes, and clients resume from history anyway.
func IsGroup(group string) bool { return group == Group || strings.HasPrefix(group, Group+".") }

// Topics the notifier consumes.
func Topics() []string {
	return []string{protocol.TopicMessageDelivered, protocol.TopicMessageRejected, protocol.TopicReceiptUpdated, protocol.TopicMessageUpdated}
}

// fetchMax and fetchLinger bound a batch. Batching is smart: a batch is what arrived while
// the previous one was fanned out (a lone event goes at once), and fetchLinger is only
// the upper bound of a Kafka fetch's gathering while a burst keeps arriving.
const (
	fetchMax    = 256
	fetchLinger = 2 * time.Millisecond
)

// Members is how many members of each notification group a process runs: each works its
// share of the topic's partitions at once, and a room's events, which share a
// partition, stay in order. One core's worth of fan-out per member; at least 2, so a
// fan-out waiting on Redis or the database does not hold back the other partitions.
func Members() int { return min(max(runtime.GOMAXPROCS(0), 2), 8) }

// Consumer retry: an event whose fan-out failed for a dependency (Redis, the database)
// is tried again, backing off from retryMin to retryMax, and never committed before it
// succeeds; the partition waits behind it, keeping the room's order.
const (
	retryMin = 100 * time.Millisecond
	retryMax = 5 * time.Second
)

// DefaultStuckAfter is how long a consumer may make no progress, with events waiting,
// before readiness reports it stuck.
const DefaultStuckAfter = 30 * time.Second

// WithStuckAfter replaces DefaultStuckAfter.
func WithStuckAfter(d time.Duration) Option {
	return func(n *Notifier) { n.health.stuckAfter = d }
}

// Subscriber opens group subscriptions (bus.Bus does).
type Subscriber interface {
	Subscribe(ctx context.Context, group, topic string) (bus.Subscription, error)
}

// Run consumes every notification topic until ctx ends, each in its own group. An event
// is committed only once fanned out (or found undeliverable); a redelivered one (same
// event id) is skipped.
func (n *Notifier) Run(ctx context.Context, b Subscriber) error {
	type member struct {
		topic, name string // name tells members apart in readiness
		sub         bus.Subscription
	}
	var members []member
	for _, topic := range Topics() {
		count := 1
		if topic == protocol.TopicMessageDelivered {
			count = n.members // the one topic with a fan-out per event to whole rooms
		}
		for i := range count {
			s, err := b.Subscribe(ctx, GroupOf(topic), topic)
			if err != nil {
				for _, m := range members {
					m.sub.Close()
				}
				return fmt.Errorf("subscribe %s: %w", topic, err)
			}
			name := topic
			if i > 0 {
				name = fmt.Sprintf("%s#%d", topic, i)
			}
			members = append(members, member{topic: topic, name: name, sub: s})
		}
	}
	n.running.Store(true)
	defer n.running.Store(false)
	var wg sync.WaitGroup
	errs := make([]error, len(members))
	for i, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer m.sub.Close()
			errs[i] = n.consume(ctx, m.topic, m.name, m.sub)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return errors.Join(errs...)
}

// Running reports whether Run is consuming.
func (n *Notifier) Running() bool { return n.running.Load() }

// Ready is the readiness of the consumer: it fails while Run is not consuming, while an
// event's fan-out keeps failing (a dependency is down; the event is retried and not
// committed), and when a topic made no progress for the stuck bound with events waiting.
func (n *Notifier) Ready() error {
	if !n.Running() {
		return errors.New("consumer not running")
	}
	return n.health.check()
}

func (n *Notifier) consume(ctx context.Context, topic, member string, s bus.Subscription) error {
	for {
		msgs, err := s.Fetch(ctx, fetchMax, fetchLinger)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			n.failed.WithLabelValues("fetch").Inc()
			n.log.Warn("fetch failed", "topic", topic, "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		n.lag.Set(float64(n.health.fetched(member, msgs)))
		for _, m := range msgs {
			if !n.handle(ctx, m) {
				return nil // ctx ended: nothing more is committed
			}
		}
		if err := s.Commit(ctx, msgs...); err != nil && ctx.Err() == nil {
			// Redelivered later; the event memory skips what was fanned out.
			n.failed.WithLabelValues("commit").Inc()
			n.log.Warn("commit failed", "topic", topic, "err", err)
		}
		n.health.committed(member)
	}
}

// handle fans one event out, retrying with backoff until it succeeds or fails for good.
// It returns false when ctx ended first.
func (n *Notifier) handle(ctx context.Context, m bus.Message) bool {
	ev, err := protocol.Decode(m.Value)
	if err != nil {
		n.failed.WithLabelValues("decode").Inc()
		n.log.Warn("undecodable event skipped", "topic", m.Topic, "offset", m.Offset, "err", err)
		return true
	}
	if n.events.has(ev.ID) || n.seen(ctx, eventKey(ev.ID)) {
		n.failed.WithLabelValues("redelivered").Inc()
		return true
	}
	var st eventState
	wait := retryMin
	for {
		err := n.dispatch(ctx, ev, &st)
		if err == nil {
			n.health.recovered()
			n.events.add(ev.ID)
			n.mark(ctx, eventKey(ev.ID))
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if Permanent(err) {
			n.health.recovered()
			n.log.Warn("event cannot be fanned out; skipped", "topic", m.Topic, "offset", m.Offset, "err", err)
			return true
		}
		n.failed.WithLabelValues("retry").Inc()
		n.health.failing(err)
		n.log.Warn("fan-out failed; retrying, not committed", "topic", m.Topic, "offset", m.Offset, "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, retryMax)
	}
}

func (n *Notifier) dispatch(ctx context.Context, ev protocol.Event, st *eventState) error {
	switch p := ev.Payload.(type) {
	case *protocol.MessageDelivered:
		return n.retry.do(ctx, func() error { return n.messageDelivered(ctx, p, st) })
	case *protocol.MessageRejected:
		frame := protocol.ErrorFrame(protocol.ErrorCode(p.Reason), rejectionText(p), protocol.FrameSend, p.ClientID)
		frame.Room = p.RoomID
		return n.retry.do(ctx, func() error { return n.deliver(ctx, &st.main, []string{p.SenderID}, frame) })
	case *protocol.ReceiptUpdated:
		return n.retry.do(ctx, func() error { return n.receiptUpdated(ctx, p, st) })
	case *protocol.MessageUpdated:
		return n.retry.do(ctx, func() error { return n.messageUpdated(ctx, p, st) })
	default:
		n.failed.WithLabelValues("decode").Inc()
		return fmt.Errorf("%w: unexpected event %s", ErrUndeliverable, p.EventType())
	}
}

// consumerHealth is what readiness knows of the consumers.
type consumerHealth struct {
	mu           sync.Mutex
	now          func() time.Time
	stuckAfter   time.Duration
	failingSince time.Time
	failure      error
	topics       map[string]*topicHealth
}

type topicHealth struct {
	lag       int64     // events behind the last batch fetched, at its fetch
	busySince time.Time // when the batch being handled was fetched; zero when idle
	progress  time.Time // last commit
}

func (h *consumerHealth) topic(t string) *topicHealth {
	if h.topics == nil {
		h.topics = map[string]*topicHealth{}
	}
	th := h.topics[t]
	if th == nil {
		th = &topicHealth{progress: h.now()}
		h.topics[t] = th
	}
	return th
}

// fetched records a batch and returns the largest lag of any topic.
func (h *consumerHealth) fetched(topic string, msgs []bus.Message) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	last := map[int]bus.Message{}
	for _, m := range msgs {
		last[m.Partition] = m
	}
	var lag int64
	for _, m := range last {
		if m.HighWaterMark > 0 {
			lag += max(0, m.HighWaterMark-m.Offset-1)
		}
	}
	th := h.topic(topic)
	th.lag = lag
	th.busySince = h.now()
	var most int64
	for _, t := range h.topics {
		most = max(most, t.lag)
	}
	return most
}

func (h *consumerHealth) committed(topic string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	th := h.topic(topic)
	th.busySince = time.Time{}
	// lag stays: the events behind the batch are fetched next, at once; a fetch that
	// hangs with them waiting shows as no progress with lag > 0.
	th.progress = h.now()
}

func (h *consumerHealth) failing(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failure == nil {
		h.failingSince = h.now()
	}
	h.failure = err
}

func (h *consumerHealth) recovered() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failure = nil
}

func (h *consumerHealth) check() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failure != nil {
		return fmt.Errorf("fan-out failing since %s (retried, not committed): %w", h.failingSince.UTC().Format(time.RFC3339), h.failure)
	}
	stuck := h.stuckAfter
	if stuck <= 0 {
		stuck = DefaultStuckAfter
	}
	now := h.now()
	for name, th := range h.topics {
		if !th.busySince.IsZero() && now.Sub(th.busySince) > stuck {
			return fmt.Errorf("consumer of %s stuck: one batch in hand for %s", name, now.Sub(th.busySince).Round(time.Second))
		}
		if th.lag > 0 && now.Sub(th.progress) > stuck {
			return fmt.Errorf("consumer of %s stuck: %d events behind, no progress for %s", name, th.lag, now.Sub(th.progress).Round(time.Second))
		}
	}
	return nil
}
