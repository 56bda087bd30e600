package chat

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Search bounds.
const (
	MaxSearchQuery        = 256 // characters of the query text
	DefaultSearchPageSize = 20
	MaxSearchPageSize     = 50
)

// ErrInvalidSearch is a blank or too long query, a bad limit or a cursor that does not
// belong to the query.
var ErrInvalidSearch = errors.New("invalid search")

// SearchQuery is what a member searches for. Text is the user's query in the syntax of
// PostgreSQL's websearch_to_tsquery: words (all must match), "quoted phrases", `or`
// between alternatives and -word to exclude. RoomID and SenderID narrow it (empty: every
// room of the viewer, any sender); Cursor continues a previous page.
type SearchQuery struct {
	Text     string
	RoomID   string
	SenderID string
	Limit    int
	Cursor   string
}

// SearchHit is one message found: the message as history would show it, and a snippet
// of its body (plain text, never markup) with the matched words as [start, end) ranges
// counted in Unicode code points of Snippet.
type SearchHit struct {
	Message    Message  `json:"message"`
	Snippet    string   `json:"snippet"`
	Highlights [][2]int `json:"highlights"`
	// Rank orders hits within one store (higher first); it is opaque to clients.
	Rank float32 `json:"-"`
}

// SearchPage is one page of hits, best first; NextCursor is empty on the last page.
type SearchPage struct {
	Hits       []SearchHit `json:"hits"`
	NextCursor string      `json:"next_cursor,omitempty"`
}

// SearchAfter is a position in a result list: hits after it rank lower, or rank the same
// and are older (CreatedAt, then ID, descending).
type SearchAfter struct {
	Rank      float32
	CreatedAt time.Time
	ID        string
}

// StoreSearch is the store side of a search: the viewer's rooms (all of them, or RoomID
// when set) minus messages of ExcludeSenders, ordered by rank descending, then
// CreatedAt and ID descending, starting after After (nil: from the top), at most Limit.
type StoreSearch struct {
	ViewerID       string
	Text           string
	RoomID         string
	SenderID       string
	ExcludeSenders []string
	After          *SearchAfter
	Limit          int
}

// NotifyLevel is a member's notification setting for a room.
type NotifyLevel string

// Notification levels. Mentions are not built yet: until they are, NotifyMentions
// pushes nothing, like NotifyMuted, but is kept apart so clients can show the choice.
const (
	NotifyAll      NotifyLevel = "all"
	NotifyMentions NotifyLevel = "mentions"
	NotifyMuted    NotifyLevel = "muted"
)

// ErrInvalidNotifyLevel is a level other than all, mentions or muted.
var ErrInvalidNotifyLevel = errors.New("invalid notification level")

// Valid tells whether l is one of the levels.
func (l NotifyLevel) Valid() bool {
	return l == NotifyAll || l == NotifyMentions || l == NotifyMuted
}

// SearchStore is what the stores add for search and notification levels.
type SearchStore interface {
	// SearchMessages finds messages for q; see StoreSearch.
	SearchMessages(ctx context.Context, q StoreSearch) ([]SearchHit, error)
	// SetNotifyLevel stores a member's level; ErrNotFound when not a member.
	SetNotifyLevel(ctx context.Context, roomID, userID string, level NotifyLevel) error
	// NotifyLevels returns the levels of those of userIDs who are members of the room.
	NotifyLevels(ctx context.Context, roomID string, userIDs []string) (map[string]NotifyLevel, error)
}

type searchCursor struct {
	Rank float32 `json:"r"`
	At   int64   `json:"t"` // unix microseconds
	ID   string  `json:"i"`
	Hash string  `json:"h"` // of the query, so a cursor is not replayed on another one
}

func searchHash(q SearchQuery) string {
	sum := sha256.Sum256([]byte(q.Text + "\x00" + q.RoomID + "\x00" + q.SenderID))
	return base64.RawURLEncoding.EncodeToString(sum[:9])
}

