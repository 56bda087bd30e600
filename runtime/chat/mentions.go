package chat

import (
	"context"
	"fmt"
	"strings"
)

// Mentions: "@username" in a body names a member of the room, "@room" (from the owner of
// a group only) every member. Core resolves them when it stores a message (and again on
// an edit) into user ids kept with the message; anything that resolves to nobody (an
// unknown name, someone who is not a member, "@room" from anyone else) stays plain text.

// RoomMention is the word that mentions every member of a group.
const RoomMention = "room"

// mentionName reports whether c may appear in a username.
func mentionName(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
}

// ParseMentions returns the lower-cased names mentioned in body, in order of first
// appearance and without repeats, and whether "@room" appears. An "@" counts only at the
// start of the body or after a character that cannot be part of a name or an address
// (so "a@b.com" mentions nobody). Trailing dots, dashes and underscores are sentence
// punctuation ("thanks @bob."), not part of the name.
func ParseMentions(body string) (names []string, room bool) {
	if strings.IndexByte(body, '@') < 0 {
		return nil, false // the common case, on the send path
	}
	seen := map[string]bool{}
	for i := 0; i < len(body); i++ {
		if body[i] != '@' || (i > 0 && (mentionName(body[i-1]) || body[i-1] == '@')) {
			continue
		}
		j := i + 1
		for j < len(body) && mentionName(body[j]) {
			j++
		}
		name := strings.ToLower(strings.TrimRight(body[i+1:j], "._-"))
		i = j - 1
		if len(name) < 3 || len(name) > 32 || !isAlnum(name[0]) {
			continue
		}
		if name == RoomMention {
			room = true
			continue
		}
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	return names, room
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// mentionResolver resolves the mentions of many bodies with one user look-up.
type mentionResolver struct {
	ids map[string]string // lower-cased username -> user id
}

// newMentionResolver looks up every name mentioned in bodies at once.
func (s *Service) newMentionResolver(ctx context.Context, bodies []string) (*mentionResolver, error) {
	var all []string
	seen := map[string]bool{}
	for _, b := range bodies {
		names, _ := ParseMentions(b)
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				all = append(all, n)
			}
		}
	}
	r := &mentionResolver{ids: map[string]string{}}
	if len(all) == 0 {
		return r, nil
	}
	ids, err := s.people.IDsByUsername(ctx, all)
	if err != nil {
		return nil, fmt.Errorf("mentioned users: %w", err)
	}
	r.ids = ids
	return r, nil
}

// candidates are the user ids body names (members or not), without the sender.
func (r *mentionResolver) candidates(body, senderID string) []string {
	names, _ := ParseMentions(body)
	var out []string
	for _, n := range names {
		if id, ok := r.ids[n]; ok && id != senderID {
			out = append(out, id)
		}
	}
	return out
}

// resolve returns the mentioned members, in order of first mention, without repeats and
// without the sender: those candidates who are members (isMember), then, for "@room" by
// the owner of a group, the rest of roomMembers.
func (r *mentionResolver) resolve(body, senderID string, room Room, isMember func(string) bool, roomMembers []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, id := range r.candidates(body, senderID) {
		if !seen[id] && isMember(id) {
			seen[id] = true
			out = append(out, id)
		}
	}
	if roomMentioned(body, senderID, room) {
		for _, id := range roomMembers {
			if !seen[id] && id != senderID {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	return out
}

// roomMentioned says whether body mentions the whole room with authority to.
func roomMentioned(body, senderID string, room Room) bool {
	if room.Kind != KindGroup || room.OwnerID != senderID {
		return false
	}
	_, all := ParseMentions(body)
	return all
}

// resolveMentions resolves the mentions of one body sent (or edited) by senderID in room.
func (s *Service) resolveMentions(ctx context.Context, room Room, senderID, body string) ([]string, error) {
	r, err := s.newMentionResolver(ctx, []string{body})
	if err != nil {
		return nil, err
	}
	in := map[string]bool{}
	if ids := r.candidates(body, senderID); len(ids) > 0 {
		if in, err = s.store.MembersAmong(ctx, room.ID, ids); err != nil {
			return nil, fmt.Errorf("members: %w", err)
		}
	}
	var everyone []string
	if roomMentioned(body, senderID, room) {
		if everyone, err = s.memberIDs(ctx, room.ID); err != nil {
			return nil, err
		}
	}
	return r.resolve(body, senderID, room, func(id string) bool { return in[id] }, everyone), nil
}

// memberIDs lists the user ids of a room's members.
func (s *Service) memberIDs(ctx context.Context, roomID string) ([]string, error) {
	ms, err := s.store.Members(ctx, roomID)
	if err != nil {
		return nil, fmt.Errorf("members: %w", err)
	}
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.UserID
	}
	return ids, nil
}
