// Package chattest is the contract suite every chat.Store must pass, exercised through
// chat.Service so that the memory and PostgreSQL stores are held to the same domain
// behaviour (sequences, idempotency, blocks, receipts, history).
package chattest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/runtime/chat"
	"github.com/parleychat/parley/runtime/users"
	"github.com/parleychat/parley/runtime/users/userstest"
)

// Backend is a pair of stores sharing one database (or one process).
type Backend struct {
	Chat  chat.Store
	Users users.Store
}

// Env is a ready service with its collaborators.
type Env struct {
	Chat  *chat.Service
	Users *users.Service
	Store chat.Store
	Clock *userstest.Clock
}

// NewEnv builds services over b with limits.
func NewEnv(t testing.TB, b Backend, limits chat.Limits) *Env {
	t.Helper()
	clock := userstest.NewClock()
	us := userstest.NewService(t, b.Users, users.RegistrationOpen, clock)
	cs, err := chat.NewService(b.Chat, us, limits, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	return &Env{Chat: cs, Users: us, Store: b.Chat, Clock: clock}
}

// User registers a user and returns its id.
func (e *Env) User(t testing.TB, name string) string {
	t.Helper()
	u, _ := userstest.Register(t, e.Users, name)
	return u.ID
}

// TestLimits are generous except where a test narrows them.
var TestLimits = chat.Limits{MaxMessageBytes: 64, MessagesPerSecond: 1000, MaxRoomMembers: 5}

func send(room, sender, client, body string) chat.SendRequest {
	return chat.SendRequest{RoomID: room, SenderID: sender, ClientID: client, Body: body}
}

func mustSend(t testing.TB, e *Env, reqs ...chat.SendRequest) []chat.SendResult {
	t.Helper()
	res, err := e.Chat.SendBatch(context.Background(), reqs)
	if err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	if len(res) != len(reqs) {
		t.Fatalf("SendBatch returned %d results for %d requests", len(res), len(reqs))
	}
	return res
}

func seqs(ms []chat.Message) []int64 {
	out := []int64{}
	for _, m := range ms {
		out = append(out, m.Seq)
	}
	return out
}

// Run runs the suite; newBackend returns empty stores for each subtest.
func Run(t *testing.T, newBackend func(t *testing.T) Backend) {
	ctx := context.Background()
	env := func(t *testing.T) *Env { return NewEnv(t, newBackend(t), TestLimits) }
	runSearch(t, newBackend) // search.go

	t.Run("direct room: exactly one per pair, even concurrently", func(t *testing.T) {
		e := env(t)
		a, b := e.User(t, "alice"), e.User(t, "bob")
		var wg sync.WaitGroup
		rooms := make([]chat.Room, 8)
		created := make([]bool, 8)
		errs := make([]error, 8)
		for i := range rooms {
			wg.Go(func() {
				x, y := a, b
				if i%2 == 1 {
					x, y = b, a
				}
				rooms[i], created[i], errs[i] = e.Chat.OpenDirect(ctx, x, y)
			})
		}
		wg.Wait()
		n := 0
		for i := range rooms {
			if errs[i] != nil {
				t.Fatalf("OpenDirect %d: %v", i, errs[i])
			}
			if rooms[i].ID != rooms[0].ID || rooms[i].Kind != chat.KindDirect {
				t.Fatalf("room %d = %+v, room 0 = %+v", i, rooms[i], rooms[0])
			}
			if created[i] {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d calls report creating the room, want 1", n)
		}
		ms, err := e.Chat.Members(ctx, a, rooms[0].ID)
		if err != nil || len(ms) != 2 {
			t.Fatalf("members = %+v, %v", ms, err)
		}
		if _, _, err := e.Chat.OpenDirect(ctx, a, a); !errors.Is(err, chat.ErrSelfDirect) {
			t.Fatalf("self DM: %v", err)
		}
		if _, _, err := e.Chat.OpenDirect(ctx, a, "nobody"); !errors.Is(err, chat.ErrUserNotFound) {
			t.Fatalf("DM with nobody: %v", err)
		}
	})

	t.Run("send: sequences per room from 1, idempotent across and inside batches", func(t *testing.T) {
		e := env(t)
		a, b := e.User(t, "alice"), e.User(t, "bob")
		dm, _, _ := e.Chat.OpenDirect(ctx, a, b)
		g, err := e.Chat.CreateGroup(ctx, a, "team", "", []string{b})
		if err != nil {
			t.Fatal(err)
		}
		res := mustSend(t, e,
			send(dm.ID, a, "c1", "hello"),
			send(g.ID, a, "c2", "to the group"),
			send(dm.ID, b, "c1", "hi (same client id, other sender)"),
			send(dm.ID, a, "c1", "hello again (duplicate in batch)"),
			chat.SendRequest{RoomID: dm.ID, SenderID: a, ClientID: "c3", Attachments: []string{"file_1", "file-2"}},
		)
		want := []struct {
			seq int64
			dup bool
		}{{1, false}, {1, false}, {2, false}, {1, true}, {3, false}}
		for i, w := range want {
			if res[i].Err != nil || res[i].Message.Seq != w.seq || res[i].Duplicate != w.dup {
				t.Fatalf("result %d = %+v, want seq %d dup %v", i, res[i], w.seq, w.dup)
			}
		}
		if res[3].Message.ID != res[0].Message.ID || res[3].Message.Body != "hello" {
			t.Fatalf("in-batch duplicate = %+v, want the original %+v", res[3].Message, res[0].Message)
		}
		if !slices.Equal(res[4].Message.Attachments, []string{"file_1", "file-2"}) {
			t.Fatalf("attachments = %v", res[4].Message.Attachments)
		}
		again := mustSend(t, e, send(dm.ID, a, "c1", "retry"), send(dm.ID, a, "c4", "new"))
		if !again[0].Duplicate || again[0].Message.ID != res[0].Message.ID || again[0].Message.Body != "hello" ||
			!again[0].Message.CreatedAt.Equal(res[0].Message.CreatedAt) {
			t.Fatalf("retry = %+v, want original %+v", again[0], res[0].Message)
		}
		if again[1].Message.Seq != 4 {
			t.Fatalf("next seq after a duplicate = %d, want 4 (no gap)", again[1].Message.Seq)
		}
		p, err := e.Chat.History(ctx, b, dm.ID, chat.HistoryQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if got := seqs(p.Messages); !slices.Equal(got, []int64{1, 2, 3, 4}) || p.HasMore {
			t.Fatalf("history seqs = %v (has more %v), want 1..4 once each", got, p.HasMore)
		}
		if p.Messages[0].Body != "hello" || p.Messages[0].SenderID != a || p.Messages[0].ClientID != "c1" || p.Messages[0].RoomID != dm.ID {
			t.Fatalf("stored message = %+v", p.Messages[0])
		}
		if r, _ := e.Store.Room(ctx, dm.ID); r.LastSeq != 4 {
			t.Fatalf("room last seq = %d, want 4", r.LastSeq)
		}
	})

	t.Run("send: per-request errors reject only that request", func(t *testing.T) {
		e := env(t)
		a, b, c := e.User(t, "alice"), e.User(t, "bob"), e.User(t, "carol")
		dm, _, _ := e.Chat.OpenDirect(ctx, a, b)
		res := mustSend(t, e,
			send(dm.ID, c, "x1", "not a member"),
			send("missing-room", a, "x2", "no room"),
			send(dm.ID, a, "x3", strings.Repeat("a", TestLimits.MaxMessageBytes+1)),
			send(dm.ID, a, "x4", "  \n\t "),
			send(dm.ID, a, "", "no client id"),
			send(dm.ID, a, "x6", "nul \x00 byte"),
			send(dm.ID, a, "x7", "bad utf8 \xff"),
			chat.SendRequest{RoomID: dm.ID, SenderID: a, ClientID: "x8", Body: "x", Attachments: []string{"../etc/passwd"}},
			send(dm.ID, a, "x9", "'; DROP TABLE messages; --"),
			send(dm.ID, a, "x10", strings.Repeat("é", TestLimits.MaxMessageBytes/2)),
		)
		wantErr := []error{chat.ErrNotMember, chat.ErrRoomNotFound, chat.ErrMessageTooLarge, chat.ErrEmptyMessage,
			chat.ErrInvalidClientID, chat.ErrInvalidBody, chat.ErrInvalidBody, chat.ErrInvalidAttachment, nil, nil}
		for i, w := range wantErr {
			if !errors.Is(res[i].Err, w) || (w == nil && res[i].Err != nil) {
				t.Fatalf("result %d err = %v, want %v", i, res[i].Err, w)
			}
		}
		if res[8].Message.Seq != 1 || res[8].Message.Body != "'; DROP TABLE messages; --" || res[9].Message.Seq != 2 {
			t.Fatalf("accepted messages = %+v, %+v", res[8].Message, res[9].Message)
		}
		p, _ := e.Chat.History(ctx, a, dm.ID, chat.HistoryQuery{})
		if len(p.Messages) != 2 {
			t.Fatalf("history has %d messages, want only the 2 accepted", len(p.Messages))
		}
	})

	t.Run("send: per-user rate limit, refilled over time, duplicates exempt", func(t *testing.T) {
		e := NewEnv(t, newBackend(t), chat.Limits{MaxMessageBytes: 64, MessagesPerSecond: 2, MaxRoomMembers: 5})
		a, b := e.User(t, "alice"), e.User(t, "bob")
		dm, _, _ := e.Chat.OpenDirect(ctx, a, b)
		var reqs []chat.SendRequest
		for i := range 6 {
			reqs = append(reqs, send(dm.ID, a, fmt.Sprint("r", i), "m"))
		}
		reqs = append(reqs, send(dm.ID, b, "b0", "other sender has their own bucket"))
		res := mustSend(t, e, reqs...)
		for i := range 4 { // burst is 2×rate
			if res[i].Err != nil {
				t.Fatalf("message %d within burst: %v", i, res[i].Err)
			}
		}
		for i := 4; i < 6; i++ {
			if !errors.Is(res[i].Err, chat.ErrRateLimited) {
				t.Fatalf("message %d over burst: %v", i, res[i].Err)
			}
		}
		if res[6].Err != nil {
			t.Fatalf("other sender: %v", res[6].Err)
		}
		dup := mustSend(t, e, send(dm.ID, a, "r0", "m"))
		if dup[0].Err != nil || !dup[0].Duplicate {
			t.Fatalf("duplicate while throttled = %+v, want the original", dup[0])
		}
		e.Clock.Advance(time.Second)
		if r := mustSend(t, e, send(dm.ID, a, "r4", "m")); r[0].Err != nil || r[0].Message.Seq != 6 {
			t.Fatalf("after refill = %+v", r[0])
		}
	})

	t.Run("blocks hold in DMs, groups, history, unread and recipients", func(t *testing.T) {
		e := env(t)
		a, b, c := e.User(t, "alice"), e.User(t, "bob"), e.User(t, "carol")
		dm, _, _ := e.Chat.OpenDirect(ctx, a, b)
		g, err := e.Chat.CreateGroup(ctx, c, "group", "", []string{a, b})
		if err != nil {
			t.Fatal(err)
		}
		mustSend(t, e, send(g.ID, b, "before", "before the block"))
		if err := e.Users.Block(ctx, a, b); err != nil { // alice blocks bob
			t.Fatal(err)
		}
		res := mustSend(t, e, send(dm.ID, b, "d1", "let me in"), send(dm.ID, a, "d2", "alice may still write"), send(g.ID, b, "g1", "in the group"))
		if !errors.Is(res[0].Err, chat.ErrBlocked) {
			t.Fatalf("blocked user's DM: %v, want ErrBlocked", res[0].Err)
		}
		if res[1].Err != nil || res[2].Err != nil {
			t.Fatalf("blocker's DM / group message: %v / %v", res[1].Err, res[2].Err)
		}
		if _, _, err := e.Chat.OpenDirect(ctx, b, a); !errors.Is(err, chat.ErrBlocked) {
			t.Fatalf("blocked user opens a DM with the blocker: %v", err)
		}
		rcpt, err := e.Chat.Recipients(ctx, g.ID, b)
		slices.Sort(rcpt)
		want := []string{b, c}
		slices.Sort(want)
		if err != nil || !slices.Equal(rcpt, want) {
			t.Fatalf("recipients of bob's group message = %v, %v; want %v (not alice)", rcpt, err, want)
		}
		if rcpt, _ := e.Chat.Recipients(ctx, g.ID, c); len(rcpt) != 3 {
			t.Fatalf("recipients of carol's message = %v, want all 3", rcpt)
		}
		p, err := e.Chat.History(ctx, a, g.ID, chat.HistoryQuery{})
		if err != nil || len(p.Messages) != 2 {
			t.Fatalf("alice's group history = %+v, %v", p, err)
		}
		for _, m := range p.Messages {
			if !m.Hidden || m.Body != "" {
				t.Fatalf("bob's message in alice's history = %+v, want hidden", m)
			}
		}
		if p, _ := e.Chat.History(ctx, c, g.ID, chat.HistoryQuery{}); p.Messages[1].Hidden || p.Messages[1].Body != "in the group" {
			t.Fatalf("carol's view = %+v, want visible", p.Messages[1])
		}
		rooms, err := e.Chat.Rooms(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rooms {
			if r.Room.ID == g.ID && (r.Unread != 0 || r.LastMessage == nil || !r.LastMessage.Hidden) {
				t.Fatalf("alice's group summary = %+v, want 0 unread and a hidden last message", r)
			}
		}
		d := e.User(t, "dave")
		if err := e.Users.Block(ctx, d, c); err != nil { // dave blocks carol
			t.Fatal(err)
		}
		if err := e.Chat.AddMember(ctx, c, g.ID, d); !errors.Is(err, chat.ErrBlocked) {
			t.Fatalf("carol adds dave who blocked her: %v", err)
		}
		if _, err := e.Chat.CreateGroup(ctx, c, "new", "", []string{d}); !errors.Is(err, chat.ErrBlocked) {
			t.Fatalf("carol creates a group with dave who blocked her: %v", err)
		}
		if err := e.Users.Unblock(ctx, a, b); err != nil {
			t.Fatal(err)
		}
		if r := mustSend(t, e, send(dm.ID, b, "d3", "unblocked")); r[0].Err != nil {
			t.Fatalf("after unblock: %v", r[0].Err)
		}
	})

	t.Run("groups: add, remove, leave, transfer, capacity", func(t *testing.T) {
		e := env(t)
		ids := []string{}
		for _, n := range []string{"owner", "mem1", "mem2", "mem3", "mem4", "mem5"} {
			ids = append(ids, e.User(t, n))
		}
		owner, m1, m2, m3, m4, m5 := ids[0], ids[1], ids[2], ids[3], ids[4], ids[5]
		if _, err := e.Chat.CreateGroup(ctx, owner, "  ", "", nil); !errors.Is(err, chat.ErrInvalidRoom) {
			t.Fatalf("blank name: %v", err)
		}
		if _, err := e.Chat.CreateGroup(ctx, owner, "g", "", []string{"ghost"}); !errors.Is(err, chat.ErrUserNotFound) {
			t.Fatalf("unknown member: %v", err)
		}
		if _, err := e.Chat.CreateGroup(ctx, owner, "g", "", ids[1:]); !errors.Is(err, chat.ErrRoomFull) {
			t.Fatalf("6 members with max 5: %v", err)
		}
		g, err := e.Chat.CreateGroup(ctx, owner, "g", "topic", []string{m1, m1})
		if err != nil || g.OwnerID != owner || g.Name != "g" || g.Topic != "topic" {
			t.Fatalf("create = %+v, %v", g, err)
		}
		if err := e.Chat.AddMember(ctx, m2, g.ID, m3); !errors.Is(err, chat.ErrNotMember) {
			t.Fatalf("non-member adds: %v", err)
		}
		for _, id := range []string{m2, m3, m4} {
			if err := e.Chat.AddMember(ctx, m1, g.ID, id); err != nil {
				t.Fatalf("member adds %s: %v", id, err)
			}
		}
		if err := e.Chat.AddMember(ctx, owner, g.ID, m2); !errors.Is(err, chat.ErrAlreadyMember) {
			t.Fatalf("add twice: %v", err)
		}
		if err := e.Chat.AddMember(ctx, owner, g.ID, m5); !errors.Is(err, chat.ErrRoomFull) {
			t.Fatalf("6th member: %v", err)
		}
		if err := e.Chat.RemoveMember(ctx, m1, g.ID, m2); !errors.Is(err, chat.ErrNotOwner) {
			t.Fatalf("member removes member: %v", err)
		}
		if err := e.Chat.RemoveMember(ctx, owner, g.ID, m2); err != nil {
			t.Fatalf("owner removes: %v", err)
		}
		if _, err := e.Chat.History(ctx, m2, g.ID, chat.HistoryQuery{}); !errors.Is(err, chat.ErrNotMember) {
			t.Fatalf("removed member reads history: %v", err)
		}
		if err := e.Chat.Leave(ctx, owner, g.ID); !errors.Is(err, chat.ErrOwnerMustTransfer) {
			t.Fatalf("owner leaves: %v", err)
		}
		if err := e.Chat.TransferOwnership(ctx, m1, g.ID, m3); !errors.Is(err, chat.ErrNotOwner) {
			t.Fatalf("non-owner transfers: %v", err)
		}
		if err := e.Chat.TransferOwnership(ctx, owner, g.ID, m2); !errors.Is(err, chat.ErrNotMember) {
			t.Fatalf("transfer to non-member: %v", err)
		}
		if err := e.Chat.TransferOwnership(ctx, owner, g.ID, m3); err != nil {
			t.Fatalf("transfer: %v", err)
		}
		if err := e.Chat.RemoveMember(ctx, owner, g.ID, owner); err != nil {
			t.Fatalf("former owner leaves: %v", err)
		}
		r, err := e.Chat.Room(ctx, m3, g.ID)
		if err != nil || r.OwnerID != m3 {
			t.Fatalf("room after transfer = %+v, %v", r, err)
		}
		name := "renamed"
		if _, err := e.Chat.UpdateRoom(ctx, m1, g.ID, &name, nil); !errors.Is(err, chat.ErrNotOwner) {
			t.Fatalf("non-owner renames: %v", err)
		}
		if r, err := e.Chat.UpdateRoom(ctx, m3, g.ID, &name, nil); err != nil || r.Name != name || r.Topic != "topic" {
			t.Fatalf("rename = %+v, %v", r, err)
		}
		ms, _ := e.Chat.Members(ctx, m3, g.ID)
		if len(ms) != 3 {
			t.Fatalf("members = %+v, want m1, m3, m4", ms)
		}
		dm, _, _ := e.Chat.OpenDirect(ctx, m1, m3)
		if err := e.Chat.AddMember(ctx, m1, dm.ID, m4); !errors.Is(err, chat.ErrNotGroup) {
			t.Fatalf("add to a DM: %v", err)
		}
	})

	t.Run("history pages backwards and forwards", func(t *testing.T) {
		e := env(t)
		a, b, c := e.User(t, "alice"), e.User(t, "bob"), e.User(t, "carol")
		dm, _, _ := e.Chat.OpenDirect(ctx, a, b)
		var reqs []chat.SendRequest
		for i := range 25 {
			reqs = append(reqs, send(dm.ID, a, fmt.Sprint("h", i), fmt.Sprint("message ", i+1)))
		}
		mustSend(t, e, reqs...)
		var back []int64
		before := int64(0)
		for {
			p, err := e.Chat.History(ctx, b, dm.ID, chat.HistoryQuery{Before: before, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			back = append(seqs(p.Messages), back...)
			if !p.HasMore {
				break
			}
			before = p.Messages[0].Seq
		}
		var fwd []int64
		after := int64(0)
		for {
			p, err := e.Chat.History(ctx, b, dm.ID, chat.HistoryQuery{Forward: true, After: after, Limit: 7})
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Messages) == 0 {
				t.Fatal("empty forward page with has_more")
			}
			fwd = append(fwd, seqs(p.Messages)...)
			after = p.Messages[len(p.Messages)-1].Seq
			if !p.HasMore {
				break
			}
		}
		want := make([]int64, 25)
		for i := range want {
			want[i] = int64(i + 1)
		}
		if !slices.Equal(back, want) || !slices.Equal(fwd, want) {
			t.Fatalf("backwards %v\nforwards %v\nwant %v", back, fwd, want)
		}
		p, _ := e.Chat.History(ctx, b, dm.ID, chat.HistoryQuery{Forward: true, After: 23})
		if got := seqs(p.Messages); !slices.Equal(got, []int64{24, 25}) || p.HasMore {
			t.Fatalf("resume after 23 = %v", got)
		}
		if p, _ := e.Chat.History(ctx, b, dm.ID, chat.HistoryQuery{Forward: true, After: 25}); len(p.Messages) != 0 || p.HasMore {
			t.Fatalf("resume after the last = %+v", p)
		}
		if _, err := e.Chat.History(ctx, b, dm.ID, chat.HistoryQuery{Forward: true, Before: 5, After: 2}); !errors.Is(err, chat.ErrInvalidHistory) {
			t.Fatalf("before and after together: %v", err)
		}
		if _, err := e.Chat.History(ctx, c, dm.ID, chat.HistoryQuery{}); !errors.Is(err, chat.ErrNotMember) {
			t.Fatalf("non-member history: %v", err)
		}
		if _, err := e.Chat.History(ctx, c, "missing", chat.HistoryQuery{}); !errors.Is(err, chat.ErrRoomNotFound) {
			t.Fatalf("missing room history: %v", err)
		}
	})

	t.Run("receipts move forward only, clamp, and drive unread counts", func(t *testing.T) {
		e := env(t)
		a, b, c := e.User(t, "alice"), e.User(t, "bob"), e.User(t, "carol")
		dm, _, _ := e.Chat.OpenDirect(ctx, a, b)
		for i := range 5 {
			mustSend(t, e, send(dm.ID, a, fmt.Sprint("u", i), "m"))
		}
		mustSend(t, e, send(dm.ID, b, "own", "bob's own message is never unread for bob"))
		sum := func(user string) chat.RoomSummary {
			rooms, err := e.Chat.Rooms(ctx, user)
			if err != nil || len(rooms) != 1 {
				t.Fatalf("rooms of %s = %+v, %v", user, rooms, err)
			}
			return rooms[0]
		}
		if s := sum(b); s.Unread != 5 || s.LastMessage == nil || s.LastMessage.Seq != 6 || s.Room.LastSeq != 6 {
			t.Fatalf("bob's summary = %+v, want 5 unread, last seq 6", s)
		}
		e.Clock.Advance(time.Second)
		rc, err := e.Chat.AdvanceReceipt(ctx, b, dm.ID, chat.Delivered, 4)
		if err != nil || rc.DeliveredSeq != 4 || rc.ReadSeq != 0 || !rc.UpdatedAt.Equal(e.Clock.Now()) {
			t.Fatalf("delivered 4 = %+v, %v", rc, err)
		}
		rc, err = e.Chat.AdvanceReceipt(ctx, b, dm.ID, chat.Read, 2)
		if err != nil || rc.DeliveredSeq != 4 || rc.ReadSeq != 2 {
			t.Fatalf("read 2 = %+v, %v", rc, err)
		}
		if s := sum(b); s.Unread != 3 {
			t.Fatalf("bob's unread after reading 2 = %d, want 3", s.Unread)
		}
		prev := rc
		e.Clock.Advance(time.Second)
		rc, err = e.Chat.AdvanceReceipt(ctx, b, dm.ID, chat.Delivered, 1)
		if err != nil || rc.DeliveredSeq != 4 || rc.ReadSeq != 2 || !rc.UpdatedAt.Equal(prev.UpdatedAt) {
			t.Fatalf("lower delivered = %+v, %v; want unchanged %+v", rc, err, prev)
		}
		rc, err = e.Chat.AdvanceReceipt(ctx, b, dm.ID, chat.Read, 1000)
		if err != nil || rc.DeliveredSeq != 6 || rc.ReadSeq != 6 {
			t.Fatalf("read above last = %+v, %v; want clamped to 6 and delivered raised", rc, err)
		}
		if s := sum(b); s.Unread != 0 {
			t.Fatalf("bob's unread after reading all = %d", s.Unread)
		}
		if _, err := e.Chat.AdvanceReceipt(ctx, c, dm.ID, chat.Read, 1); !errors.Is(err, chat.ErrNotMember) {
			t.Fatalf("non-member receipt: %v", err)
		}
		if _, err := e.Chat.AdvanceReceipt(ctx, b, "missing", chat.Read, 1); !errors.Is(err, chat.ErrRoomNotFound) {
			t.Fatalf("missing room receipt: %v", err)
		}
		if _, err := e.Chat.AdvanceReceipt(ctx, b, dm.ID, "seen", 1); !errors.Is(err, chat.ErrInvalidReceipt) {
			t.Fatalf("bad kind: %v", err)
		}
		if _, err := e.Chat.AdvanceReceipt(ctx, b, dm.ID, chat.Read, -1); !errors.Is(err, chat.ErrInvalidReceipt) {
			t.Fatalf("negative seq: %v", err)
		}
		list, err := e.Chat.Receipts(ctx, a, dm.ID)
		if err != nil || len(list) != 2 {
			t.Fatalf("receipts = %+v, %v", list, err)
		}
		for _, r := range list {
			if r.UserID == b && (r.ReadSeq != 6 || r.DeliveredSeq != 6) {
				t.Fatalf("bob's receipt = %+v", r)
			}
			if r.UserID == a && (r.ReadSeq != 0 || r.DeliveredSeq != 0) {
				t.Fatalf("alice's receipt = %+v", r)
			}
		}
		if _, err := e.Chat.Receipts(ctx, c, dm.ID); !errors.Is(err, chat.ErrNotMember) {
			t.Fatalf("non-member receipts: %v", err)
		}
		if _, err := e.Chat.Members(ctx, c, dm.ID); !errors.Is(err, chat.ErrNotMember) {
			t.Fatalf("non-member members: %v", err)
		}
	})

	t.Run("batched receipts compose in order and report what moved", func(t *testing.T) {
		e := env(t)
		a, b, c := e.User(t, "alice"), e.User(t, "bob"), e.User(t, "carol")
		dm, _, _ := e.Chat.OpenDirect(ctx, a, b)
		for i := range 4 {
			mustSend(t, e, send(dm.ID, a, fmt.Sprint("r", i), "m"))
		}
		e.Clock.Advance(time.Second)
		res, err := e.Chat.AdvanceReceipts(ctx, []chat.ReceiptRequest{
			{RoomID: dm.ID, UserID: b, Kind: chat.Delivered, Seq: 3},
			{RoomID: dm.ID, UserID: b, Kind: chat.Read, Seq: 2},
			{RoomID: dm.ID, UserID: b, Kind: chat.Delivered, Seq: 1},
			{RoomID: dm.ID, UserID: c, Kind: chat.Read, Seq: 1},
			{RoomID: "missing", UserID: b, Kind: chat.Read, Seq: 1},
			{RoomID: dm.ID, UserID: b, Kind: "seen", Seq: 1},
			{RoomID: dm.ID, UserID: b, Kind: chat.Read, Seq: 99},
		})
		if err != nil {
			t.Fatal(err)
		}
		type want struct {
			d, r  int64
			moved bool
			err   error
		}
		wants := []want{{3, 0, true, nil}, {3, 2, true, nil}, {3, 2, false, nil}, {0, 0, false, chat.ErrNotMember},
			{0, 0, false, chat.ErrRoomNotFound}, {0, 0, false, chat.ErrInvalidReceipt}, {4, 4, true, nil}}
		for i, w := range wants {
			got := res[i]
			if !errors.Is(got.Err, w.err) || (w.err == nil && got.Err != nil) || got.Moved != w.moved ||
				(w.err == nil && (got.Receipt.DeliveredSeq != w.d || got.Receipt.ReadSeq != w.r || got.Receipt.UserID != b)) {
				t.Fatalf("result %d = %+v, want %+v", i, got, w)
			}
		}
		if !res[0].Receipt.UpdatedAt.Equal(e.Clock.Now()) {
			t.Fatalf("updated at %v, want %v", res[0].Receipt.UpdatedAt, e.Clock.Now())
		}
	})

	t.Run("concurrent batches keep every room gap-free", func(t *testing.T) {
		e := env(t)
		var senders []string
		for i := range 4 {
			senders = append(senders, e.User(t, fmt.Sprint("sender", i)))
		}
		g1, _ := e.Chat.CreateGroup(ctx, senders[0], "g1", "", senders[1:])
		g2, _ := e.Chat.CreateGroup(ctx, senders[0], "g2", "", senders[1:])
		var wg sync.WaitGroup
		const perSender = 20
		errs := make(chan error, len(senders)*perSender)
		for si, s := range senders {
			wg.Go(func() {
				for i := range perSender / 4 {
					var reqs []chat.SendRequest
					for j := range 4 {
						room := g1.ID
						if (si+j)%2 == 1 {
							room = g2.ID
						}
						reqs = append(reqs, send(room, s, fmt.Sprintf("k%d-%d", i, j), "m"))
					}
					res, err := e.Chat.SendBatch(ctx, reqs)
					for attempt := 0; err != nil && attempt < 5; attempt++ {
						// A failed batch committed nothing: retry it, as the pipeline does.
						res, err = e.Chat.SendBatch(ctx, reqs)
					}
					if err != nil {
						errs <- err
						return
					}
					for _, r := range res {
						if r.Err != nil {
							errs <- r.Err
						}
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("concurrent send: %v", err)
		}
		total := 0
		for _, g := range []chat.Room{g1, g2} {
			p, err := e.Chat.History(ctx, senders[0], g.ID, chat.HistoryQuery{Forward: true, Limit: chat.MaxPageSize})
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range p.Messages {
				if m.Seq != int64(i+1) {
					t.Fatalf("room %s: position %d has seq %d", g.Name, i, m.Seq)
				}
			}
			total += len(p.Messages)
		}
		if total != len(senders)*perSender {
			t.Fatalf("stored %d messages, want %d", total, len(senders)*perSender)
		}
	})

	t.Run("the same client id sent concurrently is stored once", func(t *testing.T) {
		e := env(t)
		a, b := e.User(t, "alice"), e.User(t, "bob")
		dm, _, _ := e.Chat.OpenDirect(ctx, a, b)
		const racers = 6
		var wg sync.WaitGroup
		ids := make([]string, racers)
		errs := make([]error, racers)
		for i := range racers {
			wg.Go(func() {
				req := []chat.SendRequest{send(dm.ID, a, "same", "once")}
				res, err := e.Chat.SendBatch(ctx, req)
				for attempt := 0; err != nil && attempt < 5; attempt++ {
					res, err = e.Chat.SendBatch(ctx, req) // a failed batch committed nothing
				}
				if err != nil {
					errs[i] = err
					return
				}
				if res[0].Err != nil {
					errs[i] = res[0].Err
					return
				}
				ids[i] = res[0].Message.ID
			})
		}
		wg.Wait()
		for i := range racers {
			if errs[i] != nil || ids[i] == "" || ids[i] != ids[0] {
				t.Fatalf("racer %d: id %q err %v; racer 0 id %q", i, ids[i], errs[i], ids[0])
			}
		}
		p, _ := e.Chat.History(ctx, a, dm.ID, chat.HistoryQuery{})
		if len(p.Messages) != 1 || p.Messages[0].Seq != 1 {
			t.Fatalf("history = %+v, want exactly one message", p.Messages)
		}
	})

	t.Run("store: appending to a missing room stores nothing", func(t *testing.T) {
		e := env(t)
		a, b := e.User(t, "alice"), e.User(t, "bob")
		dm, _, _ := e.Chat.OpenDirect(ctx, a, b)
		now := e.Clock.Now()
		_, err := e.Store.AppendMessages(ctx, []chat.Message{
			{ID: "m1", RoomID: dm.ID, SenderID: a, ClientID: "k1", Body: "x", CreatedAt: now},
			{ID: "m2", RoomID: "missing", SenderID: a, ClientID: "k2", Body: "x", CreatedAt: now},
		})
		if !errors.Is(err, chat.ErrNotFound) {
			t.Fatalf("AppendMessages with a missing room = %v, want ErrNotFound", err)
		}
		if p, _ := e.Store.History(ctx, dm.ID, chat.HistoryQuery{Limit: 10}); len(p.Messages) != 0 {
			t.Fatalf("partial batch stored: %+v", p.Messages)
		}
		if r, _ := e.Store.Room(ctx, dm.ID); r.LastSeq != 0 {
			t.Fatalf("sequence moved to %d by a failed batch", r.LastSeq)
		}
	})

	t.Run("files: readable by members of rooms that reference them, blocks close the path", func(t *testing.T) {
		e := env(t)
		a, b, c, d := e.User(t, "alice"), e.User(t, "bob"), e.User(t, "carol"), e.User(t, "dave")
		dm, _, err := e.Chat.OpenDirect(ctx, a, b)
		if err != nil {
			t.Fatal(err)
		}
		group, err := e.Chat.CreateGroup(ctx, a, "g", "", []string{c})
		if err != nil {
			t.Fatal(err)
		}
		att := chat.SendRequest{RoomID: dm.ID, SenderID: a, ClientID: "f1", Attachments: []string{"file-1"}}
		if res := mustSend(t, e, att); res[0].Err != nil {
			t.Fatal(res[0].Err)
		}
		if ok, err := e.Chat.FileReferenced(ctx, "file-1"); err != nil || !ok {
			t.Fatalf("FileReferenced(file-1) = %v, %v", ok, err)
		}
		if ok, err := e.Chat.FileReferenced(ctx, "file-2"); err != nil || ok {
			t.Fatalf("FileReferenced(file-2) = %v, %v", ok, err)
		}
		can := func(user, file string) bool {
			t.Helper()
			ok, err := e.Chat.CanReadFile(ctx, user, a, file)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !can(b, "file-1") || can(c, "file-1") || can(d, "file-1") {
			t.Fatal("file-1 shared in the DM: bob reads it, carol (not in the DM) and dave do not")
		}
		if res := mustSend(t, e, chat.SendRequest{RoomID: group.ID, SenderID: a, ClientID: "f2", Attachments: []string{"file-1"}}); res[0].Err != nil {
			t.Fatal(res[0].Err)
		}
		if !can(c, "file-1") {
			t.Fatal("carol cannot read file-1 after it was shared in her group")
		}
		if err := e.Users.Block(ctx, c, a); err != nil {
			t.Fatal(err)
		}
		if can(c, "file-1") {
			t.Fatal("carol blocked alice but still reads her file")
		}
		if err := e.Users.Block(ctx, a, b); err != nil {
			t.Fatal(err)
		}
		if can(b, "file-1") {
			t.Fatal("alice blocked bob but he still reads her file")
		}
	})

	runReplies(t, env)
	runMentions(t, env)
	runEvents(t, env, newBackend)
	runOutbox(t, env)   // outbox.go
	runContacts(t, env) // contacts.go

	t.Run("recipients of an unknown room", func(t *testing.T) {
		e := env(t)
		if _, err := e.Chat.Recipients(ctx, "missing", "x"); !errors.Is(err, chat.ErrRoomNotFound) {
			t.Fatalf("Recipients(missing) = %v", err)
		}
	})
}
