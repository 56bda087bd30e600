package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// newBusFunc returns a bus on which the topics exist with partitions partitions.
type newBusFunc func(t *testing.T, partitions int, topics ...string) Bus

// waitFor bounds every wait of the suite; it is a deadline, never a measured expectation.
const waitFor = 30 * time.Second

// runContract is the one suite that the memory and the Kafka bus both pass.
func runContract(t *testing.T, newBus newBusFunc) {
	t.Run("KeyKeepsPartitionAndOrder", func(t *testing.T) { testKeyOrder(t, newBus) })
	t.Run("UncommittedIsRedelivered", func(t *testing.T) { testRedelivery(t, newBus) })
	t.Run("GroupsAreIndependent", func(t *testing.T) { testGroups(t, newBus) })
	t.Run("FetchBounds", func(t *testing.T) { testFetchBounds(t, newBus) })
	t.Run("MembersSharePartitions", func(t *testing.T) { testMembersShare(t, newBus) })
}

func publish(t *testing.T, b Bus, topic string, recs ...Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := b.Publish(ctx, topic, recs...); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func subscribe(t *testing.T, b Bus, group, topic string) Subscription {
	t.Helper()
	s, err := b.Subscribe(context.Background(), group, topic)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// fetchN fetches until it holds n messages.
func fetchN(t *testing.T, s Subscription, n int) []Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var out []Message
	for len(out) < n {
		got, err := s.Fetch(ctx, n-len(out), 5*time.Millisecond)
		if err != nil {
			t.Fatalf("fetch after %d of %d messages: %v", len(out), n, err)
		}
		out = append(out, got...)
	}
	return out
}

func values(msgs []Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Value)
	}
	return out
}

func testKeyOrder(t *testing.T, newBus newBusFunc) {
	b := newBus(t, 4, "orders")
	keys := []string{"room-a", "room-b", "room-c", "room-d", "room-e"}
	const perKey = 20
	for i := range perKey {
		var recs []Record
		for _, k := range keys {
			recs = append(recs, Record{Key: []byte(k), Value: []byte(fmt.Sprintf("%s/%02d", k, i))})
		}
		publish(t, b, "orders", recs...)
	}
	s := subscribe(t, b, "g", "orders")
	msgs := fetchN(t, s, perKey*len(keys))

	seen := map[string][]string{}
	partition := map[string]int{}
	for _, m := range msgs {
		k := string(m.Key)
		if p, ok := partition[k]; ok && p != m.Partition {
			t.Fatalf("key %s on partitions %d and %d", k, p, m.Partition)
		}
		partition[k] = m.Partition
		if m.Topic != "orders" || m.HighWaterMark <= m.Offset {
			t.Fatalf("message %+v: topic or high-water mark wrong", m)
		}
		seen[k] = append(seen[k], string(m.Value))
	}
	for _, k := range keys {
		if len(seen[k]) != perKey {
			t.Fatalf("key %s: %d messages, want %d", k, len(seen[k]), perKey)
		}
		for i, v := range seen[k] {
			if want := fmt.Sprintf("%s/%02d", k, i); v != want {
				t.Fatalf("key %s message %d = %s, want %s (order broken)", k, i, v, want)
			}
		}
	}
}

