package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/runtime/chat"
	"github.com/parleychat/parley/runtime/users"
)

// The relay runs several times a second for as long as the process lives, so its read
// must cost what is pending, not what is stored. With autovacuum off (this machine's
// PostgreSQL, and any schema nobody analyzed) the planner knows the tables only by their
// size, and the first version of the query then hashed the whole messages table every
// round: a soak at 300 msgs/s fell from every message acked to a 21 s backlog.
func TestRelayReadsOnlyPendingMessagesWithoutStatistics(t *testing.T) {
	ctx := context.Background()
	pool := migratedPool(t)
	store := NewChat(pool)
	const rooms, perRoom = 4, 15000
	now := time.Now()
	for r := range rooms {
		room := chat.Room{ID: fmt.Sprintf("room-%d", r), Kind: chat.KindGroup, Name: "plan", OwnerID: "owner", CreatedAt: now}
		if err := store.CreateGroupRoom(ctx, room, []string{"owner"}); err != nil {
			t.Fatal(err)
		}
		rows := make([][]any, perRoom)
		for i := range rows {
			rows[i] = []any{users.NewID(), room.ID, int64(i + 1), "owner", fmt.Sprintf("c%d-%d", r, i), "a stored message", []string{}, now}
		}
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{"messages"},
			[]string{"id", "room_id", "seq", "sender_id", "client_id", "body", "attachments", "created_at"}, pgx.CopyFromRows(rows)); err != nil {
			t.Fatal(err)
		}
		// Everything announced but the last two messages of every other room.
		announced := int64(perRoom)
		if r%2 == 0 {
			announced -= 2
		}
		if _, err := pool.Exec(ctx, `UPDATE rooms SET last_seq = $2, announced_seq = $3 WHERE id = $1`, room.ID, perRoom, announced); err != nil {
			t.Fatal(err)
		}
	}
	var plan strings.Builder
	rows, err := pool.Query(ctx, `EXPLAIN `+strings.ReplaceAll(relayPending, "$1", "1024"))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(line + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plan.String(), "Seq Scan on messages") {
		t.Fatalf("the relay's read scans the whole messages table:\n%s", plan.String())
	}

	var got []string
	n, err := store.RelayAnnouncements(ctx, 1024, func(_ context.Context, ms []chat.Message) error {
		for _, m := range ms {
			got = append(got, fmt.Sprintf("%s/%d", m.RoomID, m.Seq))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"room-0/14999", "room-0/15000", "room-2/14999", "room-2/15000"}
	if n != len(want) || strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("relayed %d: %v, want %v", n, got, want)
	}
}
