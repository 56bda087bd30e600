package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

// WebSocket protocol v1 (docs/protocol.md). One JSON object per text message, with a
// "type". Client frames are decoded strictly (unknown fields refused) so that a typo in a
// client shows up as an error instead of being silently ignored.

// Subprotocol is the WebSocket subprotocol a client asks for; the access token travels
// as a second subprotocol "parley.auth.<token>" so it never lands in a URL or access log.
const (
	Subprotocol           = "parley.v1"
	AuthSubprotocolPrefix = "parley.auth."
)

// FrameType names a frame.
type FrameType string

// Client → server frames.
const (
	FrameSend   FrameType = "send"   // a message: id (client id), room, body, attachments
	FrameTyping FrameType = "typing" // the user is typing in room
	FrameMark   FrameType = "mark"   // receipt: kind (delivered|read) up to seq in room
	FrameResume FrameType = "resume" // rooms: room → last seq seen; missed messages follow
	FramePing   FrameType = "ping"   // id echoed in the pong
	// FrameWatch names the users whose presence the client shows (replacing the previous
	// list); a presence_batch with their current presence answers it.
	FrameWatch FrameType = "watch"
)

// Server → client frames.
const (
	FrameAck       FrameType = "ack"       // id (client id) → message_id, room, seq
	FrameMessage   FrameType = "message"   // a stored message
	FrameReceipt   FrameType = "receipt"   // a member's cursors moved: room, user, delivered_seq, read_seq
	FrameTypingOut FrameType = "typing"    // user is typing in room
	FramePresence  FrameType = "presence"  // user went online/offline: routed to gateways, which send clients presence_batch
	FrameError     FrameType = "error"     // code, message, ref (frame type) and id (client id) it answers
	FrameReconnect FrameType = "reconnect" // the server is going away: reconnect after retry_after_ms
	FramePong      FrameType = "pong"      // answers ping, echoing id
	// FramePresenceBatch carries presence (user → online) coalesced per connection: the
	// answer to a watch, the contacts online at connect, then the changes since the last
	// batch, at most about once per second.
	FramePresenceBatch FrameType = "presence_batch"
	// FrameResync says live deliveries to this connection may have been lost (the
	// gateway's routed subscription was down): send resume, and unacknowledged sends
	// again, without reconnecting.
	FrameResync FrameType = "resync"
)

// ClientFrameTypes lists the frame types a client may send, so that tests can check that
// the JSON Schema (SchemaV1) covers them all.
func ClientFrameTypes() []FrameType {
	return []FrameType{FrameSend, FrameTyping, FrameMark, FrameResume, FramePing, FrameWatch}
}

// ServerFrameTypes lists the frame types the server sends.
func ServerFrameTypes() []FrameType {
	return []FrameType{FrameAck, FrameMessage, FrameMessageUpdated, FrameReceipt, FrameTypingOut, FramePresence, FramePresenceBatch, FrameError, FrameReconnect, FramePong, FrameResync}
}

// ErrorCode is the code of an error frame or a close reason. Reason codes from core
// (not_member, blocked, ...) are reused as error codes for refused messages.
type ErrorCode string

// Error codes of the WebSocket edge, besides the Reason codes.
const (
	CodeBadFrame     ErrorCode = "bad_frame"    // not a JSON object, or unknown fields
	CodeUnknownType  ErrorCode = "unknown_type" // "type" missing or not a client frame
	CodeInvalid      ErrorCode = "invalid"      // a field is missing or out of range
	CodeFrameTooBig  ErrorCode = "frame_too_large"
	CodeRateLimited  ErrorCode = "rate_limited"  // too many frames; the frame was dropped
	CodeUnauthorized ErrorCode = "unauthorized"  // no, bad or expired token
	CodeSlowConsumer ErrorCode = "slow_consumer" // close reason: the client did not keep up
	CodeShutdown     ErrorCode = "server_shutdown"
	CodeInternal     ErrorCode = "internal"
)

