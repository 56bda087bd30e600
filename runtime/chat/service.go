package chat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Field bounds.
const (
	MaxRoomName       = 100
	MaxRoomTopic      = 500
	MaxClientID       = 64
	MaxAttachments    = 10
	DefaultPageSize   = 50
	MaxPageSize       = 200
	MaxGroupInitial   = 256 // members named when creating a group
	maxRateBucketKeys = 100_000
)

// ErrInvalidBody marks a body PostgreSQL could not store faithfully (NUL, bad UTF-8).
var ErrInvalidBody = errors.New("message body must be valid UTF-8 without NUL characters")

// Observer hears about committed batches (metrics); optional.
type Observer interface {
	BatchCommitted(size, persisted, duplicates, rejected int)
}

// Service is the chat domain.
type Service struct {
	store    Store
	people   People
	limits   Limits
	now      func() time.Time
	observer Observer
	files    FileChecker
	onStored func() // wakes the outbox relay; nil: nobody listens

	mu      sync.Mutex
	buckets map[string]*bucket
}

// NewService builds the service; now may be nil (time.Now).
func NewService(store Store, people People, limits Limits, now func() time.Time) (*Service, error) {
	if limits.MaxMessageBytes <= 0 || limits.MessagesPerSecond <= 0 || limits.MaxRoomMembers < 2 {
		return nil, fmt.Errorf("chat limits: max message bytes and messages per second must be positive, max room members at least 2 (got %+v)", limits)
	}
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, people: people, limits: limits, now: now, buckets: map[string]*bucket{}}, nil
}

// SetObserver installs an observer; call before use.
func (s *Service) SetObserver(o Observer) { s.observer = o }

// OnStored installs fn, called after every commit that stored a new message (the outbox
// relay's wake-up, so that an announcement need not wait for its next poll); call before
// use. fn must not block.
func (s *Service) OnStored(fn func()) { s.onStored = fn }

// RelayAnnouncements hands stored and unannounced messages to publish, in sequence order
// per room, and marks them announced when publish succeeds (Store.RelayAnnouncements).
func (s *Service) RelayAnnouncements(ctx context.Context, limit int, publish func(context.Context, []Message) error) (int, error) {
	n, err := s.store.RelayAnnouncements(ctx, limit, publish)
	if err != nil {
		return n, fmt.Errorf("relay announcements: %w", err)
	}
	return n, nil
}

// FileChecker says whether a sender may attach a file (the files service implements it):
// their own upload, or one shared with them, and not removed.
type FileChecker interface {
	Attachable(ctx context.Context, senderID, fileID string) error
}

// ErrFileNotAttachable wraps a FileChecker's refusal for one attachment.
var ErrFileNotAttachable = errors.New("file not attachable")

// SetFileChecker makes SendBatch check every attachment; without one, attachment ids are
// only checked for shape.
func (s *Service) SetFileChecker(f FileChecker) { s.files = f }

func (s *Service) checkAttachments(ctx context.Context, r SendRequest) error {
	if s.files == nil {
		return nil
	}
	for _, id := range r.Attachments {
		if err := s.files.Attachable(ctx, r.SenderID, id); err != nil {
			if errors.Is(err, ErrFileNotAttachable) {
				return fmt.Errorf("%w: file %s: %w", ErrInvalidAttachment, id, err)
			}
			return fmt.Errorf("check attachment %s: %w", id, err)
		}
	}
	return nil
}

// CanReadFile tells whether userID may read a file uploaded by uploaderID through a
// room: a member of a room holding a message that attaches it, with no block between the
// two in either direction.
func (s *Service) CanReadFile(ctx context.Context, userID, uploaderID, fileID string) (bool, error) {
	rooms, err := s.store.RoomsReferencing(ctx, fileID)
	if err != nil || len(rooms) == 0 {
		return false, err
	}
	pairs := make([]Membership, len(rooms))
	for i, r := range rooms {
		pairs[i] = Membership{RoomID: r, UserID: userID}
	}
	member, err := s.store.Memberships(ctx, pairs)
	if err != nil {
		return false, fmt.Errorf("memberships: %w", err)
	}
	shared := false
	for _, ok := range member {
		shared = shared || ok
	}
	if !shared {
		return false, nil
	}
	for _, list := range []func(context.Context, string) ([]string, error){s.people.BlockedIDs, s.people.BlockerIDs} {
		ids, err := list(ctx, userID)
		if err != nil {
			return false, fmt.Errorf("blocks: %w", err)
		}
		if slices.Contains(ids, uploaderID) {
			return false, nil
		}
	}
	return true, nil
}