func encodeCursor(q SearchQuery, h SearchHit) string {
	b, _ := json.Marshal(searchCursor{Rank: h.Rank, At: h.Message.CreatedAt.UnixMicro(), ID: h.Message.ID, Hash: searchHash(q)})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(q SearchQuery) (*SearchAfter, error) {
	if q.Cursor == "" {
		return nil, nil
	}
	bad := fmt.Errorf("%w: the cursor does not belong to this query", ErrInvalidSearch)
	if len(q.Cursor) > 512 {
		return nil, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(q.Cursor)
	if err != nil {
		return nil, bad
	}
	var c searchCursor
	if err := json.Unmarshal(b, &c); err != nil || c.Hash != searchHash(q) || !validID(c.ID) {
		return nil, bad
	}
	return &SearchAfter{Rank: c.Rank, CreatedAt: time.UnixMicro(c.At).UTC(), ID: c.ID}, nil
}

// Search finds messages in the rooms userID is a member of, best match first (then
// newest). Messages of people the viewer blocked never come back. Members see a room's
// whole history, as History shows it, including what was sent before they joined.
func (s *Service) Search(ctx context.Context, userID string, q SearchQuery) (SearchPage, error) {
	text := strings.TrimSpace(q.Text)
	switch {
	case text == "":
		return SearchPage{}, fmt.Errorf("%w: the query is empty", ErrInvalidSearch)
	case !utf8.ValidString(text) || strings.ContainsRune(text, 0):
		return SearchPage{}, fmt.Errorf("%w: the query must be valid UTF-8 without NUL", ErrInvalidSearch)
	case utf8.RuneCountInString(text) > MaxSearchQuery:
		return SearchPage{}, fmt.Errorf("%w: the query is longer than %d characters", ErrInvalidSearch, MaxSearchQuery)
	case q.Limit < 0 || q.Limit > MaxSearchPageSize:
		return SearchPage{}, fmt.Errorf("%w: limit is 1-%d", ErrInvalidSearch, MaxSearchPageSize)
	}
	q.Text = text
	if q.Limit == 0 {
		q.Limit = DefaultSearchPageSize
	}
	after, err := decodeCursor(q)
	if err != nil {
		return SearchPage{}, err
	}
	if q.RoomID != "" {
		if _, err := s.memberRoom(ctx, userID, q.RoomID); err != nil {
			return SearchPage{}, err
		}
	}
	if q.SenderID != "" && !validID(q.SenderID) {
		return SearchPage{Hits: []SearchHit{}}, nil
	}
	blocked, err := s.people.BlockedIDs(ctx, userID)
	if err != nil {
		return SearchPage{}, fmt.Errorf("blocks: %w", err)
	}
	if q.SenderID != "" && slices.Contains(blocked, q.SenderID) {
		return SearchPage{Hits: []SearchHit{}}, nil
	}
	hits, err := s.store.SearchMessages(ctx, StoreSearch{ViewerID: userID, Text: text, RoomID: q.RoomID, SenderID: q.SenderID,
		ExcludeSenders: blocked, After: after, Limit: q.Limit + 1})
	if err != nil {
		return SearchPage{}, fmt.Errorf("search: %w", err)
	}
	page := SearchPage{Hits: hits}
	if page.Hits == nil {
		page.Hits = []SearchHit{}
	}
	if len(page.Hits) > q.Limit {
		page.Hits = page.Hits[:q.Limit]
		page.NextCursor = encodeCursor(q, page.Hits[q.Limit-1])
	}
	for i := range page.Hits {
		if page.Hits[i].Highlights == nil {
			page.Hits[i].Highlights = [][2]int{}
		}
		if page.Hits[i].Message.Attachments == nil {
			page.Hits[i].Message.Attachments = []string{}
		}
	}
	return page, nil
}

// SetNotifyLevel sets userID's notification level for a room they are a member of.
func (s *Service) SetNotifyLevel(ctx context.Context, userID, roomID string, level NotifyLevel) error {
	if !level.Valid() {
		return fmt.Errorf("%w: %q, want all, mentions or muted", ErrInvalidNotifyLevel, level)
	}
	if _, err := s.memberRoom(ctx, userID, roomID); err != nil {
		return err
	}
	if err := s.store.SetNotifyLevel(ctx, roomID, userID, level); err != nil {
		if errors.Is(err, ErrNotFound) {
			return ErrNotMember
		}
		return fmt.Errorf("set notification level: %w", err)
	}
	return nil
}

// NotifyLevel returns userID's notification level for a room they are a member of.
func (s *Service) NotifyLevel(ctx context.Context, userID, roomID string) (NotifyLevel, error) {
	if _, err := s.memberRoom(ctx, userID, roomID); err != nil {
		return "", err
	}
	levels, err := s.store.NotifyLevels(ctx, roomID, []string{userID})
	if err != nil {
		return "", fmt.Errorf("notification level: %w", err)
	}
	l, ok := levels[userID]
	if !ok {
		return "", ErrNotMember
	}
	return l, nil
}

// PushTargets returns those of userIDs who want a Web Push for an ordinary message of
// the room: members whose level is all. Muted members get none, and so do members at
// mentions only, since mentions do not exist yet.
func (s *Service) PushTargets(ctx context.Context, roomID string, userIDs []string) ([]string, error) {
	if len(userIDs) == 0 || !validID(roomID) {
		return nil, nil
	}
	levels, err := s.store.NotifyLevels(ctx, roomID, userIDs)
	if err != nil {
		return nil, fmt.Errorf("notification levels: %w", err)
	}
	out := make([]string, 0, len(userIDs))
	for _, u := range userIDs {
		if levels[u] == NotifyAll {
			out = append(out, u)
		}
	}
	return out, nil
}