// ErrorCodes lists every code the WebSocket edge may send (its own and core's reasons).
func ErrorCodes() []ErrorCode {
	codes := []ErrorCode{CodeBadFrame, CodeUnknownType, CodeInvalid, CodeFrameTooBig, CodeRateLimited,
		CodeUnauthorized, CodeSlowConsumer, CodeShutdown, CodeInternal}
	for _, r := range Reasons() {
		if ErrorCode(r) != CodeInvalid && ErrorCode(r) != CodeRateLimited {
			codes = append(codes, ErrorCode(r))
		}
	}
	return codes
}

// MaxResumeRooms bounds one resume frame.
const MaxResumeRooms = 1000

// MaxWatchUsers bounds the users one watch frame names (what one screen shows).
const MaxWatchUsers = 500

// ClientFrame is any frame a client sends; which fields matter depends on Type.
type ClientFrame struct {
	Type        FrameType        `json:"type"`
	ID          string           `json:"id,omitempty"`
	Room        string           `json:"room,omitempty"`
	Body        string           `json:"body,omitempty"`
	Attachments []string         `json:"attachments,omitempty"`
	Kind        ReceiptKind      `json:"kind,omitempty"`
	Seq         int64            `json:"seq,omitempty"`
	Rooms       map[string]int64 `json:"rooms,omitempty"`
	ReplyTo     string           `json:"reply_to,omitempty"` // send: the server id of the message answered
	// Events (resume): room → last room event seq seen; the events after it follow.
	Events map[string]int64 `json:"events,omitempty"`
	// Users (watch): the users whose presence the client shows.
	Users []string `json:"users,omitempty"`
}

// BadFrameError is a refused client frame: the code and message go back in an error frame.
type BadFrameError struct {
	Code    ErrorCode
	Message string
}

func (e *BadFrameError) Error() string { return string(e.Code) + ": " + e.Message }

