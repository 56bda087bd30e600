package chattest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"

	"github.com/parleychat/parley/runtime/chat"
)

// runReactions: toggles, who may react, idempotent retries, blocks and the summary.
func runReactions(t *testing.T, env func(t *testing.T) *Env) {
	ctx := context.Background()
	react := func(e *Env, room, msg, user, client, emoji string) (chat.Change, error) {
		return e.Chat.React(ctx, chat.ReactRequest{RoomID: room, MessageID: msg, UserID: user, ClientID: client, Emoji: emoji})
	}

	t.Run("reactions: toggled per user, summarised, retries never flip twice", func(t *testing.T) {
		e := env(t)
		a, b, c, d := e.User(t, "alice"), e.User(t, "bob"), e.User(t, "carol"), e.User(t, "dave")
		g, err := e.Chat.CreateGroup(ctx, a, "g", "", []string{b, c})
		if err != nil {
			t.Fatal(err)
		}
		m := mustSend(t, e, send(g.ID, a, "m1", "party?"))[0].Message
		ch, err := react(e, g.ID, m.ID, b, "r1", "🎉")
		if err != nil || ch.Event == nil || ch.Event.Kind != chat.EventReact || ch.Event.EventSeq != 1 {
			t.Fatalf("react = %+v, %v", ch, err)
		}
		if _, err := react(e, g.ID, m.ID, c, "r2", "🎉"); err != nil {
			t.Fatal(err)
		}
		ch, err = react(e, g.ID, m.ID, c, "r3", "👍🏽")
		if err != nil {
			t.Fatal(err)
		}
		want := []chat.Reaction{{Emoji: "🎉", Count: 2, Users: []string{b, c}}, {Emoji: "👍🏽", Count: 1, Users: []string{c}}}
		if !equalReactions(ch.Message.Reactions, want) {
			t.Fatalf("summary = %+v, want %+v", ch.Message.Reactions, want)
		}
		// A retry of bob's toggle does not take his reaction back.
		again, err := react(e, g.ID, m.ID, b, "r1", "🎉")
		if err != nil || again.Event != nil || !equalReactions(again.Message.Reactions, want) {
			t.Fatalf("retried toggle = %+v, %v", again, err)
		}
		// A new toggle (new client id) does.
		ch, err = react(e, g.ID, m.ID, b, "r4", "🎉")
		if err != nil || ch.Event == nil || !equalReactions(ch.Message.Reactions, []chat.Reaction{{Emoji: "🎉", Count: 1, Users: []string{c}}, {Emoji: "👍🏽", Count: 1, Users: []string{c}}}) {
			t.Fatalf("second toggle = %+v, %v", ch.Message.Reactions, err)
		}
		p, _ := e.Chat.History(ctx, a, g.ID, chat.HistoryQuery{})
		if !equalReactions(p.Messages[0].Reactions, ch.Message.Reactions) {
			t.Fatalf("history reactions = %+v", p.Messages[0].Reactions)
		}
		if evs, _ := e.Chat.EventsAfter(ctx, a, g.ID, 3, 0); len(evs) != 1 || evs[0].EventSeq != 4 || !equalReactions(evs[0].Message.Reactions, ch.Message.Reactions) {
			t.Fatalf("replayed reaction = %+v", evs)
		}
		for name, tc := range map[string]struct {
			user, emoji string
			want        error
		}{
			"not a member":        {d, "🎉", chat.ErrNotMember},
			"two emoji":           {b, "🎉🎉", chat.ErrInvalidReaction},
			"plain text":          {b, "ok", chat.ErrInvalidReaction},
			"control character":   {b, "🎉\n", chat.ErrInvalidReaction},
			"empty":               {b, "", chat.ErrInvalidReaction},
			"longer than 32 byte": {b, "👨‍👩‍👧‍👦👨‍👩‍👧‍👦", chat.ErrInvalidReaction},
		} {
			if _, err := react(e, g.ID, m.ID, tc.user, "bad", tc.emoji); !errors.Is(err, tc.want) {
				t.Errorf("%s: %v, want %v", name, err, tc.want)
			}
		}
		for _, ok := range []string{"👍", "❤️", "👨‍👩‍👧", "🇫🇷", "1️⃣", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "é"} {
			if !chat.ValidEmoji(ok) {
				t.Errorf("ValidEmoji(%q) = false", ok)
			}
		}
		if _, err := e.Chat.DeleteMessage(ctx, chat.DeleteRequest{RoomID: g.ID, MessageID: m.ID, UserID: a}); err != nil {
			t.Fatal(err)
		}
		if _, err := react(e, g.ID, m.ID, b, "r5", "🎉"); !errors.Is(err, chat.ErrMessageDeleted) {
			t.Fatalf("reacting to a deleted message: %v", err)
		}
		if p, _ := e.Chat.History(ctx, a, g.ID, chat.HistoryQuery{}); len(p.Messages[0].Reactions) != 0 {
			t.Fatalf("a deleted message keeps reactions: %+v", p.Messages[0].Reactions)
		}
	})

	t.Run("reactions: blocks hide the blocked user's reactions from the blocker", func(t *testing.T) {
		e := env(t)
		a, b, c := e.User(t, "alice"), e.User(t, "bob"), e.User(t, "carol")
		g, _ := e.Chat.CreateGroup(ctx, a, "g", "", []string{b, c})
		dm, _, _ := e.Chat.OpenDirect(ctx, a, b)
		res := mustSend(t, e, send(g.ID, a, "m1", "hi all"), send(dm.ID, a, "m2", "hi bob"))
		if err := e.Users.Block(ctx, c, b); err != nil { // carol blocks bob
			t.Fatal(err)
		}
		if _, err := react(e, g.ID, res[0].Message.ID, b, "r1", "👍"); err != nil {
			t.Fatal(err)
		}
		if _, err := react(e, g.ID, res[0].Message.ID, a, "r2", "👍"); err != nil {
			t.Fatal(err)
		}
		p, _ := e.Chat.History(ctx, c, g.ID, chat.HistoryQuery{})
		if !equalReactions(p.Messages[0].Reactions, []chat.Reaction{{Emoji: "👍", Count: 1, Users: []string{a}}}) {
			t.Fatalf("carol's view = %+v, want alice's reaction only", p.Messages[0].Reactions)
		}
		if evs, _ := e.Chat.EventsAfter(ctx, c, g.ID, 0, 0); len(evs) != 2 || !evs[0].Message.Hidden {
			t.Fatalf("carol's replay = %+v, want bob's toggle hidden", evs)
		}
		if err := e.Users.Block(ctx, a, b); err != nil { // alice blocks bob: his DM reactions are refused
			t.Fatal(err)
		}
		if _, err := react(e, dm.ID, res[1].Message.ID, b, "r3", "👍"); !errors.Is(err, chat.ErrBlocked) {
			t.Fatalf("reacting in the DM of a blocker: %v", err)
		}
	})
}

func equalReactions(a, b []chat.Reaction) bool {
	// Order among reactions made at the same instant is the store's (the test clock does
	// not move between them): compare emoji and their users as sets.
	norm := func(rs []chat.Reaction) []string {
		out := make([]string, 0, len(rs))
		for _, r := range rs {
			users := append([]string(nil), r.Users...)
			sort.Strings(users)
			out = append(out, fmt.Sprintf("%s %d %v", r.Emoji, r.Count, users))
		}
		sort.Strings(out)
		return out
	}
	na, nb := norm(a), norm(b)
	if len(na) != len(nb) {
		return false
	}
	for i := range na {
		if na[i] != nb[i] {
			return false
		}
	}
	return true
}
