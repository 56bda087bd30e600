package protocol

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Version is the major version of the envelope this code writes and reads. Fields may be
// added to payloads within a major version (readers ignore fields they do not know);
// renaming, removing or changing the meaning of a field needs a new major version.
const Version = 1

// Type names the payload an envelope carries.
type Type string

// Event types.
const (
	TypeMessageSent      Type = "message_sent"
	TypeMessageDelivered Type = "message_delivered"
	TypeMessageRejected  Type = "message_rejected"
	TypeReceipt          Type = "receipt"
	TypeReceiptUpdated   Type = "receipt_updated"
)

// Envelope is the outer JSON object of every bus event:
//
//	{"v":1,"type":"message_sent","id":"...","at":"2026-01-02T03:04:05Z","data":{...}}
type Envelope struct {
	V    int             `json:"v"`
	Type Type            `json:"type"`
	ID   string          `json:"id"`
	At   time.Time       `json:"at"`
	Data json.RawMessage `json:"data"`
}

// Payload is the data of one event type.
type Payload interface {
	EventType() Type
	// Validate checks the fields a consumer relies on; it returns a *FieldError.
	Validate() error
}

// Event is a decoded envelope.
type Event struct {
	ID      string
	At      time.Time
	Payload Payload
}

// Decoding errors. Match them with errors.Is; UnsupportedVersionError, UnknownTypeError
// and FieldError carry details.
var (
	ErrMalformed          = errors.New("malformed event")
	ErrUnsupportedVersion = errors.New("unsupported event version")
	ErrUnknownType        = errors.New("unknown event type")
	ErrInvalid            = errors.New("invalid event field")
)

// UnsupportedVersionError is returned for an envelope whose major version this code
// cannot read.
type UnsupportedVersionError struct{ Version int }

func (e *UnsupportedVersionError) Error() string {
	return fmt.Sprintf("unsupported event version %d (this build reads %d)", e.Version, Version)
}

// Is makes errors.Is(err, ErrUnsupportedVersion) true.
func (e *UnsupportedVersionError) Is(target error) bool { return target == ErrUnsupportedVersion }

// UnknownTypeError is returned for an envelope whose type this code does not know.
type UnknownTypeError struct{ Type Type }

func (e *UnknownTypeError) Error() string {
	return fmt.Sprintf("unknown event type %q", string(e.Type))
}

// Is makes errors.Is(err, ErrUnknownType) true.
func (e *UnknownTypeError) Is(target error) bool { return target == ErrUnknownType }

// FieldError names the field of a payload that is missing or wrong.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return fmt.Sprintf("invalid field %s: %s", e.Field, e.Problem) }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// NewID returns a random event id (128 bits, hex).
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// Encode wraps p in a version-Version envelope with a fresh id, stamped now.
func Encode(p Payload) ([]byte, error) {
	return EncodeWith(p, NewID(), time.Now().UTC())
}

// EncodeWith is Encode with the id and time chosen by the caller (tests, replays).
func EncodeWith(p Payload, id string, at time.Time) ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("encode %s: %w", p.EventType(), err)
	}
	data, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", p.EventType(), err)
	}
	out, err := json.Marshal(Envelope{V: Version, Type: p.EventType(), ID: id, At: at.UTC(), Data: data})
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", p.EventType(), err)
	}
	return out, nil
}

// newPayload returns an empty payload of type t, or nil when t is unknown.
func newPayload(t Type) Payload {
	switch t {
	case TypeMessageSent:
		return &MessageSent{}
	case TypeMessageDelivered:
		return &MessageDelivered{}
	case TypeMessageRejected:
		return &MessageRejected{}
	case TypeReceipt:
		return &Receipt{}
	case TypeReceiptUpdated:
		return &ReceiptUpdated{}
	case TypeMessageUpdated:
		return &MessageUpdated{}
	}
	return nil
}

// Decode parses and validates one envelope. The payload is a pointer to the type named by
// the envelope (*MessageSent, *Receipt, ...). Errors match ErrMalformed,
// ErrUnsupportedVersion, ErrUnknownType or ErrInvalid.
func Decode(raw []byte) (Event, error) {
	var env Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if env.V == 0 {
		return Event{}, fmt.Errorf("%w: missing version \"v\"", ErrMalformed)
	}
	if env.V != Version {
		return Event{}, &UnsupportedVersionError{Version: env.V}
	}
	p := newPayload(env.Type)
	if p == nil {
		return Event{}, &UnknownTypeError{Type: env.Type}
	}
	if env.ID == "" {
		return Event{}, fmt.Errorf("%w: missing id", ErrMalformed)
	}
	if env.At.IsZero() {
		return Event{}, fmt.Errorf("%w: missing time \"at\"", ErrMalformed)
	}
	data := bytes.TrimSpace(env.Data)
	if len(data) == 0 || data[0] != '{' {
		return Event{}, fmt.Errorf("%w: \"data\" must be an object", ErrMalformed)
	}
	if err := json.Unmarshal(data, p); err != nil {
		return Event{}, fmt.Errorf("%w: data of %s: %v", ErrMalformed, env.Type, err)
	}
	if err := p.Validate(); err != nil {
		return Event{}, err
	}
	normalize(p)
	return Event{ID: env.ID, At: env.At, Payload: p}, nil
}

// MessageRef identifies who sent which message, as far as a damaged event still tells.
type MessageRef struct {
	RoomID   string `json:"room_id"`
	SenderID string `json:"sender_id"`
	ClientID string `json:"client_id"`
}

// SalvageMessageRef digs the sender and client id out of an event that failed to decode,
// so that the sender can be told its message was refused. ok is false when no sender and
// client id can be found.
func SalvageMessageRef(raw []byte) (ref MessageRef, ok bool) {
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(raw, &env) != nil || len(env.Data) == 0 {
		return MessageRef{}, false
	}
	// Fields are read one by one so that a single wrong-typed field does not hide the others.
	var fields map[string]json.RawMessage
	if json.Unmarshal(env.Data, &fields) != nil {
		return MessageRef{}, false
	}
	str := func(name string) string {
		var s string
		if json.Unmarshal(fields[name], &s) != nil || len(s) > MaxIDLength {
			return ""
		}
		return s
	}
	ref = MessageRef{RoomID: str("room_id"), SenderID: str("sender_id"), ClientID: str("client_id")}
	return ref, ref.SenderID != "" && ref.ClientID != ""
}

// normalize gives equal events one in-memory form: "attachments":[] and no attachments
// both decode to nil.
func normalize(p Payload) {
	switch m := p.(type) {
	case *MessageSent:
		if len(m.Attachments) == 0 {
			m.Attachments = nil
		}
	case *MessageDelivered:
		if len(m.Attachments) == 0 {
			m.Attachments = nil
		}
	}
}
