// Package chat holds rooms, members, messages, sequence numbers, history and receipts.
// It imports no SQL driver, no transport and no bus: persistence is the Store declared
// here, people (existence and blocks) are the People interface.
package chat

import (
	"context"
	"errors"
	"time"
)

// Domain errors; the HTTP edge and the pipeline translate them to codes.
var (
	ErrRoomNotFound      = errors.New("room not found")
	ErrNotMember         = errors.New("not a member of the room")
	ErrBlocked           = errors.New("blocked")
	ErrMessageTooLarge   = errors.New("message too large")
	ErrEmptyMessage      = errors.New("empty message")
	ErrRateLimited       = errors.New("rate limited")
	ErrInvalidClientID   = errors.New("invalid client id")
	ErrInvalidAttachment = errors.New("invalid attachment")
	ErrInvalidRoom       = errors.New("invalid room fields")
	ErrUserNotFound      = errors.New("user not found")
	ErrRoomFull          = errors.New("room is full")
	ErrNotOwner          = errors.New("only the owner may do this")
	ErrNotGroup          = errors.New("not a group room")
	ErrAlreadyMember     = errors.New("already a member")
	ErrOwnerMustTransfer = errors.New("the owner must transfer ownership before leaving")
	ErrSelfDirect        = errors.New("cannot open a direct room with yourself")
	ErrInvalidReceipt    = errors.New("invalid receipt")
	ErrInvalidHistory    = errors.New("invalid history query")
	ErrInvalidReply      = errors.New("reply_to names no message of this room")
	ErrMessageNotFound   = errors.New("message not found")
	ErrNotFound          = errors.New("not found") // store-level: no such row
	ErrConflict          = errors.New("conflict")  // store-level: unique key taken
	// ErrRelayBusy: another outbox relay is running (Store.RelayAnnouncements).
	ErrRelayBusy = errors.New("another relay is announcing")
)

// RoomKind is direct (exactly two members, one room per pair) or group.
type RoomKind string

// Room kinds.
const (
	KindDirect RoomKind = "direct"
	KindGroup  RoomKind = "group"
)

// Room is a conversation.
type Room struct {
	ID        string    `json:"id"`
	Kind      RoomKind  `json:"kind"`
	Name      string    `json:"name"`
	Topic     string    `json:"topic"`
	OwnerID   string    `json:"owner_id,omitempty"`
	LastSeq   int64     `json:"last_seq"`
	CreatedAt time.Time `json:"created_at"`
	// LastEventSeq is the room's last event (edits, deletions) sequence number.
	LastEventSeq int64 `json:"last_event_seq"`
	// AnnouncedSeq is the last message the outbox relay announced on the bus.
	AnnouncedSeq int64 `json:"-"`
}

// Member is one user's membership, receipts included.
type Member struct {
	RoomID   string    `json:"room_id"`
	UserID   string    `json:"user_id"`
	JoinedAt time.Time `json:"joined_at"`
}

// Message is a stored message.
type Message struct {
	ID          string    `json:"id"`
	RoomID      string    `json:"room_id"`
	Seq         int64     `json:"seq"`
	SenderID    string    `json:"sender_id"`
	ClientID    string    `json:"client_id"`
	Body        string    `json:"body"`
	Attachments []string  `json:"attachments"`
	CreatedAt   time.Time `json:"created_at"`
	// ReplyTo is the id of the message of the same room this one answers ("" for none).
	ReplyTo string `json:"reply_to,omitempty"`
	// Mentions are the ids of the members the body mentions (mentions.go), in order of
	// first mention; empty when none.
	Mentions []string `json:"mentions,omitempty"`
	// EditedAt is when the body was last edited; nil when never.
	EditedAt *time.Time `json:"edited_at,omitempty"`
	// Deleted marks a tombstone: body and attachments are gone, the seq stays.
	Deleted bool `json:"deleted,omitempty"`
	// EventSeq is the room event that last changed the message (0: none).
	EventSeq int64 `json:"event_seq,omitempty"`
	// Reactions: each emoji with who put it there, in the order they were first used.
	Reactions []Reaction `json:"reactions,omitempty"`
	// Hidden is set, and Body/Attachments cleared, when the viewer blocked the sender.
	Hidden bool `json:"hidden,omitempty"`
}

