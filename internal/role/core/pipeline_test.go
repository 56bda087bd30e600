package core

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/runtime/bus"
	"github.com/parleychat/parley/runtime/chat"
	"github.com/parleychat/parley/runtime/pipeline"
	"github.com/parleychat/parley/runtime/protocol"
	"github.com/parleychat/parley/runtime/users"
)

// crashAfterCommit lets one batch reach the database, then kills its consumer before the
// consumer can publish or commit the Kafka offsets: a crash between the two commits.
type crashAfterCommit struct {
	pipeline.MessageAcceptor
	crash func()
	once  sync.Once
	first int
}

// seen records every client id a consumer was handed.
type seen struct {
	pipeline.MessageAcceptor
	mu  sync.Mutex
	ids map[string]int
}

func (s *seen) AcceptMessages(ctx context.Context, in []protocol.MessageSent) ([]pipeline.Outcome, error) {
	s.mu.Lock()
	for _, m := range in {
		s.ids[m.ClientID]++
	}
	s.mu.Unlock()
	return s.MessageAcceptor.AcceptMessages(ctx, in)
}

func (c *crashAfterCommit) AcceptMessages(ctx context.Context, in []protocol.MessageSent) ([]pipeline.Outcome, error) {
	out, err := c.MessageAcceptor.AcceptMessages(ctx, in)
	if err == nil {
		c.once.Do(func() { c.first = len(in); c.crash() })
	}
	return out, err
}

// TestPipelineCrashBetweenCommitsWithRealServices runs the real chat service on
// PostgreSQL behind the core pipeline on Kafka (kfake): after a crash between the
// database commit and the offset commit, the redelivered batch is stored once and
// delivered with the same server ids and sequence numbers.
func TestPipelineCrashBetweenCommitsWithRealServices(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	app := migratedApp(t)
	ann, _, err := app.Users.Register(ctx, users.Registration{Username: "ann", Password: "correct horse battery staple"})
	if err != nil {
		t.Fatal(err)
	}
	ben, _, err := app.Users.Register(ctx, users.Registration{Username: "ben", Password: "correct horse battery staple"})
	if err != nil {
		t.Fatal(err)
	}
	room, _, err := app.Chat.OpenDirect(ctx, ann.ID, ben.ID)
	if err != nil {
		t.Fatal(err)
	}

	kcfg := bus.KafkaConfig{Brokers: testenv.Kafka(t), Partitions: 3, SessionTimeout: 2 * time.Second, HeartbeatInterval: 200 * time.Millisecond, RebalanceTimeout: 2 * time.Second}
	b, err := bus.NewKafka(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.EnsureTopics(ctx, protocol.Topics()...); err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := range n {
		raw, err := protocol.Encode(&protocol.MessageSent{RoomID: room.ID, SenderID: ann.ID, ClientID: fmt.Sprintf("c-%02d", i), Body: fmt.Sprint("m", i), SentAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(ctx, protocol.TopicMessageSent, bus.Record{Key: []byte(room.ID), Value: raw}); err != nil {
			t.Fatal(err)
		}
	}
	delivered, err := b.Subscribe(ctx, "observer", protocol.TopicMessageDelivered)
	if err != nil {
		t.Fatal(err)
	}
	defer delivered.Close()

	chatBridge := Bridge(app)
	crashCtx, crash := context.WithCancel(ctx)
	doomed := &crashAfterCommit{MessageAcceptor: chatBridge, crash: crash}
	p1, err := pipeline.New(b, doomed, nil, pipeline.Config{MaxBatch: 8})
	if err != nil {
		t.Fatal(err)
	}
	if err := p1.Run(crashCtx); err != nil {
		t.Fatalf("first consumer: %v", err)
	}
	if doomed.first == 0 {
		t.Fatal("the first consumer never committed a batch")
	}
	page, err := app.Chat.History(ctx, ann.ID, room.ID, chat.HistoryQuery{Forward: true, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != doomed.first {
		t.Fatalf("%d messages stored before the restart, first batch was %d", len(page.Messages), doomed.first)
	}
	before := map[string]chat.Message{}
	for _, m := range page.Messages {
		before[m.ClientID] = m
	}

	second := &seen{MessageAcceptor: chatBridge, ids: map[string]int{}}
	p2, err := pipeline.New(b, second, nil, pipeline.Config{MaxBatch: 8})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p2.Run(runCtx) }()
	defer func() { stop(); <-done }()

	got := map[string]*protocol.MessageDelivered{}
	for len(got) < n {
		msgs, err := delivered.Fetch(ctx, 64, 10*time.Millisecond)
		if err != nil {
			t.Fatalf("waiting for delivered events (%d of %d): %v", len(got), n, err)
		}
		for _, m := range msgs {
			ev, err := protocol.Decode(m.Value)
			if err != nil {
				t.Fatal(err)
			}
			d := ev.Payload.(*protocol.MessageDelivered)
			if prev, ok := got[d.ClientID]; ok && (prev.ServerID != d.ServerID || prev.Seq != d.Seq) {
				t.Fatalf("%s delivered twice with different ids: %s/%d and %s/%d", d.ClientID, prev.ServerID, prev.Seq, d.ServerID, d.Seq)
			}
			got[d.ClientID] = d
		}
	}
	second.mu.Lock()
	redelivered := second.ids["c-00"]
	second.mu.Unlock()
	if redelivered == 0 {
		t.Fatal("the first batch was not redelivered: its offsets were committed despite the crash")
	}
	for id, m := range before {
		if d := got[id]; d.ServerID != m.ID || d.Seq != m.Seq {
			t.Fatalf("%s: stored before the crash as %s/%d, redelivered as %s/%d", id, m.ID, m.Seq, d.ServerID, d.Seq)
		}
	}
	page, err = app.Chat.History(ctx, ann.ID, room.ID, chat.HistoryQuery{Forward: true, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != n {
		t.Fatalf("%d messages stored, want %d: a redelivery duplicated or lost messages", len(page.Messages), n)
	}
	for i, m := range page.Messages {
		if m.Seq != int64(i+1) || m.ClientID != fmt.Sprintf("c-%02d", i) {
			t.Fatalf("message %d: seq %d client %s: order or gap-freedom broken", i, m.Seq, m.ClientID)
		}
	}
}