func testRedelivery(t *testing.T, newBus newBusFunc) {
	b := newBus(t, 3, "events")
	for i := range 10 {
		publish(t, b, "events", Record{Key: []byte("room"), Value: []byte(fmt.Sprint(i))})
	}
	first := subscribe(t, b, "core", "events")
	msgs := fetchN(t, first, 10)
	ctx := context.Background()
	if err := first.Commit(ctx, msgs[3]); err != nil { // 0..3 processed
		t.Fatalf("commit: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	second := subscribe(t, b, "core", "events")
	again := fetchN(t, second, 6)
	if got, want := fmt.Sprint(values(again)), "[4 5 6 7 8 9]"; got != want {
		t.Fatalf("redelivered %s, want %s", got, want)
	}
	if err := second.Commit(ctx, again...); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if err := second.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	publish(t, b, "events", Record{Key: []byte("room"), Value: []byte("10")})
	third := subscribe(t, b, "core", "events")
	last := fetchN(t, third, 1)
	if got := string(last[0].Value); got != "10" {
		t.Fatalf("after a full commit the next member got %q, want only the new message 10", got)
	}
}

func testGroups(t *testing.T, newBus newBusFunc) {
	b := newBus(t, 2, "shared")
	for i := range 5 {
		publish(t, b, "shared", Record{Key: []byte("k"), Value: []byte(fmt.Sprint(i))})
	}
	a := subscribe(t, b, "core", "shared")
	if err := a.Commit(context.Background(), fetchN(t, a, 5)...); err != nil {
		t.Fatal(err)
	}
	n := subscribe(t, b, "notification", "shared")
	if got := fmt.Sprint(values(fetchN(t, n, 5))); got != "[0 1 2 3 4]" {
		t.Fatalf("second group got %s, want every message from the start", got)
	}
}

func testFetchBounds(t *testing.T, newBus newBusFunc) {
	b := newBus(t, 1, "bounded", "empty")
	for i := range 7 {
		publish(t, b, "bounded", Record{Key: []byte("k"), Value: []byte(fmt.Sprint(i))})
	}
	s := subscribe(t, b, "g", "bounded")
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var all []Message
	for len(all) < 7 {
		got, err := s.Fetch(ctx, 3, 20*time.Millisecond)
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		if len(got) == 0 || len(got) > 3 {
			t.Fatalf("fetch with max 3 returned %d messages", len(got))
		}
		all = append(all, got...)
	}
	if got := fmt.Sprint(values(all)); got != "[0 1 2 3 4 5 6]" {
		t.Fatalf("got %s", got)
	}

	empty := subscribe(t, b, "g", "empty")
	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	got, err := empty.Fetch(short, 10, time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) || len(got) != 0 {
		t.Fatalf("fetch on an empty topic = %d messages, %v; want none and the context's error", len(got), err)
	}

	if _, err := s.Fetch(ctx, 0, 0); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("fetch max 0: %v, want ErrInvalidConfig", err)
	}
}

// Two members of one group together see every message; each message is processed at
// least once and committed work is not handed out again.
func testMembersShare(t *testing.T, newBus newBusFunc) {
	b := newBus(t, 4, "shared")
	first := subscribe(t, b, "core", "shared")
	// The first member must hold its generation before the second joins.
	publish(t, b, "shared", Record{Key: []byte("warm"), Value: []byte("warm")})
	warm := fetchN(t, first, 1)
	if err := first.Commit(context.Background(), warm...); err != nil {
		t.Fatal(err)
	}
	second := subscribe(t, b, "core", "shared")

	// At least n messages; more while one member has seen none yet: the second member's
	// share comes with a rebalance, which may end after the first n are consumed.
	const n = 200
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var (
		mu        sync.Mutex
		seen      = map[string]int{}
		byMem     = [2]int{}
		published = -1 // final count, once the publisher stopped
		wg        sync.WaitGroup
	)
	done := make(chan struct{})
	var doneOnce sync.Once
	closeDone := func() { doneOnce.Do(func() { close(done) }) }
	consume := func(i int, s Subscription) {
		defer wg.Done()
		for {
			msgs, err := s.Fetch(ctx, 50, 5*time.Millisecond)
			if err != nil {
				return
			}
			mu.Lock()
			for _, m := range msgs {
				seen[string(m.Value)]++
				byMem[i]++
			}
			complete := published >= 0 && len(seen) >= published
			mu.Unlock()
			// A commit may fail while the group rebalances; the messages then come again.
			_ = s.Commit(ctx, msgs...)
			if complete {
				closeDone()
			}
		}
	}
	wg.Add(2)
	go consume(0, first)
	go consume(1, second)
	go func() {
		for i := 0; ; i++ {
			rec := Record{Key: []byte(fmt.Sprintf("room-%d", i%16)), Value: []byte(fmt.Sprint(i))}
			if err := b.Publish(ctx, "shared", rec); err != nil {
				t.Errorf("publish %d: %v", i, err)
				return
			}
			mu.Lock()
			shared := byMem[0] > 0 && byMem[1] > 0
			if i+1 >= n && shared || ctx.Err() != nil {
				published = i + 1
				mu.Unlock()
				return
			}
			mu.Unlock()
			if i+1 >= n {
				time.Sleep(5 * time.Millisecond) // waiting for the rebalance: a trickle
			}
		}
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if published < n || len(seen) != published {
		t.Fatalf("the group saw %d distinct messages of %d published (at least %d)", len(seen), published, n)
	}
	if byMem[0] == 0 || byMem[1] == 0 {
		t.Fatalf("messages per member = %v: the partitions were not shared", byMem)
	}
}
