package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/runtime/bus"
)

// commitTimeout bounds one offset commit.
const commitTimeout = 10 * time.Second

// published is one event the pipeline produces.
type published struct {
	topic string
	rec   bus.Record
}

// batch is a decoded batch, ready to apply. apply may be called again after an error and
// must then do the same work again (the acceptors are idempotent).
type batch interface {
	apply(ctx context.Context) ([]published, error)
}

// consumer is the loop shared by messages and receipts: fetch a batch, apply it (retrying
// without committing), publish the answers (retrying), and only then commit the offsets.
type consumer struct {
	name, group, topic string
	bus                Bus
	cfg                Config
	metrics            *metrics
	prepare            func([]bus.Message) batch
	log                *slog.Logger

	running  atomic.Bool
	lastPoll atomic.Int64 // unix nanoseconds
	lag      *lagTracker  // shared by the members of one group in this process
}

func newConsumer(name, group, topic string, b Bus, cfg Config, m *metrics, lag *lagTracker, prepare func([]bus.Message) batch) *consumer {
	return &consumer{
		name: name, group: group, topic: topic, bus: b, cfg: cfg, metrics: m, prepare: prepare,
		log: cfg.Logger.With("consumer", name, "group", group, "topic", topic),
		lag: lag,
	}
}

// lagTracker keeps, per partition, how far behind the end the last message handled was,
// over every member of a group in this process.
type lagTracker struct {
	mu  sync.Mutex
	lag map[int]int64
}

func newLagTracker() *lagTracker { return &lagTracker{lag: map[int]int64{}} }

func (c *consumer) ready() error {
	if !c.running.Load() {
		return fmt.Errorf("%s: %w", c.name, ErrNotRunning)
	}
	if age := time.Since(time.Unix(0, c.lastPoll.Load())); age > c.cfg.StaleAfter {
		return fmt.Errorf("%s: %w (last poll %v ago)", c.name, ErrStale, age.Round(time.Millisecond))
	}
	return nil
}

// subscribe joins the consumer's group. Run subscribes every member before any fetches,
// so that members of one process joining one after the other do not rewind each other
// (a join is a rebalance: what a member fetched and did not commit comes again).
func (c *consumer) subscribe(ctx context.Context) (bus.Subscription, error) {
	sub, err := c.bus.Subscribe(ctx, c.group, c.topic)
	if err != nil {
		return nil, fmt.Errorf("%s: subscribe: %w", c.name, err)
	}
	return sub, nil
}

func (c *consumer) run(ctx context.Context, sub bus.Subscription) error {
	defer sub.Close()
	c.lastPoll.Store(time.Now().UnixNano())
	c.running.Store(true)
	defer c.running.Store(false)
	c.log.Info("consumer started")

	fetchErrors := 0
	for ctx.Err() == nil {
		pollCtx, cancel := context.WithTimeout(ctx, c.cfg.PollTimeout)
		msgs, err := sub.Fetch(pollCtx, c.cfg.MaxBatch, c.cfg.Linger)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, context.DeadlineExceeded):
			c.lastPoll.Store(time.Now().UnixNano()) // idle, and alive
			continue
		case errors.Is(err, bus.ErrClosed):
			return fmt.Errorf("%s: %w", c.name, err)
		case err != nil:
			c.log.Warn("fetch failed", "err", err)
			if !sleep(ctx, backoff(fetchErrors, c.cfg.RetryMin, c.cfg.RetryMax)) {
				return nil
			}
			fetchErrors++
			continue
		}
		fetchErrors = 0
		c.lastPoll.Store(time.Now().UnixNano())
		if err := c.handle(ctx, sub, msgs); err != nil {
			if ctx.Err() != nil {
				// Stopped mid-batch: nothing is committed and the batch comes again.
				return nil
			}
			return err
		}
	}
	return nil
}

// handle applies one batch and commits it. It returns an error only when ctx ends or the
// bus is closed; everything else is retried.
func (c *consumer) handle(ctx context.Context, sub bus.Subscription, msgs []bus.Message) error {
	start := time.Now()
	c.metrics.batches.WithLabelValues(c.name).Inc()
	c.metrics.batchSize.WithLabelValues(c.name).Observe(float64(len(msgs)))
	b := c.prepare(msgs)

	var out []published
	for attempt := 0; ; attempt++ {
		var err error
		out, err = b.apply(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.metrics.applyErrors.WithLabelValues(c.name).Inc()
		c.log.Warn("applying batch failed; retrying without committing", "err", err, "attempt", attempt+1, "events", len(msgs))
		if !sleep(ctx, backoff(attempt, c.cfg.RetryMin, c.cfg.RetryMax)) {
			return ctx.Err()
		}
	}
	for attempt := 0; ; attempt++ {
		err := c.publish(ctx, out)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, bus.ErrClosed) {
			return fmt.Errorf("%s: publish answers: %w", c.name, err)
		}
		c.metrics.publishErrors.WithLabelValues(c.name).Inc()
		c.log.Warn("publishing answers failed; retrying", "err", err, "attempt", attempt+1)
		if !sleep(ctx, backoff(attempt, c.cfg.RetryMin, c.cfg.RetryMax)) {
			return ctx.Err()
		}
	}
	if err := ctx.Err(); err != nil {
		return err // stopping: the batch is not committed and comes again
	}
	// A commit can wait for a rebalance to finish; bounding it keeps the consumer moving
	// (an offset left uncommitted only means a harmless replay).
	commitCtx, cancel := context.WithTimeout(ctx, commitTimeout)
	err := sub.Commit(commitCtx, msgs...)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// A rebalance took the partitions away: their new owner replays the batch, and
		// the acceptor's idempotence makes the replay harmless.
		c.metrics.commitErrors.WithLabelValues(c.name).Inc()
		c.log.Warn("commit failed; the batch will be replayed", "err", err)
	}
	c.observeLag(msgs)
	c.metrics.batchDuration.WithLabelValues(c.name).Observe(time.Since(start).Seconds())
	return nil
}

// publish sends the answers grouped by topic, in order, so that a room's events keep the
// order of its messages.
func (c *consumer) publish(ctx context.Context, out []published) error {
	var (
		topics []string
		recs   = map[string][]bus.Record{}
	)
	for _, p := range out {
		if _, ok := recs[p.topic]; !ok {
			topics = append(topics, p.topic)
		}
		recs[p.topic] = append(recs[p.topic], p.rec)
	}
	for _, t := range topics {
		if err := c.bus.Publish(ctx, t, recs[t]...); err != nil {
			return err
		}
	}
	return nil
}

// observeLag keeps, per partition, how far behind the end the last message was.
func (c *consumer) observeLag(msgs []bus.Message) {
	c.lag.mu.Lock()
	defer c.lag.mu.Unlock()
	for _, m := range msgs {
		if m.HighWaterMark > 0 {
			c.lag.lag[m.Partition] = max(0, m.HighWaterMark-m.Offset-1)
		}
	}
	var total int64
	for _, l := range c.lag.lag {
		total += l
	}
	c.metrics.lag.WithLabelValues(c.name).Set(float64(total))
}

func backoff(attempt int, lo, hi time.Duration) time.Duration {
	d := lo
	for range attempt {
		d *= 2
		if d >= hi {
			return hi
		}
	}
	return d
}

// sleep waits d or until ctx ends; it reports whether ctx is still alive.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