// ReceiptKind names a receipt cursor.
type ReceiptKind string

// Receipt kinds.
const (
	Delivered ReceiptKind = "delivered"
	Read      ReceiptKind = "read"
)

// Receipt is a member's pair of cursors in a room.
type Receipt struct {
	RoomID       string    `json:"room_id"`
	UserID       string    `json:"user_id"`
	DeliveredSeq int64     `json:"delivered_seq"`
	ReadSeq      int64     `json:"read_seq"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// RoomSummary is one line of "my rooms".
type RoomSummary struct {
	Room        Room     `json:"room"`
	LastMessage *Message `json:"last_message,omitempty"`
	Unread      int64    `json:"unread"`
	// Mentions counts the unread messages (as Unread counts them) that mention the viewer.
	Mentions int64   `json:"mentions"`
	Receipt  Receipt `json:"receipt"`
	// NotificationLevel is the viewer's setting for the room (all, mentions, muted).
	NotificationLevel NotifyLevel `json:"notification_level"`
}

// HistoryQuery pages a room's messages by sequence number. Forward: the messages after
// After (0: from the start), to resume after a known sequence. Otherwise: the messages
// before Before (0: the latest). Pages are always in ascending order.
type HistoryQuery struct {
	Forward bool
	After   int64
	Before  int64
	Limit   int
}

// Page is a slice of history.
type Page struct {
	Messages []Message `json:"messages"`
	// HasMore says whether more messages lie in the paging direction.
	HasMore bool `json:"has_more"`
	// EventSeq is the room's last event seq read before the page: the page shows every
	// change up to it, so a client replays events after it (and may see some again).
	EventSeq int64 `json:"event_seq"`
}

// Membership is a (room, user) pair.
type Membership struct{ RoomID, UserID string }

// ClientKey is a message's idempotency key.
type ClientKey struct{ SenderID, ClientID string }

// Appended is the store's answer for one message of a batch.
type Appended struct {
	Message   Message
	Duplicate bool
	// Announced is set on a duplicate whose original the outbox relay had already
	// announced when the batch committed; otherwise the relay still will.
	Announced bool
}

// Store is the chat persistence the service needs. The memory and PostgreSQL stores
// share one contract suite (runtime/chat/chattest).
type Store interface {
	// SearchStore: message search and notification levels (search.go).
	SearchStore

	// CreateDirectRoom returns the pair's room, creating it when missing; created says
	// which. Exactly one direct room exists per unordered pair.
	CreateDirectRoom(ctx context.Context, room Room, a, b string) (Room, bool, error)
	CreateGroupRoom(ctx context.Context, room Room, memberIDs []string) error
	Room(ctx context.Context, id string) (Room, error)
	// RoomsByID returns the rooms among ids that exist.
	RoomsByID(ctx context.Context, ids []string) (map[string]Room, error)
	UpdateRoom(ctx context.Context, id string, name, topic *string) (Room, error)
	SetOwner(ctx context.Context, roomID, ownerID string) error
	// AddMember returns ErrConflict when already a member.
	AddMember(ctx context.Context, roomID, userID string, at time.Time) error
	// RemoveMember returns ErrNotFound when not a member.
	RemoveMember(ctx context.Context, roomID, userID string) error
	Members(ctx context.Context, roomID string) ([]Member, error)
	// MembersAmong returns which of userIDs are members of the room.
	MembersAmong(ctx context.Context, roomID string, userIDs []string) (map[string]bool, error)
	CountMembers(ctx context.Context, roomID string) (int, error)
	// Memberships returns which (room, user) pairs are memberships, in one look-up.
	Memberships(ctx context.Context, pairs []Membership) (map[Membership]bool, error)
	// RoomsOf lists userID's rooms with their last message and the count of messages
	// after the user's read cursor not sent by anyone in excludeSenders.
	RoomsOf(ctx context.Context, userID string, excludeSenders []string) ([]RoomSummary, error)
	// Contacts lists, sorted and once each, the users sharing with userID a direct room
	// or a group of at most largeGroup members, except userID and those in exclude: whom
	// userID's presence is announced to. One look-up, however many rooms userID is in.
	Contacts(ctx context.Context, userID string, exclude []string, largeGroup int) ([]string, error)

	// AppendMessages stores a batch atomically: each message whose (SenderID, ClientID)
	// exists, in the store or earlier in the batch, comes back as the original with
	// Duplicate set; every other message gets its room's next sequence number. On error
	// nothing is stored. A stored message is also an unannounced one, in the same
	// commit: RelayAnnouncements hands it out later (the transactional outbox).
	AppendMessages(ctx context.Context, msgs []Message) ([]Appended, error)
	// RelayAnnouncements hands up to limit stored and not yet announced messages to
	// publish, each room's in sequence order and starting right after the room's last
	// announced one, and marks them announced when publish returns nil (nothing is
	// marked otherwise, and the same messages come again). One relay runs at a time
	// across every process on the store: a call that finds another one running returns
	// ErrRelayBusy at once. It returns how many messages were announced.
	RelayAnnouncements(ctx context.Context, limit int, publish func(context.Context, []Message) error) (int, error)
	// MessagesByClientKey returns the stored messages among keys.
	MessagesByClientKey(ctx context.Context, keys []ClientKey) (map[ClientKey]Message, error)
	// MessagesByID returns the stored messages among ids (any room).
	MessagesByID(ctx context.Context, ids []string) (map[string]Message, error)
	// ChangeMessage applies one change (an edit or a deletion) to a message and records
	// it as the room's next event, in one transaction. A change whose (actor, client id)
	// was recorded before changes nothing and returns that event with Duplicate set; a
	// change that changes nothing (the same body, an already deleted message) records
	// no event and returns the message's current state with NoOp set.
	ChangeMessage(ctx context.Context, c MessageChange) (ChangeResult, error)
	// EventsAfter returns up to limit events of the room with EventSeq > after, oldest
	// first, each with its message as it is now.
	EventsAfter(ctx context.Context, roomID string, after int64, limit int) ([]RoomEvent, error)
	History(ctx context.Context, roomID string, q HistoryQuery) (Page, error)

	// AdvanceReceipt raises the member's cursor (read also raises delivered), clamped to
	// the room's last sequence. ErrNotFound when not a member.
	AdvanceReceipt(ctx context.Context, roomID, userID string, kind ReceiptKind, seq int64, at time.Time) (Receipt, error)
	Receipts(ctx context.Context, roomID string) ([]Receipt, error)

	// RoomsReferencing lists the rooms holding a message that attaches fileID.
	RoomsReferencing(ctx context.Context, fileID string) ([]string, error)
	// AdvanceReceipts applies AdvanceReceipt to each request in one transaction. out[i]
	// answers in[i]; a non-member's request comes back with Found false and changes
	// nothing. On error nothing is written.
	AdvanceReceipts(ctx context.Context, in []ReceiptRequest, at time.Time) ([]ReceiptAdvanced, error)
}

// ReceiptRequest asks to move one member's cursor.
type ReceiptRequest struct {
	RoomID, UserID string
	Kind           ReceiptKind
	Seq            int64
}

// ReceiptAdvanced is the store's answer to one ReceiptRequest.
type ReceiptAdvanced struct {
	Receipt Receipt
	Found   bool // the user is a member of the room
	Moved   bool // a cursor went forward
}

// People is what chat needs to know about users: existence and blocks.
type People interface {
	Exists(ctx context.Context, userID string) (bool, error)
	// BlockedIDs lists whom blockerID blocked.
	BlockedIDs(ctx context.Context, blockerID string) ([]string, error)
	// BlockerIDs lists who blocked blockedID.
	BlockerIDs(ctx context.Context, blockedID string) ([]string, error)
	// IDsByUsername maps those of usernames that exist, lower-cased, to user ids, in one
	// look-up.
	IDsByUsername(ctx context.Context, usernames []string) (map[string]string, error)
}

// Limits bound messages, rates and rooms.
type Limits struct {
	MaxMessageBytes   int     // body size in bytes
	MessagesPerSecond float64 // per sender, with a burst of max(1, 2×rate)
	MaxRoomMembers    int
	// EditWindow is how long after sending a message its author may edit it; 0: always.
	EditWindow time.Duration
}

// DefaultLimits are the role's defaults.
func DefaultLimits() Limits {
	return Limits{MaxMessageBytes: 4096, MessagesPerSecond: 10, MaxRoomMembers: 1000}
}
