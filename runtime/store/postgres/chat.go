package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/runtime/chat"
)

// Chat is the PostgreSQL chat.Store.
type Chat struct{ pool *pgxpool.Pool }

// NewChat returns a store on pool; the schema must be migrated.
func NewChat(pool *pgxpool.Pool) *Chat { return &Chat{pool: pool} }

var _ chat.Store = (*Chat)(nil)

const roomCols = `id, kind, name, topic, coalesce(owner_id, ''), last_seq, created_at, last_event_seq, announced_seq`

func scanRoom(row pgx.Row, extra ...any) (chat.Room, error) {
	var r chat.Room
	err := row.Scan(append([]any{&r.ID, &r.Kind, &r.Name, &r.Topic, &r.OwnerID, &r.LastSeq, &r.CreatedAt, &r.LastEventSeq, &r.AnnouncedSeq}, extra...)...)
	return r, err
}

const messageCols = `id, room_id, seq, sender_id, client_id, body, attachments, created_at, reply_to, edited_at, deleted_at IS NOT NULL, event_seq, mentions`

// textArray is ids as a text[] value: a nil slice would be NULL.
func textArray(ids []string) []string {
	if ids == nil {
		return []string{}
	}
	return ids
}

func scanMessage(row pgx.Row) (chat.Message, error) {
	var m chat.Message
	err := row.Scan(&m.ID, &m.RoomID, &m.Seq, &m.SenderID, &m.ClientID, &m.Body, &m.Attachments, &m.CreatedAt, &m.ReplyTo, &m.EditedAt, &m.Deleted, &m.EventSeq, &m.Mentions)
	if m.Attachments == nil {
		m.Attachments = []string{}
	}
	if len(m.Mentions) == 0 {
		m.Mentions = nil
	}
	return m, err
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// CreateDirectRoom implements chat.Store.
func (s *Chat) CreateDirectRoom(ctx context.Context, room chat.Room, a, b string) (chat.Room, bool, error) {
	key := min(a, b) + "|" + max(a, b)
	var out chat.Room
	created := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO rooms (id, kind, direct_key, created_at) VALUES ($1, 'direct', $2, $3) ON CONFLICT (direct_key) DO NOTHING`,
			room.ID, key, room.CreatedAt)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			created = true
			if _, err := tx.Exec(ctx, `INSERT INTO members (room_id, user_id, joined_at, receipt_updated_at)
				SELECT $1, u, $3, $3 FROM unnest($2::text[]) AS u`, room.ID, []string{a, b}, room.CreatedAt); err != nil {
				return err
			}
		}
		out, err = scanRoom(tx.QueryRow(ctx, `SELECT `+roomCols+` FROM rooms WHERE direct_key = $1`, key))
		return err
	})
	if err != nil {
		return chat.Room{}, false, fmt.Errorf("create direct room: %w", err)
	}
	return out, created, nil
}

// CreateGroupRoom implements chat.Store.
func (s *Chat) CreateGroupRoom(ctx context.Context, room chat.Room, memberIDs []string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO rooms (id, kind, name, topic, owner_id, created_at) VALUES ($1, 'group', $2, $3, $4, $5)`,
			room.ID, room.Name, room.Topic, nullIfEmpty(room.OwnerID), room.CreatedAt); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO members (room_id, user_id, joined_at, receipt_updated_at)
			SELECT $1, u, $3, $3 FROM unnest($2::text[]) AS u`, room.ID, memberIDs, room.CreatedAt)
		return err
	})
	if isUniqueViolation(err) {
		return chat.ErrConflict
	}
	if err != nil {
		return fmt.Errorf("create group room: %w", err)
	}
	return nil
}

// Room implements chat.Store.
func (s *Chat) Room(ctx context.Context, id string) (chat.Room, error) {
	r, err := scanRoom(s.pool.QueryRow(ctx, `SELECT `+roomCols+` FROM rooms WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return chat.Room{}, chat.ErrNotFound
	}
	if err != nil {
		return chat.Room{}, fmt.Errorf("select room: %w", err)
	}
	return r, nil
}

// RoomsByID implements chat.Store.
func (s *Chat) RoomsByID(ctx context.Context, ids []string) (map[string]chat.Room, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+roomCols+` FROM rooms WHERE id = ANY($1)`, pgx.QueryExecModeExec, ids)
	if err != nil {
		return nil, fmt.Errorf("select rooms: %w", err)
	}
	defer rows.Close()
	out := map[string]chat.Room{}
	for rows.Next() {
		r, err := scanRoom(rows)
		if err != nil {
			return nil, fmt.Errorf("scan room: %w", err)
		}
		out[r.ID] = r
	}
	return out, rows.Err()
}