// FileReferenced tells whether any message attaches the file (orphan cleanup keeps it).
func (s *Service) FileReferenced(ctx context.Context, fileID string) (bool, error) {
	rooms, err := s.store.RoomsReferencing(ctx, fileID)
	return len(rooms) > 0, err
}

// Limits returns the configured limits.
func (s *Service) Limits() Limits { return s.limits }

func newID() string {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	_, _ = rand.Read(b[6:])
	return hex.EncodeToString(b[:])
}

func checkText(field, v string, max int, required bool) error {
	if !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("%w: %s must be valid UTF-8 without control characters", ErrInvalidRoom, field)
	}
	if utf8.RuneCountInString(v) > max {
		return fmt.Errorf("%w: %s longer than %d characters", ErrInvalidRoom, field, max)
	}
	if required && strings.TrimSpace(v) == "" {
		return fmt.Errorf("%w: %s is required", ErrInvalidRoom, field)
	}
	return nil
}

// MaxIDLength bounds room and user ids accepted from callers.
const MaxIDLength = 128

// validID screens ids from callers before they reach the store: PostgreSQL refuses NUL
// and invalid UTF-8 in text with an error, which must be a precise "not found" instead.
func validID(id string) bool {
	return id != "" && len(id) <= MaxIDLength && utf8.ValidString(id) && !strings.ContainsRune(id, 0)
}

// memberRoom loads a room and checks userID is a member.
func (s *Service) memberRoom(ctx context.Context, userID, roomID string) (Room, error) {
	if !validID(roomID) {
		return Room{}, ErrRoomNotFound
	}
	r, err := s.store.Room(ctx, roomID)
	if errors.Is(err, ErrNotFound) {
		return Room{}, ErrRoomNotFound
	}
	if err != nil {
		return Room{}, fmt.Errorf("load room: %w", err)
	}
	in, err := s.store.MembersAmong(ctx, roomID, []string{userID})
	if err != nil {
		return Room{}, fmt.Errorf("membership: %w", err)
	}
	if !in[userID] {
		return Room{}, ErrNotMember
	}
	return r, nil
}

func (s *Service) mustExist(ctx context.Context, userID string) error {
	if !validID(userID) {
		return fmt.Errorf("%w: %q", ErrUserNotFound, userID)
	}
	ok, err := s.people.Exists(ctx, userID)
	if err != nil {
		return fmt.Errorf("user lookup: %w", err)
	}
	if !ok {
		return fmt.Errorf("%w: %s", ErrUserNotFound, userID)
	}
	return nil
}

// hasBlocked reports whether blocker blocked blocked.
func (s *Service) hasBlocked(ctx context.Context, blocker, blocked string) (bool, error) {
	ids, err := s.people.BlockedIDs(ctx, blocker)
	if err != nil {
		return false, fmt.Errorf("blocks: %w", err)
	}
	return slices.Contains(ids, blocked), nil
}

// OpenDirect returns the direct room of userID and otherID, creating it when missing.
// Someone who was blocked by otherID cannot open one.
func (s *Service) OpenDirect(ctx context.Context, userID, otherID string) (Room, bool, error) {
	if userID == otherID {
		return Room{}, false, ErrSelfDirect
	}
	if err := s.mustExist(ctx, otherID); err != nil {
		return Room{}, false, err
	}
	blocked, err := s.hasBlocked(ctx, otherID, userID)
	if err != nil {
		return Room{}, false, err
	}
	if blocked {
		return Room{}, false, ErrBlocked
	}
	r, created, err := s.store.CreateDirectRoom(ctx, Room{ID: newID(), Kind: KindDirect, CreatedAt: s.clock()}, userID, otherID)
	if err != nil {
		return Room{}, false, fmt.Errorf("create direct room: %w", err)
	}
	return r, created, nil
}

