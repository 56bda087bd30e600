// Package pipeline holds the bus consumers of `parley core`: chat.message_sent is read in
// batches, handed to a MessageAcceptor that persists a whole batch in one transaction
// (group commit), answered with chat.message_delivered or chat.message_rejected, and only
// then committed on the bus. chat.receipt goes the same way through a ReceiptAdvancer to
// chat.receipt_updated.
//
// Delivery is at least once: a crash after the database commit and before the offset
// commit hands the batch to the next consumer, and the acceptor's idempotence on
// (sender, client id) turns the replay into the same delivered events.
//
// Wiring in `parley core` (the adapter from the chat service to MessageAcceptor and
// ReceiptAdvancer belongs to the role):
//
//	kafkaCfg.RegisterFlags(fs); cfg.RegisterFlags(fs)     // in Setup
//	k, err := bus.NewKafka(kafkaCfg)
//	err = k.EnsureTopics(ctx, protocol.Topics()...)
//	cfg.Registerer, cfg.Logger = registry, logger
//	p, err := pipeline.New(k, acceptor, advancer, cfg)
//	go p.Run(ctx)                                         // /readyz: p.Ready(), k.Ping(ctx, protocol.TopicMessageSent)
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/parleychat/parley/runtime/bus"
	"github.com/parleychat/parley/runtime/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// MessageAcceptor persists messages; the chat service implements it.
type MessageAcceptor interface {
	// AcceptMessages validates and persists the batch in one transaction, idempotent on
	// (sender, client id): a message seen before answers with its stored server id and
	// sequence number. out[i] answers in[i]. A non-nil error means nothing was persisted.
	AcceptMessages(ctx context.Context, in []protocol.MessageSent) ([]Outcome, error)
}

// Outcome is the answer to one message: exactly one of Delivered and Rejected is set.
type Outcome struct {
	Delivered *protocol.MessageDelivered
	Rejected  *protocol.MessageRejected
	// Announced goes with Delivered on a duplicate whose original was announced already:
	// with an outbox (Config.Outbox) the pipeline publishes Delivered again, as the
	// retrying sender's acknowledgement, and leaves every other Delivered to the relay.
	// Without an outbox the pipeline publishes every Delivered itself.
	Announced bool
}

// ReceiptAdvancer moves receipt cursors; the chat service implements it.
type ReceiptAdvancer interface {
	// AdvanceReceipts moves the cursors forward in one transaction. out[i] answers in[i]:
	// the member's cursors when the receipt moved one, nil when it moved nothing (an
	// older sequence, or a receipt that is refused, such as one from a non-member). A
	// non-nil error means nothing was written.
	AdvanceReceipts(ctx context.Context, in []protocol.Receipt) ([]*protocol.ReceiptUpdated, error)
}

// Bus is what the pipeline needs of runtime/bus.
type Bus interface {
	Publish(ctx context.Context, topic string, recs ...bus.Record) error
	Subscribe(ctx context.Context, group, topic string) (bus.Subscription, error)
}

// Config tunes the pipeline. Zero values take the defaults.
type Config struct {
	// MessageGroup is the consumer group of chat.message_sent (default "core").
	MessageGroup string
	// ReceiptGroup is the consumer group of chat.receipt (default "core-receipts"). It is
	// a group of its own so that a rebalance of one consumer never pauses the other.
	ReceiptGroup string
	// MaxBatch bounds a batch (default 256).
	MaxBatch int
	// Linger bounds how long a batch may keep gathering events after its first (default
	// 5 ms). It is an upper bound, not a wait: batching is smart, a batch is what
	// accumulated on the bus while the previous one was in the database, so a lone event
	// goes at once and a burst goes in few transactions. Only a bus whose events arrive
	// in bursts (Kafka's fetch responses) gathers, and only while they keep coming.
	Linger time.Duration
	// Consumers is how many members of the message group this process runs (default:
	// DefaultConsumers). Each takes its share of chat.message_sent's partitions and
	// commits its own batches, so one process works several partitions at once (a slow
	// batch of one room holds back only its partitions) and a room's messages, which
	// share a partition, stay in order. Members beyond the partitions of all processes
	// together sit idle.
	Consumers int
	// PollTimeout bounds one wait for events, so that an idle consumer still shows it is
	// alive (default 1 s).
	PollTimeout time.Duration
	// RetryMin and RetryMax bound the exponential backoff after a failed database or bus
	// call (defaults 50 ms and 5 s).
	RetryMin, RetryMax time.Duration
	// StaleAfter is how old the last poll may be before Ready reports the consumer stuck
	// (default 15 s).
	StaleAfter time.Duration
	// Outbox, when set, is where stored messages wait to be announced: Run also runs its
	// relay, the only producer of chat.message_delivered for stored messages.
	Outbox Outbox
	// RelayBatch bounds the announcements of one relay round (default 1024).
	RelayBatch int
	// RelayPoll is how often the relay looks for announcements stored by other processes
	// or left by a failed round (default 200 ms); local commits wake it at once.
	RelayPoll time.Duration
	Logger    *slog.Logger
	// Registerer receives the metrics; nil keeps them in a private registry.
	Registerer prometheus.Registerer
}

