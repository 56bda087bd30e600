package memory

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/parleychat/parley/runtime/chat"
)

// Chat is an in-memory chat.Store.
type Chat struct {
	relay    sync.Mutex // held by the one running RelayAnnouncements
	mu       sync.Mutex
	rooms    map[string]*chat.Room
	direct   map[[2]string]string             // sorted pair -> room id
	members  map[string]map[string]*memberRow // room -> user -> row
	messages map[string][]chat.Message        // room -> by seq (index seq-1)
	byClient map[chat.ClientKey]chat.Message
	byID     map[string]chat.Message
	events   map[string][]chat.RoomEvent  // room -> by event seq (index seq-1), Message unset
	evClient map[[2]string]chat.RoomEvent // (actor, client id) -> event
}

type memberRow struct {
	member  chat.Member
	receipt chat.Receipt
	level   chat.NotifyLevel // "" is chat.NotifyAll
}

// NewChat returns an empty store.
func NewChat() *Chat {
	return &Chat{
		rooms: map[string]*chat.Room{}, direct: map[[2]string]string{},
		members: map[string]map[string]*memberRow{}, messages: map[string][]chat.Message{},
		byClient: map[chat.ClientKey]chat.Message{}, byID: map[string]chat.Message{},
		events: map[string][]chat.RoomEvent{}, evClient: map[[2]string]chat.RoomEvent{},
	}
}

var _ chat.Store = (*Chat)(nil)

func clone(m chat.Message) chat.Message {
	m.Attachments = slices.Clone(m.Attachments)
	m.Mentions = slices.Clone(m.Mentions)
	if m.Attachments == nil {
		m.Attachments = []string{}
	}
	if m.EditedAt != nil {
		at := *m.EditedAt
		m.EditedAt = &at
	}
	if m.Reactions != nil {
		rs := make([]chat.Reaction, len(m.Reactions))
		for i, r := range m.Reactions {
			rs[i] = chat.Reaction{Emoji: r.Emoji, Count: r.Count, Users: slices.Clone(r.Users)}
		}
		m.Reactions = rs
	}
	return m
}

// ChangeMessage implements chat.Store.
func (s *Chat) ChangeMessage(_ context.Context, c chat.MessageChange) (chat.ChangeResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.byID[c.MessageID]
	if !ok || cur.RoomID != c.RoomID {
		return chat.ChangeResult{}, chat.ErrNotFound
	}
	cur = clone(s.messages[cur.RoomID][cur.Seq-1])
	if c.ClientID != "" {
		if ev, ok := s.evClient[[2]string{c.ActorID, c.ClientID}]; ok {
			ev.Message = cur
			return chat.ChangeResult{Event: ev, Duplicate: true}, nil
		}
	}
	r := s.rooms[c.RoomID]
	next, changed, err := chat.ApplyChange(cur, c, r.LastEventSeq+1)
	if err != nil {
		return chat.ChangeResult{}, err
	}
	if !changed {
		return chat.ChangeResult{Event: chat.RoomEvent{RoomID: c.RoomID, MessageID: c.MessageID, Message: cur}, NoOp: true}, nil
	}
	r.LastEventSeq++
	ev := chat.RoomEvent{RoomID: c.RoomID, EventSeq: r.LastEventSeq, Kind: c.Kind, MessageID: c.MessageID,
		ActorID: c.ActorID, ClientID: c.ClientID, CreatedAt: c.At}
	s.events[c.RoomID] = append(s.events[c.RoomID], ev)
	if c.ClientID != "" {
		s.evClient[[2]string{c.ActorID, c.ClientID}] = ev
	}
	s.messages[c.RoomID][cur.Seq-1] = next
	s.byID[next.ID] = next
	s.byClient[chat.ClientKey{SenderID: next.SenderID, ClientID: next.ClientID}] = next
	ev.Message = clone(next)
	return chat.ChangeResult{Event: ev}, nil
}

// EventsAfter implements chat.Store.
func (s *Chat) EventsAfter(_ context.Context, roomID string, after int64, limit int) ([]chat.RoomEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	evs := s.events[roomID]
	lo := min(int(max(after, 0)), len(evs))
	hi := min(lo+limit, len(evs))
	out := []chat.RoomEvent{}
	for _, ev := range evs[lo:hi] {
		ev.Message = clone(s.byID[ev.MessageID])
		out = append(out, ev)
	}
	return out, nil
}