// CreateGroup creates a group owned by ownerID with the named members. Nobody who has
// blocked the owner can be added.
func (s *Service) CreateGroup(ctx context.Context, ownerID, name, topic string, memberIDs []string) (Room, error) {
	if err := checkText("name", name, MaxRoomName, true); err != nil {
		return Room{}, err
	}
	if err := checkText("topic", topic, MaxRoomTopic, false); err != nil {
		return Room{}, err
	}
	if len(memberIDs) > MaxGroupInitial {
		return Room{}, fmt.Errorf("%w: at most %d initial members", ErrInvalidRoom, MaxGroupInitial)
	}
	members := []string{ownerID}
	for _, id := range memberIDs {
		if !slices.Contains(members, id) {
			members = append(members, id)
		}
	}
	if len(members) > s.limits.MaxRoomMembers {
		return Room{}, ErrRoomFull
	}
	blockers, err := s.people.BlockerIDs(ctx, ownerID)
	if err != nil {
		return Room{}, fmt.Errorf("blocks: %w", err)
	}
	for _, id := range members[1:] {
		if err := s.mustExist(ctx, id); err != nil {
			return Room{}, err
		}
		if slices.Contains(blockers, id) {
			return Room{}, ErrBlocked
		}
	}
	r := Room{ID: newID(), Kind: KindGroup, Name: name, Topic: topic, OwnerID: ownerID, CreatedAt: s.clock()}
	if err := s.store.CreateGroupRoom(ctx, r, members); err != nil {
		return Room{}, fmt.Errorf("create group: %w", err)
	}
	return r, nil
}

// Room returns a room the user is a member of.
func (s *Service) Room(ctx context.Context, userID, roomID string) (Room, error) {
	return s.memberRoom(ctx, userID, roomID)
}

// UpdateRoom renames a group or changes its topic; owner only.
func (s *Service) UpdateRoom(ctx context.Context, userID, roomID string, name, topic *string) (Room, error) {
	r, err := s.memberRoom(ctx, userID, roomID)
	if err != nil {
		return Room{}, err
	}
	if r.Kind != KindGroup {
		return Room{}, ErrNotGroup
	}
	if r.OwnerID != userID {
		return Room{}, ErrNotOwner
	}
	if name != nil {
		if err := checkText("name", *name, MaxRoomName, true); err != nil {
			return Room{}, err
		}
	}
	if topic != nil {
		if err := checkText("topic", *topic, MaxRoomTopic, false); err != nil {
			return Room{}, err
		}
	}
	return s.store.UpdateRoom(ctx, roomID, name, topic)
}

// Members lists a room's members, for members only.
func (s *Service) Members(ctx context.Context, userID, roomID string) ([]Member, error) {
	if _, err := s.memberRoom(ctx, userID, roomID); err != nil {
		return nil, err
	}
	return s.store.Members(ctx, roomID)
}

// AddMember adds userID to a group; any member may add. Someone who blocked the actor
// cannot be added by them.
func (s *Service) AddMember(ctx context.Context, actorID, roomID, userID string) error {
	r, err := s.memberRoom(ctx, actorID, roomID)
	if err != nil {
		return err
	}
	if r.Kind != KindGroup {
		return ErrNotGroup
	}
	if err := s.mustExist(ctx, userID); err != nil {
		return err
	}
	blocked, err := s.hasBlocked(ctx, userID, actorID)
	if err != nil {
		return err
	}
	if blocked {
		return ErrBlocked
	}
	in, err := s.store.MembersAmong(ctx, roomID, []string{userID})
	if err != nil {
		return fmt.Errorf("membership: %w", err)
	}
	if in[userID] {
		return ErrAlreadyMember
	}
	n, err := s.store.CountMembers(ctx, roomID)
	if err != nil {
		return fmt.Errorf("count members: %w", err)
	}
	if n >= s.limits.MaxRoomMembers {
		return ErrRoomFull
	}
	if err := s.store.AddMember(ctx, roomID, userID, s.clock()); err != nil {
		if errors.Is(err, ErrConflict) {
			return ErrAlreadyMember
		}
		return fmt.Errorf("add member: %w", err)
	}
	return nil
}

// RemoveMember removes userID from a group: the owner may remove anyone, anyone may
// remove themselves (leave).
func (s *Service) RemoveMember(ctx context.Context, actorID, roomID, userID string) error {
	if actorID == userID {
		return s.Leave(ctx, actorID, roomID)
	}
	if err := s.checkOwner(ctx, actorID, roomID); err != nil {
		return err
	}
	if !validID(userID) {
		return ErrNotMember
	}
	if err := s.store.RemoveMember(ctx, roomID, userID); err != nil {
		if errors.Is(err, ErrNotFound) {
			return ErrNotMember
		}
		return fmt.Errorf("remove member: %w", err)
	}
	return nil
}

