package chattest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/runtime/chat"
)

// highlighted returns the highlighted parts of a hit's snippet, lower-cased.
func highlighted(t testing.TB, h chat.SearchHit) []string {
	t.Helper()
	rs := []rune(h.Snippet)
	var out []string
	for _, r := range h.Highlights {
		if r[0] < 0 || r[1] > len(rs) || r[0] >= r[1] {
			t.Fatalf("highlight %v out of snippet %q", r, h.Snippet)
		}
		out = append(out, strings.ToLower(string(rs[r[0]:r[1]])))
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func bodies(p chat.SearchPage) []string {
	out := []string{}
	for _, h := range p.Hits {
		out = append(out, h.Message.Body)
	}
	return out
}

// runSearch is the search and notification-level part of the contract.
func runSearch(t *testing.T, newBackend func(t *testing.T) Backend) {
	ctx := context.Background()
	env := func(t *testing.T) *Env { return NewEnv(t, newBackend(t), TestLimits) }

	t.Run("search: members' rooms only, ranked then newest, snippets, filters, blocks, pages", func(t *testing.T) {
		e := env(t)
		a, b, c, d := e.User(t, "alice"), e.User(t, "bob"), e.User(t, "carol"), e.User(t, "dave")
		g, err := e.Chat.CreateGroup(ctx, a, "team", "", []string{b, c})
		if err != nil {
			t.Fatal(err)
		}
		dm, _, _ := e.Chat.OpenDirect(ctx, a, b)
		foreign, _, _ := e.Chat.OpenDirect(ctx, c, d)
		msgs := []chat.SendRequest{
			send(g.ID, b, "s1", "The quarterly Report is ready"),
			send(g.ID, c, "s2", "report, report, REPORT: numbers attached"),
			send(foreign.ID, c, "s3", "secret report for dave only"),
			send(dm.ID, b, "s4", "did you read the report?"),
			send(g.ID, b, "s5", "lunch anyone?"),
		}
		for _, m := range msgs {
			e.Clock.Advance(time.Second)
			if r := mustSend(t, e, m); r[0].Err != nil {
				t.Fatal(r[0].Err)
			}
		}
		search := func(user string, q chat.SearchQuery) chat.SearchPage {
			t.Helper()
			p, err := e.Chat.Search(ctx, user, q)
			if err != nil {
				t.Fatalf("search %+v: %v", q, err)
			}
			return p
		}
		p := search(a, chat.SearchQuery{Text: "report"})
		want := []string{"report, report, REPORT: numbers attached", "did you read the report?", "The quarterly Report is ready"}
		if got := bodies(p); !slices.Equal(got, want) || p.NextCursor != "" {
			t.Fatalf("alice's hits for report = %q (cursor %q), want %q: three mentions first, then newest, never dave's room", got, p.NextCursor, want)
		}
		for _, h := range p.Hits {
			hl := highlighted(t, h)
			if len(hl) == 0 || slices.ContainsFunc(hl, func(s string) bool { return s != "report" }) {
				t.Fatalf("hit %q: snippet %q highlights %q, want only report", h.Message.Body, h.Snippet, hl)
			}
			if h.Snippet != h.Message.Body {
				t.Fatalf("short body's snippet = %q, want the whole body %q", h.Snippet, h.Message.Body)
			}
		}
		if hl := highlighted(t, p.Hits[0]); len(hl) != 3 {
			t.Fatalf("three reports highlighted as %q", hl)
		}
		if h := p.Hits[1]; h.Message.RoomID != dm.ID || h.Message.SenderID != b || h.Message.Seq != 1 || h.Highlights[0] != [2]int{17, 23} {
			t.Fatalf("dm hit = %+v", h)
		}
		if got := bodies(search(a, chat.SearchQuery{Text: "QUARTERLY report"})); !slices.Equal(got, want[2:]) {
			t.Fatalf("every word must match, any case: %q", got)
		}
		if got := bodies(search(a, chat.SearchQuery{Text: `"read the report"`})); !slices.Equal(got, want[1:2]) {
			t.Fatalf("phrase: %q", got)
		}
		// (Ranks of a query with an exclusion are PostgreSQL's business: only the set is held.)
		if got := bodies(search(a, chat.SearchQuery{Text: "report -quarterly"})); !slices.Equal(sorted(got), sorted(want[:2])) {
			t.Fatalf("exclusion: %q", got)
		}
		if got := bodies(search(a, chat.SearchQuery{Text: "lunch or quarterly"})); len(got) != 2 {
			t.Fatalf("alternatives: %q", got)
		}
		if got := bodies(search(a, chat.SearchQuery{Text: "report", RoomID: g.ID})); !slices.Equal(got, []string{want[0], want[2]}) {
			t.Fatalf("room filter: %q", got)
		}
		if got := bodies(search(a, chat.SearchQuery{Text: "report", SenderID: b})); !slices.Equal(got, want[1:]) {
			t.Fatalf("sender filter: %q", got)
		}
		if got := bodies(search(d, chat.SearchQuery{Text: "report"})); !slices.Equal(got, []string{"secret report for dave only"}) {
			t.Fatalf("dave sees only his room: %q", got)
		}
		if got := bodies(search(a, chat.SearchQuery{Text: "nothing matches this"})); len(got) != 0 {
			t.Fatalf("no match: %q", got)
		}
		if _, err := e.Chat.Search(ctx, a, chat.SearchQuery{Text: "report", RoomID: foreign.ID}); !errors.Is(err, chat.ErrNotMember) {
			t.Fatalf("foreign room filter: %v, want ErrNotMember", err)
		}
		if _, err := e.Chat.Search(ctx, a, chat.SearchQuery{Text: "report", RoomID: "missing"}); !errors.Is(err, chat.ErrRoomNotFound) {
			t.Fatalf("missing room filter: %v", err)
		}

		// Pages of one, then a cursor replayed on another query.
		var paged []string
		q := chat.SearchQuery{Text: "report", Limit: 1}
		for range 5 {
			pg := search(a, q)
			paged = append(paged, bodies(pg)...)
			if pg.NextCursor == "" {
				break
			}
			q.Cursor = pg.NextCursor
		}
		if !slices.Equal(paged, want) {
			t.Fatalf("paged = %q, want %q", paged, want)
		}
		first := search(a, chat.SearchQuery{Text: "report", Limit: 2})
		if len(first.Hits) != 2 || first.NextCursor == "" {
			t.Fatalf("first page of 2 = %+v", first)
		}
		if _, err := e.Chat.Search(ctx, a, chat.SearchQuery{Text: "quarterly", Cursor: first.NextCursor}); !errors.Is(err, chat.ErrInvalidSearch) {
			t.Fatalf("cursor of another query: %v", err)
		}
		if _, err := e.Chat.Search(ctx, a, chat.SearchQuery{Text: "report", Cursor: "garbage!"}); !errors.Is(err, chat.ErrInvalidSearch) {
			t.Fatalf("garbage cursor: %v", err)
		}
		for _, bad := range []chat.SearchQuery{{Text: "  "}, {Text: strings.Repeat("x", chat.MaxSearchQuery+1)}, {Text: "x", Limit: chat.MaxSearchPageSize + 1}, {Text: "x\x00"}} {
			if _, err := e.Chat.Search(ctx, a, bad); !errors.Is(err, chat.ErrInvalidSearch) {
				t.Fatalf("search %.20q limit %d: %v, want ErrInvalidSearch", bad.Text, bad.Limit, err)
			}
		}

		// Blocks: alice blocks carol, whose messages disappear from alice's results.
		if err := e.Users.Block(ctx, a, c); err != nil {
			t.Fatal(err)
		}
		if got := bodies(search(a, chat.SearchQuery{Text: "report"})); !slices.Equal(got, want[1:]) {
			t.Fatalf("after blocking carol: %q", got)
		}
		if got := bodies(search(a, chat.SearchQuery{Text: "report", SenderID: c})); len(got) != 0 {
			t.Fatalf("blocked sender filter: %q", got)
		}
		if got := bodies(search(b, chat.SearchQuery{Text: "report", RoomID: g.ID})); len(got) != 2 {
			t.Fatalf("bob still sees carol's message: %q", got)
		}
		// Leaving a room takes its messages out of the results.
		if err := e.Chat.Leave(ctx, b, g.ID); err != nil {
			t.Fatal(err)
		}
		if got := bodies(search(b, chat.SearchQuery{Text: "report"})); !slices.Equal(got, []string{"did you read the report?"}) {
			t.Fatalf("bob after leaving the group: %q", got)
		}
	})

	t.Run("search: an edit re-indexes, a deleted message is never found", func(t *testing.T) {
		e := env(t)
		a, b := e.User(t, "alice"), e.User(t, "bob")
		dm, _, _ := e.Chat.OpenDirect(ctx, a, b)
		res := mustSend(t, e, send(dm.ID, a, "e1", "first draft with a typo"), send(dm.ID, a, "e2", "the draft to delete"))
		if _, err := e.Chat.EditMessage(ctx, chat.EditRequest{RoomID: dm.ID, MessageID: res[0].Message.ID, UserID: a, ClientID: "edit1", Body: "final version, typo fixed"}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Chat.DeleteMessage(ctx, chat.DeleteRequest{RoomID: dm.ID, MessageID: res[1].Message.ID, UserID: a}); err != nil {
			t.Fatal(err)
		}
		find := func(q string) []string {
			t.Helper()
			p, err := e.Chat.Search(ctx, b, chat.SearchQuery{Text: q})
			if err != nil {
				t.Fatal(err)
			}
			return bodies(p)
		}
		if got := find("draft"); len(got) != 0 {
			t.Fatalf("draft finds %q: the edited text and the deleted message must be gone", got)
		}
		if got := find("final typo"); !slices.Equal(got, []string{"final version, typo fixed"}) {
			t.Fatalf("the edited text: %q", got)
		}
		if got := find("delete"); len(got) != 0 {
			t.Fatalf("a deleted message is found: %q", got)
		}
	})

	t.Run("search: a long body's snippet is cut around the hit", func(t *testing.T) {
		e := NewEnv(t, newBackend(t), chat.Limits{MaxMessageBytes: 4096, MessagesPerSecond: 1000, MaxRoomMembers: 5})
		a, b := e.User(t, "alice"), e.User(t, "bob")
		dm, _, _ := e.Chat.OpenDirect(ctx, a, b)
		var ws []string
		for i := range 80 {
			ws = append(ws, fmt.Sprintf("filler%d", i))
		}
		ws[60] = "needle"
		body := strings.Join(ws, " ")
		if r := mustSend(t, e, send(dm.ID, a, "long", body)); r[0].Err != nil {
			t.Fatal(r[0].Err)
		}
		p, err := e.Chat.Search(ctx, b, chat.SearchQuery{Text: "Needle"})
		if err != nil || len(p.Hits) != 1 {
			t.Fatalf("search = %+v, %v", p, err)
		}
		h := p.Hits[0]
		if h.Message.Body != body || len([]rune(h.Snippet)) >= len([]rune(body)) || !strings.Contains(body, h.Snippet) {
			t.Fatalf("snippet %q of a %d-character body", h.Snippet, len(body))
		}
		if hl := highlighted(t, h); !slices.Equal(hl, []string{"needle"}) {
			t.Fatalf("highlights %q", hl)
		}
	})

	t.Run("notification levels: per member, default all, only all is pushed", func(t *testing.T) {
		e := env(t)
		a, b, c, d := e.User(t, "alice"), e.User(t, "bob"), e.User(t, "carol"), e.User(t, "dave")
		g, err := e.Chat.CreateGroup(ctx, a, "team", "", []string{b, c})
		if err != nil {
			t.Fatal(err)
		}
		level := func(user string) chat.NotifyLevel {
			t.Helper()
			rooms, err := e.Chat.Rooms(ctx, user)
			if err != nil || len(rooms) != 1 {
				t.Fatalf("rooms of %s = %+v, %v", user, rooms, err)
			}
			l, err := e.Chat.NotifyLevel(ctx, user, g.ID)
			if err != nil || l != rooms[0].NotificationLevel {
				t.Fatalf("NotifyLevel = %q, %v; room list says %q", l, err, rooms[0].NotificationLevel)
			}
			return l
		}
		if l := level(b); l != chat.NotifyAll {
			t.Fatalf("default level = %q", l)
		}
		if err := e.Chat.SetNotifyLevel(ctx, b, g.ID, chat.NotifyMuted); err != nil {
			t.Fatal(err)
		}
		if err := e.Chat.SetNotifyLevel(ctx, c, g.ID, chat.NotifyMentions); err != nil {
			t.Fatal(err)
		}
		if level(b) != chat.NotifyMuted || level(c) != chat.NotifyMentions || level(a) != chat.NotifyAll {
			t.Fatal("levels not kept per member")
		}
		got, err := e.Chat.PushTargets(ctx, g.ID, []string{a, b, c, d})
		if err != nil || !slices.Equal(got, []string{a}) {
			t.Fatalf("push targets = %v, %v; want only alice (bob muted, carol mentions only, dave no member)", got, err)
		}
		if err := e.Chat.SetNotifyLevel(ctx, b, g.ID, chat.NotifyAll); err != nil || level(b) != chat.NotifyAll {
			t.Fatalf("back to all: %v", err)
		}
		if err := e.Chat.SetNotifyLevel(ctx, b, g.ID, "loud"); !errors.Is(err, chat.ErrInvalidNotifyLevel) {
			t.Fatalf("bad level: %v", err)
		}
		if err := e.Chat.SetNotifyLevel(ctx, d, g.ID, chat.NotifyMuted); !errors.Is(err, chat.ErrNotMember) {
			t.Fatalf("non-member: %v", err)
		}
		if err := e.Chat.SetNotifyLevel(ctx, d, "missing", chat.NotifyMuted); !errors.Is(err, chat.ErrRoomNotFound) {
			t.Fatalf("missing room: %v", err)
		}
		if _, err := e.Chat.NotifyLevel(ctx, d, g.ID); !errors.Is(err, chat.ErrNotMember) {
			t.Fatalf("non-member reads a level: %v", err)
		}
		// A member who leaves and comes back starts again at all.
		if err := e.Chat.SetNotifyLevel(ctx, c, g.ID, chat.NotifyMuted); err != nil {
			t.Fatal(err)
		}
		if err := e.Chat.Leave(ctx, c, g.ID); err != nil {
			t.Fatal(err)
		}
		if err := e.Chat.AddMember(ctx, a, g.ID, c); err != nil {
			t.Fatal(err)
		}
		if level(c) != chat.NotifyAll {
			t.Fatal("a returning member kept the old level")
		}
	})
}