func (s *Chat) addMemberLocked(roomID, userID string, at time.Time) {
	if s.members[roomID] == nil {
		s.members[roomID] = map[string]*memberRow{}
	}
	s.members[roomID][userID] = &memberRow{
		member:  chat.Member{RoomID: roomID, UserID: userID, JoinedAt: at},
		receipt: chat.Receipt{RoomID: roomID, UserID: userID, UpdatedAt: at},
	}
}

// CreateDirectRoom implements chat.Store.
func (s *Chat) CreateDirectRoom(_ context.Context, room chat.Room, a, b string) (chat.Room, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pair := [2]string{min(a, b), max(a, b)}
	if id, ok := s.direct[pair]; ok {
		return *s.rooms[id], false, nil
	}
	room.Kind = chat.KindDirect
	r := room
	s.rooms[r.ID] = &r
	s.direct[pair] = r.ID
	s.addMemberLocked(r.ID, a, r.CreatedAt)
	s.addMemberLocked(r.ID, b, r.CreatedAt)
	return r, true, nil
}

// CreateGroupRoom implements chat.Store.
func (s *Chat) CreateGroupRoom(_ context.Context, room chat.Room, memberIDs []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.rooms[room.ID]; ok {
		return chat.ErrConflict
	}
	r := room
	s.rooms[r.ID] = &r
	for _, id := range memberIDs {
		s.addMemberLocked(r.ID, id, r.CreatedAt)
	}
	return nil
}

// Room implements chat.Store.
func (s *Chat) Room(_ context.Context, id string) (chat.Room, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.rooms[id]
	if !ok {
		return chat.Room{}, chat.ErrNotFound
	}
	return *r, nil
}

// RoomsByID implements chat.Store.
func (s *Chat) RoomsByID(_ context.Context, ids []string) (map[string]chat.Room, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]chat.Room{}
	for _, id := range ids {
		if r, ok := s.rooms[id]; ok {
			out[id] = *r
		}
	}
	return out, nil
}

// Memberships implements chat.Store.
func (s *Chat) Memberships(_ context.Context, pairs []chat.Membership) (map[chat.Membership]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[chat.Membership]bool{}
	for _, p := range pairs {
		if _, ok := s.members[p.RoomID][p.UserID]; ok {
			out[p] = true
		}
	}
	return out, nil
}

// UpdateRoom implements chat.Store.
func (s *Chat) UpdateRoom(_ context.Context, id string, name, topic *string) (chat.Room, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.rooms[id]
	if !ok {
		return chat.Room{}, chat.ErrNotFound
	}
	if name != nil {
		r.Name = *name
	}
	if topic != nil {
		r.Topic = *topic
	}
	return *r, nil
}

// SetOwner implements chat.Store.
func (s *Chat) SetOwner(_ context.Context, roomID, ownerID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.rooms[roomID]
	if !ok {
		return chat.ErrNotFound
	}
	r.OwnerID = ownerID
	return nil
}

// AddMember implements chat.Store.
func (s *Chat) AddMember(_ context.Context, roomID, userID string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.rooms[roomID]; !ok {
		return chat.ErrNotFound
	}
	if _, ok := s.members[roomID][userID]; ok {
		return chat.ErrConflict
	}
	s.addMemberLocked(roomID, userID, at)
	return nil
}

// RemoveMember implements chat.Store.
func (s *Chat) RemoveMember(_ context.Context, roomID, userID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.members[roomID][userID]; !ok {
		return chat.ErrNotFound
	}
	delete(s.members[roomID], userID)
	return nil
}

// Members implements chat.Store.
func (s *Chat) Members(_ context.Context, roomID string) ([]chat.Member, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]chat.Member, 0, len(s.members[roomID]))
	for _, m := range s.members[roomID] {
		out = append(out, m.member)
	}
	slices.SortFunc(out, func(a, b chat.Member) int { return strings.Compare(a.UserID, b.UserID) })
	return out, nil
}