// Leave takes userID out of a group. The owner must transfer ownership first unless
// they are the last member.
func (s *Service) Leave(ctx context.Context, userID, roomID string) error {
	r, err := s.memberRoom(ctx, userID, roomID)
	if err != nil {
		return err
	}
	if r.Kind != KindGroup {
		return ErrNotGroup
	}
	if r.OwnerID == userID {
		n, err := s.store.CountMembers(ctx, roomID)
		if err != nil {
			return fmt.Errorf("count members: %w", err)
		}
		if n > 1 {
			return ErrOwnerMustTransfer
		}
	}
	if err := s.store.RemoveMember(ctx, roomID, userID); err != nil {
		if errors.Is(err, ErrNotFound) {
			return ErrNotMember
		}
		return fmt.Errorf("leave: %w", err)
	}
	return nil
}

// checkOwner refuses actions on roomID unless it is a group that actorID owns.
func (s *Service) checkOwner(ctx context.Context, actorID, roomID string) error {
	r, err := s.memberRoom(ctx, actorID, roomID)
	if err != nil {
		return err
	}
	if r.Kind != KindGroup {
		return ErrNotGroup
	}
	if r.OwnerID != actorID {
		return ErrNotOwner
	}
	return nil
}

// TransferOwnership hands a group to another member; owner only.
func (s *Service) TransferOwnership(ctx context.Context, actorID, roomID, newOwnerID string) error {
	if err := s.checkOwner(ctx, actorID, roomID); err != nil {
		return err
	}
	if !validID(newOwnerID) {
		return ErrNotMember
	}
	in, err := s.store.MembersAmong(ctx, roomID, []string{newOwnerID})
	if err != nil {
		return fmt.Errorf("membership: %w", err)
	}
	if !in[newOwnerID] {
		return ErrNotMember
	}
	return s.store.SetOwner(ctx, roomID, newOwnerID)
}

// Rooms lists the user's rooms with last message and unread count; messages of users
// they blocked neither count as unread nor show.
func (s *Service) Rooms(ctx context.Context, userID string) ([]RoomSummary, error) {
	blocked, err := s.people.BlockedIDs(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("blocks: %w", err)
	}
	out, err := s.store.RoomsOf(ctx, userID, append([]string{userID}, blocked...))
	if err != nil {
		return nil, fmt.Errorf("rooms: %w", err)
	}
	for i := range out {
		if m := out[i].LastMessage; m != nil && slices.Contains(blocked, m.SenderID) {
			hide(m)
		}
	}
	return out, nil
}

// Contacts are the users sharing with userID a direct room or a group of at most
// largeGroup members, except those in exclude (the caller passes who blocked userID):
// whom userID's presence is announced to. It is one store look-up however many rooms
// userID is in, because it runs on every connect and disconnect.
func (s *Service) Contacts(ctx context.Context, userID string, exclude []string, largeGroup int) ([]string, error) {
	if largeGroup < 0 {
		return nil, fmt.Errorf("contacts: large group %d is negative", largeGroup)
	}
	out, err := s.store.Contacts(ctx, userID, exclude, largeGroup)
	if err != nil {
		return nil, fmt.Errorf("contacts: %w", err)
	}
	return out, nil
}

func hide(m *Message) {
	m.Hidden, m.Body, m.Attachments, m.Reactions, m.Mentions = true, "", []string{}, nil, nil
}

// History pages a room's messages for a member. Messages from users the viewer blocked
// stay in place (sequence numbers stay gap-free) but come back hidden.
func (s *Service) History(ctx context.Context, userID, roomID string, q HistoryQuery) (Page, error) {
	if q.Before < 0 || q.After < 0 || q.Limit < 0 || (q.Forward && q.Before > 0) || (!q.Forward && q.After > 0) {
		return Page{}, fmt.Errorf("%w: before and after are non-negative and exclusive", ErrInvalidHistory)
	}
	if q.Limit == 0 {
		q.Limit = DefaultPageSize
	}
	q.Limit = min(q.Limit, MaxPageSize)
	room, err := s.memberRoom(ctx, userID, roomID)
	if err != nil {
		return Page{}, err
	}
	p, err := s.store.History(ctx, roomID, q)
	if err != nil {
		return Page{}, fmt.Errorf("history: %w", err)
	}
	p.EventSeq = room.LastEventSeq
	blocked, err := s.people.BlockedIDs(ctx, userID)
	if err != nil {
		return Page{}, fmt.Errorf("blocks: %w", err)
	}
	for i := range p.Messages {
		if slices.Contains(blocked, p.Messages[i].SenderID) {
			hide(&p.Messages[i])
		}
		filterReactions(&p.Messages[i], blocked)
	}
	return p, nil
}

