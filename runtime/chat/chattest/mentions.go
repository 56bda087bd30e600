package chattest

import (
	"context"
	"slices"
	"testing"

	"github.com/parleychat/parley/runtime/chat"
)

// runMentions holds both stores to the mention contract: "@username" resolves to a
// member of the room (case-insensitively, once, never the sender), "@room" to every
// member only from the owner of a group; the ids are stored with the message, come back
// from history and retries, are re-resolved by an edit, and count in the room list.
func runMentions(t *testing.T, env func(t *testing.T) *Env) {
	ctx := context.Background()

	mentionsOf := func(t *testing.T, e *Env, viewer, room string) [][]string {
		t.Helper()
		p, err := e.Chat.History(ctx, viewer, room, chat.HistoryQuery{Forward: true})
		if err != nil {
			t.Fatal(err)
		}
		out := make([][]string, len(p.Messages))
		for i, m := range p.Messages {
			out[i] = m.Mentions
		}
		return out
	}
	summary := func(t *testing.T, e *Env, user, room string) chat.RoomSummary {
		t.Helper()
		rs, err := e.Chat.Rooms(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Room.ID == room {
				return r
			}
		}
		t.Fatalf("room %s not in %s's list", room, user)
		return chat.RoomSummary{}
	}

	t.Run("mentions: members only, case-insensitive, deduplicated, stored", func(t *testing.T) {
		e := env(t)
		a, b, c, d := e.User(t, "alice"), e.User(t, "bob"), e.User(t, "carol"), e.User(t, "dave")
		g, err := e.Chat.CreateGroup(ctx, a, "team", "", []string{b, c})
		if err != nil {
			t.Fatal(err)
		}
		dm, _, _ := e.Chat.OpenDirect(ctx, a, d)
		// One batch, two rooms: one user look-up resolves every name.
		res := mustSend(t, e,
			send(g.ID, a, "m1", "@Carol @dave @BOB hi @carol."),
			send(g.ID, a, "m2", "me @alice, mail x@bob.org, @nobody"),
			send(dm.ID, a, "m3", "@dave @bob"),
			send(g.ID, b, "m4", "(@alice)"))
		want := [][]string{{c, b}, nil, {d}, {a}}
		for i, w := range want {
			if res[i].Err != nil || !slices.Equal(res[i].Message.Mentions, w) {
				t.Fatalf("message %d: mentions %v, err %v; want %v", i+1, res[i].Message.Mentions, res[i].Err, w)
			}
		}
		if got := mentionsOf(t, e, b, g.ID); !slices.Equal(got[0], []string{c, b}) || got[1] != nil || !slices.Equal(got[2], []string{a}) {
			t.Fatalf("history mentions = %v", got)
		}
		// A retry comes back as the original, mentions included.
		if again := mustSend(t, e, send(g.ID, a, "m1", "@Carol @dave @BOB hi @carol.")); !again[0].Duplicate || !slices.Equal(again[0].Message.Mentions, []string{c, b}) {
			t.Fatalf("retried = %+v", again[0])
		}
		if m, err := e.Chat.Message(ctx, c, g.ID, res[0].Message.ID); err != nil || !slices.Equal(m.Mentions, []string{c, b}) {
			t.Fatalf("Message = %+v, %v", m, err)
		}
	})

	t.Run("mentions: @room only from the owner of a group", func(t *testing.T) {
		e := env(t)
		a, b, c := e.User(t, "alice"), e.User(t, "bob"), e.User(t, "carol")
		g, err := e.Chat.CreateGroup(ctx, a, "team", "", []string{b, c})
		if err != nil {
			t.Fatal(err)
		}
		dm, _, _ := e.Chat.OpenDirect(ctx, a, b)
		res := mustSend(t, e,
			send(g.ID, a, "r1", "@room @bob lunch?"),
			send(g.ID, b, "r2", "@room me too"),
			send(dm.ID, a, "r3", "@room"))
		if got := res[0].Message.Mentions; len(got) != 2 || got[0] != b || !slices.Contains(got, c) {
			t.Fatalf("owner's @room = %v, want bob then carol", got)
		}
		if res[1].Message.Mentions != nil || res[2].Message.Mentions != nil {
			t.Fatalf("@room from a member = %v, in a direct room = %v; want none", res[1].Message.Mentions, res[2].Message.Mentions)
		}
	})

	t.Run("mentions: an edit re-resolves them, a deletion clears them", func(t *testing.T) {
		e := env(t)
		a, b, c := e.User(t, "alice"), e.User(t, "bob"), e.User(t, "carol")
		g, err := e.Chat.CreateGroup(ctx, a, "team", "", []string{b, c})
		if err != nil {
			t.Fatal(err)
		}
		m := mustSend(t, e, send(g.ID, a, "e0", "hi @bob"))[0].Message
		edit := func(client, body string) chat.Change {
			t.Helper()
			ch, err := e.Chat.EditMessage(ctx, chat.EditRequest{RoomID: g.ID, MessageID: m.ID, UserID: a, ClientID: client, Body: body})
			if err != nil {
				t.Fatal(err)
			}
			return ch
		}
		if ch := edit("e1", "hi @carol"); ch.Event == nil || !slices.Equal(ch.Message.Mentions, []string{c}) || !slices.Equal(ch.Event.Message.Mentions, []string{c}) {
			t.Fatalf("edit to @carol = %+v", ch)
		}
		if got := mentionsOf(t, e, b, g.ID); !slices.Equal(got[0], []string{c}) {
			t.Fatalf("history after the edit = %v", got)
		}
		evs, err := e.Chat.EventsAfter(ctx, b, g.ID, 0, 0)
		if err != nil || len(evs) != 1 || !slices.Equal(evs[0].Message.Mentions, []string{c}) {
			t.Fatalf("events = %+v, %v", evs, err)
		}
		if ch := edit("e2", "hi all"); ch.Message.Mentions != nil {
			t.Fatalf("edit without mentions kept %v", ch.Message.Mentions)
		}
		edit("e3", "hi @bob")
		if _, err := e.Chat.DeleteMessage(ctx, chat.DeleteRequest{RoomID: g.ID, MessageID: m.ID, UserID: a}); err != nil {
			t.Fatal(err)
		}
		if got := mentionsOf(t, e, b, g.ID); got[0] != nil {
			t.Fatalf("deleted message still mentions %v", got[0])
		}
	})

	t.Run("mentions: the room list counts unread mentions of me", func(t *testing.T) {
		e := env(t)
		a, b, c := e.User(t, "alice"), e.User(t, "bob"), e.User(t, "carol")
		g, err := e.Chat.CreateGroup(ctx, a, "team", "", []string{b, c})
		if err != nil {
			t.Fatal(err)
		}
		mustSend(t, e, send(g.ID, a, "c1", "@bob one"), send(g.ID, a, "c2", "plain"), send(g.ID, c, "c3", "@bob two"),
			send(g.ID, b, "c4", "@bob myself"))
		if s := summary(t, e, b, g.ID); s.Mentions != 2 || s.Unread != 3 {
			t.Fatalf("bob's summary: mentions %d, unread %d; want 2 of 3", s.Mentions, s.Unread)
		}
		if s := summary(t, e, c, g.ID); s.Mentions != 0 {
			t.Fatalf("carol's mentions = %d, want 0", s.Mentions)
		}
		// Not from people I blocked.
		if err := e.Users.Block(ctx, b, c); err != nil {
			t.Fatal(err)
		}
		if s := summary(t, e, b, g.ID); s.Mentions != 1 {
			t.Fatalf("bob's mentions after blocking carol = %d, want 1", s.Mentions)
		}
		// Read: nothing unread mentions him any more.
		if _, err := e.Chat.AdvanceReceipt(ctx, b, g.ID, chat.Read, 4); err != nil {
			t.Fatal(err)
		}
		if s := summary(t, e, b, g.ID); s.Mentions != 0 {
			t.Fatalf("bob's mentions after reading = %d, want 0", s.Mentions)
		}
	})
}
