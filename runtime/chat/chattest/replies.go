package chattest

import (
	"context"
	"errors"
	"testing"

	"github.com/parleychat/parley/runtime/chat"
)

// runReplies holds both stores to the reply contract: reply_to is stored with the
// message, comes back from history, duplicates and Message, and must name a message of
// the same room.
func runReplies(t *testing.T, env func(t *testing.T) *Env) {
	ctx := context.Background()

	t.Run("replies: stored, replayed, same room only", func(t *testing.T) {
		e := env(t)
		a, b, c := e.User(t, "alice"), e.User(t, "bob"), e.User(t, "carol")
		dm, _, _ := e.Chat.OpenDirect(ctx, a, b)
		other, _, _ := e.Chat.OpenDirect(ctx, a, c)
		orig := mustSend(t, e, send(dm.ID, a, "o1", "question?"), send(other.ID, a, "o2", "elsewhere"))
		q, elsewhere := orig[0].Message, orig[1].Message

		r := send(dm.ID, b, "r1", "answer")
		r.ReplyTo = q.ID
		bad := send(dm.ID, b, "r2", "to another room")
		bad.ReplyTo = elsewhere.ID
		ghost := send(dm.ID, b, "r3", "to nothing")
		ghost.ReplyTo = "no-such-message"
		res := mustSend(t, e, r, bad, ghost)
		if res[0].Err != nil || res[0].Message.ReplyTo != q.ID {
			t.Fatalf("reply = %+v, %v; want reply_to %s", res[0].Message, res[0].Err, q.ID)
		}
		for i, name := range []string{"", "another room's message", "an unknown id"} {
			if i > 0 && !errors.Is(res[i].Err, chat.ErrInvalidReply) {
				t.Fatalf("reply to %s: %v, want ErrInvalidReply", name, res[i].Err)
			}
		}
		// Refused replies take no sequence number.
		if res[0].Message.Seq != 2 {
			t.Fatalf("reply seq = %d, want 2", res[0].Message.Seq)
		}
		// A retry comes back as the original, reply_to included.
		if again := mustSend(t, e, r); !again[0].Duplicate || again[0].Message.ReplyTo != q.ID || again[0].Message.ID != res[0].Message.ID {
			t.Fatalf("retried reply = %+v", again[0])
		}
		p, err := e.Chat.History(ctx, a, dm.ID, chat.HistoryQuery{Forward: true})
		if err != nil || len(p.Messages) != 2 || p.Messages[0].ReplyTo != "" || p.Messages[1].ReplyTo != q.ID {
			t.Fatalf("history = %+v, %v", p, err)
		}
		got, err := e.Chat.Message(ctx, a, dm.ID, res[0].Message.ID)
		if err != nil || got.ReplyTo != q.ID || got.Body != "answer" || got.Seq != 2 {
			t.Fatalf("Message = %+v, %v", got, err)
		}
		// Message: members only, the room must hold the message.
		if _, err := e.Chat.Message(ctx, c, dm.ID, q.ID); !errors.Is(err, chat.ErrNotMember) {
			t.Fatalf("non-member reads a message: %v", err)
		}
		if _, err := e.Chat.Message(ctx, a, dm.ID, elsewhere.ID); !errors.Is(err, chat.ErrMessageNotFound) {
			t.Fatalf("another room's message through this room: %v", err)
		}
		if _, err := e.Chat.Message(ctx, a, dm.ID, "nope"); !errors.Is(err, chat.ErrMessageNotFound) {
			t.Fatalf("unknown message: %v", err)
		}
		// A non-member cannot reply into a room, even naming a message of it.
		intruder := send(dm.ID, c, "x1", "hi")
		intruder.ReplyTo = q.ID
		if res := mustSend(t, e, intruder); !errors.Is(res[0].Err, chat.ErrNotMember) {
			t.Fatalf("non-member's reply: %v", res[0].Err)
		}
		// Blocked: bob blocks alice; alice's reply in the DM is refused, and her message
		// reads hidden for bob.
		if err := e.Users.Block(ctx, b, a); err != nil {
			t.Fatal(err)
		}
		blocked := send(dm.ID, a, "b1", "still there?")
		blocked.ReplyTo = res[0].Message.ID
		if res := mustSend(t, e, blocked); !errors.Is(res[0].Err, chat.ErrBlocked) {
			t.Fatalf("blocked user's reply: %v", res[0].Err)
		}
		if m, err := e.Chat.Message(ctx, b, dm.ID, q.ID); err != nil || !m.Hidden || m.Body != "" {
			t.Fatalf("blocked sender's message read by the blocker = %+v, %v", m, err)
		}
	})
}
