package bridge

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parleychat/parley/runtime/chat"
	"github.com/parleychat/parley/runtime/chat/chattest"
	"github.com/parleychat/parley/runtime/gateway"
	"github.com/parleychat/parley/runtime/protocol"
	"github.com/parleychat/parley/runtime/store/memory"
)

func newChat(t *testing.T, perSecond float64) (*chattest.Env, Chat) {
	env := chattest.NewEnv(t, chattest.Backend{Chat: memory.NewChat(), Users: memory.NewUsers()},
		chat.Limits{MaxMessageBytes: 256, MessagesPerSecond: perSecond, MaxRoomMembers: 10})
	return env, Chat{Service: env.Chat}
}

// A backlog sent at a legal rate (2.5/s under a limit of 10/s), processed late in one
// burst (after an outage), is all accepted: the gateway judged the rate when each message
// was sent, so the pipeline does not judge it again by the time it processes them.
func TestBacklogSentAtALegalRateIsAccepted(t *testing.T) {
	ctx := context.Background()
	env, c := newChat(t, 10)
	alice, bob := env.User(t, "alice"), env.User(t, "bob")
	room, err := env.Chat.CreateGroup(ctx, alice, "team", "", []string{bob})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Minute)
	var backlog []protocol.MessageSent
	for i := range 100 { // 40 s of sending at 2.5/s, five times the burst
		backlog = append(backlog, protocol.MessageSent{RoomID: room.ID, SenderID: alice, ClientID: fmt.Sprint("c", i),
			Body: "hi", SentAt: start.Add(time.Duration(i) * 400 * time.Millisecond)})
	}
	out, err := c.AcceptMessages(ctx, backlog)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range out {
		if o.Rejected != nil {
			t.Fatalf("message %d of the backlog refused: %s (%s)", i, o.Rejected.Reason, o.Rejected.Detail)
		}
		if o.Delivered.Seq != int64(i+1) {
			t.Fatalf("message %d stored as seq %d", i, o.Delivered.Seq)
		}
	}
	// The REST edge still judges the rate when the request arrives.
	var limited bool
	for i := range 30 {
		if _, _, err := env.Chat.Send(ctx, chat.SendRequest{RoomID: room.ID, SenderID: bob, ClientID: fmt.Sprint("r", i), Body: "x"}); errors.Is(err, chat.ErrRateLimited) {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("30 REST sends at once were never rate-limited")
	}
}

// CheckMember answers the gateway's membership check with gateway.ErrForbidden for a
// non-member and for an unknown room.
func TestCheckMember(t *testing.T) {
	ctx := context.Background()
	env, c := newChat(t, 10)
	alice, bob, carol := env.User(t, "alice"), env.User(t, "bob"), env.User(t, "carol")
	room, err := env.Chat.CreateGroup(ctx, alice, "team", "", []string{bob})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckMember(ctx, bob, room.ID); err != nil {
		t.Fatalf("member: %v", err)
	}
	if err := c.CheckMember(ctx, carol, room.ID); !errors.Is(err, gateway.ErrForbidden) {
		t.Fatalf("non-member: %v", err)
	}
	if err := env.Chat.RemoveMember(ctx, alice, room.ID, bob); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckMember(ctx, bob, room.ID); !errors.Is(err, gateway.ErrForbidden) {
		t.Fatalf("removed member: %v", err)
	}
	if err := c.CheckMember(ctx, bob, "no-such-room"); !errors.Is(err, gateway.ErrForbidden) {
		t.Fatalf("unknown room: %v", err)
	}
}