// Contacts implements chat.Store.
func (s *Chat) Contacts(_ context.Context, userID string, exclude []string, largeGroup int) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	skip := map[string]bool{userID: true}
	for _, u := range exclude {
		skip[u] = true
	}
	seen := map[string]bool{}
	for roomID, members := range s.members {
		if _, ok := members[userID]; !ok {
			continue
		}
		if r := s.rooms[roomID]; r == nil || (r.Kind != chat.KindDirect && len(members) > largeGroup) {
			continue
		}
		for u := range members {
			if !skip[u] {
				seen[u] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for u := range seen {
		out = append(out, u)
	}
	sort.Strings(out)
	return out, nil
}

// MembersAmong implements chat.Store.
func (s *Chat) MembersAmong(_ context.Context, roomID string, userIDs []string) (map[string]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]bool{}
	for _, id := range userIDs {
		if _, ok := s.members[roomID][id]; ok {
			out[id] = true
		}
	}
	return out, nil
}

// CountMembers implements chat.Store.
func (s *Chat) CountMembers(_ context.Context, roomID string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.members[roomID]), nil
}

// RoomsOf implements chat.Store.
func (s *Chat) RoomsOf(_ context.Context, userID string, exclude []string) ([]chat.RoomSummary, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []chat.RoomSummary{}
	for roomID, ms := range s.members {
		row, ok := ms[userID]
		if !ok {
			continue
		}
		sum := chat.RoomSummary{Room: *s.rooms[roomID], Receipt: row.receipt, NotificationLevel: row.levelOrDefault()}
		msgs := s.messages[roomID]
		if len(msgs) > 0 {
			last := clone(msgs[len(msgs)-1])
			sum.LastMessage = &last
		}
		for _, m := range msgs[min(int(row.receipt.ReadSeq), len(msgs)):] {
			if !slices.Contains(exclude, m.SenderID) {
				sum.Unread++
				if slices.Contains(m.Mentions, userID) {
					sum.Mentions++
				}
			}
		}
		out = append(out, sum)
	}
	sortSummaries(out)
	return out, nil
}

// sortSummaries orders rooms by latest activity, newest first, then by id.
func sortSummaries(out []chat.RoomSummary) {
	at := func(s chat.RoomSummary) time.Time {
		if s.LastMessage != nil {
			return s.LastMessage.CreatedAt
		}
		return s.Room.CreatedAt
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := at(out[i]), at(out[j])
		if !a.Equal(b) {
			return a.After(b)
		}
		return out[i].Room.ID < out[j].Room.ID
	})
}

// MessagesByClientKey implements chat.Store.
func (s *Chat) MessagesByClientKey(_ context.Context, keys []chat.ClientKey) (map[chat.ClientKey]chat.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[chat.ClientKey]chat.Message{}
	for _, k := range keys {
		if m, ok := s.byClient[k]; ok {
			out[k] = clone(m)
		}
	}
	return out, nil
}

// MessagesByID implements chat.Store.
func (s *Chat) MessagesByID(_ context.Context, ids []string) (map[string]chat.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]chat.Message{}
	for _, id := range ids {
		if m, ok := s.byID[id]; ok {
			out[id] = clone(m)
		}
	}
	return out, nil
}

// AppendMessages implements chat.Store.
func (s *Chat) AppendMessages(_ context.Context, msgs []chat.Message) ([]chat.Appended, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs {
		if _, ok := s.rooms[m.RoomID]; !ok {
			return nil, chat.ErrNotFound // all or nothing, like the transaction
		}
	}
	out := make([]chat.Appended, len(msgs))
	fresh := map[chat.ClientKey]bool{} // stored by this batch
	for i, m := range msgs {
		k := chat.ClientKey{SenderID: m.SenderID, ClientID: m.ClientID}
		if orig, ok := s.byClient[k]; ok {
			announced := orig.Seq <= s.rooms[orig.RoomID].AnnouncedSeq && !fresh[k]
			out[i] = chat.Appended{Message: clone(orig), Duplicate: true, Announced: announced}
			continue
		}
		fresh[k] = true
		r := s.rooms[m.RoomID]
		r.LastSeq++
		m = clone(m)
		m.Seq = r.LastSeq
		s.messages[m.RoomID] = append(s.messages[m.RoomID], m)
		s.byClient[k] = m
		s.byID[m.ID] = m
		out[i] = chat.Appended{Message: clone(m)}
	}
	return out, nil
}

// RelayAnnouncements implements chat.Store. The relay lock is not the store's: publish
// runs without holding up writers.
func (s *Chat) RelayAnnouncements(ctx context.Context, limit int, publish func(context.Context, []chat.Message) error) (int, error) {
	if !s.relay.TryLock() {
		return 0, chat.ErrRelayBusy
	}
	defer s.relay.Unlock()
	s.mu.Lock()
	ids := make([]string, 0, len(s.rooms))
	for id, r := range s.rooms {
		if r.LastSeq > r.AnnouncedSeq {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	var batch []chat.Message
	for _, id := range ids {
		msgs := s.messages[id] // msgs[i].Seq == i+1
		for seq := s.rooms[id].AnnouncedSeq + 1; seq <= int64(len(msgs)) && len(batch) < limit; seq++ {
			batch = append(batch, clone(msgs[seq-1]))
		}
	}
	s.mu.Unlock()
	if len(batch) == 0 {
		return 0, nil
	}
	if err := publish(ctx, batch); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range batch {
		if r := s.rooms[m.RoomID]; r != nil && m.Seq > r.AnnouncedSeq {
			r.AnnouncedSeq = m.Seq
		}
	}
	return len(batch), nil
}

// History implements chat.Store.
func (s *Chat) History(_ context.Context, roomID string, q chat.HistoryQuery) (chat.Page, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	msgs := s.messages[roomID] // msgs[i].Seq == i+1
	var lo, hi int             // half-open index range
	p := chat.Page{Messages: []chat.Message{}}
	if q.Forward {
		lo = min(int(q.After), len(msgs))
		hi = min(lo+q.Limit, len(msgs))
		p.HasMore = hi < len(msgs)
	} else {
		hi = len(msgs)
		if q.Before > 0 {
			hi = min(int(q.Before)-1, len(msgs))
		}
		lo = max(0, hi-q.Limit)
		p.HasMore = lo > 0
	}
	for _, m := range msgs[lo:hi] {
		p.Messages = append(p.Messages, clone(m))
	}
	return p, nil
}

// AdvanceReceipt implements chat.Store.
func (s *Chat) AdvanceReceipt(_ context.Context, roomID, userID string, kind chat.ReceiptKind, seq int64, at time.Time) (chat.Receipt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	row, ok := s.members[roomID][userID]
	if !ok {
		return chat.Receipt{}, chat.ErrNotFound
	}
	seq = min(seq, s.rooms[roomID].LastSeq)
	rc := &row.receipt
	moved := false
	if seq > rc.DeliveredSeq {
		rc.DeliveredSeq, moved = seq, true
	}
	if kind == chat.Read && seq > rc.ReadSeq {
		rc.ReadSeq, moved = seq, true
	}
	if moved {
		rc.UpdatedAt = at
	}
	return *rc, nil
}

// AdvanceReceipts implements chat.Store.
func (s *Chat) AdvanceReceipts(_ context.Context, in []chat.ReceiptRequest, at time.Time) ([]chat.ReceiptAdvanced, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]chat.ReceiptAdvanced, len(in))
	for i, r := range in {
		row, ok := s.members[r.RoomID][r.UserID]
		if !ok {
			continue
		}
		seq := min(r.Seq, s.rooms[r.RoomID].LastSeq)
		rc := &row.receipt
		moved := false
		if seq > rc.DeliveredSeq {
			rc.DeliveredSeq, moved = seq, true
		}
		if r.Kind == chat.Read && seq > rc.ReadSeq {
			rc.ReadSeq, moved = seq, true
		}
		if moved {
			rc.UpdatedAt = at
		}
		out[i] = chat.ReceiptAdvanced{Receipt: *rc, Found: true, Moved: moved}
	}
	return out, nil
}

// Receipts implements chat.Store.
func (s *Chat) Receipts(_ context.Context, roomID string) ([]chat.Receipt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []chat.Receipt{}
	for _, m := range s.members[roomID] {
		out = append(out, m.receipt)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UserID < out[j].UserID })
	return out, nil
}

// RoomsReferencing implements chat.Store.
func (s *Chat) RoomsReferencing(_ context.Context, fileID string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for room, msgs := range s.messages {
		for _, m := range msgs {
			if slices.Contains(m.Attachments, fileID) {
				out = append(out, room)
				break
			}
		}
	}
	slices.Sort(out)
	return out, nil
}
