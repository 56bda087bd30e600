package pipeline

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/runtime/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// outboxAcceptor is a store with an outbox: a fresh message waits in pending until the
// relay publishes it; client ids starting with "old" are duplicates announced long ago,
// and "bad" ones are refused.
type outboxAcceptor struct {
	mu       sync.Mutex
	pending  []protocol.MessageDelivered
	seq      int64
	failures int // Relay rounds that fail before publishing
}

func (o *outboxAcceptor) AcceptMessages(_ context.Context, in []protocol.MessageSent) ([]Outcome, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]Outcome, len(in))
	for i, m := range in {
		switch m.ClientID[:3] {
		case "old":
			out[i] = Outcome{Delivered: &protocol.MessageDelivered{RoomID: m.RoomID, SenderID: m.SenderID, ClientID: m.ClientID,
				ServerID: "s-old", Seq: 1, Body: m.Body, CreatedAt: time.Now()}, Announced: true}
		case "bad":
			out[i] = Outcome{Rejected: &protocol.MessageRejected{Reason: protocol.ReasonNotMember}}
		default:
			o.seq++
			d := protocol.MessageDelivered{RoomID: m.RoomID, SenderID: m.SenderID, ClientID: m.ClientID,
				ServerID: "s-" + m.ClientID, Seq: o.seq, Body: m.Body, CreatedAt: time.Now()}
			o.pending = append(o.pending, d)
			out[i] = Outcome{Delivered: &d}
		}
	}
	return out, nil
}

func (o *outboxAcceptor) Relay(ctx context.Context, limit int, publish func(context.Context, []protocol.MessageDelivered) error) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failures > 0 {
		o.failures--
		return 0, errors.New("database unavailable")
	}
	batch := o.pending[:min(limit, len(o.pending))]
	if len(batch) == 0 {
		return 0, nil
	}
	if err := publish(ctx, batch); err != nil {
		return 0, err
	}
	o.pending = o.pending[len(batch):]
	return len(batch), nil
}

// TestWithAnOutboxThePipelineLeavesAnnouncementsToTheRelay: a fresh message is announced
// once, by the relay (after its failed rounds); a duplicate announced long ago is
// answered again by the pipeline (the retrying sender's ack); a refusal is the
// pipeline's as before.
func TestWithAnOutboxThePipelineLeavesAnnouncementsToTheRelay(t *testing.T) {
	b := memoryBus(t, 2)
	store := &outboxAcceptor{failures: 2}
	reg := prometheus.NewRegistry()
	cfg := testConfig(reg)
	cfg.Outbox = store
	cfg.RelayPoll = 10 * time.Millisecond
	cfg.RetryMin, cfg.RetryMax = 5*time.Millisecond, 20*time.Millisecond
	p, err := New(b, store, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	deliveredTopic := observe(t, b, protocol.TopicMessageDelivered)
	rejectedTopic := observe(t, b, protocol.TopicMessageRejected)
	stop := running(t, p)
	defer func() { _ = stop() }()

	send(t, b, msg("room-1", "ann", "new-1", "hi"), msg("room-1", "ann", "old-1", "retry"), msg("room-1", "ann", "bad-1", "no"))
	got := delivered(t, deliveredTopic.next(2))
	byClient := map[string]*protocol.MessageDelivered{}
	for _, d := range got {
		if _, twice := byClient[d.ClientID]; twice {
			t.Fatalf("%s announced twice", d.ClientID)
		}
		byClient[d.ClientID] = d
	}
	if byClient["new-1"] == nil || byClient["new-1"].ServerID != "s-new-1" || byClient["old-1"] == nil || byClient["old-1"].ServerID != "s-old" {
		t.Fatalf("announced %+v, want new-1 (by the relay) and old-1 (the pipeline's ack of a retry)", byClient)
	}
	deliveredTopic.none()
	if r := rejected(t, rejectedTopic.next(1)); r[0].ClientID != "bad-1" {
		t.Fatalf("rejected %+v, want bad-1", r[0])
	}
	if n := metric(t, reg, "parley_pipeline_messages_announced_total"); n != 1 {
		t.Fatalf("announced counter = %v, want 1", n)
	}
	if n := metric(t, reg, "parley_pipeline_publish_errors_total", "consumer", "relay"); n != 2 {
		t.Fatalf("relay errors = %v, want the 2 failed rounds", n)
	}
}
