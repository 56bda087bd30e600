package core

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/runtime/bus"
	"github.com/parleychat/parley/runtime/chat"
	"github.com/parleychat/parley/runtime/pipeline"
	"github.com/parleychat/parley/runtime/protocol"
	"github.com/parleychat/parley/runtime/users"
)

// flakyBus fails its first failures publications of chat.message_delivered.
type flakyBus struct {
	*bus.Memory
	failures atomic.Int64
	failed   atomic.Int64
}

func (f *flakyBus) Publish(ctx context.Context, topic string, recs ...bus.Record) error {
	if topic == protocol.TopicMessageDelivered && f.failures.Add(-1) >= 0 {
		f.failed.Add(1)
		return errors.New("broker unavailable")
	}
	return f.Memory.Publish(ctx, topic, recs...)
}

// TestOutboxAnnouncesEveryMessageInOrder (issue 15 item 7) runs core on PostgreSQL with
// messages sent over REST and over the bus (what the gateway publishes) into the same
// rooms at once, while the bus refuses the first announcements: every stored message is
// announced exactly once, and each room's announcements come in sequence order. Before
// the outbox, a REST message whose announcement failed was never announced, and the two
// paths published from different producers.
func TestOutboxAnnouncesEveryMessageInOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	// Senders here fire as fast as the machine allows; the rate limit is not under test.
	app := migratedApp(t, func(c *Config) { c.MessagesPerSecond = 1e6 })
	register := func(name string) (users.User, users.Tokens) {
		u, tok, err := app.Users.Register(ctx, users.Registration{Username: name, Password: "correct horse battery staple"})
		if err != nil {
			t.Fatal(err)
		}
		return u, tok
	}
	ann, annTok := register("ann")
	ben, benTok := register("ben")
	dm, _, err := app.Chat.OpenDirect(ctx, ann.ID, ben.ID)
	if err != nil {
		t.Fatal(err)
	}
	group, err := app.Chat.CreateGroup(ctx, ann.ID, "g", "", []string{ben.ID})
	if err != nil {
		t.Fatal(err)
	}

	mem, err := bus.NewMemory(4)
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	b := &flakyBus{Memory: mem}
	b.failures.Store(3)
	observer, err := b.Subscribe(ctx, "observer", protocol.TopicMessageDelivered)
	if err != nil {
		t.Fatal(err)
	}
	defer observer.Close()
	pipe, err := app.Pipeline(b, pipeline.Config{RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- pipe.Run(runCtx) }()
	defer func() { stop(); <-done }()
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()

	const perSender = 15
	rooms := []string{dm.ID, group.ID}
	var wg sync.WaitGroup
	restSend := func(tok users.Tokens, room, clientID string) {
		raw, _ := json.Marshal(map[string]string{"client_id": clientID, "body": "over REST"})
		req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/api/v1/rooms/"+room+"/messages", bytes.NewReader(raw))
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			t.Errorf("REST send %s: %d", clientID, res.StatusCode)
		}
	}
	busSend := func(sender, room, clientID string) {
		raw, err := protocol.Encode(&protocol.MessageSent{RoomID: room, SenderID: sender, ClientID: clientID, Body: "over the socket", SentAt: time.Now()})
		if err == nil {
			err = b.Publish(ctx, protocol.TopicMessageSent, bus.Record{Key: []byte(room), Value: raw})
		}
		if err != nil {
			t.Error(err)
		}
	}
	for _, room := range rooms {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range perSender {
				restSend(annTok, room, fmt.Sprintf("rest-%s-%d", room, i))
				if i == 5 {
					restSend(benTok, room, fmt.Sprintf("rest-ben-%s-%d", room, i))
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := range perSender {
				busSend(ben.ID, room, fmt.Sprintf("ws-%s-%d", room, i))
			}
		}()
	}
	wg.Wait()
	want := 2*perSender + 1 // per room

	perRoom := map[string][]int64{}
	total := 0
	for total < want*len(rooms) {
		msgs, err := observer.Fetch(ctx, 256, 10*time.Millisecond)
		if err != nil {
			t.Fatalf("waiting for announcements (%d of %d): %v; so far %v", total, want*len(rooms), err, perRoom)
		}
		for _, m := range msgs {
			ev, err := protocol.Decode(m.Value)
			if err != nil {
				t.Fatal(err)
			}
			d := ev.Payload.(*protocol.MessageDelivered)
			perRoom[d.RoomID] = append(perRoom[d.RoomID], d.Seq)
			total++
		}
		if err := observer.Commit(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	if b.failed.Load() == 0 {
		t.Fatal("no announcement failed: the test did not exercise a publish failure after the commit")
	}
	for _, room := range rooms {
		wantSeqs := make([]int64, want)
		for i := range wantSeqs {
			wantSeqs[i] = int64(i + 1)
		}
		if !slices.Equal(perRoom[room], wantSeqs) {
			t.Fatalf("room %s announced %v, want 1..%d once each, in order", room, perRoom[room], want)
		}
	}
	// Nothing more comes: every message was announced exactly once.
	quiet, cancelQuiet := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelQuiet()
	extra, err := observer.Fetch(quiet, 10, 0)
	if err == nil && len(extra) > 0 {
		t.Fatalf("%d announcements beyond one per message", len(extra))
	}
	page, err := app.Chat.History(ctx, ann.ID, dm.ID, chat.HistoryQuery{Forward: true, Limit: 100})
	if err != nil || len(page.Messages) != want {
		t.Fatalf("history of the direct room: %d messages, %v; want %d", len(page.Messages), err, want)
	}
}
