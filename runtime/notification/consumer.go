package notification

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/parleychat/parley/runtime/bus"
	"github.com/parleychat/parley/runtime/protocol"
)

// Group is the consumer group of every notification process.
const Group = "notification"

// Topics the notifier consumes.
func Topics() []string {
	return []string{protocol.TopicMessageDelivered, protocol.TopicMessageRejected, protocol.TopicReceiptUpdated, protocol.TopicMessageUpdated}
}

// fetchMax and fetchLinger keep fan-out latency low: a batch is whatever arrived within
// a couple of milliseconds.
const (
	fetchMax    = 256
	fetchLinger = 2 * time.Millisecond
)

// Subscriber opens group subscriptions (bus.Bus does).
type Subscriber interface {
	Subscribe(ctx context.Context, group, topic string) (bus.Subscription, error)
}

// Run consumes every notification topic until ctx ends. Real-time delivery is at most
// once: an event whose fan-out fails is logged and committed, because the client's
// resume from history is what guarantees no message is lost.
func (n *Notifier) Run(ctx context.Context, b Subscriber) error {
	var subs []bus.Subscription
	for _, topic := range Topics() {
		s, err := b.Subscribe(ctx, Group, topic)
		if err != nil {
			for _, s := range subs {
				s.Close()
			}
			return fmt.Errorf("subscribe %s: %w", topic, err)
		}
		subs = append(subs, s)
	}
	n.running.Store(true)
	defer n.running.Store(false)
	var wg sync.WaitGroup
	errs := make([]error, len(subs))
	for i, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.Close()
			errs[i] = n.consume(ctx, s)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return errors.Join(errs...)
}

// Running reports whether Run is consuming, for readiness.
func (n *Notifier) Running() bool { return n.running.Load() }

func (n *Notifier) consume(ctx context.Context, s bus.Subscription) error {
	for {
		msgs, err := s.Fetch(ctx, fetchMax, fetchLinger)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			n.failed.WithLabelValues("fetch").Inc()
			n.log.Warn("fetch failed", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		for _, m := range msgs {
			if err := n.dispatch(ctx, m.Value); err != nil {
				n.log.Warn("fan-out failed", "topic", m.Topic, "offset", m.Offset, "err", err)
			}
		}
		if err := s.Commit(ctx, msgs...); err != nil && ctx.Err() == nil {
			n.failed.WithLabelValues("commit").Inc()
			n.log.Warn("commit failed", "err", err)
		}
	}
}

func (n *Notifier) dispatch(ctx context.Context, raw []byte) error {
	ev, err := protocol.Decode(raw)
	if err != nil {
		n.failed.WithLabelValues("decode").Inc()
		return fmt.Errorf("decode: %w", err)
	}
	switch p := ev.Payload.(type) {
	case *protocol.MessageDelivered:
		return n.MessageDelivered(ctx, p)
	case *protocol.MessageRejected:
		return n.MessageRejected(ctx, p)
	case *protocol.ReceiptUpdated:
		return n.ReceiptUpdated(ctx, p)
	case *protocol.MessageUpdated:
		return n.MessageUpdated(ctx, p)
	default:
		return fmt.Errorf("unexpected event %s", p.EventType())
	}
}
