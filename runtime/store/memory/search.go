package memory

import (
	"context"
	"slices"
	"strings"
	"unicode"

	"github.com/parleychat/parley/runtime/chat"
)

// The memory store's search follows PostgreSQL's 'simple' configuration as far as is
// sensible: words are runs of letters and digits, compared case-insensitively, without
// stemming. The query syntax is websearch_to_tsquery's: words must all appear, "quoted
// phrases" must appear as consecutive words, `or` separates alternatives, -word or
// -"phrase" excludes. The rank is the number of occurrences of the query's words.

type clause struct {
	words []string // one word, or a phrase
	neg   bool
}

// parseQuery returns alternatives, each a conjunction of clauses.
func parseQuery(q string) [][]clause {
	var groups [][]clause
	var cur []clause
	rs := []rune(q)
	for i := 0; i < len(rs); {
		r := rs[i]
		if unicode.IsSpace(r) {
			i++
			continue
		}
		neg := false
		if r == '-' && i+1 < len(rs) && !unicode.IsSpace(rs[i+1]) {
			neg = true
			i++
		}
		var chunk string
		if i < len(rs) && rs[i] == '"' {
			j := i + 1
			for j < len(rs) && rs[j] != '"' {
				j++
			}
			chunk = string(rs[i+1 : min(j, len(rs))])
			i = j + 1
		} else {
			j := i
			for j < len(rs) && !unicode.IsSpace(rs[j]) && rs[j] != '"' {
				j++
			}
			chunk = string(rs[i:j])
			i = j
		}
		ws := chat.Words(chunk)
		if len(ws) == 0 {
			continue
		}
		if !neg && len(ws) == 1 && ws[0].Text == "or" && strings.EqualFold(strings.TrimSpace(chunk), "or") {
			if len(cur) > 0 {
				groups = append(groups, cur)
				cur = nil
			}
			continue
		}
		c := clause{neg: neg}
		for _, w := range ws {
			c.words = append(c.words, w.Text)
		}
		cur = append(cur, c)
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	return groups
}

// phraseAt lists the start indexes in doc where the phrase occurs.
func phraseAt(doc []chat.Word, phrase []string) []int {
	var out []int
	for i := 0; i+len(phrase) <= len(doc); i++ {
		ok := true
		for j, p := range phrase {
			if doc[i+j].Text != p {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, i)
		}
	}
	return out
}

// match returns whether doc matches and which of its words are hits.
func match(doc []chat.Word, groups [][]clause) (bool, map[int]bool) {
	hits := map[int]bool{}
	matched := false
	for _, g := range groups {
		ok := true
		gh := map[int]bool{}
		for _, c := range g {
			at := phraseAt(doc, c.words)
			if c.neg {
				if len(at) > 0 {
					ok = false
				}
				continue
			}
			if len(at) == 0 {
				ok = false
				continue
			}
			for _, i := range at {
				for j := range c.words {
					gh[i+j] = true
				}
			}
		}
		if ok {
			matched = true
			for i := range gh {
				hits[i] = true
			}
		}
	}
	return matched, hits
}

func searchAfter(h chat.SearchHit, a *chat.SearchAfter) bool {
	if a == nil {
		return true
	}
	if h.Rank != a.Rank {
		return h.Rank < a.Rank
	}
	if !h.Message.CreatedAt.Equal(a.CreatedAt) {
		return h.Message.CreatedAt.Before(a.CreatedAt)
	}
	return h.Message.ID < a.ID
}

// SearchMessages implements chat.Store.
func (s *Chat) SearchMessages(_ context.Context, q chat.StoreSearch) ([]chat.SearchHit, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	groups := parseQuery(q.Text)
	if len(groups) == 0 {
		return []chat.SearchHit{}, nil
	}
	var found []chat.SearchHit
	for roomID, ms := range s.members {
		if _, ok := ms[q.ViewerID]; !ok || (q.RoomID != "" && roomID != q.RoomID) {
			continue
		}
		for _, m := range s.messages[roomID] {
			if (q.SenderID != "" && m.SenderID != q.SenderID) || slices.Contains(q.ExcludeSenders, m.SenderID) || !searchable(m) {
				continue
			}
			doc := chat.Words(m.Body)
			ok, hits := match(doc, groups)
			if !ok {
				continue
			}
			text, hl := chat.Snippet(m.Body, doc, hits)
			h := chat.SearchHit{Message: clone(m), Snippet: text, Highlights: hl, Rank: float32(len(hits))}
			if searchAfter(h, q.After) {
				found = append(found, h)
			}
		}
	}
	slices.SortFunc(found, func(a, b chat.SearchHit) int {
		switch {
		case a.Rank != b.Rank:
			if a.Rank > b.Rank {
				return -1
			}
			return 1
		case !a.Message.CreatedAt.Equal(b.Message.CreatedAt):
			return b.Message.CreatedAt.Compare(a.Message.CreatedAt)
		default:
			return strings.Compare(b.Message.ID, a.Message.ID)
		}
	})
	if len(found) > q.Limit {
		found = found[:q.Limit]
	}
	return found, nil
}

// searchable leaves out what search must never return.
func searchable(m chat.Message) bool { return !m.Hidden && !m.Deleted }

// SetNotifyLevel implements chat.Store.
func (s *Chat) SetNotifyLevel(_ context.Context, roomID, userID string, level chat.NotifyLevel) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	row, ok := s.members[roomID][userID]
	if !ok {
		return chat.ErrNotFound
	}
	row.level = level
	return nil
}

// NotifyLevels implements chat.Store.
func (s *Chat) NotifyLevels(_ context.Context, roomID string, userIDs []string) (map[string]chat.NotifyLevel, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]chat.NotifyLevel{}
	for _, u := range userIDs {
		if row, ok := s.members[roomID][u]; ok {
			out[u] = row.levelOrDefault()
		}
	}
	return out, nil
}

func (r *memberRow) levelOrDefault() chat.NotifyLevel {
	if r.level == "" {
		return chat.NotifyAll
	}
	return r.level
}
