package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/runtime/chat"
)

// Search runs on the generated body_tsv column and its GIN index (migration 0005):
// websearch_to_tsquery with the 'simple' configuration, ranked by ts_rank, then newest.
// The inner query picks the page; ts_headline, which re-parses the body, runs only on the
// page's rows, over the whole body (HighlightAll), and only says which words matched:
// its text is not the body (the parser turns anything that looks like an XML tag into a
// space), so the snippet is cut from the body itself by chat.Snippet, as the memory
// store does. The marks are the control characters \x01 and \x02, removed from the body
// first so that a body cannot fake one.
const searchSQL = `SELECT ` + messageCols + `, p.h_rank,
		ts_headline('simple'::regconfig, translate(body, E'\x01\x02', ''), websearch_to_tsquery('simple'::regconfig, $2),
			'StartSel=' || E'\x01' || ', StopSel=' || E'\x02' || ', HighlightAll=true')
	FROM (
		SELECT h.* FROM (
			SELECT m.id AS h_id, m.created_at AS h_at,
				ts_rank(m.body_tsv, websearch_to_tsquery('simple'::regconfig, $2)) AS h_rank
			FROM messages m
			WHERE m.body_tsv @@ websearch_to_tsquery('simple'::regconfig, $2)
				AND m.deleted_at IS NULL
				AND m.room_id IN (SELECT room_id FROM members WHERE user_id = $1)
				AND ($3 = '' OR m.room_id = $3)
				AND ($4 = '' OR m.sender_id = $4)
				AND m.sender_id <> ALL($5::text[])
		) h
		WHERE NOT $6::boolean OR h.h_rank < $7::real OR (h.h_rank = $7::real AND (h.h_at, h.h_id) < ($8::timestamptz, $9::text))
		ORDER BY h.h_rank DESC, h.h_at DESC, h.h_id DESC
		LIMIT $10
	) p
	JOIN messages ON messages.id = p.h_id
	ORDER BY p.h_rank DESC, p.h_at DESC, p.h_id DESC`

// withExtra scans a message's columns (scanMessage) followed by more.
type withExtra struct {
	pgx.Row
	extra []any
}

func (r withExtra) Scan(dest ...any) error { return r.Row.Scan(append(dest, r.extra...)...) }

// SearchMessages implements chat.Store.
func (s *Chat) SearchMessages(ctx context.Context, q chat.StoreSearch) ([]chat.SearchHit, error) {
	exclude := q.ExcludeSenders
	if exclude == nil {
		exclude = []string{}
	}
	var (
		after bool
		rank  float32
		at    any
		id    string
	)
	if q.After != nil {
		after, rank, at, id = true, q.After.Rank, q.After.CreatedAt, q.After.ID
	}
	rows, err := s.pool.Query(ctx, searchSQL, pgx.QueryExecModeExec, q.ViewerID, q.Text, q.RoomID, q.SenderID, exclude, after, rank, at, id, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("search messages: %w", err)
	}
	defer rows.Close()
	out := []chat.SearchHit{}
	for rows.Next() {
		var h chat.SearchHit
		var marked string
		msg, err := scanMessage(withExtra{rows, []any{&h.Rank, &marked}})
		if err != nil {
			return nil, fmt.Errorf("scan search hit: %w", err)
		}
		h.Message = msg
		m := &h.Message
		matched := markedWords(marked)
		words := chat.Words(m.Body)
		hits := map[int]bool{}
		for i, w := range words {
			if matched[w.Text] {
				hits[i] = true
			}
		}
		h.Snippet, h.Highlights = chat.Snippet(m.Body, words, hits)
		out = append(out, h)
	}
	return out, rows.Err()
}

// markedWords returns the words ts_headline marked \x01like this\x02, lower-cased.
func markedWords(marked string) map[string]bool {
	out := map[string]bool{}
	for _, part := range strings.Split(marked, "\x01")[1:] {
		hit, _, _ := strings.Cut(part, "\x02")
		for _, w := range chat.Words(hit) {
			out[w.Text] = true
		}
	}
	return out
}

// SetNotifyLevel implements chat.Store.
func (s *Chat) SetNotifyLevel(ctx context.Context, roomID, userID string, level chat.NotifyLevel) error {
	tag, err := s.pool.Exec(ctx, `UPDATE members SET notify_level = $3 WHERE room_id = $1 AND user_id = $2`, roomID, userID, string(level))
	if err != nil {
		return fmt.Errorf("set notification level: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return chat.ErrNotFound
	}
	return nil
}

// NotifyLevels implements chat.Store.
func (s *Chat) NotifyLevels(ctx context.Context, roomID string, userIDs []string) (map[string]chat.NotifyLevel, error) {
	rows, err := s.pool.Query(ctx, `SELECT user_id, notify_level FROM members WHERE room_id = $1 AND user_id = ANY($2)`, pgx.QueryExecModeExec, roomID, userIDs)
	if err != nil {
		return nil, fmt.Errorf("select notification levels: %w", err)
	}
	defer rows.Close()
	out := map[string]chat.NotifyLevel{}
	for rows.Next() {
		var u, l string
		if err := rows.Scan(&u, &l); err != nil {
			return nil, fmt.Errorf("scan notification level: %w", err)
		}
		out[u] = chat.NotifyLevel(l)
	}
	if err := rows.Err(); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	}
	return out, nil
}
