package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/runtime/chat"
	"github.com/parleychat/parley/runtime/users"
)

// BenchmarkPersistence compares, in one run and on one database, four ways of storing
// the same messages (8 group rooms, one sender per room):
//
//   - SendBatch: the chat service's group commit (validation, then one transaction per
//     batch: rooms locked, sequences reserved under a savepoint, rows COPYed, a retried
//     client id found by the COPY itself);
//   - SendBatchWithoutSearchIndex: the same on a schema without the search column and
//     its GIN index, so the two show what indexing for search costs a send;
//   - InsertPerMessage: one auto-committed statement per message that takes the next
//     sequence number and inserts (what a consumer without batching does);
//   - CopyFrom: a bare COPY of pre-numbered rows per batch, no checks (the floor).
//
// It prints messages per second for each and the ratios; SendBatch against CopyFrom is
// the figure of issue 14 (goal: at least 0.6x). Run:
//
//	go test ./runtime/store/postgres -run '^$' -bench Persistence -benchtime 2s
//	go test ./runtime/store/postgres -run '^$' -bench 'Persistence/(SendBatch|CopyFrom)$' -benchtime 2s -count 3
func BenchmarkPersistence(b *testing.B) {
	const rooms = 8
	for _, batch := range []int{16, 256} {
		perMsg := map[string]float64{} // ns per message
		run := func(name string, f func(b *testing.B, pool *pgxpool.Pool, roomIDs []string, batch int)) {
			b.Run(fmt.Sprintf("%s/batch=%d", name, batch), func(b *testing.B) {
				pool := migratedPool(b)
				roomIDs := benchRooms(b, pool, rooms)
				f(b, pool, roomIDs, batch)
				msgs := float64(b.N * batch)
				perMsg[name] = float64(b.Elapsed().Nanoseconds()) / msgs
				b.ReportMetric(msgs/b.Elapsed().Seconds(), "msgs/s")
			})
		}
		run("SendBatch", benchSendBatch)
		run("SendBatchWithoutSearchIndex", benchSendBatchWithoutSearch)
		run("InsertPerMessage", benchInsertPerMessage)
		run("CopyFrom", benchCopyFrom)
		if perMsg["SendBatch"] > 0 && perMsg["InsertPerMessage"] > 0 && perMsg["CopyFrom"] > 0 {
			b.Logf("batch=%d: SendBatch is %.1fx faster than one INSERT per message; raw CopyFrom is %.1fx faster than SendBatch",
				batch, perMsg["InsertPerMessage"]/perMsg["SendBatch"], perMsg["SendBatch"]/perMsg["CopyFrom"])
		}
		if perMsg["SendBatch"] > 0 && perMsg["CopyFrom"] > 0 {
			b.Logf("batch=%d: SendBatch stores at %.2fx the rate of a bare COPY (%.1f µs per message, COPY %.1f µs)",
				batch, perMsg["CopyFrom"]/perMsg["SendBatch"], perMsg["SendBatch"]/1e3, perMsg["CopyFrom"]/1e3)
		}
		if perMsg["SendBatch"] > 0 && perMsg["SendBatchWithoutSearchIndex"] > 0 {
			b.Logf("batch=%d: the search index (generated tsvector + GIN) costs %.2fx per message (%.1f µs with, %.1f µs without)",
				batch, perMsg["SendBatch"]/perMsg["SendBatchWithoutSearchIndex"], perMsg["SendBatch"]/1e3, perMsg["SendBatchWithoutSearchIndex"]/1e3)
		}
	}
}

func benchRooms(b *testing.B, pool *pgxpool.Pool, n int) []string {
	b.Helper()
	store := NewChat(pool)
	var ids []string
	for i := range n {
		r := chat.Room{ID: fmt.Sprintf("room-%d", i), Kind: chat.KindGroup, Name: "bench", OwnerID: fmt.Sprintf("user-%d", i), CreatedAt: time.Now()}
		if err := store.CreateGroupRoom(context.Background(), r, []string{r.OwnerID}); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	return ids
}

func benchSendBatch(b *testing.B, pool *pgxpool.Pool, roomIDs []string, batch int) {
	ctx := context.Background()
	auth, _ := users.NewAuth([]byte("0123456789abcdef0123456789abcdef"), time.Minute, nil)
	us, err := users.NewService(NewUsers(pool), auth, users.DefaultConfig(), nil)
	if err != nil {
		b.Fatal(err)
	}
	svc, err := chat.NewService(NewChat(pool), us, chat.Limits{MaxMessageBytes: 4096, MessagesPerSecond: 1e9, MaxRoomMembers: 10}, nil)
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	reqs := make([]chat.SendRequest, batch)
	for b.Loop() {
		for i := range reqs {
			r := (n + i) % len(roomIDs)
			reqs[i] = chat.SendRequest{RoomID: roomIDs[r], SenderID: fmt.Sprintf("user-%d", r), ClientID: fmt.Sprint("c", n+i), Body: "hello, this is a benchmark message"}
		}
		n += batch
		res, err := svc.SendBatch(ctx, reqs)
		if err != nil {
			b.Fatal(err)
		}
		if res[0].Err != nil || res[0].Duplicate {
			b.Fatalf("result %+v", res[0])
		}
	}
}

// benchSendBatchWithoutSearch is SendBatch on a schema without the search column and
// its GIN index (migration 0005), to measure what indexing costs a send.
func benchSendBatchWithoutSearch(b *testing.B, pool *pgxpool.Pool, roomIDs []string, batch int) {
	if _, err := pool.Exec(context.Background(), `ALTER TABLE messages DROP COLUMN body_tsv`); err != nil {
		b.Fatal(err)
	}
	benchSendBatch(b, pool, roomIDs, batch)
}

func benchInsertPerMessage(b *testing.B, pool *pgxpool.Pool, roomIDs []string, batch int) {
	ctx := context.Background()
	n := 0
	for b.Loop() {
		for i := range batch {
			r := (n + i) % len(roomIDs)
			_, err := pool.Exec(ctx, `WITH s AS (UPDATE rooms SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq)
				INSERT INTO messages (id, room_id, seq, sender_id, client_id, body, attachments, created_at)
				SELECT $2, $1, s.last_seq, $3, $4, $5, '{}', now() FROM s`,
				roomIDs[r], users.NewID(), fmt.Sprintf("user-%d", r), fmt.Sprint("c", n+i), "hello, this is a benchmark message")
			if err != nil {
				b.Fatal(err)
			}
		}
		n += batch
	}
}

func benchCopyFrom(b *testing.B, pool *pgxpool.Pool, roomIDs []string, batch int) {
	ctx := context.Background()
	seq := make([]int64, len(roomIDs))
	n := 0
	rows := make([][]any, batch)
	now := time.Now()
	for b.Loop() {
		for i := range rows {
			r := (n + i) % len(roomIDs)
			seq[r]++
			rows[i] = []any{users.NewID(), roomIDs[r], seq[r], fmt.Sprintf("user-%d", r), fmt.Sprint("c", n+i), "hello, this is a benchmark message", []string{}, now}
		}
		n += batch
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{"messages"},
			[]string{"id", "room_id", "seq", "sender_id", "client_id", "body", "attachments", "created_at"}, pgx.CopyFromRows(rows)); err != nil {
			b.Fatal(err)
		}
	}
}
