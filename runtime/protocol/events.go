package protocol

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// MaxIDLength bounds every id carried in an event (room, user, client, server, file ids).
const MaxIDLength = 128

// MaxAttachments bounds the attachments of one message.
const MaxAttachments = 32

// MessageSent is a message a client sent, as the gateway hands it to core. SenderID is the
// authenticated user, set by the gateway, never by the client. The body size limit is a
// setting of core, not of the protocol, so it is checked by core (message_too_large).
type MessageSent struct {
	RoomID      string   `json:"room_id"`
	SenderID    string   `json:"sender_id"`
	ClientID    string   `json:"client_id"`
	Body        string   `json:"body"`
	Attachments []string `json:"attachments,omitempty"`
	// ReplyTo is the server id of the message of the same room this one answers.
	ReplyTo string    `json:"reply_to,omitempty"`
	SentAt  time.Time `json:"sent_at"`
}

// EventType implements Payload.
func (*MessageSent) EventType() Type { return TypeMessageSent }

// Validate implements Payload.
func (m *MessageSent) Validate() error {
	if err := checkIDs(idField{"room_id", m.RoomID}, idField{"sender_id", m.SenderID}, idField{"client_id", m.ClientID}); err != nil {
		return err
	}
	if !utf8.ValidString(m.Body) {
		return &FieldError{Field: "body", Problem: "not valid UTF-8"}
	}
	if err := checkOptionalID("reply_to", m.ReplyTo); err != nil {
		return err
	}
	return checkAttachments(m.Attachments)
}

// Ref returns who sent which message.
func (m *MessageSent) Ref() MessageRef {
	return MessageRef{RoomID: m.RoomID, SenderID: m.SenderID, ClientID: m.ClientID}
}

// MessageDelivered is a message core accepted and stored: it has its server id and the
// room's sequence number. A redelivered MessageSent yields the same ServerID and Seq.
type MessageDelivered struct {
	RoomID      string   `json:"room_id"`
	SenderID    string   `json:"sender_id"`
	ClientID    string   `json:"client_id"`
	ServerID    string   `json:"server_id"`
	Seq         int64    `json:"seq"`
	Body        string   `json:"body"`
	Attachments []string `json:"attachments,omitempty"`
	ReplyTo     string   `json:"reply_to,omitempty"`
	// Mentions are the ids of the members the body mentions, resolved by core.
	Mentions  []string  `json:"mentions,omitempty"`
	SentAt    time.Time `json:"sent_at"`
	CreatedAt time.Time `json:"created_at"`
}

// EventType implements Payload.
func (*MessageDelivered) EventType() Type { return TypeMessageDelivered }

// Validate implements Payload.
func (m *MessageDelivered) Validate() error {
	if err := checkIDs(idField{"room_id", m.RoomID}, idField{"sender_id", m.SenderID},
		idField{"client_id", m.ClientID}, idField{"server_id", m.ServerID}); err != nil {
		return err
	}
	if m.Seq <= 0 {
		return &FieldError{Field: "seq", Problem: "must be positive"}
	}
	if m.CreatedAt.IsZero() {
		return &FieldError{Field: "created_at", Problem: "missing"}
	}
	if !utf8.ValidString(m.Body) {
		return &FieldError{Field: "body", Problem: "not valid UTF-8"}
	}
	if err := checkOptionalID("reply_to", m.ReplyTo); err != nil {
		return err
	}
	if err := checkMentions(m.Mentions); err != nil {
		return err
	}
	return checkAttachments(m.Attachments)
}

// MaxMentions bounds the user ids one message mentions ("@room" mentions every member).
const MaxMentions = 10000

// checkMentions checks a message's mentioned user ids.
func checkMentions(ids []string) error {
	if len(ids) > MaxMentions {
		return &FieldError{Field: "mentions", Problem: fmt.Sprintf("more than %d", MaxMentions)}
	}
	for i, id := range ids {
		if err := checkID(fmt.Sprintf("mentions[%d]", i), id); err != nil {
			return err
		}
	}
	return nil
}

// checkOptionalID checks an id that may be absent.
func checkOptionalID(field, id string) error {
	if id == "" {
		return nil
	}
	return checkID(field, id)
}

