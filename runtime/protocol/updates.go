package protocol

import (
	"time"
	"unicode/utf8"
)

// Room events: a message changed (edited or deleted). Core records the change as the
// room's next event (EventSeq, per room, gap-free from 1) and announces the message's
// new state; notification fans it out as a message_updated frame; resume replays what a
// client missed after its per-room events cursor.

// TopicMessageUpdated carries MessageUpdated, core → notification, keyed by room id.
const TopicMessageUpdated = "chat.message_updated"

// TypeMessageUpdated is the payload type of MessageUpdated.
const TypeMessageUpdated Type = "message_updated"

// FrameMessageUpdated is the server frame of a changed message.
const FrameMessageUpdated FrameType = "message_updated"

// Update kinds.
const (
	UpdateEdit   = "edit"
	UpdateDelete = "delete"
	UpdateReact  = "react"
)

// Reaction is one emoji on a message and who put it there.
type Reaction struct {
	Emoji string   `json:"emoji"`
	Count int      `json:"count"`
	Users []string `json:"users"`
}

// MessageUpdated is a message's state right after a room event changed it.
type MessageUpdated struct {
	RoomID    string `json:"room_id"`
	MessageID string `json:"message_id"`
	Seq       int64  `json:"seq"`
	SenderID  string `json:"sender_id"` // the message's author
	ActorID   string `json:"actor_id"`  // who changed it
	EventSeq  int64  `json:"event_seq"`
	Kind      string `json:"kind"` // edit | delete
	Body      string `json:"body,omitempty"`
	// Attachments are the message's files (none once deleted).
	Attachments []string   `json:"attachments,omitempty"`
	EditedAt    *time.Time `json:"edited_at,omitempty"`
	Deleted     bool       `json:"deleted,omitempty"`
	Reactions   []Reaction `json:"reactions,omitempty"`
	// Mentions are the members the (edited) body mentions.
	Mentions []string  `json:"mentions,omitempty"`
	At       time.Time `json:"at"` // when the change was recorded
}

// EventType implements Payload.
func (*MessageUpdated) EventType() Type { return TypeMessageUpdated }

// Validate implements Payload.
func (m *MessageUpdated) Validate() error {
	if err := checkIDs(idField{"room_id", m.RoomID}, idField{"message_id", m.MessageID},
		idField{"sender_id", m.SenderID}, idField{"actor_id", m.ActorID}); err != nil {
		return err
	}
	if m.Seq <= 0 {
		return &FieldError{Field: "seq", Problem: "must be positive"}
	}
	if m.EventSeq <= 0 {
		return &FieldError{Field: "event_seq", Problem: "must be positive"}
	}
	if m.Kind != UpdateEdit && m.Kind != UpdateDelete && m.Kind != UpdateReact {
		return &FieldError{Field: "kind", Problem: `must be "edit", "delete" or "react"`}
	}
	if !utf8.ValidString(m.Body) {
		return &FieldError{Field: "body", Problem: "not valid UTF-8"}
	}
	if err := checkMentions(m.Mentions); err != nil {
		return err
	}
	return checkAttachments(m.Attachments)
}

// MessageUpdatedFrame is how a changed message reaches clients: its new state.
func MessageUpdatedFrame(m *MessageUpdated) ServerFrame {
	return ServerFrame{Type: FrameMessageUpdated, Room: m.RoomID, MessageID: m.MessageID, Seq: m.Seq,
		Sender: m.SenderID, User: m.ActorID, EventSeq: m.EventSeq, Body: m.Body, Attachments: m.Attachments,
		EditedAt: m.EditedAt, Deleted: m.Deleted, Reactions: m.Reactions, Mentions: m.Mentions}
}
