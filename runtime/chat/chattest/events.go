package chattest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/runtime/chat"
)

// runEvents holds both stores to the contract of room events: edits and deletions,
// who may make them, their idempotency, and their replay in order.
func runEvents(t *testing.T, env func(t *testing.T) *Env, newBackend func(t *testing.T) Backend) {
	ctx := context.Background()

	edit := func(e *Env, room, msg, user, client, body string) (chat.Change, error) {
		return e.Chat.EditMessage(ctx, chat.EditRequest{RoomID: room, MessageID: msg, UserID: user, ClientID: client, Body: body})
	}
	del := func(e *Env, room, msg, user string) (chat.Change, error) {
		return e.Chat.DeleteMessage(ctx, chat.DeleteRequest{RoomID: room, MessageID: msg, UserID: user})
	}

	t.Run("edit: own message only, idempotent, shown edited in history", func(t *testing.T) {
		e := env(t)
		a, b, c := e.User(t, "alice"), e.User(t, "bob"), e.User(t, "carol")
		dm, _, _ := e.Chat.OpenDirect(ctx, a, b)
		other, _, _ := e.Chat.OpenDirect(ctx, a, c)
		res := mustSend(t, e, send(dm.ID, a, "m1", "helo"), send(dm.ID, b, "m2", "hi"), send(other.ID, a, "m3", "elsewhere"))
		m1, m2, m3 := res[0].Message, res[1].Message, res[2].Message

		e.Clock.Advance(time.Minute)
		ch, err := edit(e, dm.ID, m1.ID, a, "e1", "hello")
		if err != nil || ch.Event == nil || ch.Event.EventSeq != 1 || ch.Event.Kind != chat.EventEdit || ch.Event.ActorID != a {
			t.Fatalf("edit = %+v, %v", ch, err)
		}
		if ch.Message.Body != "hello" || ch.Message.EditedAt == nil || !ch.Message.EditedAt.Equal(e.Clock.Now().UTC().Truncate(time.Microsecond)) || ch.Message.EventSeq != 1 || ch.Message.Seq != m1.Seq {
			t.Fatalf("edited message = %+v", ch.Message)
		}
		// A retry with the same client id records nothing more, even after another edit.
		if _, err := edit(e, dm.ID, m1.ID, a, "e2", "hello!"); err != nil {
			t.Fatal(err)
		}
		again, err := edit(e, dm.ID, m1.ID, a, "e1", "hello")
		if err != nil || again.Event != nil || again.Message.Body != "hello!" || again.Message.EventSeq != 2 {
			t.Fatalf("retried edit = %+v, %v; want no event and the current state", again, err)
		}
		// The same body again: nothing to record.
		if same, err := edit(e, dm.ID, m1.ID, a, "e3", "hello!"); err != nil || same.Event != nil {
			t.Fatalf("edit to the same body = %+v, %v", same, err)
		}
		for name, tc := range map[string]struct {
			room, msg, user, body string
			want                  error
		}{
			"someone else's message":   {dm.ID, m2.ID, a, "x", chat.ErrNotAuthor},
			"not a member":             {dm.ID, m1.ID, c, "x", chat.ErrNotMember},
			"another room's message":   {dm.ID, m3.ID, a, "x", chat.ErrMessageNotFound},
			"unknown message":          {dm.ID, "nope", a, "x", chat.ErrMessageNotFound},
			"unknown room":             {"nope", m1.ID, a, "x", chat.ErrRoomNotFound},
			"blank body, no files":     {dm.ID, m1.ID, a, "  ", chat.ErrEmptyMessage},
			"body over the size limit": {dm.ID, m1.ID, a, strings.Repeat("x", TestLimits.MaxMessageBytes+1), chat.ErrMessageTooLarge},
			"body with NUL":            {dm.ID, m1.ID, a, "a\x00", chat.ErrInvalidBody},
		} {
			if _, err := edit(e, tc.room, tc.msg, tc.user, "bad-"+strings.ReplaceAll(name, " ", "-")[:8], tc.body); !errors.Is(err, tc.want) {
				t.Errorf("%s: %v, want %v", name, err, tc.want)
			}
		}
		if _, err := edit(e, dm.ID, m1.ID, a, "", "x"); !errors.Is(err, chat.ErrInvalidClientID) {
			t.Errorf("no client id: %v", err)
		}
		p, err := e.Chat.History(ctx, b, dm.ID, chat.HistoryQuery{})
		if err != nil || len(p.Messages) != 2 || p.Messages[0].Body != "hello!" || p.Messages[0].EditedAt == nil || p.Messages[1].EditedAt != nil {
			t.Fatalf("history after edits = %+v, %v", p, err)
		}
		if r, err := e.Chat.Room(ctx, b, dm.ID); err != nil || r.LastEventSeq != 2 {
			t.Fatalf("room = %+v, %v; want last_event_seq 2", r, err)
		}
	})

	t.Run("edit window", func(t *testing.T) {
		limits := TestLimits
		limits.EditWindow = time.Hour
		e := NewEnv(t, newBackend(t), limits)
		a, b := e.User(t, "alice"), e.User(t, "bob")
		dm, _, _ := e.Chat.OpenDirect(ctx, a, b)
		m := mustSend(t, e, send(dm.ID, a, "m1", "one"))[0].Message
		e.Clock.Advance(59 * time.Minute)
		if _, err := edit(e, dm.ID, m.ID, a, "e1", "one!"); err != nil {
			t.Fatalf("edit within the window: %v", err)
		}
		e.Clock.Advance(2 * time.Minute)
		if _, err := edit(e, dm.ID, m.ID, a, "e2", "one!!"); !errors.Is(err, chat.ErrEditWindow) {
			t.Fatalf("edit after the window: %v", err)
		}
		if _, err := del(e, dm.ID, m.ID, a); err != nil {
			t.Fatalf("deleting is not bound by the edit window: %v", err)
		}
	})

	t.Run("delete: tombstone for everyone, author or group owner, files released", func(t *testing.T) {
		e := env(t)
		a, b, c := e.User(t, "alice"), e.User(t, "bob"), e.User(t, "carol")
		dm, _, _ := e.Chat.OpenDirect(ctx, a, b)
		g, err := e.Chat.CreateGroup(ctx, a, "g", "", []string{b, c})
		if err != nil {
			t.Fatal(err)
		}
		withFile := chat.SendRequest{RoomID: dm.ID, SenderID: a, ClientID: "f1", Body: "see file", Attachments: []string{"file-1"}}
		res := mustSend(t, e, withFile, send(dm.ID, b, "m2", "bob's"), send(g.ID, b, "g1", "bob in the group"), send(g.ID, c, "g2", "carol in the group"))
		mf, mb, gb, gc := res[0].Message, res[1].Message, res[2].Message, res[3].Message
		if ok, _ := e.Chat.CanReadFile(ctx, b, a, "file-1"); !ok {
			t.Fatal("bob cannot read the attached file before the deletion")
		}
		if _, err := del(e, dm.ID, mb.ID, a); !errors.Is(err, chat.ErrNotAuthor) {
			t.Fatalf("deleting someone else's message in a DM: %v", err)
		}
		if _, err := del(e, g.ID, gc.ID, b); !errors.Is(err, chat.ErrNotAuthor) {
			t.Fatalf("a member deletes another's message: %v", err)
		}
		if _, err := del(e, dm.ID, mf.ID, c); !errors.Is(err, chat.ErrNotMember) {
			t.Fatalf("a non-member deletes: %v", err)
		}
		ch, err := del(e, dm.ID, mf.ID, a)
		if err != nil || ch.Event == nil || ch.Event.Kind != chat.EventDelete || !ch.Message.Deleted || ch.Message.Body != "" || len(ch.Message.Attachments) != 0 {
			t.Fatalf("delete = %+v, %v", ch, err)
		}
		if again, err := del(e, dm.ID, mf.ID, a); err != nil || again.Event != nil || !again.Message.Deleted {
			t.Fatalf("deleting again = %+v, %v; want no event", again, err)
		}
		if _, err := edit(e, dm.ID, mf.ID, a, "e1", "back"); !errors.Is(err, chat.ErrMessageDeleted) {
			t.Fatalf("editing a deleted message: %v", err)
		}
		p, _ := e.Chat.History(ctx, b, dm.ID, chat.HistoryQuery{})
		if len(p.Messages) != 2 || p.Messages[0].Seq != 1 || !p.Messages[0].Deleted || p.Messages[0].Body != "" || len(p.Messages[0].Attachments) != 0 {
			t.Fatalf("history after deletion = %+v", p.Messages)
		}
		if got, err := e.Chat.Message(ctx, b, dm.ID, mf.ID); err != nil || !got.Deleted {
			t.Fatalf("Message of a deleted message = %+v, %v", got, err)
		}
		if ok, _ := e.Chat.CanReadFile(ctx, b, a, "file-1"); ok {
			t.Fatal("a deleted message still grants access to its attachment")
		}
		if ok, _ := e.Chat.FileReferenced(ctx, "file-1"); ok {
			t.Fatal("a file attached only by a deleted message is still referenced (never orphaned)")
		}
		// The room list shows the tombstone as the DM's last message only if it is the last.
		if rooms, _ := e.Chat.Rooms(ctx, b); len(rooms) == 0 {
			t.Fatal("bob has no rooms")
		}
		if _, err := del(e, dm.ID, mb.ID, b); err != nil {
			t.Fatal(err)
		}
		rooms, _ := e.Chat.Rooms(ctx, a)
		for _, r := range rooms {
			if r.Room.ID == dm.ID && (r.LastMessage == nil || !r.LastMessage.Deleted || r.LastMessage.Body != "") {
				t.Fatalf("the DM's last message in the room list = %+v, want the tombstone", r.LastMessage)
			}
		}
		// The group's owner may delete anyone's message.
		if ch, err := del(e, g.ID, gb.ID, a); err != nil || ch.Event == nil || ch.Event.ActorID != a || ch.Event.EventSeq != 1 {
			t.Fatalf("owner deletes a member's message = %+v, %v", ch, err)
		}
	})

	t.Run("events replay in order with the messages' current state", func(t *testing.T) {
		e := env(t)
		a, b, c := e.User(t, "alice"), e.User(t, "bob"), e.User(t, "carol")
		dm, _, _ := e.Chat.OpenDirect(ctx, a, b)
		res := mustSend(t, e, send(dm.ID, a, "m1", "one"), send(dm.ID, a, "m2", "two"))
		m1, m2 := res[0].Message, res[1].Message
		// Bob's cursor is where his client was when he disconnected.
		r, _ := e.Chat.Room(ctx, b, dm.ID)
		cursor := r.LastEventSeq
		if _, err := edit(e, dm.ID, m1.ID, a, "e1", "one, edited"); err != nil {
			t.Fatal(err)
		}
		if _, err := edit(e, dm.ID, m2.ID, a, "e2", "two, edited"); err != nil {
			t.Fatal(err)
		}
		if _, err := edit(e, dm.ID, m1.ID, a, "e3", "one, edited twice"); err != nil {
			t.Fatal(err)
		}
		if _, err := del(e, dm.ID, m2.ID, a); err != nil {
			t.Fatal(err)
		}
		evs, err := e.Chat.EventsAfter(ctx, b, dm.ID, cursor, 0)
		if err != nil || len(evs) != 4 {
			t.Fatalf("events = %+v, %v", evs, err)
		}
		for i, ev := range evs {
			if ev.EventSeq != int64(i+1) || ev.RoomID != dm.ID {
				t.Fatalf("event %d = %+v, want event_seq %d", i, ev, i+1)
			}
		}
		// Each event carries its message as it is now, so applying them in order (or
		// only the last one per message) ends in the same state.
		if evs[0].Message.Body != "one, edited twice" || evs[0].Message.EventSeq != 3 || !evs[3].Message.Deleted || evs[3].Kind != chat.EventDelete {
			t.Fatalf("replayed states = %+v", evs)
		}
		if evs, _ := e.Chat.EventsAfter(ctx, b, dm.ID, 3, 0); len(evs) != 1 || evs[0].EventSeq != 4 {
			t.Fatalf("events after 3 = %+v", evs)
		}
		if evs, _ := e.Chat.EventsAfter(ctx, b, dm.ID, 2, 1); len(evs) != 1 || evs[0].EventSeq != 3 {
			t.Fatalf("events after 2, limit 1 = %+v", evs)
		}
		if _, err := e.Chat.EventsAfter(ctx, c, dm.ID, 0, 0); !errors.Is(err, chat.ErrNotMember) {
			t.Fatalf("a non-member's events: %v", err)
		}
	})

	t.Run("blocks: no edits into a blocker's DM, hidden in a blocker's replay", func(t *testing.T) {
		e := env(t)
		a, b, c := e.User(t, "alice"), e.User(t, "bob"), e.User(t, "carol")
		dm, _, _ := e.Chat.OpenDirect(ctx, a, b)
		g, _ := e.Chat.CreateGroup(ctx, c, "g", "", []string{a, b})
		res := mustSend(t, e, send(dm.ID, a, "m1", "one"), send(g.ID, a, "g1", "in the group"))
		if err := e.Users.Block(ctx, b, a); err != nil { // bob blocks alice
			t.Fatal(err)
		}
		if _, err := edit(e, dm.ID, res[0].Message.ID, a, "e1", "one!"); !errors.Is(err, chat.ErrBlocked) {
			t.Fatalf("editing in the DM of a blocker: %v", err)
		}
		if _, err := edit(e, g.ID, res[1].Message.ID, a, "e2", "edited in the group"); err != nil {
			t.Fatal(err)
		}
		evs, err := e.Chat.EventsAfter(ctx, b, g.ID, 0, 0)
		if err != nil || len(evs) != 1 || !evs[0].Message.Hidden || evs[0].Message.Body != "" {
			t.Fatalf("bob's replay of alice's edit = %+v, %v; want it hidden", evs, err)
		}
		if evs, _ := e.Chat.EventsAfter(ctx, c, g.ID, 0, 0); len(evs) != 1 || evs[0].Message.Body != "edited in the group" {
			t.Fatalf("carol's replay = %+v", evs)
		}
	})

	runReactions(t, env)

	t.Run("concurrent changes keep a room's events gap-free and each client id once", func(t *testing.T) {
		e := env(t)
		a, b := e.User(t, "alice"), e.User(t, "bob")
		dm, _, _ := e.Chat.OpenDirect(ctx, a, b)
		var reqs []chat.SendRequest
		for i := range 8 {
			reqs = append(reqs, send(dm.ID, a, fmt.Sprint("m", i), fmt.Sprint("msg ", i)))
		}
		res := mustSend(t, e, reqs...)
		var wg sync.WaitGroup
		events := make(chan int64, 32)
		for i := range 16 {
			wg.Go(func() {
				m := res[i%8].Message
				// Two goroutines per client id: only one records an event.
				ch, err := edit(e, dm.ID, m.ID, a, fmt.Sprint("e", i%8), fmt.Sprint("edited ", i%8))
				for errors.Is(err, chat.ErrConflict) {
					ch, err = edit(e, dm.ID, m.ID, a, fmt.Sprint("e", i%8), fmt.Sprint("edited ", i%8))
				}
				if err != nil {
					t.Error(err)
					return
				}
				if ch.Event != nil {
					events <- ch.Event.EventSeq
				}
			})
		}
		wg.Wait()
		close(events)
		seen := map[int64]bool{}
		for s := range events {
			seen[s] = true
		}
		if len(seen) != 8 {
			t.Fatalf("%d events recorded, want 8 (one per client id): %v", len(seen), seen)
		}
		for s := int64(1); s <= 8; s++ {
			if !seen[s] {
				t.Fatalf("event seqs %v have a gap at %d", seen, s)
			}
		}
	})
}