// MessageRejected tells the sender that core refused its message, and why. RoomID may be
// empty when the refused event did not carry a readable one.
type MessageRejected struct {
	RoomID   string `json:"room_id,omitempty"`
	SenderID string `json:"sender_id"`
	ClientID string `json:"client_id"`
	Reason   Reason `json:"reason"`
	// Detail is a human-readable explanation; clients must branch on Reason only.
	Detail string `json:"detail,omitempty"`
}

// EventType implements Payload.
func (*MessageRejected) EventType() Type { return TypeMessageRejected }

// Validate implements Payload.
func (m *MessageRejected) Validate() error {
	if err := checkIDs(idField{"sender_id", m.SenderID}, idField{"client_id", m.ClientID}); err != nil {
		return err
	}
	if len(m.RoomID) > MaxIDLength {
		return &FieldError{Field: "room_id", Problem: fmt.Sprintf("longer than %d bytes", MaxIDLength)}
	}
	if !m.Reason.Valid() {
		return &FieldError{Field: "reason", Problem: fmt.Sprintf("unknown reason code %q", string(m.Reason))}
	}
	return nil
}

// ReceiptKind says which cursor a receipt moves.
type ReceiptKind string

// Receipt kinds.
const (
	ReceiptDelivered ReceiptKind = "delivered"
	ReceiptRead      ReceiptKind = "read"
)

// Receipt is a member saying it has received (or read) a room's messages up to Seq.
type Receipt struct {
	RoomID string      `json:"room_id"`
	UserID string      `json:"user_id"`
	Kind   ReceiptKind `json:"kind"`
	Seq    int64       `json:"seq"`
}

// EventType implements Payload.
func (*Receipt) EventType() Type { return TypeReceipt }

// Validate implements Payload.
func (r *Receipt) Validate() error {
	if err := checkIDs(idField{"room_id", r.RoomID}, idField{"user_id", r.UserID}); err != nil {
		return err
	}
	if r.Kind != ReceiptDelivered && r.Kind != ReceiptRead {
		return &FieldError{Field: "kind", Problem: fmt.Sprintf("must be %q or %q", ReceiptDelivered, ReceiptRead)}
	}
	if r.Seq <= 0 {
		return &FieldError{Field: "seq", Problem: "must be positive"}
	}
	return nil
}

// ReceiptUpdated carries a member's cursors after a receipt actually moved one of them.
// Cursors only move forward; read implies delivered, so ReadSeq <= DeliveredSeq.
type ReceiptUpdated struct {
	RoomID       string    `json:"room_id"`
	UserID       string    `json:"user_id"`
	DeliveredSeq int64     `json:"delivered_seq"`
	ReadSeq      int64     `json:"read_seq"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// EventType implements Payload.
func (*ReceiptUpdated) EventType() Type { return TypeReceiptUpdated }

// Validate implements Payload.
func (r *ReceiptUpdated) Validate() error {
	if err := checkIDs(idField{"room_id", r.RoomID}, idField{"user_id", r.UserID}); err != nil {
		return err
	}
	if r.DeliveredSeq < 0 || r.ReadSeq < 0 {
		return &FieldError{Field: "delivered_seq", Problem: "cursors cannot be negative"}
	}
	if r.ReadSeq > r.DeliveredSeq {
		return &FieldError{Field: "read_seq", Problem: "cannot be ahead of delivered_seq"}
	}
	return nil
}

type idField struct{ name, value string }

func checkIDs(fields ...idField) error {
	for _, f := range fields {
		if err := checkID(f.name, f.value); err != nil {
			return err
		}
	}
	return nil
}

func checkID(name, v string) error {
	switch {
	case v == "":
		return &FieldError{Field: name, Problem: "missing"}
	case len(v) > MaxIDLength:
		return &FieldError{Field: name, Problem: fmt.Sprintf("longer than %d bytes", MaxIDLength)}
	case !utf8.ValidString(v):
		return &FieldError{Field: name, Problem: "not valid UTF-8"}
	}
	return nil
}

func checkAttachments(ids []string) error {
	if len(ids) > MaxAttachments {
		return &FieldError{Field: "attachments", Problem: fmt.Sprintf("more than %d", MaxAttachments)}
	}
	for i, id := range ids {
		if err := checkID(fmt.Sprintf("attachments[%d]", i), id); err != nil {
			return err
		}
	}
	return nil
}