// Message returns one message of a room for a member, as History would show it (hidden
// when the viewer blocked its sender): clients fetch the original of a reply this way.
func (s *Service) Message(ctx context.Context, userID, roomID, messageID string) (Message, error) {
	if _, err := s.memberRoom(ctx, userID, roomID); err != nil {
		return Message{}, err
	}
	if !validID(messageID) {
		return Message{}, ErrMessageNotFound
	}
	found, err := s.store.MessagesByID(ctx, []string{messageID})
	if err != nil {
		return Message{}, fmt.Errorf("message: %w", err)
	}
	m, ok := found[messageID]
	if !ok || m.RoomID != roomID {
		return Message{}, ErrMessageNotFound
	}
	blocked, err := s.people.BlockedIDs(ctx, userID)
	if err != nil {
		return Message{}, fmt.Errorf("blocks: %w", err)
	}
	if slices.Contains(blocked, m.SenderID) {
		hide(&m)
	}
	filterReactions(&m, blocked)
	return m, nil
}

// Receipts lists every member's cursors, for members only.
func (s *Service) Receipts(ctx context.Context, userID, roomID string) ([]Receipt, error) {
	if _, err := s.memberRoom(ctx, userID, roomID); err != nil {
		return nil, err
	}
	return s.store.Receipts(ctx, roomID)
}

// AdvanceReceipt moves the user's cursor forward only (a lower seq is a no-op, never an
// error; a seq above the room's last message is clamped; marking "read" also raises
// "delivered"). Non-members get ErrNotMember.
func (s *Service) AdvanceReceipt(ctx context.Context, userID, roomID string, kind ReceiptKind, seq int64) (Receipt, error) {
	if kind != Delivered && kind != Read {
		return Receipt{}, fmt.Errorf("%w: kind %q, want delivered or read", ErrInvalidReceipt, kind)
	}
	if seq < 0 {
		return Receipt{}, fmt.Errorf("%w: negative sequence", ErrInvalidReceipt)
	}
	if !validID(roomID) {
		return Receipt{}, ErrRoomNotFound
	}
	if !validID(userID) {
		return Receipt{}, ErrNotMember
	}
	rc, err := s.store.AdvanceReceipt(ctx, roomID, userID, kind, seq, s.clock())
	if errors.Is(err, ErrNotFound) {
		if _, rerr := s.store.Room(ctx, roomID); errors.Is(rerr, ErrNotFound) {
			return Receipt{}, ErrRoomNotFound
		}
		return Receipt{}, ErrNotMember
	}
	if err != nil {
		return Receipt{}, fmt.Errorf("advance receipt: %w", err)
	}
	return rc, nil
}

// ReceiptResult answers one ReceiptRequest of AdvanceReceipts.
type ReceiptResult struct {
	Receipt Receipt // the member's cursors after the request
	Moved   bool    // a cursor went forward (false: nothing to announce)
	Err     error   // ErrNotMember, ErrRoomNotFound, ErrInvalidReceipt for this request
}

