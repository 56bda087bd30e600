package bus

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// newMemory is a memory bus keeping retain records beyond what its groups need.
func newMemory(t *testing.T, partitions int, retain int64) *Memory {
	t.Helper()
	b, err := NewMemory(partitions)
	if err != nil {
		t.Fatal(err)
	}
	b.retain = retain
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// consumeAll fetches and commits until the group has everything published so far.
func consumeAll(t *testing.T, s Subscription, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for got := 0; got < n; {
		msgs, err := s.Fetch(ctx, n-got, 0)
		if err != nil {
			t.Fatalf("fetch after %d of %d: %v", got, n, err)
		}
		if err := s.Commit(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
		got += len(msgs)
	}
}

// TestMemoryStaysBounded: a producer and a consumer group that commits what it reads
// (parley dev's shape) keep the bus's memory flat, where it used to keep every record.
func TestMemoryStaysBounded(t *testing.T) {
	b := newMemory(t, 4, Retention)
	s := subscribe(t, b, "core", "t")
	value := make([]byte, 1024)
	const rounds, perRound = 200, 1000 // 200 MB published in all
	heapAt := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	var before uint64
	for r := range rounds {
		recs := make([]Record, perRound)
		for i := range recs {
			recs[i] = Record{Key: []byte(fmt.Sprint("room-", i%16)), Value: value}
		}
		publish(t, b, "t", recs...)
		consumeAll(t, s, perRound)
		if got := b.Retained("t"); got > 4*Retention {
			t.Fatalf("round %d: %d records retained after the only group committed everything, want at most %d", r, got, 4*Retention)
		}
		if r == 10 {
			before = heapAt()
		}
	}
	after := heapAt()
	if after > before+32<<20 {
		t.Fatalf("heap grew from %d MB to %d MB while 190 MB went through the bus", before>>20, after>>20)
	}
}

// TestMemoryRetentionFollowsTheSlowestGroup: a group that never committed keeps every
// record it still has to read; once it commits, they go.
func TestMemoryRetentionFollowsTheSlowestGroup(t *testing.T) {
	b := newMemory(t, 2, 0)
	fast := subscribe(t, b, "fast", "t")
	slow := subscribe(t, b, "slow", "t")
	var recs []Record
	for i := range 100 {
		recs = append(recs, Record{Key: []byte(fmt.Sprint("k", i%5)), Value: []byte(fmt.Sprint(i))})
	}
	publish(t, b, "t", recs...)
	consumeAll(t, fast, 100)
	if got := b.Retained("t"); got != 100 {
		t.Fatalf("retained %d records, want all 100 while group slow has committed nothing", got)
	}
	got := fetchN(t, slow, 100)
	if len(got) != 100 {
		t.Fatalf("slow group read %d records, want 100", len(got))
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := slow.Commit(ctx, got[:50]...); err != nil {
		t.Fatal(err)
	}
	if n := b.Retained("t"); n <= 0 || n >= 100 {
		t.Fatalf("retained %d records after the slow group committed half, want between", n)
	}
	if err := slow.Commit(ctx, got...); err != nil {
		t.Fatal(err)
	}
	if n := b.Retained("t"); n != 0 {
		t.Fatalf("retained %d records after both groups committed everything", n)
	}
}

// TestMemoryLateGroupStartsAtEarliestKept: a group that subscribes after records were
// dropped reads from the earliest record kept, with offsets that keep counting.
func TestMemoryLateGroupStartsAtEarliestKept(t *testing.T) {
	b := newMemory(t, 1, 0)
	first := subscribe(t, b, "first", "t")
	publish(t, b, "t", Record{Value: []byte("a")}, Record{Value: []byte("b")})
	consumeAll(t, first, 2)
	publish(t, b, "t", Record{Value: []byte("c")})
	late := subscribe(t, b, "late", "t")
	got := fetchN(t, late, 1)
	if string(got[0].Value) != "c" || got[0].Offset != 2 || got[0].HighWaterMark != 3 {
		t.Fatalf("late group got %q at offset %d (high-water mark %d), want c at 2 (3)", got[0].Value, got[0].Offset, got[0].HighWaterMark)
	}
	// The first group still reads on from where it committed.
	got = fetchN(t, first, 1)
	if string(got[0].Value) != "c" || got[0].Offset != 2 {
		t.Fatalf("first group got %q at offset %d, want c at 2", got[0].Value, got[0].Offset)
	}
}

// TestMemoryUnreadTopicIsCapped: a topic no group reads keeps at most twice its
// retention per partition, and a group joining late starts at the earliest kept.
func TestMemoryUnreadTopicIsCapped(t *testing.T) {
	const retain = 100
	b := newMemory(t, 1, retain)
	for i := range 5 {
		recs := make([]Record, retain)
		for j := range recs {
			recs[j] = Record{Value: []byte(fmt.Sprint(i*retain + j))}
		}
		publish(t, b, "nobody-reads", recs...)
	}
	if got := b.Retained("nobody-reads"); got < retain || got > 2*retain {
		t.Fatalf("retained %d records, want between %d and %d", got, retain, 2*retain)
	}
	s := subscribe(t, b, "late", "nobody-reads")
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	msgs, err := s.Fetch(ctx, 1, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if string(msgs[0].Value) != fmt.Sprint(msgs[0].Offset) || msgs[0].Offset < 5*retain-2*retain {
		t.Fatalf("first kept record %q at offset %d, want one of the last %d", msgs[0].Value, msgs[0].Offset, 2*retain)
	}
}