func frameErr(code ErrorCode, format string, args ...any) error {
	return &BadFrameError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// DecodeClientFrame parses and validates one client frame. Errors are *BadFrameError.
func DecodeClientFrame(raw []byte) (ClientFrame, error) {
	// encoding/json would silently turn invalid UTF-8 into U+FFFD: refuse it instead.
	if !utf8.Valid(raw) {
		return ClientFrame{}, frameErr(CodeBadFrame, "frame is not valid UTF-8")
	}
	var f ClientFrame
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return ClientFrame{}, frameErr(CodeBadFrame, "frame is not a valid JSON object of protocol v1: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return ClientFrame{}, frameErr(CodeBadFrame, "trailing data after the frame")
	}
	return f, f.validate()
}

func (f *ClientFrame) validate() error {
	room := func() error {
		if err := checkID("room", f.Room); err != nil {
			return frameErr(CodeInvalid, "%v", err)
		}
		return nil
	}
	switch f.Type {
	case FrameSend:
		if err := checkID("id", f.ID); err != nil {
			return frameErr(CodeInvalid, "%v", err)
		}
		if err := room(); err != nil {
			return err
		}
		if err := checkAttachments(f.Attachments); err != nil {
			return frameErr(CodeInvalid, "%v", err)
		}
		if f.ReplyTo != "" {
			if err := checkID("reply_to", f.ReplyTo); err != nil {
				return frameErr(CodeInvalid, "%v", err)
			}
		}
	case FrameTyping:
		return room()
	case FrameMark:
		if err := room(); err != nil {
			return err
		}
		if f.Kind != ReceiptDelivered && f.Kind != ReceiptRead {
			return frameErr(CodeInvalid, "kind must be %q or %q", ReceiptDelivered, ReceiptRead)
		}
		if f.Seq <= 0 {
			return frameErr(CodeInvalid, "seq must be positive")
		}
	case FrameResume:
		if len(f.Rooms) > MaxResumeRooms {
			return frameErr(CodeInvalid, "resume names %d rooms, at most %d", len(f.Rooms), MaxResumeRooms)
		}
		for r, seq := range f.Rooms {
			if err := checkID("rooms key", r); err != nil {
				return frameErr(CodeInvalid, "%v", err)
			}
			if seq < 0 {
				return frameErr(CodeInvalid, "rooms[%s] is negative", r)
			}
		}
		if len(f.Events) > MaxResumeRooms {
			return frameErr(CodeInvalid, "resume names %d rooms' events, at most %d", len(f.Events), MaxResumeRooms)
		}
		for r, seq := range f.Events {
			if err := checkID("events key", r); err != nil {
				return frameErr(CodeInvalid, "%v", err)
			}
			if seq < 0 {
				return frameErr(CodeInvalid, "events[%s] is negative", r)
			}
		}
	case FrameWatch:
		if len(f.Users) > MaxWatchUsers {
			return frameErr(CodeInvalid, "watch names %d users, at most %d", len(f.Users), MaxWatchUsers)
		}
		for i, u := range f.Users {
			if err := checkID(fmt.Sprintf("users[%d]", i), u); err != nil {
				return frameErr(CodeInvalid, "%v", err)
			}
		}
	case FramePing:
		if len(f.ID) > MaxIDLength {
			return frameErr(CodeInvalid, "id longer than %d bytes", MaxIDLength)
		}
	case "":
		return frameErr(CodeUnknownType, "frame has no type")
	default:
		return frameErr(CodeUnknownType, "unknown frame type %q", string(f.Type))
	}
	return nil
}

// ServerFrame is any frame the server sends; empty fields are left out.
type ServerFrame struct {
	Type         FrameType  `json:"type"`
	ID           string     `json:"id,omitempty"`
	Ref          FrameType  `json:"ref,omitempty"`
	Room         string     `json:"room,omitempty"`
	MessageID    string     `json:"message_id,omitempty"`
	Seq          int64      `json:"seq,omitempty"`
	Sender       string     `json:"sender,omitempty"`
	Body         string     `json:"body,omitempty"`
	Attachments  []string   `json:"attachments,omitempty"`
	ReplyTo      string     `json:"reply_to,omitempty"`  // message: the server id of the message it answers
	Mentions     []string   `json:"mentions,omitempty"`  // message, message_updated: the ids of the members the body mentions
	Hidden       bool       `json:"hidden,omitempty"`    // history: the viewer blocked the sender
	EventSeq     int64      `json:"event_seq,omitempty"` // message_updated: the room event
	EditedAt     *time.Time `json:"edited_at,omitempty"` // message_updated: when the body was last edited
	Deleted      bool       `json:"deleted,omitempty"`   // message_updated: a tombstone
	Reactions    []Reaction `json:"reactions,omitempty"` // message_updated: each emoji with who reacted
	CreatedAt    time.Time  `json:"created_at,omitzero"`
	User         string     `json:"user,omitempty"`
	DeliveredSeq int64      `json:"delivered_seq,omitempty"`
	ReadSeq      int64      `json:"read_seq,omitempty"`
	Online       *bool      `json:"online,omitempty"`
	// Presence (presence_batch): user → online, the latest state of each user named.
	Presence     map[string]bool `json:"presence,omitempty"`
	Code         ErrorCode       `json:"code,omitempty"`
	Message      string          `json:"message,omitempty"`
	RetryAfterMS int64           `json:"retry_after_ms,omitempty"`
}

// MessageFrame is how a delivered message reaches clients.
func MessageFrame(m *MessageDelivered) ServerFrame {
	return ServerFrame{Type: FrameMessage, ID: m.ClientID, Room: m.RoomID, MessageID: m.ServerID, Seq: m.Seq,
		Sender: m.SenderID, Body: m.Body, Attachments: m.Attachments, CreatedAt: m.CreatedAt, ReplyTo: m.ReplyTo,
		Mentions: m.Mentions}
}

// AckFrame tells the sender its message is stored.
func AckFrame(m *MessageDelivered) ServerFrame {
	return ServerFrame{Type: FrameAck, ID: m.ClientID, Room: m.RoomID, MessageID: m.ServerID, Seq: m.Seq, CreatedAt: m.CreatedAt}
}

// ErrorFrame answers a refused frame.
func ErrorFrame(code ErrorCode, message string, ref FrameType, id string) ServerFrame {
	return ServerFrame{Type: FrameError, Code: code, Message: message, Ref: ref, ID: id}
}