// AdvanceReceipts is AdvanceReceipt for a batch (the pipeline's chat.receipt consumer):
// every accepted request is applied in one transaction, in order, so several receipts of
// one member in a batch compose. A non-nil error means nothing was written.
func (s *Service) AdvanceReceipts(ctx context.Context, reqs []ReceiptRequest) ([]ReceiptResult, error) {
	out := make([]ReceiptResult, len(reqs))
	var valid []ReceiptRequest
	var idx []int
	for i, r := range reqs {
		switch {
		case r.Kind != Delivered && r.Kind != Read:
			out[i].Err = fmt.Errorf("%w: kind %q, want delivered or read", ErrInvalidReceipt, r.Kind)
		case r.Seq < 0:
			out[i].Err = fmt.Errorf("%w: negative sequence", ErrInvalidReceipt)
		case !validID(r.RoomID):
			out[i].Err = ErrRoomNotFound
		case !validID(r.UserID):
			out[i].Err = ErrNotMember
		default:
			valid = append(valid, r)
			idx = append(idx, i)
		}
	}
	if len(valid) == 0 {
		return out, nil
	}
	res, err := s.store.AdvanceReceipts(ctx, valid, s.clock())
	if err != nil {
		return nil, fmt.Errorf("advance receipts: %w", err)
	}
	var missing []string
	for j, r := range res {
		i := idx[j]
		if !r.Found {
			missing = append(missing, valid[j].RoomID)
			continue
		}
		out[i] = ReceiptResult{Receipt: r.Receipt, Moved: r.Moved}
	}
	if len(missing) > 0 {
		rooms, err := s.store.RoomsByID(ctx, missing)
		if err != nil {
			return nil, fmt.Errorf("rooms: %w", err)
		}
		for j, r := range res {
			if r.Found {
				continue
			}
			if _, ok := rooms[valid[j].RoomID]; ok {
				out[idx[j]].Err = ErrNotMember
			} else {
				out[idx[j]].Err = ErrRoomNotFound
			}
		}
	}
	return out, nil
}

// Recipients returns the room's members who should get a message from senderID in real
// time: every member except those who blocked the sender (the sender's own devices included).
func (s *Service) Recipients(ctx context.Context, roomID, senderID string) ([]string, error) {
	if !validID(roomID) {
		return nil, ErrRoomNotFound
	}
	if !validID(senderID) {
		return nil, fmt.Errorf("%w: %q", ErrUserNotFound, senderID)
	}
	if _, err := s.store.Room(ctx, roomID); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, ErrRoomNotFound
		}
		return nil, fmt.Errorf("load room: %w", err)
	}
	members, err := s.store.Members(ctx, roomID)
	if err != nil {
		return nil, fmt.Errorf("members: %w", err)
	}
	blockers, err := s.people.BlockerIDs(ctx, senderID)
	if err != nil {
		return nil, fmt.Errorf("blocks: %w", err)
	}
	out := make([]string, 0, len(members))
	for _, m := range members {
		if !slices.Contains(blockers, m.UserID) {
			out = append(out, m.UserID)
		}
	}
	return out, nil
}

// bucket is a token bucket for one sender's message rate.
type bucket struct {
	tokens float64
	last   time.Time
}

func (s *Service) takeToken(sender string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	burst := max(1, 2*s.limits.MessagesPerSecond)
	b, ok := s.buckets[sender]
	if !ok {
		if len(s.buckets) >= maxRateBucketKeys {
			// Full buckets carry no state worth keeping; drop them all rather than grow.
			clear(s.buckets)
		}
		b = &bucket{tokens: burst, last: now}
		s.buckets[sender] = b
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(burst, b.tokens+el*s.limits.MessagesPerSecond)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// refundToken gives back a token taken for a message that was not committed, so the
// pipeline's retry of a failed batch is not throttled by its own first attempt.
func (s *Service) refundToken(sender string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.buckets[sender]; ok {
		b.tokens = min(max(1, 2*s.limits.MessagesPerSecond), b.tokens+1)
	}
}

var attachmentRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func (s *Service) checkContent(r SendRequest) error {
	switch {
	case r.ClientID == "" || len(r.ClientID) > MaxClientID || strings.ContainsFunc(r.ClientID, func(c rune) bool { return c <= 0x20 || c >= 0x7f }):
		return fmt.Errorf("%w: 1-%d printable ASCII characters", ErrInvalidClientID, MaxClientID)
	case len(r.Body) > s.limits.MaxMessageBytes:
		return fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, len(r.Body), s.limits.MaxMessageBytes)
	case !utf8.ValidString(r.Body) || strings.ContainsRune(r.Body, 0):
		return ErrInvalidBody
	case len(r.Attachments) > MaxAttachments:
		return fmt.Errorf("%w: at most %d attachments", ErrInvalidAttachment, MaxAttachments)
	case strings.TrimSpace(r.Body) == "" && len(r.Attachments) == 0:
		return ErrEmptyMessage
	}
	for _, a := range r.Attachments {
		if !attachmentRE.MatchString(a) {
			return fmt.Errorf("%w: file id %q", ErrInvalidAttachment, a)
		}
	}
	return nil
}

// clock is the service's notion of now, at the database's microsecond precision so that
// a stored and a returned timestamp compare equal.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }
