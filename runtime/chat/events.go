package chat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Room events: edits and deletions change a stored message. Each change is the room's
// next event (a per-room sequence beside the message sequence, gap-free from 1), so
// clients replay what they missed in order (resume, with a per-room events cursor) and
// history shows every message in its current state.

// Errors of message changes.
var (
	ErrNotAuthor      = errors.New("only the author may do this to the message")
	ErrEditWindow     = errors.New("the message is too old to edit")
	ErrMessageDeleted = errors.New("the message was deleted")
	ErrInvalidEdit    = errors.New("invalid edit")
)

// EventKind names a room event.
type EventKind string

// Event kinds.
const (
	EventEdit   EventKind = "edit"
	EventDelete EventKind = "delete"
)

// RoomEvent is one recorded change of a room's message.
type RoomEvent struct {
	RoomID    string    `json:"room_id"`
	EventSeq  int64     `json:"event_seq"`
	Kind      EventKind `json:"kind"`
	MessageID string    `json:"message_id"`
	ActorID   string    `json:"actor_id"`
	ClientID  string    `json:"client_id,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// Message is the message as it is now (EventsAfter) or right after the change
	// (ChangeMessage).
	Message Message `json:"message"`
}

// MessageChange asks the store to change one message.
type MessageChange struct {
	RoomID, MessageID, ActorID string
	// ClientID is the actor's idempotency key ("" for none: deletions are naturally
	// idempotent).
	ClientID string
	Kind     EventKind
	Body     string // EventEdit: the new body; EventReact: the emoji toggled
	// Mentions (EventEdit): the members the new body mentions, resolved by the service.
	Mentions []string
	At       time.Time
	// Check runs inside the store's transaction on the message as stored (locked):
	// an error refuses the change and is returned as is.
	Check func(Message) error
}

// ChangeResult is the store's answer to a MessageChange.
type ChangeResult struct {
	Event     RoomEvent // the recorded event (Message: the message after it)
	Duplicate bool      // the (actor, client id) was recorded before: Event is that one
	NoOp      bool      // nothing changed: Event holds only the message's current state
}

// EditRequest is an edit of a message's body by its author.
type EditRequest struct {
	RoomID, MessageID, UserID, ClientID, Body string
}

// DeleteRequest is a deletion of a message for everyone.
type DeleteRequest struct {
	RoomID, MessageID, UserID string
}

// Change is the outcome of an edit or a deletion: the message as it is now, and whether
// an event was recorded that members must be told about (false for a retried or an
// idempotent request).
type Change struct {
	Message Message
	Event   *RoomEvent
}

// EditMessage replaces the body of the user's own message (attachments stay). Retrying
// with the same client id returns the same outcome without a second event; an edit to
// the same body records nothing.
func (s *Service) EditMessage(ctx context.Context, r EditRequest) (Change, error) {
	if r.ClientID == "" || len(r.ClientID) > MaxClientID || strings.ContainsFunc(r.ClientID, func(c rune) bool { return c <= 0x20 || c >= 0x7f }) {
		return Change{}, fmt.Errorf("%w: 1-%d printable ASCII characters", ErrInvalidClientID, MaxClientID)
	}
	if !utf8.ValidString(r.Body) || strings.ContainsRune(r.Body, 0) {
		return Change{}, ErrInvalidBody
	}
	if len(r.Body) > s.limits.MaxMessageBytes {
		return Change{}, ErrMessageTooLarge
	}
	now := s.clock()
	return s.change(ctx, r.UserID, r.RoomID, MessageChange{
		RoomID: r.RoomID, MessageID: r.MessageID, ActorID: r.UserID, ClientID: r.ClientID,
		Kind: EventEdit, Body: r.Body, At: now,
		Check: func(m Message) error {
			switch {
			case m.SenderID != r.UserID:
				return ErrNotAuthor
			case m.Deleted:
				return ErrMessageDeleted
			case strings.TrimSpace(r.Body) == "" && len(m.Attachments) == 0:
				return ErrEmptyMessage
			case s.limits.EditWindow > 0 && now.Sub(m.CreatedAt) > s.limits.EditWindow:
				return ErrEditWindow
			}
			return nil
		},
	})
}

// DeleteMessage deletes a message for everyone: its author may, and so may the owner of
// a group. Body and attachments are cleared (files attached only by deleted messages
// become orphans); the sequence number stays. Deleting a deleted message changes
// nothing.
func (s *Service) DeleteMessage(ctx context.Context, r DeleteRequest) (Change, error) {
	room, err := s.memberRoom(ctx, r.UserID, r.RoomID)
	if err != nil {
		return Change{}, err
	}
	return s.change(ctx, r.UserID, r.RoomID, MessageChange{
		RoomID: r.RoomID, MessageID: r.MessageID, ActorID: r.UserID, Kind: EventDelete, At: s.clock(),
		Check: func(m Message) error {
			if m.SenderID != r.UserID && (room.Kind != KindGroup || room.OwnerID != r.UserID) {
				return ErrNotAuthor
			}
			return nil
		},
	})
}

func (s *Service) change(ctx context.Context, userID, roomID string, c MessageChange) (Change, error) {
	room, err := s.memberRoom(ctx, userID, roomID)
	if err != nil {
		return Change{}, err
	}
	if !validID(c.MessageID) {
		return Change{}, ErrMessageNotFound
	}
	if room.Kind == KindDirect {
		// As for sending: a member who blocked the actor closes the direct room to them.
		blockers, err := s.people.BlockerIDs(ctx, userID)
		if err != nil {
			return Change{}, fmt.Errorf("blocks: %w", err)
		}
		if len(blockers) > 0 {
			in, err := s.store.MembersAmong(ctx, roomID, blockers)
			if err != nil {
				return Change{}, fmt.Errorf("members: %w", err)
			}
			if len(in) > 0 {
				return Change{}, ErrBlocked
			}
		}
	}
	if c.Kind == EventEdit {
		// An edit re-resolves the mentions of the new body (the author is the actor: the
		// store's Check refuses anyone else).
		if c.Mentions, err = s.resolveMentions(ctx, room, c.ActorID, c.Body); err != nil {
			return Change{}, err
		}
	}
	res, err := s.store.ChangeMessage(ctx, c)
	if errors.Is(err, ErrNotFound) {
		return Change{}, ErrMessageNotFound
	}
	if err != nil {
		return Change{}, err
	}
	out := Change{Message: res.Event.Message}
	if !res.Duplicate && !res.NoOp {
		ev := res.Event
		out.Event = &ev
	}
	return out, nil
}

// DefaultEventPage bounds EventsAfter when no limit is given.
const DefaultEventPage = 500

// EventsAfter lists the room's events after the cursor, oldest first, each with its
// message as the user sees it now (hidden when the user blocked its sender or the
// event's actor: the event still comes, so the cursor moves on, but shows nothing).
func (s *Service) EventsAfter(ctx context.Context, userID, roomID string, after int64, limit int) ([]RoomEvent, error) {
	if after < 0 {
		return nil, fmt.Errorf("%w: negative events cursor", ErrInvalidHistory)
	}
	if limit <= 0 || limit > DefaultEventPage {
		limit = DefaultEventPage
	}
	if _, err := s.memberRoom(ctx, userID, roomID); err != nil {
		return nil, err
	}
	evs, err := s.store.EventsAfter(ctx, roomID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	blocked, err := s.people.BlockedIDs(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("blocks: %w", err)
	}
	for i := range evs {
		if slices.Contains(blocked, evs[i].Message.SenderID) || slices.Contains(blocked, evs[i].ActorID) {
			hide(&evs[i].Message)
		}
		filterReactions(&evs[i].Message, blocked)
	}
	return evs, nil
}

// ApplyChange is the store-independent part of ChangeMessage: it checks and applies c
// to m (as stored), returning the new state and whether anything changed.
func ApplyChange(m Message, c MessageChange, eventSeq int64) (Message, bool, error) {
	if c.Check != nil {
		if err := c.Check(m); err != nil {
			return m, false, err
		}
	}
	switch c.Kind {
	case EventEdit:
		if m.Body == c.Body {
			return m, false, nil
		}
		at := c.At
		m.Body, m.EditedAt, m.Mentions = c.Body, &at, c.Mentions
	case EventDelete:
		if m.Deleted {
			return m, false, nil
		}
		m.Deleted, m.Body, m.Attachments, m.Reactions, m.Mentions = true, "", []string{}, nil, nil
	case EventReact:
		if err := toggleReaction(&m, c.ActorID, c.Body); err != nil {
			return m, false, err
		}
	default:
		return m, false, fmt.Errorf("%w: unknown change %q", ErrInvalidEdit, c.Kind)
	}
	m.EventSeq = eventSeq
	return m, true, nil
}
