package bus

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// recordingWriter stands in for kafka-go's WriteMessages: it records each write and holds
// the first one until released, as a produce round trip in flight.
type recordingWriter struct {
	mu      sync.Mutex
	writes  [][]string
	started chan struct{} // closed when the first write begins
	release chan struct{}
	once    sync.Once
	fail    map[string]error // per value
}

func (w *recordingWriter) write(ctx context.Context, msgs ...kafka.Message) error {
	var vals []string
	var errs kafka.WriteErrors
	failed := false
	for _, m := range msgs {
		vals = append(vals, string(m.Value))
		err := w.fail[string(m.Value)]
		errs = append(errs, err)
		failed = failed || err != nil
	}
	w.mu.Lock()
	w.writes = append(w.writes, vals)
	first := len(w.writes) == 1
	w.mu.Unlock()
	if first {
		w.once.Do(func() { close(w.started) })
		<-w.release
	}
	if failed {
		return errs
	}
	return nil
}

// While a write is in flight, the calls that arrive wait and then go together in one
// write; each call hears of its own records' failures only.
func TestBatcherCoalescesWhileAWriteIsInFlight(t *testing.T) {
	w := &recordingWriter{started: make(chan struct{}), release: make(chan struct{}), fail: map[string]error{"bad": kafka.MessageSizeTooLarge}}
	b := newBatcher(w.write, 100)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	first := make(chan error, 1)
	go func() { first <- b.publish(ctx, []kafka.Message{{Value: []byte("a")}}) }()
	<-w.started
	// Three more calls while "a" is in flight.
	results := make(chan error, 3)
	for _, v := range []string{"b", "c", "bad"} {
		go func() { results <- b.publish(ctx, []kafka.Message{{Value: []byte(v)}}) }()
	}
	// Wait (by condition) until all three are queued, then let the first write finish.
	for {
		b.mu.Lock()
		n := len(b.queue)
		b.mu.Unlock()
		if n == 3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the calls never queued")
		}
		time.Sleep(time.Millisecond)
	}
	close(w.release)
	if err := <-first; err != nil {
		t.Fatalf("first publish: %v", err)
	}
	var failed, ok int
	for range 3 {
		if err := <-results; err != nil {
			if !errors.Is(err, kafka.MessageSizeTooLarge) {
				t.Fatalf("unexpected error %v", err)
			}
			failed++
		} else {
			ok++
		}
	}
	if failed != 1 || ok != 2 {
		t.Fatalf("%d calls failed and %d succeeded, want 1 and 2", failed, ok)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.writes) != 2 || len(w.writes[1]) != 3 {
		t.Fatalf("writes = %v, want [a] then the three queued calls in one", w.writes)
	}
	b.close()
	if err := b.publish(ctx, []kafka.Message{{Value: []byte("late")}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("publish after close = %v, want ErrClosed", err)
	}
}
