package chattest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/parleychat/parley/runtime/chat"
)

// relayed is what a test relay published, in publication order.
type relayed struct {
	mu   sync.Mutex
	msgs []chat.Message
}

func (r *relayed) publish(_ context.Context, ms []chat.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, ms...)
	return nil
}

// perRoom is the published sequence numbers of each room, in publication order.
func (r *relayed) perRoom() map[string][]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]int64{}
	for _, m := range r.msgs {
		out[m.RoomID] = append(out[m.RoomID], m.Seq)
	}
	return out
}

// relayAll runs relay rounds until one announces nothing.
func relayAll(t *testing.T, e *Env, r *relayed, limit int) {
	t.Helper()
	for range 10_000 {
		n, err := e.Chat.RelayAnnouncements(context.Background(), limit, r.publish)
		if errors.Is(err, chat.ErrRelayBusy) {
			continue
		}
		if err != nil {
			t.Fatalf("relay: %v", err)
		}
		if n == 0 {
			return
		}
	}
	t.Fatal("the relay never ran dry")
}

func oneToN(n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i + 1)
	}
	return out
}

// runOutbox holds both stores to the outbox contract: every stored message is handed to
// the relay exactly once after a successful publish, in sequence order per room, and a
// duplicate says whether its original was announced.
func runOutbox(t *testing.T, env func(t *testing.T) *Env) {
	ctx := context.Background()

	t.Run("outbox: relayed once, in order per room; a failed publish marks nothing", func(t *testing.T) {
		e := env(t)
		a, b, c := e.User(t, "alice"), e.User(t, "bob"), e.User(t, "carol")
		ab, _, _ := e.Chat.OpenDirect(ctx, a, b)
		ac, _, _ := e.Chat.OpenDirect(ctx, a, c)
		mustSend(t, e, send(ab.ID, a, "1", "x"), send(ac.ID, a, "2", "x"), send(ab.ID, b, "3", "x"))
		mustSend(t, e, send(ab.ID, a, "4", "x"), send(ac.ID, c, "5", "x"))

		broken := errors.New("bus down")
		if _, err := e.Chat.RelayAnnouncements(ctx, 100, func(context.Context, []chat.Message) error { return broken }); !errors.Is(err, broken) {
			t.Fatalf("relay with a failing publish = %v, want the publish error", err)
		}
		var r relayed
		// A limit of 2 makes the relay take each room's messages over several rounds.
		relayAll(t, e, &r, 2)
		got := r.perRoom()
		if !slices.Equal(got[ab.ID], oneToN(3)) || !slices.Equal(got[ac.ID], oneToN(2)) || len(got) != 2 {
			t.Fatalf("relayed %v, want 1..3 in %s and 1..2 in %s, once each", got, ab.ID, ac.ID)
		}
		mustSend(t, e, send(ac.ID, a, "6", "x"))
		relayAll(t, e, &r, 100)
		if got := r.perRoom()[ac.ID]; !slices.Equal(got, oneToN(3)) {
			t.Fatalf("after one more message %s relayed %v, want 1..3", ac.ID, got)
		}
	})

	t.Run("outbox: a duplicate says whether its original was announced", func(t *testing.T) {
		e := env(t)
		a, b := e.User(t, "alice"), e.User(t, "bob")
		dm, _, _ := e.Chat.OpenDirect(ctx, a, b)
		first := mustSend(t, e, send(dm.ID, a, "k1", "x"), send(dm.ID, a, "k1", "x"))
		if first[0].Duplicate || first[0].Announced || !first[1].Duplicate || first[1].Announced {
			t.Fatalf("new message and its copy in the batch = %+v / %+v, want new, then a duplicate not announced", first[0], first[1])
		}
		retry := mustSend(t, e, send(dm.ID, a, "k1", "x"), send(dm.ID, a, "k2", "x"))
		if !retry[0].Duplicate || retry[0].Announced || retry[0].Message.Seq != 1 {
			t.Fatalf("retry before the relay ran = %+v, want the original (seq 1), not announced", retry[0])
		}
		if retry[1].Duplicate || retry[1].Message.Seq != 2 {
			t.Fatalf("new message after a duplicate = %+v, want seq 2: no gap for the duplicate", retry[1])
		}
		var r relayed
		relayAll(t, e, &r, 100)
		again := mustSend(t, e, send(dm.ID, a, "k1", "x"), send(dm.ID, a, "k3", "x"))
		if !again[0].Duplicate || !again[0].Announced || again[0].Message.Seq != 1 || again[1].Message.Seq != 3 {
			t.Fatalf("retry after the relay ran = %+v, then %+v; want the announced original, then seq 3", again[0], again[1])
		}
		relayAll(t, e, &r, 100)
		if got := r.perRoom()[dm.ID]; !slices.Equal(got, oneToN(3)) {
			t.Fatalf("relayed %v, want 1..3 once each", got)
		}
	})

	t.Run("outbox: a refused retry of a stored message gets the original", func(t *testing.T) {
		e := env(t)
		a, b, c := e.User(t, "alice"), e.User(t, "bob"), e.User(t, "carol")
		g, err := e.Chat.CreateGroup(ctx, a, "g", "", []string{b, c})
		if err != nil {
			t.Fatal(err)
		}
		orig := mustSend(t, e, send(g.ID, b, "b1", "hello"))[0]
		if err := e.Chat.Leave(ctx, b, g.ID); err != nil {
			t.Fatal(err)
		}
		retry := mustSend(t, e, send(g.ID, b, "b1", "hello"), send(g.ID, b, "b2", "new"))
		if retry[0].Err != nil || !retry[0].Duplicate || retry[0].Message.ID != orig.Message.ID {
			t.Fatalf("retry after leaving = %+v, want the stored original", retry[0])
		}
		if !errors.Is(retry[1].Err, chat.ErrNotMember) {
			t.Fatalf("new message after leaving = %v, want ErrNotMember", retry[1].Err)
		}
	})

	t.Run("outbox: concurrent senders and relays, each message relayed once in order", func(t *testing.T) {
		e := env(t)
		a, b := e.User(t, "alice"), e.User(t, "bob")
		g, err := e.Chat.CreateGroup(ctx, a, "g", "", []string{b})
		if err != nil {
			t.Fatal(err)
		}
		dm, _, _ := e.Chat.OpenDirect(ctx, a, b)
		const senders, batches, perBatch = 4, 5, 4
		var r relayed
		stop := make(chan struct{})
		var relays sync.WaitGroup
		for range 2 {
			relays.Add(1)
			go func() {
				defer relays.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := e.Chat.RelayAnnouncements(ctx, 7, r.publish); err != nil && !errors.Is(err, chat.ErrRelayBusy) {
						t.Errorf("relay: %v", err)
						return
					}
				}
			}()
		}
		var sends sync.WaitGroup
		for s := range senders {
			sends.Add(1)
			go func() {
				defer sends.Done()
				for n := range batches {
					var reqs []chat.SendRequest
					for i := range perBatch {
						room, who := g.ID, a
						if (s+i)%2 == 1 {
							room, who = dm.ID, b
						}
						// Every batch repeats its first key: duplicates inside batches too.
						reqs = append(reqs, send(room, who, fmt.Sprintf("s%d-%d-%d", s, n, i%(perBatch-1)), "x"))
					}
					if _, err := e.Chat.SendBatch(ctx, reqs); err != nil && !errors.Is(err, chat.ErrConflict) {
						t.Errorf("send: %v", err)
						return
					}
				}
			}()
		}
		sends.Wait()
		close(stop)
		relays.Wait()
		relayAll(t, e, &r, 100)
		got := r.perRoom()
		for _, room := range []string{g.ID, dm.ID} {
			stored, err := e.Store.Room(ctx, room)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got[room], oneToN(int(stored.LastSeq))) {
				t.Fatalf("room %s relayed %v, want 1..%d once each and in order", room, got[room], stored.LastSeq)
			}
		}
	})
}
