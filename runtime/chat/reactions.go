package chat

import (
	"context"
	"errors"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Reactions: any member toggles an emoji on a message; the toggle is a room event like
// an edit, so it replays through resume and the events route.

// EventReact is a reaction toggled on or off.
const EventReact EventKind = "react"

// Reaction limits.
const (
	MaxEmojiBytes          = 32
	MaxReactionsPerMessage = 20 // distinct emoji on one message
)

// ErrInvalidReaction: not one emoji, or too many distinct ones on the message.
var ErrInvalidReaction = errors.New("a reaction is one emoji (one grapheme cluster, at most 32 bytes), at most 20 distinct per message")

// Reaction is one emoji on a message: who put it there, oldest first.
type Reaction struct {
	Emoji string   `json:"emoji"`
	Count int      `json:"count"`
	Users []string `json:"users"`
}

// ReactRequest toggles the user's emoji on a message. ClientID makes a retry harmless:
// the same client id never toggles twice.
type ReactRequest struct {
	RoomID, MessageID, UserID, ClientID, Emoji string
}

// React toggles the user's reaction on a message of a room they are a member of (not on
// a deleted one). The answer is the message as it is now, with the recorded event (nil
// for a retry).
func (s *Service) React(ctx context.Context, r ReactRequest) (Change, error) {
	if r.ClientID == "" || len(r.ClientID) > MaxClientID || strings.ContainsFunc(r.ClientID, func(c rune) bool { return c <= 0x20 || c >= 0x7f }) {
		return Change{}, ErrInvalidClientID
	}
	if !ValidEmoji(r.Emoji) {
		return Change{}, ErrInvalidReaction
	}
	ch, err := s.change(ctx, r.UserID, r.RoomID, MessageChange{
		RoomID: r.RoomID, MessageID: r.MessageID, ActorID: r.UserID, ClientID: r.ClientID,
		Kind: EventReact, Body: r.Emoji, At: s.clock(),
		Check: func(m Message) error {
			if m.Deleted {
				return ErrMessageDeleted
			}
			return nil
		},
	})
	if err != nil {
		return ch, err
	}
	blocked, err := s.people.BlockedIDs(ctx, r.UserID)
	if err != nil {
		return Change{}, err
	}
	filterReactions(&ch.Message, blocked)
	return ch, nil
}

// toggleReaction adds or removes user's emoji in m's summary.
func toggleReaction(m *Message, user, emoji string) error {
	rs := slices.Clone(m.Reactions)
	i := slices.IndexFunc(rs, func(r Reaction) bool { return r.Emoji == emoji })
	switch {
	case i < 0:
		if len(rs) >= MaxReactionsPerMessage {
			return ErrInvalidReaction
		}
		rs = append(rs, Reaction{Emoji: emoji, Count: 1, Users: []string{user}})
	case slices.Contains(rs[i].Users, user):
		users := slices.DeleteFunc(slices.Clone(rs[i].Users), func(u string) bool { return u == user })
		if len(users) == 0 {
			rs = slices.Delete(rs, i, i+1)
		} else {
			rs[i] = Reaction{Emoji: emoji, Count: len(users), Users: users}
		}
	default:
		users := append(slices.Clone(rs[i].Users), user)
		rs[i] = Reaction{Emoji: emoji, Count: len(users), Users: users}
	}
	if len(rs) == 0 {
		rs = nil
	}
	m.Reactions = rs
	return nil
}

// filterReactions leaves out the reactions of users the viewer blocked.
func filterReactions(m *Message, blocked []string) {
	if len(blocked) == 0 || len(m.Reactions) == 0 {
		return
	}
	var out []Reaction
	for _, r := range m.Reactions {
		users := slices.DeleteFunc(slices.Clone(r.Users), func(u string) bool { return slices.Contains(blocked, u) })
		if len(users) > 0 {
			out = append(out, Reaction{Emoji: r.Emoji, Count: len(users), Users: users})
		}
	}
	m.Reactions = out
}

// ValidEmoji accepts one emoji: valid UTF-8 of 1–32 bytes forming one grapheme cluster
// as emoji build them, with at least one rune outside ASCII. The cluster is a base rune
// (any printable, non-space rune: a pictograph, a symbol, a letter, a digit for keycaps),
// followed by extenders only (combining marks, U+20E3 the keycap, variation selectors
// U+FE0E/U+FE0F, skin tones U+1F3FB–U+1F3FF, tag characters U+E0020–U+E007F), where a
// zero-width joiner U+200D may link another base and its extenders (family, profession
// and flag sequences); or exactly two regional indicators (a country flag). Control,
// format (other than those), space and private-use runes are refused.
func ValidEmoji(s string) bool {
	if s == "" || len(s) > MaxEmojiBytes || !utf8.ValidString(s) {
		return false
	}
	runes := []rune(s)
	nonASCII := slices.ContainsFunc(runes, func(r rune) bool { return r >= 0x80 })
	if !nonASCII {
		return false
	}
	isRI := func(r rune) bool { return r >= 0x1F1E6 && r <= 0x1F1FF }
	if isRI(runes[0]) {
		return len(runes) == 2 && isRI(runes[1])
	}
	isExtender := func(r rune) bool {
		return unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Me, r) || r == 0xFE0E || r == 0xFE0F ||
			(r >= 0x1F3FB && r <= 0x1F3FF) || (r >= 0xE0020 && r <= 0xE007F)
	}
	isBase := func(r rune) bool {
		return unicode.IsGraphic(r) && !unicode.IsSpace(r) && !isExtender(r) && !isRI(r) && !unicode.Is(unicode.Co, r)
	}
	needBase := true
	for _, r := range runes {
		switch {
		case needBase:
			if !isBase(r) {
				return false
			}
			needBase = false
		case r == 0x200D:
			needBase = true
		case isExtender(r):
		default:
			return false
		}
	}
	return !needBase
}
