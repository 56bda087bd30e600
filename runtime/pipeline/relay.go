package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/parleychat/parley/runtime/bus"
	"github.com/parleychat/parley/runtime/protocol"
)

// Outbox is the transactional outbox of stored messages: the chat store keeps, with
// every stored message and in the same commit, the fact that it is not announced yet.
type Outbox interface {
	// Relay hands up to limit unannounced messages to publish, each room's in sequence
	// order, and marks them announced when publish returns nil. It returns ErrRelayBusy
	// when another relay (another process) is running.
	Relay(ctx context.Context, limit int, publish func(context.Context, []protocol.MessageDelivered) error) (int, error)
}

// ErrRelayBusy is an Outbox's answer when another relay holds the outbox.
var ErrRelayBusy = errors.New("pipeline: another relay holds the outbox")

// Relay defaults.
const (
	DefaultRelayBatch = 1024
	DefaultRelayPoll  = 200 * time.Millisecond
	// relayBusyRetry is how soon a relay that found another one running looks again.
	relayBusyRetry = 10 * time.Millisecond
	// relayPublishTimeout bounds one round's publish: the outbox's transaction stays open
	// meanwhile.
	relayPublishTimeout = 30 * time.Second
)

// relay publishes chat.message_delivered for every stored message, exactly in sequence
// order per room, whichever path stored it (the pipeline or the REST API): they share one
// producer, the outbox. It runs when woken (a local commit) and every poll interval (a
// commit by another process, or a publish that failed).
type relay struct {
	outbox  Outbox
	bus     Bus
	cfg     Config
	metrics *metrics
	log     *slog.Logger
	wake    chan struct{}
}

func newRelay(o Outbox, b Bus, cfg Config, m *metrics) *relay {
	return &relay{outbox: o, bus: b, cfg: cfg, metrics: m, log: cfg.Logger.With("consumer", "relay"), wake: make(chan struct{}, 1)}
}

// Wake asks for a round soon; it never blocks.
func (r *relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *relay) run(ctx context.Context) {
	failures := 0
	poll := time.NewTicker(r.cfg.RelayPoll)
	defer poll.Stop()
	for ctx.Err() == nil {
		n, err := r.outbox.Relay(ctx, r.cfg.RelayBatch, r.publish)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrRelayBusy):
			if !sleep(ctx, relayBusyRetry) {
				return
			}
			continue
		case err != nil:
			r.metrics.publishErrors.WithLabelValues("relay").Inc()
			r.log.Warn("announcing stored messages failed; retrying", "err", err, "attempt", failures+1)
			if !sleep(ctx, backoff(failures, r.cfg.RetryMin, r.cfg.RetryMax)) {
				return
			}
			failures++
			continue
		}
		failures = 0
		r.metrics.announced.Add(float64(n))
		if n >= r.cfg.RelayBatch {
			continue // more is waiting
		}
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-poll.C:
		}
	}
}

// publish sends one round's announcements in one call, keyed by room: a room's stay in
// order on its partition.
func (r *relay) publish(ctx context.Context, ds []protocol.MessageDelivered) error {
	recs := make([]bus.Record, len(ds))
	for i := range ds {
		raw, err := protocol.Encode(&ds[i])
		if err != nil {
			return fmt.Errorf("encode announcement of %s/%d: %w", ds[i].RoomID, ds[i].Seq, err)
		}
		recs[i] = bus.Record{Key: []byte(ds[i].RoomID), Value: raw}
	}
	ctx, cancel := context.WithTimeout(ctx, relayPublishTimeout)
	defer cancel()
	if err := r.bus.Publish(ctx, protocol.TopicMessageDelivered, recs...); err != nil {
		return fmt.Errorf("publish %d announcements: %w", len(recs), err)
	}
	return nil
}