// Memberships implements chat.Store.
func (s *Chat) Memberships(ctx context.Context, pairs []chat.Membership) (map[chat.Membership]bool, error) {
	roomIDs, userIDs := make([]string, len(pairs)), make([]string, len(pairs))
	for i, p := range pairs {
		roomIDs[i], userIDs[i] = p.RoomID, p.UserID
	}
	rows, err := s.pool.Query(ctx, `SELECT m.room_id, m.user_id FROM members m
		JOIN unnest($1::text[], $2::text[]) AS p(room_id, user_id) ON m.room_id = p.room_id AND m.user_id = p.user_id`, pgx.QueryExecModeExec, roomIDs, userIDs)
	if err != nil {
		return nil, fmt.Errorf("select memberships: %w", err)
	}
	defer rows.Close()
	out := map[chat.Membership]bool{}
	for rows.Next() {
		var m chat.Membership
		if err := rows.Scan(&m.RoomID, &m.UserID); err != nil {
			return nil, fmt.Errorf("scan membership: %w", err)
		}
		out[m] = true
	}
	return out, rows.Err()
}

// UpdateRoom implements chat.Store.
func (s *Chat) UpdateRoom(ctx context.Context, id string, name, topic *string) (chat.Room, error) {
	r, err := scanRoom(s.pool.QueryRow(ctx, `UPDATE rooms SET name = coalesce($2, name), topic = coalesce($3, topic) WHERE id = $1 RETURNING `+roomCols, id, name, topic))
	if errors.Is(err, pgx.ErrNoRows) {
		return chat.Room{}, chat.ErrNotFound
	}
	if err != nil {
		return chat.Room{}, fmt.Errorf("update room: %w", err)
	}
	return r, nil
}

// SetOwner implements chat.Store.
func (s *Chat) SetOwner(ctx context.Context, roomID, ownerID string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE rooms SET owner_id = $2 WHERE id = $1`, roomID, ownerID)
	if err != nil {
		return fmt.Errorf("set owner: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return chat.ErrNotFound
	}
	return nil
}

// AddMember implements chat.Store.
func (s *Chat) AddMember(ctx context.Context, roomID, userID string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `INSERT INTO members (room_id, user_id, joined_at, receipt_updated_at)
		SELECT id, $2, $3, $3 FROM rooms WHERE id = $1 ON CONFLICT DO NOTHING`, roomID, userID, at)
	if err != nil {
		return fmt.Errorf("add member: %w", err)
	}
	if tag.RowsAffected() == 0 {
		if _, err := s.Room(ctx, roomID); err != nil {
			return err
		}
		return chat.ErrConflict
	}
	return nil
}

// RemoveMember implements chat.Store.
func (s *Chat) RemoveMember(ctx context.Context, roomID, userID string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM members WHERE room_id = $1 AND user_id = $2`, roomID, userID)
	if err != nil {
		return fmt.Errorf("remove member: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return chat.ErrNotFound
	}
	return nil
}

