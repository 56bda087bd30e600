package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/runtime/bus"
	"github.com/parleychat/parley/runtime/protocol"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// waitFor bounds every wait; it is a deadline, never a measured expectation.
const waitFor = 60 * time.Second

type testBus interface {
	Bus
	Close() error
}

func kafkaBus(t testing.TB, partitions int) testBus {
	t.Helper()
	brokers := testenv.Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := bus.EnsureTopics(ctx, brokers, partitions, protocol.Topics()...); err != nil {
		t.Fatal(err)
	}
	b, err := bus.NewKafka(bus.KafkaConfig{
		Brokers:           brokers,
		SessionTimeout:    2 * time.Second,
		HeartbeatInterval: 200 * time.Millisecond,
		RebalanceTimeout:  2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func memoryBus(t testing.TB, partitions int) testBus {
	t.Helper()
	b, err := bus.NewMemory(partitions)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

var buses = []struct {
	name string
	make func(t testing.TB, partitions int) testBus
}{
	{"memory", memoryBus},
	{"kafka", kafkaBus},
}

// testConfig runs one member of the message group: the tests that check exact event
// sequences cannot allow a second Kafka member's join, a rebalance whose replays (at
// least once) would repeat events. TestPartitionsRunInParallel covers several members.
func testConfig(reg *prometheus.Registry) Config {
	return Config{MaxBatch: 64, Linger: 2 * time.Millisecond, PollTimeout: 200 * time.Millisecond,
		RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond, Registerer: reg, Consumers: 1}
}

// running starts p and returns a function that stops it and reports Run's result.
func running(t *testing.T, p *Pipeline) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(waitFor):
				err = errors.New("Run did not return after its context was cancelled")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func send(t *testing.T, b Bus, msgs ...protocol.MessageSent) {
	t.Helper()
	for _, m := range msgs {
		raw, err := protocol.Encode(&m)
		if err != nil {
			t.Fatal(err)
		}
		publishRaw(t, b, protocol.TopicMessageSent, m.RoomID, raw)
	}
}

func publishRaw(t *testing.T, b Bus, topic, key string, raw []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := b.Publish(ctx, topic, bus.Record{Key: []byte(key), Value: raw}); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func msg(room, sender, client, body string) protocol.MessageSent {
	return protocol.MessageSent{RoomID: room, SenderID: sender, ClientID: client, Body: body, SentAt: time.Now().UTC()}
}

// observer reads a topic as a group of its own, the way notification would.
type observer struct {
	t   *testing.T
	sub bus.Subscription
}

func observe(t *testing.T, b Bus, topic string) *observer {
	t.Helper()
	sub, err := b.Subscribe(context.Background(), "observer-"+topic, topic)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return &observer{t: t, sub: sub}
}

// next returns the next n events, decoded, in the order of their partitions.
func (o *observer) next(n int) []protocol.Payload {
	o.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var out []protocol.Payload
	for len(out) < n {
		msgs, err := o.sub.Fetch(ctx, n-len(out), time.Millisecond)
		if err != nil {
			o.t.Fatalf("waiting for %d events, got %d: %v", n, len(out), err)
		}
		for _, m := range msgs {
			ev, err := protocol.Decode(m.Value)
			if err != nil {
				o.t.Fatalf("the pipeline produced an undecodable event: %v", err)
			}
			out = append(out, ev.Payload)
		}
		_ = o.sub.Commit(ctx, msgs...)
	}
	return out
}

// none checks that no further event arrives within a short while.
func (o *observer) none() {
	o.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if msgs, err := o.sub.Fetch(ctx, 10, time.Millisecond); err == nil {
		o.t.Fatalf("unexpected extra events: %d, first %s", len(msgs), msgs[0].Value)
	}
}

func delivered(t *testing.T, evs []protocol.Payload) []*protocol.MessageDelivered {
	t.Helper()
	out := make([]*protocol.MessageDelivered, len(evs))
	for i, ev := range evs {
		d, ok := ev.(*protocol.MessageDelivered)
		if !ok {
			t.Fatalf("event %d is %T, want MessageDelivered", i, ev)
		}
		out[i] = d
	}
	return out
}

func rejected(t *testing.T, evs []protocol.Payload) []*protocol.MessageRejected {
	t.Helper()
	out := make([]*protocol.MessageRejected, len(evs))
	for i, ev := range evs {
		r, ok := ev.(*protocol.MessageRejected)
		if !ok {
			t.Fatalf("event %d is %T, want MessageRejected", i, ev)
		}
		out[i] = r
	}
	return out
}

// metric reads one sample from reg; labels select among a vector's children.
func metric(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

func hasLabels(m *dto.Metric, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == kv[i] && l.GetValue() == kv[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func TestSendPersistsOnceAndDelivers(t *testing.T) {
	for _, bb := range buses {
		t.Run(bb.name, func(t *testing.T) {
			b := bb.make(t, 3)
			chat := newPGChat(t)
			chat.addMembers(t, "room-1", "ann", "bob")
			chat.addMembers(t, "room-2", "ann", "cat")
			reg := prometheus.NewRegistry()
			p, err := New(b, chat, nil, testConfig(reg))
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Ready(); !errors.Is(err, ErrNotRunning) {
				t.Fatalf("Ready before Run = %v, want ErrNotRunning", err)
			}
			out := observe(t, b, protocol.TopicMessageDelivered)
			refused := observe(t, b, protocol.TopicMessageRejected)
			stop := running(t, p)

			var sent []protocol.MessageSent
			for i := range 10 {
				sent = append(sent, msg("room-1", "ann", fmt.Sprintf("a-%d", i), fmt.Sprintf("hello %d", i)))
				sent = append(sent, msg("room-2", "cat", fmt.Sprintf("c-%d", i), fmt.Sprintf("hi %d", i)))
			}
			send(t, b, sent...)
			first := delivered(t, out.next(len(sent)))

			// The client retries a message it already sent, and outsiders try their luck.
			send(t, b, sent[4])
			send(t, b, msg("room-1", "cat", "c-x", "let me in"), msg("room-2", "cat", "c-empty", ""),
				msg("room-2", "ann", "a-big", strings.Repeat("x", 1001)))
			again := delivered(t, out.next(1))[0]
			refusals := rejected(t, refused.next(3))
			out.none()

			if n := chat.count(t, `SELECT count(*) FROM messages`); n != len(sent) {
				t.Fatalf("%d rows, want %d (one per message, the retry included once)", n, len(sent))
			}
			byClient := map[string]*protocol.MessageDelivered{}
			for _, d := range first {
				byClient[d.ClientID] = d
			}
			orig := byClient[sent[4].ClientID]
			if orig == nil || again.ServerID != orig.ServerID || again.Seq != orig.Seq || again.Body != sent[4].Body {
				t.Fatalf("retry answered %+v, want the first answer %+v", again, orig)
			}
			reasons := map[string]protocol.Reason{}
			for _, r := range refusals {
				reasons[r.ClientID] = r.Reason
			}
			want := map[string]protocol.Reason{"c-x": protocol.ReasonNotMember, "c-empty": protocol.ReasonEmptyMessage, "a-big": protocol.ReasonMessageTooLarge}
			if fmt.Sprint(reasons) != fmt.Sprint(want) {
				t.Fatalf("rejections %v, want %v", reasons, want)
			}
			if err := p.Ready(); err != nil {
				t.Fatalf("Ready while running = %v", err)
			}
			if got := metric(t, reg, "parley_pipeline_messages_accepted_total"); got != float64(len(sent)+1) {
				t.Fatalf("accepted metric = %v, want %d", got, len(sent)+1)
			}
			if got := metric(t, reg, "parley_pipeline_messages_rejected_total", "reason", "not_member"); got != 1 {
				t.Fatalf("rejected{not_member} = %v, want 1", got)
			}
			if got := metric(t, reg, "parley_pipeline_batch_size", "consumer", "messages"); got < 1 {
				t.Fatalf("batch size histogram has %v samples", got)
			}
			if err := stop(); err != nil {
				t.Fatalf("Run = %v", err)
			}
			if err := p.Ready(); !errors.Is(err, ErrNotRunning) {
				t.Fatalf("Ready after stop = %v, want ErrNotRunning", err)
			}
		})
	}
}

func TestPerRoomOrderWithConcurrentSenders(t *testing.T) {
	for _, bb := range buses {
		t.Run(bb.name, func(t *testing.T) {
			b := bb.make(t, 4)
			chat := newPGChat(t)
			const rooms, senders, each = 6, 3, 15
			for r := range rooms {
				for s := range senders {
					chat.addMembers(t, fmt.Sprintf("room-%d", r), fmt.Sprintf("user-%d", s))
				}
			}
			cfg := testConfig(prometheus.NewRegistry())
			cfg.MaxBatch = 16
			p, err := New(b, chat, nil, cfg)
			if err != nil {
				t.Fatal(err)
			}
			out := observe(t, b, protocol.TopicMessageDelivered)
			running(t, p)

			var wg sync.WaitGroup
			for r := range rooms {
				for s := range senders {
					wg.Add(1)
					go func() {
						defer wg.Done()
						room, user := fmt.Sprintf("room-%d", r), fmt.Sprintf("user-%d", s)
						for i := range each {
							m := msg(room, user, fmt.Sprintf("%s-%s-%03d", room, user, i), "x")
							raw, err := protocol.Encode(&m)
							if err != nil {
								t.Error(err)
								return
							}
							if err := b.Publish(context.Background(), protocol.TopicMessageSent, bus.Record{Key: []byte(room), Value: raw}); err != nil {
								t.Error(err)
								return
							}
						}
					}()
				}
			}
			wg.Wait()
			evs := delivered(t, out.next(rooms*senders*each))

			// Events of a room arrive in sequence order, and each sender's messages in the
			// order it sent them.
			lastSeq := map[string]int64{}
			lastClient := map[string]string{}
			for _, d := range evs {
				if d.Seq != lastSeq[d.RoomID]+1 {
					t.Fatalf("room %s: seq %d after %d", d.RoomID, d.Seq, lastSeq[d.RoomID])
				}
				lastSeq[d.RoomID] = d.Seq
				k := d.RoomID + "/" + d.SenderID
				if d.ClientID <= lastClient[k] {
					t.Fatalf("%s: %s delivered after %s", k, d.ClientID, lastClient[k])
				}
				lastClient[k] = d.ClientID
			}
			// The database agrees: contiguous sequences per room, sender order kept.
			rows := chat.messages(t)
			if len(rows) != rooms*senders*each {
				t.Fatalf("%d rows, want %d", len(rows), rooms*senders*each)
			}
			seq := map[string]int64{}
			client := map[string]string{}
			for _, m := range rows {
				seq[m.RoomID]++
				if m.Seq != seq[m.RoomID] {
					t.Fatalf("room %s: stored seq %d, want %d", m.RoomID, m.Seq, seq[m.RoomID])
				}
				k := m.RoomID + "/" + m.SenderID
				if m.ClientID <= client[k] {
					t.Fatalf("%s: %s stored after %s", k, m.ClientID, client[k])
				}
				client[k] = m.ClientID
			}
		})
	}
}

// crashAfterCommit stops the consumer the moment the first batch is committed in
// PostgreSQL, before the pipeline can publish or commit offsets: a process dying at the
// worst moment.
type crashAfterCommit struct {
	MessageAcceptor
	crash   context.CancelFunc
	crashed atomic.Bool
	mu      sync.Mutex
	first   []Outcome
}

func (c *crashAfterCommit) AcceptMessages(ctx context.Context, in []protocol.MessageSent) ([]Outcome, error) {
	out, err := c.MessageAcceptor.AcceptMessages(ctx, in)
	if err == nil && c.crashed.CompareAndSwap(false, true) {
		c.mu.Lock()
		c.first = out
		c.mu.Unlock()
		c.crash()
	}
	return out, err
}

// countingAcceptor records what reaches the acceptor.
type countingAcceptor struct {
	MessageAcceptor
	mu      sync.Mutex
	clients []string
}

func (c *countingAcceptor) AcceptMessages(ctx context.Context, in []protocol.MessageSent) ([]Outcome, error) {
	c.mu.Lock()
	for _, m := range in {
		c.clients = append(c.clients, m.ClientID)
	}
	c.mu.Unlock()
	return c.MessageAcceptor.AcceptMessages(ctx, in)
}

func TestCrashBetweenDatabaseCommitAndOffsetCommit(t *testing.T) {
	for _, bb := range buses {
		t.Run(bb.name, func(t *testing.T) {
			b := bb.make(t, 2)
			chat := newPGChat(t)
			chat.addMembers(t, "room-1", "ann")
			const n = 12
			var sent []protocol.MessageSent
			for i := range n {
				sent = append(sent, msg("room-1", "ann", fmt.Sprintf("a-%02d", i), fmt.Sprintf("m%d", i)))
			}
			send(t, b, sent...)

			ctx, crash := context.WithCancel(context.Background())
			doomed := &crashAfterCommit{MessageAcceptor: chat, crash: crash}
			p1, err := New(b, doomed, nil, testConfig(prometheus.NewRegistry()))
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- p1.Run(ctx) }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("first consumer: %v", err)
				}
			case <-time.After(waitFor):
				t.Fatal("the first consumer never processed a batch")
			}
			doomed.mu.Lock()
			firstBatch := doomed.first
			doomed.mu.Unlock()
			persisted := chat.count(t, `SELECT count(*) FROM messages`)
			if len(firstBatch) == 0 || persisted != len(firstBatch) {
				t.Fatalf("before the restart: %d rows for a first batch of %d", persisted, len(firstBatch))
			}

			out := observe(t, b, protocol.TopicMessageDelivered)
			second := &countingAcceptor{MessageAcceptor: chat}
			p2, err := New(b, second, nil, testConfig(prometheus.NewRegistry()))
			if err != nil {
				t.Fatal(err)
			}
			running(t, p2)

			// Every message is delivered by the new consumer (the crashed one published
			// nothing, or only some answers before dying; either way each message is there).
			want := map[string]bool{}
			for _, m := range sent {
				want[m.ClientID] = true
			}
			got := map[string]*protocol.MessageDelivered{}
			for len(got) < n {
				for _, d := range delivered(t, out.next(1)) {
					if prev := got[d.ClientID]; prev != nil && prev.ServerID != d.ServerID {
						t.Fatalf("%s delivered as %s and %s", d.ClientID, prev.ServerID, d.ServerID)
					}
					got[d.ClientID] = d
				}
			}
			if rows := chat.count(t, `SELECT count(*) FROM messages`); rows != n {
				t.Fatalf("%d rows after redelivery, want %d: a message was stored twice", rows, n)
			}
			second.mu.Lock()
			replayed := slices.Clone(second.clients)
			second.mu.Unlock()
			for _, o := range firstBatch {
				d := o.Delivered
				if !slices.Contains(replayed, d.ClientID) {
					t.Fatalf("%s was not redelivered: the offset was committed before the crash", d.ClientID)
				}
				if got[d.ClientID].ServerID != d.ServerID || got[d.ClientID].Seq != d.Seq {
					t.Fatalf("%s re-emitted as %s/%d, first stored as %s/%d", d.ClientID,
						got[d.ClientID].ServerID, got[d.ClientID].Seq, d.ServerID, d.Seq)
				}
			}
		})
	}
}

func TestPoisonMessagesDoNotBlockThePartition(t *testing.T) {
	for _, bb := range buses {
		t.Run(bb.name, func(t *testing.T) {
			b := bb.make(t, 1)
			chat := newPGChat(t)
			chat.addMembers(t, "room-1", "ann")
			reg := prometheus.NewRegistry()
			p, err := New(b, chat, nil, testConfig(reg))
			if err != nil {
				t.Fatal(err)
			}
			out := observe(t, b, protocol.TopicMessageDelivered)
			refused := observe(t, b, protocol.TopicMessageRejected)
			running(t, p)

			receipt, _ := protocol.Encode(&protocol.Receipt{RoomID: "room-1", UserID: "ann", Kind: protocol.ReceiptRead, Seq: 1})
			poison := [][]byte{
				[]byte("\x00\xffnot json at all"), // nobody to answer
				[]byte(`{"v":2,"type":"message_sent","id":"e","at":"2026-01-02T03:04:05Z","data":{"room_id":"room-1","sender_id":"ann","client_id":"future"}}`),
				receipt, // a valid event on the wrong topic, naming no client id
				[]byte(`{"v":1,"type":"message_sent","id":"e","at":"2026-01-02T03:04:05Z","data":{"sender_id":"ann","client_id":"no-room","body":"x"}}`),
				[]byte(`{"v":1,"type":"message_sent","id":"e","at":"2026-01-02T03:04:05Z","data":{"room_id":"room-1","sender_id":"ann","client_id":"bad-body","body":42}}`),
			}
			send(t, b, msg("room-1", "ann", "before", "1"))
			for _, raw := range poison {
				publishRaw(t, b, protocol.TopicMessageSent, "room-1", raw)
			}
			send(t, b, msg("room-1", "ann", "after", "2"))

			ok := delivered(t, out.next(2))
			if ok[0].ClientID != "before" || ok[1].ClientID != "after" || ok[1].Seq != 2 {
				t.Fatalf("delivered %s/%d, %s/%d; want before/1, after/2", ok[0].ClientID, ok[0].Seq, ok[1].ClientID, ok[1].Seq)
			}
			refusals := rejected(t, refused.next(3))
			for i, want := range []string{"future", "no-room", "bad-body"} {
				r := refusals[i]
				if r.ClientID != want || r.SenderID != "ann" || r.Reason != protocol.ReasonInvalid || r.Detail == "" {
					t.Fatalf("rejection %d = %+v, want client %s, reason invalid, a detail", i, r, want)
				}
			}
			refused.none()
			if got := metric(t, reg, "parley_pipeline_undecodable_total", "consumer", "messages"); got != 2 {
				t.Fatalf("undecodable = %v, want 2 (the garbage and the receipt)", got)
			}
			if got := metric(t, reg, "parley_pipeline_messages_rejected_total", "reason", "invalid"); got != 3 {
				t.Fatalf("rejected{invalid} = %v, want 3", got)
			}
			if n := chat.count(t, `SELECT count(*) FROM messages`); n != 2 {
				t.Fatalf("%d rows, want 2", n)
			}
		})
	}
}

// flakyDatabase fails the first calls the way an unreachable database does.
type flakyDatabase struct {
	MessageAcceptor
	failures atomic.Int32
}

func (f *flakyDatabase) AcceptMessages(ctx context.Context, in []protocol.MessageSent) ([]Outcome, error) {
	if f.failures.Add(-1) >= 0 {
		return nil, errors.New("connection refused")
	}
	return f.MessageAcceptor.AcceptMessages(ctx, in)
}

func TestAcceptorErrorIsRetriedWithoutLoss(t *testing.T) {
	b := kafkaBus(t, 2)
	chat := newPGChat(t)
	chat.addMembers(t, "room-1", "ann")
	flaky := &flakyDatabase{MessageAcceptor: chat}
	flaky.failures.Store(3)
	reg := prometheus.NewRegistry()
	p, err := New(b, flaky, nil, testConfig(reg))
	if err != nil {
		t.Fatal(err)
	}
	out := observe(t, b, protocol.TopicMessageDelivered)
	running(t, p)
	send(t, b, msg("room-1", "ann", "a-1", "one"), msg("room-1", "ann", "a-2", "two"))
	evs := delivered(t, out.next(2))
	if evs[0].ClientID != "a-1" || evs[1].ClientID != "a-2" {
		t.Fatalf("delivered %s, %s", evs[0].ClientID, evs[1].ClientID)
	}
	if got := metric(t, reg, "parley_pipeline_apply_errors_total", "consumer", "messages"); got != 3 {
		t.Fatalf("apply errors = %v, want 3", got)
	}
	if n := chat.count(t, `SELECT count(*) FROM messages`); n != 2 {
		t.Fatalf("%d rows, want 2", n)
	}
}

func TestReadinessReportsAStuckConsumer(t *testing.T) {
	b := memoryBus(t, 1)
	chat := newPGChat(t)
	chat.addMembers(t, "room-1", "ann")
	// Every batch hangs, like a database that does.
	stuck := &gateAcceptor{MessageAcceptor: chat, held: make(chan struct{}), release: make(chan struct{})}
	stuck.armed.Store(true)
	cfg := testConfig(prometheus.NewRegistry())
	cfg.PollTimeout, cfg.StaleAfter = 20*time.Millisecond, 200*time.Millisecond
	p, err := New(b, stuck, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := observe(t, b, protocol.TopicMessageDelivered)
	running(t, p)
	waitUntil(t, func() bool { return p.Ready() == nil })
	send(t, b, msg("room-1", "ann", "a-1", "one"))
	waitUntil(t, func() bool { return errors.Is(p.Ready(), ErrStale) })
	close(stuck.release)
	delivered(t, out.next(1))
	waitUntil(t, func() bool { return p.Ready() == nil })
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached before the deadline")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReceiptsMoveCursorsForward(t *testing.T) {
	for _, bb := range buses {
		t.Run(bb.name, func(t *testing.T) {
			b := bb.make(t, 2)
			chat := newPGChat(t)
			chat.addMembers(t, "room-1", "ann", "bob")
			reg := prometheus.NewRegistry()
			p, err := New(b, chat, chat, testConfig(reg))
			if err != nil {
				t.Fatal(err)
			}
			out := observe(t, b, protocol.TopicReceiptUpdated)
			running(t, p)
			receipts := []protocol.Receipt{
				{RoomID: "room-1", UserID: "bob", Kind: protocol.ReceiptRead, Seq: 3},      // moves both
				{RoomID: "room-1", UserID: "bob", Kind: protocol.ReceiptDelivered, Seq: 5}, // moves delivered
				{RoomID: "room-1", UserID: "bob", Kind: protocol.ReceiptRead, Seq: 2},      // behind: nothing
				{RoomID: "room-1", UserID: "eve", Kind: protocol.ReceiptRead, Seq: 9},      // not a member
			}
			for _, r := range receipts {
				raw, err := protocol.Encode(&r)
				if err != nil {
					t.Fatal(err)
				}
				publishRaw(t, b, protocol.TopicReceipt, r.RoomID, raw)
			}
			publishRaw(t, b, protocol.TopicReceipt, "room-1", []byte(`{"v":1,"type":"receipt","id":"e","at":"2026-01-02T03:04:05Z","data":{"room_id":"room-1","user_id":"bob","kind":"seen","seq":4}}`))
			evs := out.next(2)
			u0, u1 := evs[0].(*protocol.ReceiptUpdated), evs[1].(*protocol.ReceiptUpdated)
			if u0.UserID != "bob" || u0.DeliveredSeq != 3 || u0.ReadSeq != 3 || u1.DeliveredSeq != 5 || u1.ReadSeq != 3 {
				t.Fatalf("updates %+v, %+v; want bob 3/3 then 5/3", u0, u1)
			}
			out.none()
			waitUntil(t, func() bool {
				return metric(t, reg, "parley_pipeline_undecodable_total", "consumer", "receipts") == 1
			})
			if got := metric(t, reg, "parley_pipeline_receipts_total", "result", "unchanged"); got != 2 {
				t.Fatalf("unchanged receipts = %v, want 2", got)
			}
			var d, r int64
			if err := chat.pool.QueryRow(context.Background(), `SELECT delivered_seq, read_seq FROM receipts WHERE user_id = 'bob'`).Scan(&d, &r); err != nil || d != 5 || r != 3 {
				t.Fatalf("stored cursors %d/%d (%v), want 5/3", d, r, err)
			}
		})
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	b := memoryBus(t, 1)
	chat := &pgChat{}
	tests := []struct {
		name string
		bus  Bus
		acc  MessageAcceptor
		cfg  Config
	}{
		{"no bus", nil, chat, Config{}},
		{"no acceptor", b, nil, Config{}},
		{"negative batch", b, chat, Config{MaxBatch: -1}},
		{"stale before poll", b, chat, Config{PollTimeout: time.Second, StaleAfter: time.Second}},
		{"retry max below min", b, chat, Config{RetryMin: time.Second, RetryMax: time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.bus, tt.acc, nil, tt.cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New = %v, want ErrInvalidConfig", err)
			}
		})
	}
	reg := prometheus.NewRegistry()
	if _, err := New(b, chat, nil, Config{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(b, chat, nil, Config{Registerer: reg}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("second pipeline on one registry = %v, want ErrInvalidConfig", err)
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		attempt int
		want    time.Duration
	}{{0, 10 * time.Millisecond}, {1, 20 * time.Millisecond}, {3, 80 * time.Millisecond}, {4, 100 * time.Millisecond}, {60, 100 * time.Millisecond}}
	for _, tt := range tests {
		if got := backoff(tt.attempt, 10*time.Millisecond, 100*time.Millisecond); got != tt.want {
			t.Errorf("backoff(%d) = %v, want %v", tt.attempt, got, tt.want)
		}
	}
}

// gateAcceptor, once armed, holds every batch that carries a message of room (of any
// room when room is empty) until released, like a transaction waiting on a lock of that
// room.
type gateAcceptor struct {
	MessageAcceptor
	room    string
	armed   atomic.Bool
	once    sync.Once
	held    chan struct{} // closed when a batch of room is first held
	release chan struct{}
}

func (g *gateAcceptor) AcceptMessages(ctx context.Context, in []protocol.MessageSent) ([]Outcome, error) {
	if g.armed.Load() && slices.ContainsFunc(in, func(m protocol.MessageSent) bool { return g.room == "" || m.RoomID == g.room }) {
		g.once.Do(func() { close(g.held) })
		select {
		case <-g.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.MessageAcceptor.AcceptMessages(ctx, in)
}

// Several members of the message group in one process work their partitions at once: a
// batch held in the database (one room's lock) stops only its own partitions, the other
// rooms' messages keep being stored and announced, and every room stays in order and
// gap-free. With one member (the consumer before --pipeline-consumers) nothing moves
// until the held batch is released.
func TestPartitionsRunInParallel(t *testing.T) {
	for _, bb := range buses {
		t.Run(bb.name, func(t *testing.T) {
			b := bb.make(t, 4)
			chat := newPGChat(t)
			const rooms = 16
			room := func(i int) string { return fmt.Sprintf("room-%02d", i) }
			for i := range rooms {
				chat.addMembers(t, room(i), "ann")
			}
			chat.addMembers(t, "slow", "ann")
			gate := &gateAcceptor{MessageAcceptor: chat, room: "slow", held: make(chan struct{}), release: make(chan struct{})}
			cfg := testConfig(prometheus.NewRegistry())
			cfg.Consumers = 2
			watched := &watchBus{testBus: b}
			p, err := New(watched, gate, nil, cfg)
			if err != nil {
				t.Fatal(err)
			}
			out := observe(t, b, protocol.TopicMessageDelivered)
			running(t, p)

			// Warm up until the group is settled, both members holding partitions (a
			// Kafka member that joins later rebalances the group): rounds of one message
			// per room until both members fetched some, then every one delivered. A
			// rebalance replays (at least once), so a warm-up message may come twice.
			want := map[string]bool{}
			for round := 0; watched.membersFed() < 2; round++ {
				if round == 100 {
					t.Fatal("one member never got a partition")
				}
				for i := range rooms + 1 {
					r := "slow"
					if i < rooms {
						r = room(i)
					}
					id := fmt.Sprintf("%s-warm-%d", r, round)
					want[id] = true
					send(t, b, msg(r, "ann", id, "x"))
				}
			}
			for len(want) > 0 {
				delete(want, delivered(t, out.next(1))[0].ClientID)
			}

			gate.armed.Store(true)
			send(t, b, msg("slow", "ann", "slow-1", "x"))
			select {
			case <-gate.held:
			case <-time.After(waitFor):
				t.Fatal("the slow room's batch never reached the database")
			}
			for i := range rooms {
				send(t, b, msg(room(i), "ann", fmt.Sprintf("%s-1", room(i)), "x"))
			}
			// While the slow room's batch is held, the rooms of the other member's
			// partitions are delivered (the held member's rooms wait behind it).
			next := func() *protocol.MessageDelivered {
				for {
					if d := delivered(t, out.next(1))[0]; strings.HasSuffix(d.ClientID, "-1") {
						return d
					}
				}
			}
			first := next()
			if first.RoomID == "slow" {
				t.Fatal("the held message was delivered before its release")
			}
			close(gate.release)
			seen := map[string]bool{first.RoomID: true}
			for len(seen) < rooms+1 {
				seen[next().RoomID] = true // the other 15 rooms and the slow one
			}
			// The database agrees: every room's sequence with nothing missing.
			seq := map[string]int64{}
			for _, m := range chat.messages(t) {
				seq[m.RoomID]++
				if m.Seq != seq[m.RoomID] {
					t.Fatalf("room %s: stored seq %d, want %d", m.RoomID, m.Seq, seq[m.RoomID])
				}
			}
		})
	}
}

// watchBus is the real bus, noting which subscriptions of chat.message_sent fetched
// messages: a member that did holds partitions.
type watchBus struct {
	testBus
	mu  sync.Mutex
	fed map[bus.Subscription]bool
}

func (w *watchBus) Subscribe(ctx context.Context, group, topic string) (bus.Subscription, error) {
	s, err := w.testBus.Subscribe(ctx, group, topic)
	if err != nil || topic != protocol.TopicMessageSent {
		return s, err
	}
	return &watchSub{Subscription: s, w: w}, nil
}

func (w *watchBus) membersFed() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.fed)
}

type watchSub struct {
	bus.Subscription
	w *watchBus
}

func (s *watchSub) Fetch(ctx context.Context, max int, linger time.Duration) ([]bus.Message, error) {
	msgs, err := s.Subscription.Fetch(ctx, max, linger)
	if len(msgs) > 0 {
		s.w.mu.Lock()
		if s.w.fed == nil {
			s.w.fed = map[bus.Subscription]bool{}
		}
		s.w.fed[s] = true
		s.w.mu.Unlock()
	}
	return msgs, err
}
