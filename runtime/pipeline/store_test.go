package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/runtime/protocol"
)

// pgChat is a small acceptor and advancer over a real PostgreSQL schema, written for
// these tests so that the pipeline is proven against a real database without importing
// the chat service: unique (sender, client id), a per-room sequence, forward-only cursors.
type pgChat struct {
	pool    *pgxpool.Pool
	maxBody int
}

const testSchema = `
CREATE TABLE members (room_id text NOT NULL, user_id text NOT NULL, PRIMARY KEY (room_id, user_id));
CREATE TABLE room_seq (room_id text PRIMARY KEY, last_seq bigint NOT NULL);
CREATE TABLE messages (
	server_id   text PRIMARY KEY,
	room_id     text NOT NULL,
	sender_id   text NOT NULL,
	client_id   text NOT NULL,
	seq         bigint NOT NULL,
	body        text NOT NULL,
	attachments text[] NOT NULL DEFAULT '{}',
	sent_at     timestamptz NOT NULL,
	created_at  timestamptz NOT NULL,
	UNIQUE (sender_id, client_id),
	UNIQUE (room_id, seq)
);
CREATE TABLE receipts (
	room_id       text NOT NULL,
	user_id       text NOT NULL,
	delivered_seq bigint NOT NULL DEFAULT 0,
	read_seq      bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (room_id, user_id)
);`

func newPGChat(t testing.TB) *pgChat {
	t.Helper()
	pool := testenv.PostgresPool(t)
	if _, err := pool.Exec(context.Background(), testSchema); err != nil {
		t.Fatalf("schema: %v", err)
	}
	return &pgChat{pool: pool, maxBody: 1000}
}

func (c *pgChat) addMembers(t testing.TB, room string, users ...string) {
	t.Helper()
	for _, u := range users {
		if _, err := c.pool.Exec(context.Background(), `INSERT INTO members VALUES ($1, $2)`, room, u); err != nil {
			t.Fatal(err)
		}
	}
}

func newServerID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "m-" + hex.EncodeToString(b[:])
}

// AcceptMessages implements MessageAcceptor: the whole batch in one transaction.
func (c *pgChat) AcceptMessages(ctx context.Context, in []protocol.MessageSent) ([]Outcome, error) {
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	out := make([]Outcome, len(in))
	for i := range in {
		o, err := c.acceptOne(ctx, tx, &in[i])
		if err != nil {
			return nil, fmt.Errorf("message %s/%s: %w", in[i].SenderID, in[i].ClientID, err)
		}
		out[i] = o
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *pgChat) acceptOne(ctx context.Context, tx pgx.Tx, m *protocol.MessageSent) (Outcome, error) {
	reject := func(r protocol.Reason) (Outcome, error) {
		return Outcome{Rejected: &protocol.MessageRejected{RoomID: m.RoomID, SenderID: m.SenderID, ClientID: m.ClientID, Reason: r}}, nil
	}
	d := protocol.MessageDelivered{RoomID: m.RoomID, SenderID: m.SenderID, ClientID: m.ClientID}
	err := tx.QueryRow(ctx, `SELECT server_id, seq, body, attachments, sent_at, created_at FROM messages
		WHERE sender_id = $1 AND client_id = $2`, m.SenderID, m.ClientID).
		Scan(&d.ServerID, &d.Seq, &d.Body, &d.Attachments, &d.SentAt, &d.CreatedAt)
	switch {
	case err == nil:
		return Outcome{Delivered: &d}, nil // a replay: answer as the first time
	case !errors.Is(err, pgx.ErrNoRows):
		return Outcome{}, err
	}
	switch {
	case m.Body == "" && len(m.Attachments) == 0:
		return reject(protocol.ReasonEmptyMessage)
	case len(m.Body) > c.maxBody:
		return reject(protocol.ReasonMessageTooLarge)
	}
	var member bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM members WHERE room_id = $1 AND user_id = $2)`,
		m.RoomID, m.SenderID).Scan(&member); err != nil {
		return Outcome{}, err
	}
	if !member {
		return reject(protocol.ReasonNotMember)
	}
	if err := tx.QueryRow(ctx, `INSERT INTO room_seq VALUES ($1, 1)
		ON CONFLICT (room_id) DO UPDATE SET last_seq = room_seq.last_seq + 1 RETURNING last_seq`, m.RoomID).Scan(&d.Seq); err != nil {
		return Outcome{}, err
	}
	d.ServerID, d.Body, d.Attachments, d.SentAt = newServerID(), m.Body, m.Attachments, m.SentAt
	attachments := m.Attachments
	if attachments == nil {
		attachments = []string{}
	}
	if err := tx.QueryRow(ctx, `INSERT INTO messages (server_id, room_id, sender_id, client_id, seq, body, attachments, sent_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now()) RETURNING created_at`,
		d.ServerID, d.RoomID, d.SenderID, d.ClientID, d.Seq, d.Body, attachments, d.SentAt).Scan(&d.CreatedAt); err != nil {
		return Outcome{}, err
	}
	return Outcome{Delivered: &d}, nil
}

// AdvanceReceipts implements ReceiptAdvancer.
func (c *pgChat) AdvanceReceipts(ctx context.Context, in []protocol.Receipt) ([]*protocol.ReceiptUpdated, error) {
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	out := make([]*protocol.ReceiptUpdated, len(in))
	for i, r := range in {
		var member bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM members WHERE room_id = $1 AND user_id = $2)`,
			r.RoomID, r.UserID).Scan(&member); err != nil {
			return nil, err
		}
		if !member {
			continue
		}
		read := int64(0)
		if r.Kind == protocol.ReceiptRead {
			read = r.Seq
		}
		// Reading implies having received; cursors only move forward.
		u := protocol.ReceiptUpdated{RoomID: r.RoomID, UserID: r.UserID}
		err := tx.QueryRow(ctx, `
			INSERT INTO receipts AS r VALUES ($1, $2, $3, $4)
			ON CONFLICT (room_id, user_id) DO UPDATE
				SET delivered_seq = GREATEST(r.delivered_seq, EXCLUDED.delivered_seq),
				    read_seq = GREATEST(r.read_seq, EXCLUDED.read_seq)
				WHERE r.delivered_seq < EXCLUDED.delivered_seq OR r.read_seq < EXCLUDED.read_seq
			RETURNING delivered_seq, read_seq, now()`, r.RoomID, r.UserID, r.Seq, read).
			Scan(&u.DeliveredSeq, &u.ReadSeq, &u.UpdatedAt)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			continue // nothing moved
		case err != nil:
			return nil, err
		}
		out[i] = &u
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *pgChat) count(t testing.TB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := c.pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// storedMessage is a row of messages, for assertions.
type storedMessage struct {
	ServerID, RoomID, SenderID, ClientID string
	Seq                                  int64
}

func (c *pgChat) messages(t testing.TB) []storedMessage {
	t.Helper()
	rows, err := c.pool.Query(context.Background(), `SELECT server_id, room_id, sender_id, client_id, seq FROM messages ORDER BY room_id, seq`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[storedMessage])
	if err != nil {
		t.Fatal(err)
	}
	return out
}