// Members implements chat.Store.
func (s *Chat) Members(ctx context.Context, roomID string) ([]chat.Member, error) {
	rows, err := s.pool.Query(ctx, `SELECT room_id, user_id, joined_at FROM members WHERE room_id = $1 ORDER BY user_id`, roomID)
	if err != nil {
		return nil, fmt.Errorf("select members: %w", err)
	}
	defer rows.Close()
	out := []chat.Member{}
	for rows.Next() {
		var m chat.Member
		if err := rows.Scan(&m.RoomID, &m.UserID, &m.JoinedAt); err != nil {
			return nil, fmt.Errorf("scan member: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// Contacts implements chat.Store. A group's size is counted only up to largeGroup+1
// rows, so a user in very large rooms does not pay for counting them.
func (s *Chat) Contacts(ctx context.Context, userID string, exclude []string, largeGroup int) ([]string, error) {
	if exclude == nil {
		exclude = []string{} // a nil slice is NULL, and "<> ALL (NULL)" excludes everyone
	}
	rows, err := s.pool.Query(ctx, `
		WITH mine AS (
			SELECT r.id, r.kind FROM members m JOIN rooms r ON r.id = m.room_id WHERE m.user_id = $1
		), small AS (
			SELECT id FROM mine
			WHERE kind = 'direct'
			   OR (SELECT count(*) FROM (SELECT 1 FROM members c WHERE c.room_id = mine.id LIMIT $3 + 1) n) <= $3
		)
		SELECT DISTINCT m.user_id FROM members m JOIN small ON small.id = m.room_id
		WHERE m.user_id <> $1 AND NOT (m.user_id = ANY($2))
		ORDER BY m.user_id`, userID, exclude, largeGroup)
	if err != nil {
		return nil, fmt.Errorf("select contacts: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("scan contacts: %w", err)
	}
	return ids, nil
}

// MembersAmong implements chat.Store.
func (s *Chat) MembersAmong(ctx context.Context, roomID string, userIDs []string) (map[string]bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT user_id FROM members WHERE room_id = $1 AND user_id = ANY($2)`, roomID, userIDs)
	if err != nil {
		return nil, fmt.Errorf("select members: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("scan members: %w", err)
	}
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// CountMembers implements chat.Store.
func (s *Chat) CountMembers(ctx context.Context, roomID string) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM members WHERE room_id = $1`, roomID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count members: %w", err)
	}
	return n, nil
}

// RoomsOf implements chat.Store.
func (s *Chat) RoomsOf(ctx context.Context, userID string, exclude []string) ([]chat.RoomSummary, error) {
	if exclude == nil {
		exclude = []string{}
	}
	rows, err := s.pool.Query(ctx, `SELECT r.id, r.kind, r.name, r.topic, coalesce(r.owner_id, ''), r.last_seq, r.created_at,
			m.delivered_seq, m.read_seq, m.receipt_updated_at, m.notify_level,
			lm.id, lm.seq, lm.sender_id, lm.client_id, lm.body, lm.attachments, lm.created_at, lm.deleted_at IS NOT NULL, lm.edited_at, lm.mentions,
			uc.unread, uc.mentions
		FROM members m
		JOIN rooms r ON r.id = m.room_id
		LEFT JOIN messages lm ON lm.room_id = r.id AND lm.seq = r.last_seq
		CROSS JOIN LATERAL (SELECT count(*) AS unread, count(*) FILTER (WHERE u.mentions @> ARRAY[$1::text]) AS mentions
			FROM messages u WHERE u.room_id = r.id AND u.seq > m.read_seq AND u.sender_id <> ALL($2)) uc
		WHERE m.user_id = $1
		ORDER BY coalesce(lm.created_at, r.created_at) DESC, r.id`, userID, exclude)
	if err != nil {
		return nil, fmt.Errorf("select rooms: %w", err)
	}
	defer rows.Close()
	out := []chat.RoomSummary{}
	for rows.Next() {
		var sum chat.RoomSummary
		var lmID, lmSender, lmClient, lmBody *string
		var lmSeq *int64
		var lmAtt, lmMentions []string
		var lmAt, lmEdited *time.Time
		var lmDeleted *bool
		r := &sum.Room
		rc := &sum.Receipt
		if err := rows.Scan(&r.ID, &r.Kind, &r.Name, &r.Topic, &r.OwnerID, &r.LastSeq, &r.CreatedAt,
			&rc.DeliveredSeq, &rc.ReadSeq, &rc.UpdatedAt, &sum.NotificationLevel,
			&lmID, &lmSeq, &lmSender, &lmClient, &lmBody, &lmAtt, &lmAt, &lmDeleted, &lmEdited, &lmMentions, &sum.Unread, &sum.Mentions); err != nil {
			return nil, fmt.Errorf("scan room: %w", err)
		}
		rc.RoomID, rc.UserID = r.ID, userID
		if lmID != nil {
			if lmAtt == nil {
				lmAtt = []string{}
			}
			sum.LastMessage = &chat.Message{ID: *lmID, RoomID: r.ID, Seq: *lmSeq, SenderID: *lmSender, ClientID: *lmClient, Body: *lmBody, Attachments: lmAtt, CreatedAt: *lmAt,
				Deleted: lmDeleted != nil && *lmDeleted, EditedAt: lmEdited}
			if len(lmMentions) > 0 {
				sum.LastMessage.Mentions = lmMentions
			}
		}
		out = append(out, sum)
	}
	return out, rows.Err()
}

func keyColumns(keys []chat.ClientKey) (senders, clients []string) {
	senders, clients = make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		senders[i], clients[i] = k.SenderID, k.ClientID
	}
	return senders, clients
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func messagesByClientKey(ctx context.Context, q querier, keys []chat.ClientKey) (map[chat.ClientKey]chat.Message, error) {
	out := map[chat.ClientKey]chat.Message{}
	if len(keys) == 0 {
		return out, nil
	}
	senders, clients := keyColumns(keys)
	rows, err := q.Query(ctx, `SELECT m.id, m.room_id, m.seq, m.sender_id, m.client_id, m.body, m.attachments, m.created_at, m.reply_to,
			m.edited_at, m.deleted_at IS NOT NULL, m.event_seq, m.mentions
		FROM messages m JOIN unnest($1::text[], $2::text[]) AS k(sender_id, client_id)
		ON m.sender_id = k.sender_id AND m.client_id = k.client_id`, pgx.QueryExecModeExec, senders, clients)
	if err != nil {
		return nil, fmt.Errorf("select by client key: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("scan message: %w", err)
		}
		out[chat.ClientKey{SenderID: m.SenderID, ClientID: m.ClientID}] = m
	}
	return out, rows.Err()
}

// The batch look-ups below run in QueryExecModeExec: an unnamed statement is planned
// for each call with the real arrays. A cached statement would switch to a generic plan
// after five calls, and one made while the table was still small is a sequential scan
// that stays in use as the table grows, until the next ANALYZE (a 10x slowdown measured
// on a fresh database).

// MessagesByID implements chat.Store.
func (s *Chat) MessagesByID(ctx context.Context, ids []string) (map[string]chat.Message, error) {
	out := map[string]chat.Message{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+messageCols+` FROM messages WHERE id = ANY($1)`, pgx.QueryExecModeExec, ids)
	if err != nil {
		return nil, fmt.Errorf("select by id: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("scan message: %w", err)
		}
		out[m.ID] = m
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var ptrs []*chat.Message
	for id := range out {
		m := out[id]
		ptrs = append(ptrs, &m)
		out[id] = m
	}
	if err := fillReactions(ctx, s.pool, ptrs); err != nil {
		return nil, err
	}
	for _, m := range ptrs {
		out[m.ID] = *m
	}
	return out, nil
}

// ChangeMessage implements chat.Store: the message row is locked, then the room row
// (which hands out event sequence numbers, like last_seq for messages), so concurrent
// changes of one room are numbered in commit order without gaps.
func (s *Chat) ChangeMessage(ctx context.Context, c chat.MessageChange) (chat.ChangeResult, error) {
	var out chat.ChangeResult
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		cur, err := scanMessage(tx.QueryRow(ctx, `SELECT `+messageCols+` FROM messages WHERE id = $1 AND room_id = $2 FOR UPDATE`, c.MessageID, c.RoomID))
		if errors.Is(err, pgx.ErrNoRows) {
			return chat.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("lock message: %w", err)
		}
		if err := fillReactions(ctx, tx, []*chat.Message{&cur}); err != nil {
			return err
		}
		if c.ClientID != "" {
			var ev chat.RoomEvent
			err := tx.QueryRow(ctx, `SELECT room_id, event_seq, kind, message_id, actor_id, client_id, created_at
				FROM room_events WHERE actor_id = $1 AND client_id = $2`, c.ActorID, c.ClientID).
				Scan(&ev.RoomID, &ev.EventSeq, &ev.Kind, &ev.MessageID, &ev.ActorID, &ev.ClientID, &ev.CreatedAt)
			if err == nil {
				ev.Message = cur
				out = chat.ChangeResult{Event: ev, Duplicate: true}
				return nil
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("event by client id: %w", err)
			}
		}
		var last int64
		if err := tx.QueryRow(ctx, `SELECT last_event_seq FROM rooms WHERE id = $1 FOR UPDATE`, c.RoomID).Scan(&last); err != nil {
			return fmt.Errorf("lock room: %w", err)
		}
		next, changed, err := chat.ApplyChange(cur, c, last+1)
		if err != nil {
			return err
		}
		if !changed {
			out = chat.ChangeResult{Event: chat.RoomEvent{RoomID: c.RoomID, MessageID: c.MessageID, Message: cur}, NoOp: true}
			return nil
		}
		var deletedAt *time.Time
		if next.Deleted {
			deletedAt = &c.At
		}
		b := &pgx.Batch{}
		b.Queue(`UPDATE rooms SET last_event_seq = $2 WHERE id = $1`, c.RoomID, next.EventSeq)
		b.Queue(`UPDATE messages SET body = $2, attachments = $3, edited_at = $4, deleted_at = coalesce(deleted_at, $5), event_seq = $6, mentions = $7 WHERE id = $1`,
			next.ID, next.Body, next.Attachments, next.EditedAt, deletedAt, next.EventSeq, textArray(next.Mentions))
		b.Queue(`INSERT INTO room_events (room_id, event_seq, kind, message_id, actor_id, client_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			c.RoomID, next.EventSeq, string(c.Kind), c.MessageID, c.ActorID, c.ClientID, c.At)
		switch {
		case c.Kind == chat.EventDelete:
			b.Queue(`DELETE FROM reactions WHERE message_id = $1`, c.MessageID)
		case c.Kind == chat.EventReact && reacted(next, c.ActorID, c.Body):
			b.Queue(`INSERT INTO reactions (message_id, user_id, emoji, created_at) VALUES ($1, $2, $3, $4)`, c.MessageID, c.ActorID, c.Body, c.At)
		case c.Kind == chat.EventReact:
			b.Queue(`DELETE FROM reactions WHERE message_id = $1 AND user_id = $2 AND emoji = $3`, c.MessageID, c.ActorID, c.Body)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			if isUniqueViolation(err) {
				return fmt.Errorf("concurrent change with the same client id: %w", chat.ErrConflict)
			}
			return fmt.Errorf("record change: %w", err)
		}
		out = chat.ChangeResult{Event: chat.RoomEvent{RoomID: c.RoomID, EventSeq: next.EventSeq, Kind: c.Kind, MessageID: c.MessageID,
			ActorID: c.ActorID, ClientID: c.ClientID, CreatedAt: c.At, Message: next}}
		return nil
	})
	return out, err
}

func reacted(m chat.Message, user, emoji string) bool {
	for _, r := range m.Reactions {
		if r.Emoji == emoji {
			return slices.Contains(r.Users, user)
		}
	}
	return false
}

// fillReactions loads the reaction summaries of msgs in one query: emoji in the order
// they were first used, users oldest first.
func fillReactions(ctx context.Context, q querier, msgs []*chat.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	ids := make([]string, len(msgs))
	byID := make(map[string][]*chat.Message, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
		byID[m.ID] = append(byID[m.ID], m)
	}
	rows, err := q.Query(ctx, `SELECT message_id, emoji, array_agg(user_id ORDER BY created_at, user_id)
		FROM reactions WHERE message_id = ANY($1) GROUP BY message_id, emoji ORDER BY message_id, min(created_at), emoji`, pgx.QueryExecModeExec, ids)
	if err != nil {
		return fmt.Errorf("select reactions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var r chat.Reaction
		if err := rows.Scan(&id, &r.Emoji, &r.Users); err != nil {
			return fmt.Errorf("scan reaction: %w", err)
		}
		r.Count = len(r.Users)
		for _, m := range byID[id] {
			m.Reactions = append(m.Reactions, r)
		}
	}
	return rows.Err()
}

// EventsAfter implements chat.Store.
func (s *Chat) EventsAfter(ctx context.Context, roomID string, after int64, limit int) ([]chat.RoomEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT e.room_id, e.event_seq, e.kind, e.message_id, e.actor_id, e.client_id, e.created_at,
			m.id, m.room_id, m.seq, m.sender_id, m.client_id, m.body, m.attachments, m.created_at, m.reply_to,
			m.edited_at, m.deleted_at IS NOT NULL, m.event_seq, m.mentions
		FROM room_events e JOIN messages m ON m.id = e.message_id
		WHERE e.room_id = $1 AND e.event_seq > $2 ORDER BY e.event_seq LIMIT $3`, roomID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("select events: %w", err)
	}
	defer rows.Close()
	out := []chat.RoomEvent{}
	for rows.Next() {
		var ev chat.RoomEvent
		m := &ev.Message
		if err := rows.Scan(&ev.RoomID, &ev.EventSeq, &ev.Kind, &ev.MessageID, &ev.ActorID, &ev.ClientID, &ev.CreatedAt,
			&m.ID, &m.RoomID, &m.Seq, &m.SenderID, &m.ClientID, &m.Body, &m.Attachments, &m.CreatedAt, &m.ReplyTo,
			&m.EditedAt, &m.Deleted, &m.EventSeq, &m.Mentions); err != nil {
			return nil, fmt.Errorf("scan event: %w", err)
		}
		if m.Attachments == nil {
			m.Attachments = []string{}
		}
		if len(m.Mentions) == 0 {
			m.Mentions = nil
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	ptrs := make([]*chat.Message, len(out))
	for i := range out {
		ptrs[i] = &out[i].Message
	}
	return out, fillReactions(ctx, s.pool, ptrs)
}

// MessagesByClientKey implements chat.Store.
func (s *Chat) MessagesByClientKey(ctx context.Context, keys []chat.ClientKey) (map[chat.ClientKey]chat.Message, error) {
	return messagesByClientKey(ctx, s.pool, keys)
}

var messageCopyCols = []string{"id", "room_id", "seq", "sender_id", "client_id", "body", "attachments", "created_at", "reply_to", "mentions"}

// appendAttempts bounds the rounds of AppendMessages that meet duplicates; a round after
// the second only happens when a concurrent writer stored the same client key in
// another room meanwhile.
const appendAttempts = 4

// AppendMessages implements chat.Store: one transaction, a fixed number of round trips
// whatever the batch size, and no look-up of the client keys in the common case.
//
// The batch's rooms are locked in id order (concurrent batches cannot deadlock, and a
// concurrent batch for the same rooms has committed once the locks are held); under a
// savepoint each room's range of sequence numbers is reserved (same round trip) and the
// rows are COPYed straight into messages, the same COPY as a bare one. A duplicate is
// found by the COPY itself, as a violation of the (sender, client id) key: the work since
// the savepoint is undone, the stored originals of the batch's keys are read (one query,
// only on this path), and the rest is numbered and COPYed again, so sequences stay
// gap-free. A retry costs a second round; a batch without one costs a COPY.
func (s *Chat) AppendMessages(ctx context.Context, msgs []chat.Message) ([]chat.Appended, error) {
	out := make([]chat.Appended, len(msgs))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		keys := make([]chat.ClientKey, len(msgs))
		var allRooms []string
		for i, m := range msgs {
			keys[i] = chat.ClientKey{SenderID: m.SenderID, ClientID: m.ClientID}
			if !slices.Contains(allRooms, m.RoomID) {
				allRooms = append(allRooms, m.RoomID)
			}
		}
		firstInBatch := map[chat.ClientKey]int{}
		fresh := make([]int, 0, len(msgs)) // first occurrences not known as duplicates
		for i := range msgs {
			if _, ok := firstInBatch[keys[i]]; ok {
				continue // filled in once the first copy is settled
			}
			firstInBatch[keys[i]] = i
			fresh = append(fresh, i)
		}
		locked := false
		for attempt := 0; ; attempt++ {
			if attempt == appendAttempts {
				return fmt.Errorf("client keys stored concurrently in other rooms %d times: %w", attempt, chat.ErrConflict)
			}
			stored, err := reserveAndCopy(ctx, tx, msgs, fresh, allRooms, !locked, out)
			if err != nil {
				return err
			}
			locked = true
			if stored {
				break
			}
			// A client key was taken: read the originals of the keys still fresh, and go
			// again with the others (the savepoint undid the reservation and the COPY).
			want := make([]chat.ClientKey, len(fresh))
			for k, i := range fresh {
				want[k] = keys[i]
			}
			dups, err := originals(ctx, tx, want)
			if err != nil {
				return err
			}
			rest := fresh[:0:0]
			for _, i := range fresh {
				if d, ok := dups[keys[i]]; ok {
					out[i] = d
				} else {
					rest = append(rest, i)
				}
			}
			fresh = rest
		}
		for i := range msgs {
			if j := firstInBatch[keys[i]]; j != i {
				out[i] = chat.Appended{Message: out[j].Message, Duplicate: true, Announced: out[j].Duplicate && out[j].Announced}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("append messages: %w", err)
	}
	return out, nil
}

// reserveAndCopy locks the rooms first when lock is set (in id order), then, under a
// savepoint, reserves each room's sequence range for msgs[fresh] and COPYs them. It
// reports false, having rolled back to the savepoint, when a client key was taken; out
// is filled for the stored.
func reserveAndCopy(ctx context.Context, tx pgx.Tx, msgs []chat.Message, fresh []int, rooms []string, lock bool,
	out []chat.Appended) (bool, error) {
	perRoom := map[string]int64{}
	for _, i := range fresh {
		perRoom[msgs[i].RoomID]++
	}
	ids := make([]string, 0, len(perRoom))
	counts := make([]int64, 0, len(perRoom))
	for id, n := range perRoom {
		ids = append(ids, id)
		counts = append(counts, n)
	}
	var b pgx.Batch
	if lock {
		b.Queue(`SELECT id FROM rooms WHERE id = ANY($1) ORDER BY id FOR UPDATE`, rooms)
	}
	b.Queue(`SAVEPOINT parley_append`)
	if len(fresh) > 0 {
		// The rows are locked already: the update's own order cannot deadlock.
		b.Queue(`UPDATE rooms SET last_seq = rooms.last_seq + v.n FROM unnest($1::text[], $2::bigint[]) AS v(id, n)
			WHERE rooms.id = v.id RETURNING rooms.id, rooms.last_seq`, ids, counts)
	}
	br := tx.SendBatch(ctx, &b)
	next := map[string]int64{}
	err := func() error {
		if lock {
			rows, err := br.Query()
			if err != nil {
				return fmt.Errorf("lock rooms: %w", err)
			}
			got, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return fmt.Errorf("lock rooms: %w", err)
			}
			if len(got) != len(rooms) {
				return fmt.Errorf("%d of %d rooms: %w", len(rooms)-len(got), len(rooms), chat.ErrNotFound)
			}
		}
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("savepoint: %w", err)
		}
		if len(fresh) == 0 {
			return nil
		}
		rows, err := br.Query()
		if err != nil {
			return fmt.Errorf("reserve sequences: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var last int64
			if err := rows.Scan(&id, &last); err != nil {
				return fmt.Errorf("reserve sequences: %w", err)
			}
			next[id] = last - perRoom[id] + 1
		}
		return rows.Err()
	}()
	if cerr := br.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("reserve sequences: %w", cerr)
	}
	if err != nil {
		return false, err
	}
	if len(fresh) == 0 {
		return true, nil
	}
	copyRows := make([][]any, 0, len(fresh))
	stored := make([]chat.Message, 0, len(fresh))
	for _, i := range fresh {
		m := msgs[i]
		m.Seq = next[m.RoomID]
		next[m.RoomID]++
		if m.Attachments == nil {
			m.Attachments = []string{}
		}
		stored = append(stored, m)
		copyRows = append(copyRows, []any{m.ID, m.RoomID, m.Seq, m.SenderID, m.ClientID, m.Body, m.Attachments, m.CreatedAt, m.ReplyTo, textArray(m.Mentions)})
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"messages"}, messageCopyCols, pgx.CopyFromRows(copyRows)); err != nil {
		if !isUniqueViolation(err) {
			return false, fmt.Errorf("copy messages: %w", err)
		}
		if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT parley_append`); err != nil {
			return false, fmt.Errorf("undo a COPY that met a duplicate: %w", err)
		}
		return false, nil
	}
	for k, i := range fresh {
		out[i] = chat.Appended{Message: stored[k]}
	}
	return true, nil
}

// originals reads the stored messages among keys, with whether the relay announced them.
func originals(ctx context.Context, tx pgx.Tx, keys []chat.ClientKey) (map[chat.ClientKey]chat.Appended, error) {
	senders, clients := keyColumns(keys)
	rows, err := tx.Query(ctx, `SELECT m.id, m.room_id, m.seq, m.sender_id, m.client_id, m.body, m.attachments, m.created_at, m.reply_to,
			m.edited_at, m.deleted_at IS NOT NULL, m.event_seq, m.mentions, m.seq <= r.announced_seq
		FROM messages m JOIN unnest($1::text[], $2::text[]) AS k(sender_id, client_id)
			ON m.sender_id = k.sender_id AND m.client_id = k.client_id
		JOIN rooms r ON r.id = m.room_id`, pgx.QueryExecModeExec, senders, clients)
	if err != nil {
		return nil, fmt.Errorf("select duplicates: %w", err)
	}
	defer rows.Close()
	out := map[chat.ClientKey]chat.Appended{}
	for rows.Next() {
		var m chat.Message
		var announced bool
		if err := rows.Scan(&m.ID, &m.RoomID, &m.Seq, &m.SenderID, &m.ClientID, &m.Body, &m.Attachments, &m.CreatedAt, &m.ReplyTo,
			&m.EditedAt, &m.Deleted, &m.EventSeq, &m.Mentions, &announced); err != nil {
			return nil, fmt.Errorf("scan duplicate: %w", err)
		}
		if m.Attachments == nil {
			m.Attachments = []string{}
		}
		if len(m.Mentions) == 0 {
			m.Mentions = nil
		}
		out[chat.ClientKey{SenderID: m.SenderID, ClientID: m.ClientID}] = chat.Appended{Message: m, Duplicate: true, Announced: announced}
	}
	return out, rows.Err()
}

// relayLock names the outbox relay's advisory lock: one relay at a time per schema (the
// tests run many schemas in one database).
const relayLock = `SELECT pg_try_advisory_xact_lock(hashtext('parley.outbox.' || current_schema()))`

// relayPending reads the next messages to announce. LATERAL keeps the plan an index
// range per pending room whatever the statistics say: a hash join over messages (what
// PostgreSQL picked without ANALYZE, with autovacuum off) read the whole table every
// round, so the relay slowed as the table grew and a steady 300 msgs/s fell behind.
const relayPending = `SELECT m.id, m.room_id, m.seq, m.sender_id, m.client_id, m.body, m.attachments, m.created_at, m.reply_to,
		m.edited_at, m.deleted, m.event_seq, m.mentions
	FROM (SELECT id, announced_seq, last_seq FROM rooms WHERE last_seq > announced_seq ORDER BY id LIMIT $1) r
	CROSS JOIN LATERAL (
		SELECT id, room_id, seq, sender_id, client_id, body, attachments, created_at, reply_to,
			edited_at, deleted_at IS NOT NULL AS deleted, event_seq, mentions
		FROM messages WHERE room_id = r.id AND seq > r.announced_seq AND seq <= r.last_seq
		ORDER BY seq LIMIT $1) m
	ORDER BY r.id, m.seq LIMIT $1`

// RelayAnnouncements implements chat.Store. The transaction holds the relay's advisory
// lock, not the rooms' rows, while publish runs: senders are never held up by the bus.
// The marks are written in room id order, the order senders lock rooms in.
func (s *Chat) RelayAnnouncements(ctx context.Context, limit int, publish func(context.Context, []chat.Message) error) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var mine bool
		if err := tx.QueryRow(ctx, relayLock).Scan(&mine); err != nil {
			return fmt.Errorf("relay lock: %w", err)
		}
		if !mine {
			return chat.ErrRelayBusy
		}
		// The marks are re-derivable (a lost one re-announces, and fan-out drops repeats by
		// server id), so this commit does not wait for a WAL flush of its own.
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
			return fmt.Errorf("relay commit mode: %w", err)
		}
		// A statement after the lock: its snapshot sees the marks of the previous relay.
		rows, err := tx.Query(ctx, relayPending, limit)
		if err != nil {
			return fmt.Errorf("select unannounced: %w", err)
		}
		msgs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (chat.Message, error) { return scanMessage(row) })
		if err != nil {
			return fmt.Errorf("scan unannounced: %w", err)
		}
		if len(msgs) == 0 {
			return nil
		}
		if err := publish(ctx, msgs); err != nil {
			return err
		}
		var b pgx.Batch
		for i, m := range msgs {
			if i+1 == len(msgs) || msgs[i+1].RoomID != m.RoomID {
				b.Queue(`UPDATE rooms SET announced_seq = $2 WHERE id = $1 AND announced_seq < $2`, m.RoomID, m.Seq)
			}
		}
		if err := tx.SendBatch(ctx, &b).Close(); err != nil {
			return fmt.Errorf("mark announced: %w", err)
		}
		n = len(msgs)
		return nil
	})
	if errors.Is(err, chat.ErrRelayBusy) {
		return 0, chat.ErrRelayBusy
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}

// History implements chat.Store.
func (s *Chat) History(ctx context.Context, roomID string, q chat.HistoryQuery) (chat.Page, error) {
	var rows pgx.Rows
	var err error
	if q.Forward {
		rows, err = s.pool.Query(ctx, `SELECT `+messageCols+` FROM messages WHERE room_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, roomID, q.After, q.Limit+1)
	} else {
		before := q.Before
		if before == 0 {
			before = math.MaxInt64
		}
		rows, err = s.pool.Query(ctx, `SELECT `+messageCols+` FROM messages WHERE room_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3`, roomID, before, q.Limit+1)
	}
	if err != nil {
		return chat.Page{}, fmt.Errorf("select history: %w", err)
	}
	defer rows.Close()
	p := chat.Page{Messages: []chat.Message{}}
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return chat.Page{}, fmt.Errorf("scan message: %w", err)
		}
		p.Messages = append(p.Messages, m)
	}
	if err := rows.Err(); err != nil {
		return chat.Page{}, fmt.Errorf("select history: %w", err)
	}
	if len(p.Messages) > q.Limit {
		p.HasMore = true
		p.Messages = p.Messages[:q.Limit]
	}
	if !q.Forward {
		slices.Reverse(p.Messages)
	}
	ptrs := make([]*chat.Message, len(p.Messages))
	for i := range p.Messages {
		ptrs[i] = &p.Messages[i]
	}
	return p, fillReactions(ctx, s.pool, ptrs)
}

// AdvanceReceipt implements chat.Store.
func (s *Chat) AdvanceReceipt(ctx context.Context, roomID, userID string, kind chat.ReceiptKind, seq int64, at time.Time) (chat.Receipt, error) {
	rc := chat.Receipt{RoomID: roomID, UserID: userID}
	err := s.pool.QueryRow(ctx, `UPDATE members m SET
			delivered_seq = greatest(m.delivered_seq, least($4, r.last_seq)),
			read_seq = CASE WHEN $3 = 'read' THEN greatest(m.read_seq, least($4, r.last_seq)) ELSE m.read_seq END,
			receipt_updated_at = CASE WHEN least($4, r.last_seq) > m.delivered_seq
				OR ($3 = 'read' AND least($4, r.last_seq) > m.read_seq) THEN $5 ELSE m.receipt_updated_at END
		FROM rooms r
		WHERE r.id = m.room_id AND m.room_id = $1 AND m.user_id = $2
		RETURNING m.delivered_seq, m.read_seq, m.receipt_updated_at`, roomID, userID, string(kind), seq, at).
		Scan(&rc.DeliveredSeq, &rc.ReadSeq, &rc.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return chat.Receipt{}, chat.ErrNotFound
	}
	if err != nil {
		return chat.Receipt{}, fmt.Errorf("advance receipt: %w", err)
	}
	return rc, nil
}

// advanceSQL moves one member's cursors; the CTE reads the old values (locking the row)
// so the result can say whether anything moved.
const advanceSQL = `WITH old AS (
		SELECT m.room_id, m.user_id, m.delivered_seq, m.read_seq, least($4, r.last_seq) AS target
		FROM members m JOIN rooms r ON r.id = m.room_id
		WHERE m.room_id = $1 AND m.user_id = $2
		FOR UPDATE OF m
	)
	UPDATE members m SET
		delivered_seq = greatest(old.delivered_seq, old.target),
		read_seq = CASE WHEN $3 = 'read' THEN greatest(old.read_seq, old.target) ELSE old.read_seq END,
		receipt_updated_at = CASE WHEN old.target > old.delivered_seq
			OR ($3 = 'read' AND old.target > old.read_seq) THEN $5 ELSE m.receipt_updated_at END
	FROM old
	WHERE m.room_id = old.room_id AND m.user_id = old.user_id
	RETURNING m.delivered_seq, m.read_seq, m.receipt_updated_at,
		(old.target > old.delivered_seq OR ($3 = 'read' AND old.target > old.read_seq)) AS moved`

// AdvanceReceipts implements chat.Store: one transaction, one round trip for the batch.
func (s *Chat) AdvanceReceipts(ctx context.Context, in []chat.ReceiptRequest, at time.Time) ([]chat.ReceiptAdvanced, error) {
	out := make([]chat.ReceiptAdvanced, len(in))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var b pgx.Batch
		for _, r := range in {
			b.Queue(advanceSQL, r.RoomID, r.UserID, string(r.Kind), r.Seq, at)
		}
		br := tx.SendBatch(ctx, &b)
		defer br.Close()
		for i, r := range in {
			rc := chat.Receipt{RoomID: r.RoomID, UserID: r.UserID}
			var moved bool
			err := br.QueryRow().Scan(&rc.DeliveredSeq, &rc.ReadSeq, &rc.UpdatedAt, &moved)
			if errors.Is(err, pgx.ErrNoRows) {
				continue
			}
			if err != nil {
				return err
			}
			out[i] = chat.ReceiptAdvanced{Receipt: rc, Found: true, Moved: moved}
		}
		return br.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("advance receipts: %w", err)
	}
	return out, nil
}

// Receipts implements chat.Store.
func (s *Chat) Receipts(ctx context.Context, roomID string) ([]chat.Receipt, error) {
	rows, err := s.pool.Query(ctx, `SELECT room_id, user_id, delivered_seq, read_seq, receipt_updated_at FROM members WHERE room_id = $1 ORDER BY user_id`, roomID)
	if err != nil {
		return nil, fmt.Errorf("select receipts: %w", err)
	}
	defer rows.Close()
	out := []chat.Receipt{}
	for rows.Next() {
		var rc chat.Receipt
		if err := rows.Scan(&rc.RoomID, &rc.UserID, &rc.DeliveredSeq, &rc.ReadSeq, &rc.UpdatedAt); err != nil {
			return nil, fmt.Errorf("scan receipt: %w", err)
		}
		out = append(out, rc)
	}
	return out, rows.Err()
}

// RoomsReferencing implements chat.Store (served by the GIN index on attachments).
func (s *Chat) RoomsReferencing(ctx context.Context, fileID string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT room_id FROM messages WHERE attachments @> ARRAY[$1]::text[] ORDER BY room_id`, fileID)
	if err != nil {
		return nil, fmt.Errorf("select rooms referencing a file: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
