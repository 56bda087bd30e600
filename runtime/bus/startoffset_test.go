package bus

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parleychat/parley/internal/testenv"
)

// A new group picked by StartLatest starts from the end of its topic (what is published
// after Subscribe returns, not what was there before); every other new group starts
// from the first offset.
func TestNewGroupStartOffset(t *testing.T) {
	const topic = "start-offset"
	brokers := testenv.Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := EnsureTopics(ctx, brokers, 2, topic); err != nil {
		t.Fatal(err)
	}
	cfg := testKafkaConfig(brokers)
	cfg.StartLatest = func(group string) bool { return strings.HasPrefix(group, "late") }
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	b, err := NewKafka(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	publish := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if err := b.Publish(ctx, topic, Record{Key: []byte(fmt.Sprint("k", i)), Value: []byte(fmt.Sprint(i))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(0, 4)
	tests := []struct {
		group string
		want  int // values received, out of 6
	}{
		{"late.one", 2},
		{"early", 6},
	}
	subs := map[string]Subscription{}
	for _, tc := range tests {
		s, err := b.Subscribe(ctx, tc.group, topic)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		subs[tc.group] = s
	}
	// Subscribe pinned the late group's start: its committed offsets are the ends (2 per
	// partition here, 4 records in all), whenever its reader joins.
	client := &kafka.Client{Addr: kafka.TCP(brokers...)}
	committed, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: "late.one", Topics: map[string][]int{topic: {0, 1}}})
	if err != nil {
		t.Fatal(err)
	}
	var pinned int64
	for _, p := range committed.Topics[topic] {
		pinned += max(0, p.CommittedOffset)
	}
	if pinned != 4 {
		t.Fatalf("late group's committed offsets after Subscribe = %+v, want the ends (4 records)", committed.Topics[topic])
	}
	publish(4, 6)
	for _, tc := range tests {
		t.Run(tc.group, func(t *testing.T) {
			got := map[string]bool{}
			for len(got) < tc.want {
				msgs, err := subs[tc.group].Fetch(ctx, 10, 50*time.Millisecond)
				if err != nil {
					t.Fatalf("after %v: %v", got, err)
				}
				for _, m := range msgs {
					got[string(m.Value)] = true
				}
			}
			// Anything more would be an old record: give it a moment to show up.
			fctx, fcancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer fcancel()
			if msgs, err := subs[tc.group].Fetch(fctx, 10, 0); err == nil {
				t.Fatalf("got %v and then %d more, want %d in all", got, len(msgs), tc.want)
			}
			if tc.want == 2 && (!got["4"] || !got["5"]) {
				t.Fatalf("group %s got %v, want only what was published after Subscribe (4 and 5)", tc.group, got)
			}
		})
	}
}