// Defaults of Config.
const (
	DefaultMessageGroup = "core"
	DefaultReceiptGroup = "core-receipts"
	DefaultMaxBatch     = 256
	DefaultLinger       = 5 * time.Millisecond
	DefaultPollTimeout  = time.Second
	DefaultRetryMin     = 50 * time.Millisecond
	DefaultRetryMax     = 5 * time.Second
	DefaultStaleAfter   = 15 * time.Second
)

// DefaultConsumers is Config.Consumers's default: one member per core the process may
// use, at least 2 (a database round trip leaves the core idle) and at most 8 (each
// holds a database connection per batch; core's pool is 16).
func DefaultConsumers() int { return min(max(runtime.GOMAXPROCS(0), 2), 8) }

func (c Config) withDefaults() Config {
	str := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	dur := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	str(&c.MessageGroup, DefaultMessageGroup)
	str(&c.ReceiptGroup, DefaultReceiptGroup)
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.Consumers == 0 {
		c.Consumers = DefaultConsumers()
	}
	dur(&c.Linger, DefaultLinger)
	dur(&c.PollTimeout, DefaultPollTimeout)
	dur(&c.RetryMin, DefaultRetryMin)
	dur(&c.RetryMax, DefaultRetryMax)
	dur(&c.StaleAfter, DefaultStaleAfter)
	dur(&c.RelayPoll, DefaultRelayPoll)
	if c.RelayBatch == 0 {
		c.RelayBatch = DefaultRelayBatch
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	return c
}

// ErrInvalidConfig is returned by New for unusable settings.
var ErrInvalidConfig = errors.New("pipeline: invalid configuration")

// Readiness errors.
var (
	ErrNotRunning = errors.New("pipeline: consumer not running")
	ErrStale      = errors.New("pipeline: consumer has not polled recently")
)

// Pipeline runs the consumers of core, and the outbox relay when it has an outbox.
type Pipeline struct {
	consumers []*consumer
	relay     *relay
}

// New builds the pipeline. advancer may be nil, in which case receipts are not consumed.
func New(b Bus, acceptor MessageAcceptor, advancer ReceiptAdvancer, cfg Config) (*Pipeline, error) {
	if b == nil || acceptor == nil {
		return nil, fmt.Errorf("%w: a bus and a message acceptor are required", ErrInvalidConfig)
	}
	cfg = cfg.withDefaults()
	if cfg.MaxBatch < 1 || cfg.Linger < 0 || cfg.Consumers < 1 || cfg.RetryMin <= 0 || cfg.RetryMax < cfg.RetryMin || cfg.StaleAfter <= cfg.PollTimeout ||
		cfg.RelayBatch < 1 || cfg.RelayPoll <= 0 {
		return nil, fmt.Errorf("%w: max batch %d, linger %v, retry %v..%v, stale after %v (must exceed poll timeout %v)",
			ErrInvalidConfig, cfg.MaxBatch, cfg.Linger, cfg.RetryMin, cfg.RetryMax, cfg.StaleAfter, cfg.PollTimeout)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{}
	if cfg.Outbox != nil {
		p.relay = newRelay(cfg.Outbox, b, cfg, m)
	}
	relayed := cfg.Outbox != nil
	messagesLag := newLagTracker()
	for range cfg.Consumers {
		p.consumers = append(p.consumers, newConsumer("messages", cfg.MessageGroup, protocol.TopicMessageSent, b, cfg, m, messagesLag,
			func(msgs []bus.Message) batch { return prepareMessages(msgs, acceptor, relayed, cfg.Logger, m) }))
	}
	if advancer != nil {
		p.consumers = append(p.consumers, newConsumer("receipts", cfg.ReceiptGroup, protocol.TopicReceipt, b, cfg, m, newLagTracker(),
			func(msgs []bus.Message) batch { return prepareReceipts(msgs, advancer, cfg.Logger, m) }))
	}
	return p, nil
}

// Run consumes until ctx ends (then it returns nil) or a consumer fails for good.
func (p *Pipeline) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if p.relay != nil {
		relayDone := make(chan struct{})
		go func() { defer close(relayDone); p.relay.run(ctx) }()
		defer func() { <-relayDone }()
		defer cancel() // runs first: stop the relay, then wait for it
	}
	subs := make([]bus.Subscription, len(p.consumers))
	for i, c := range p.consumers {
		sub, err := c.subscribe(ctx)
		if err != nil {
			for _, s := range subs[:i] {
				_ = s.Close()
			}
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		subs[i] = sub
	}
	errs := make(chan error, len(p.consumers))
	for i, c := range p.consumers {
		go func() {
			err := c.run(ctx, subs[i])
			if err != nil {
				cancel() // one consumer down takes the role down, so that it restarts whole
			}
			errs <- err
		}()
	}
	var all []error
	for range p.consumers {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}

// Wake tells the relay that a message was stored in this process, so that it announces
// it now rather than at its next poll. It never blocks; without an outbox it does nothing.
func (p *Pipeline) Wake() {
	if p.relay != nil {
		p.relay.Wake()
	}
}

// Ready reports whether every consumer runs and polled recently; /readyz serves it.
func (p *Pipeline) Ready() error {
	var errs []error
	for _, c := range p.consumers {
		if err := c.ready(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
