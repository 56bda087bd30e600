package bus

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// batcher is the smart batching in front of the Kafka writer. kafka-go's writer holds
// every batch for its BatchTimeout unless the batch fills, so a lone message waits that
// long at low load, and under load the batches are whatever a fixed timeout gathered.
// Here a write starts the moment a record arrives when none is in flight; while one is
// in flight, the records published meanwhile accumulate and go together as soon as it
// completes. The writer's own BatchTimeout is then only the time it takes to close a
// batch that was handed over whole (writerFlush).
type batcher struct {
	write func(ctx context.Context, msgs ...kafka.Message) error
	// maxBatch bounds the records of one write (more wait for the next).
	maxBatch int

	mu      sync.Mutex
	queue   []*pending
	writing bool
	closed  bool
}

// pending is one Publish call waiting for its write.
type pending struct {
	msgs []kafka.Message
	done chan error // buffered: the writer never blocks on a caller that gave up
}

// writerFlush is the BatchTimeout given to kafka-go's writer: the batcher hands it whole
// batches, so the writer's timer only has to let the call that filled a partition's batch
// finish (the writer appends a call's records under one lock, so a batch is never sent
// half-filled). Zero would mean kafka-go's default, a second.
const writerFlush = time.Microsecond

// writeTimeout bounds one write of the batcher: the callers' contexts bound their own
// waits, but the write is shared and must not hang on one of them.
const writeTimeout = 30 * time.Second

func newBatcher(write func(ctx context.Context, msgs ...kafka.Message) error, maxBatch int) *batcher {
	return &batcher{write: write, maxBatch: max(1, maxBatch)}
}

// publish queues msgs and waits until they are written (or failed), or ctx ends. The
// records of one call are written in one write, in order, after every call queued
// before it: a key's records keep the order of the calls.
func (b *batcher) publish(ctx context.Context, msgs []kafka.Message) error {
	if err := ctx.Err(); err != nil {
		return err // a caller that stopped publishes nothing
	}
	p := &pending{msgs: msgs, done: make(chan error, 1)}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	b.queue = append(b.queue, p)
	if !b.writing {
		b.writing = true
		go b.run()
	}
	b.mu.Unlock()
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		// The records may still be written: the contract allows it (consumers are
		// idempotent), and the write is shared with other callers.
		return ctx.Err()
	}
}

// run writes what is queued, then what was queued meanwhile, and ends when nothing is
// left (an idle bus keeps no goroutine).
func (b *batcher) run() {
	for {
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.writing = false
			b.mu.Unlock()
			return
		}
		// Whole calls only, at least one, up to maxBatch records.
		n, count := 0, 0
		for n < len(b.queue) && (n == 0 || count+len(b.queue[n].msgs) <= b.maxBatch) {
			count += len(b.queue[n].msgs)
			n++
		}
		batch := b.queue[:n:n]
		b.queue = b.queue[n:]
		b.mu.Unlock()

		all := batch[0].msgs
		if len(batch) > 1 {
			all = make([]kafka.Message, 0, count)
			for _, p := range batch {
				all = append(all, p.msgs...)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		err := b.write(ctx, all...)
		cancel()
		b.complete(batch, err)
	}
}

// complete answers each call of a write: with kafka-go's per-message errors, a call
// fails only if one of its own records failed.
func (b *batcher) complete(batch []*pending, err error) {
	var perMsg kafka.WriteErrors
	if !errors.As(err, &perMsg) || len(perMsg) != sumLen(batch) {
		for _, p := range batch {
			p.done <- err
		}
		return
	}
	i := 0
	for _, p := range batch {
		var errs []error
		for range p.msgs {
			if perMsg[i] != nil {
				errs = append(errs, perMsg[i])
			}
			i++
		}
		p.done <- errors.Join(errs...)
	}
}

func sumLen(batch []*pending) int {
	n := 0
	for _, p := range batch {
		n += len(p.msgs)
	}
	return n
}

// close refuses further calls; calls already queued are still written.
func (b *batcher) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
}

// drain waits until nothing is queued or being written, or ctx ends.
func (b *batcher) drain(ctx context.Context) {
	for {
		b.mu.Lock()
		idle := !b.writing && len(b.queue) == 0
		b.mu.Unlock()
		if idle {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Millisecond):
		}
	}
}
