package bus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// KafkaConfig tunes the Kafka bus. Zero durations take the defaults below, which favour
// latency: chat messages are small and a user waits for each one.
type KafkaConfig struct {
	Brokers []string
	// Partitions is what (*Kafka).EnsureTopics gives new topics (default DefaultPartitions).
	Partitions int
	// BatchTimeout is the longest the writer holds a batch open. Publish batches in front
	// of the writer (smart batching: a write starts at once when none is in flight, and
	// what arrives meanwhile goes together next), hands whole batches over and lets the
	// writer send them at once, so this is an upper bound, not a wait (kafka-go's own
	// default, one second, was a wait on every message).
	BatchTimeout time.Duration
	// BatchSize is how many records of one partition the writer sends as one record
	// batch (default 256): a relay round or a group commit's answers for a partition then
	// reach the consumers in one fetch rather than in several.
	BatchSize int
	// MaxWait bounds how long the broker holds a fetch when there is no data (default
	// 100 ms); a fetch returns as soon as there is data regardless.
	MaxWait time.Duration
	// SessionTimeout is how long the group waits for a silent member (a crashed process)
	// before handing its partitions to others (default 2 s, so that a core or
	// notification killed with SIGKILL is replaced within 3 s; a member that closes
	// leaves the group at once). The brokers must allow it: Apache Kafka refuses session
	// timeouts below group.min.session.timeout.ms (6 s unless configured lower).
	SessionTimeout time.Duration
	// HeartbeatInterval must be well under SessionTimeout (default 500 ms: four
	// heartbeats per session, and the interval bounds how long the surviving members
	// take to notice a rebalance).
	HeartbeatInterval time.Duration
	// RebalanceTimeout is how long a rebalance waits for members to rejoin (default 10 s).
	RebalanceTimeout time.Duration
	// TLS connects to the brokers over TLS, verified against the system roots or
	// TLSCAFile when set.
	TLS       bool
	TLSCAFile string
	// SASLMechanism is plain, scram-sha-256 or scram-sha-512 (empty: no SASL).
	SASLMechanism string
	SASLUsername  string
	SASLPassword  string
	// Logger receives kafka-go's errors at Warn; nil discards them.
	Logger *slog.Logger
	// StartLatest picks the groups that start from the end of their topic when they have
	// no committed offset (new, or expired by the brokers' offsets.retention); nil or
	// false: from the first offset. Subscribe pins such a group's start by committing the
	// current end offsets, so whatever is published after it returns is consumed.
	StartLatest func(group string) bool
}

// Defaults of KafkaConfig.
const (
	DefaultBatchTimeout      = 5 * time.Millisecond
	DefaultBatchSize         = 256
	DefaultMaxWait           = 100 * time.Millisecond
	DefaultSessionTimeout    = 2 * time.Second
	DefaultHeartbeatInterval = 500 * time.Millisecond
	DefaultRebalanceTimeout  = 10 * time.Second
)

func (c KafkaConfig) withDefaults() KafkaConfig {
	set := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	set(&c.BatchTimeout, DefaultBatchTimeout)
	set(&c.MaxWait, DefaultMaxWait)
	set(&c.SessionTimeout, DefaultSessionTimeout)
	set(&c.HeartbeatInterval, DefaultHeartbeatInterval)
	set(&c.RebalanceTimeout, DefaultRebalanceTimeout)
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	return c
}

// Kafka is the bus over Apache Kafka (or anything speaking its protocol). Topics must
// exist: create them at start with EnsureTopics.
type Kafka struct {
	cfg     KafkaConfig
	writer  *kafka.Writer
	batcher *batcher
	// direct publishes through the writer alone, with its fixed BatchTimeout: the path
	// before the batcher, kept as the benchmarks' baseline.
	direct    bool
	transport *kafka.Transport // TLS and SASL for writes and admin requests
	dialer    *kafka.Dialer    // the same for group readers

	sessionMu sync.Mutex // guards cfg.SessionTimeout, raised to the brokers' minimum
}

// NewKafka returns a Kafka bus. It does not connect until first used.
func NewKafka(cfg KafkaConfig) (*Kafka, error) {
	if len(cfg.Brokers) == 0 {
		return nil, fmt.Errorf("%w: no Kafka brokers", ErrInvalidConfig)
	}
	if cfg.Partitions < 0 || cfg.BatchTimeout < 0 || cfg.MaxWait < 0 || cfg.SessionTimeout < 0 {
		return nil, fmt.Errorf("%w: negative partitions or durations", ErrInvalidConfig)
	}
	cfg = cfg.withDefaults()
	if cfg.HeartbeatInterval >= cfg.SessionTimeout {
		return nil, fmt.Errorf("%w: heartbeat interval %v must be below the session timeout %v",
			ErrInvalidConfig, cfg.HeartbeatInterval, cfg.SessionTimeout)
	}
	transport, dialer, err := cfg.transport()
	if err != nil {
		return nil, err
	}
	w := &kafka.Writer{
		Addr:      kafka.TCP(cfg.Brokers...),
		Transport: transport,
		// Hashing the key keeps every record of a room on one partition, hence in order.
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: min(cfg.BatchTimeout, writerFlush),
		BatchSize:    cfg.BatchSize,
		// Topics are created deliberately, with the configured partitions (EnsureTopics);
		// auto-creation would silently pick the broker's default.
		AllowAutoTopicCreation: false,
		ErrorLogger:            errorLogger(cfg.Logger),
	}
	return &Kafka{cfg: cfg, writer: w, batcher: newBatcher(w.WriteMessages, publishBatch), transport: transport, dialer: dialer}, nil
}

func errorLogger(l *slog.Logger) kafka.Logger {
	if l == nil {
		return nil
	}
	return kafka.LoggerFunc(func(format string, args ...any) {
		l.Warn("kafka", "detail", fmt.Sprintf(format, args...))
	})
}

// Publish implements Bus.
func (k *Kafka) Publish(ctx context.Context, topic string, recs ...Record) error {
	if len(recs) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, len(recs))
	for i, r := range recs {
		msgs[i] = kafka.Message{Topic: topic, Key: r.Key, Value: r.Value}
	}
	write := k.batcher.publish
	if k.direct {
		write = func(ctx context.Context, msgs []kafka.Message) error { return k.writer.WriteMessages(ctx, msgs...) }
	}
	if err := write(ctx, msgs); err != nil {
		if errors.Is(err, io.ErrClosedPipe) {
			return ErrClosed
		}
		return fmt.Errorf("publish %d records to %s: %w", len(recs), topic, err)
	}
	return nil
}

// Subscribe implements Bus. The member joins the group on its first Fetch.
func (k *Kafka) Subscribe(ctx context.Context, group, topic string) (Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if group == "" || topic == "" {
		return nil, fmt.Errorf("%w: group and topic are required", ErrInvalidConfig)
	}
	if k.cfg.StartLatest != nil && k.cfg.StartLatest(group) {
		if err := k.pinLatest(ctx, group, topic); err != nil && k.cfg.Logger != nil {
			// The reader still starts from the end, only from when it joins.
			k.cfg.Logger.Warn("kafka: could not pin a new group's start to the end of its topic", "group", group, "topic", topic, "err", err)
		}
	}
	return &kafkaSubscription{k: k, group: group, topic: topic, r: k.newReader(group, topic, k.sessionTimeout())}, nil
}

// pinLatest commits the end offset of every partition of topic that group has no
// committed offset for.
func (k *Kafka) pinLatest(ctx context.Context, group, topic string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(k.cfg.Brokers...), Transport: k.transport}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return err
	}
	var parts []int
	for _, t := range meta.Topics {
		if t.Name == topic {
			for _, p := range t.Partitions {
				parts = append(parts, p.ID)
			}
		}
	}
	committed, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		return err
	}
	var missing []kafka.OffsetRequest
	switch {
	case errors.Is(committed.Error, kafka.GroupIdNotFound): // some brokers say so of a new group
		for _, p := range parts {
			missing = append(missing, kafka.LastOffsetOf(p))
		}
	case committed.Error != nil:
		return committed.Error
	default:
		for _, p := range committed.Topics[topic] {
			if p.Error == nil && p.CommittedOffset < 0 {
				missing = append(missing, kafka.LastOffsetOf(p.Partition))
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	ends, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: missing}})
	if err != nil {
		return err
	}
	var commits []kafka.OffsetCommit
	for _, p := range ends.Topics[topic] {
		if p.Error != nil {
			return p.Error
		}
		commits = append(commits, kafka.OffsetCommit{Partition: p.Partition, Offset: p.LastOffset})
	}
	// Generation -1 and no member: a commit for a group with no members yet.
	resp, err := client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{GroupID: group, GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{topic: commits}})
	if err != nil {
		return err
	}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return p.Error
		}
	}
	return nil
}

func (k *Kafka) newReader(group, topic string, session time.Duration) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Dialer:   k.dialer,
		Brokers:  k.cfg.Brokers,
		GroupID:  group,
		Topic:    topic,
		MinBytes: 1,
		MaxBytes: 10 << 20,
		MaxWait:  k.cfg.MaxWait,
		// Zero means synchronous commits: Commit returns only once the broker has them,
		// which is what lets the caller promise "committed after persisted".
		CommitInterval:    0,
		StartOffset:       k.startOffset(group),
		SessionTimeout:    session,
		HeartbeatInterval: k.cfg.HeartbeatInterval,
		RebalanceTimeout:  k.cfg.RebalanceTimeout,
		JoinGroupBackoff:  250 * time.Millisecond,
		ReadBackoffMin:    10 * time.Millisecond,
		ReadBackoffMax:    500 * time.Millisecond,
		ErrorLogger:       errorLogger(k.cfg.Logger),
	})
}

func (k *Kafka) startOffset(group string) int64 {
	if k.cfg.StartLatest != nil && k.cfg.StartLatest(group) {
		return kafka.LastOffset
	}
	return kafka.FirstOffset
}

func (k *Kafka) sessionTimeout() time.Duration {
	k.sessionMu.Lock()
	defer k.sessionMu.Unlock()
	return k.cfg.SessionTimeout
}

// raiseSessionTimeout is called when the brokers refused to let a member join with
// session: it reads their group.min.session.timeout.ms (Apache Kafka's default, 6 s, is
// above ours) and, when that is longer, uses it from now on and reports true, so the
// member can join again rather than never consume. Only a killed member's partitions
// then move later, which the warning says.
func (k *Kafka) raiseSessionTimeout(ctx context.Context, session time.Duration) (bool, error) {
	k.sessionMu.Lock()
	defer k.sessionMu.Unlock()
	if k.cfg.SessionTimeout > session {
		return true, nil // another subscription raised it already
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	floor, err := brokersMinSessionTimeout(actx, k.transport, k.cfg.Brokers)
	if err != nil {
		return false, err
	}
	if floor <= k.cfg.SessionTimeout {
		return false, nil
	}
	if k.cfg.Logger != nil {
		k.cfg.Logger.Warn("kafka: the brokers refuse session timeouts below their group.min.session.timeout.ms; "+
			"joining with theirs, so a killed member's partitions move only after it",
			"configured", k.cfg.SessionTimeout, "using", floor)
	}
	k.cfg.SessionTimeout = floor
	return true, nil
}

// brokersMinSessionTimeout reads group.min.session.timeout.ms from one of the brokers.
func brokersMinSessionTimeout(ctx context.Context, transport kafka.RoundTripper, brokers []string) (time.Duration, error) {
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: transport}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{}})
	if err != nil {
		return 0, err
	}
	if len(meta.Brokers) == 0 {
		return 0, errors.New("no brokers in metadata")
	}
	const name = "group.min.session.timeout.ms"
	resp, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeBroker, ResourceName: strconv.Itoa(meta.Brokers[0].ID), ConfigNames: []string{name},
	}}})
	if err != nil {
		return 0, err
	}
	for _, r := range resp.Resources {
		if r.Error != nil {
			return 0, r.Error
		}
		for _, e := range r.ConfigEntries {
			if e.ConfigName == name {
				ms, err := strconv.ParseInt(e.ConfigValue, 10, 64)
				if err != nil {
					return 0, fmt.Errorf("%s = %q: %w", name, e.ConfigValue, err)
				}
				return time.Duration(ms) * time.Millisecond, nil
			}
		}
	}
	return 0, fmt.Errorf("%s not described", name)
}

// publishBatch bounds the records of one write of the batcher: a relay round (1 024
// announcements) goes in one.
const publishBatch = 1024

// Close writes what Publish calls queued (for at most 10 s), then flushes and closes the
// writer.
func (k *Kafka) Close() error {
	k.batcher.close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	k.batcher.drain(ctx)
	cancel()
	return k.writer.Close()
}

type kafkaSubscription struct {
	k            *Kafka
	group, topic string

	mu     sync.Mutex
	r      *kafka.Reader // replaced when the brokers refuse its session timeout
	closed bool
}

func (s *kafkaSubscription) reader() *kafka.Reader {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r
}

// Fetch implements Subscription.
func (s *kafkaSubscription) Fetch(ctx context.Context, max int, linger time.Duration) ([]Message, error) {
	if max < 1 {
		return nil, fmt.Errorf("%w: fetch max must be positive, got %d", ErrInvalidConfig, max)
	}
	r := s.reader()
	m, err := r.FetchMessage(ctx)
	if errors.Is(err, kafka.InvalidSessionTimeout) {
		if err := s.rejoin(ctx, r, err); err != nil {
			return nil, err
		}
		r = s.reader()
		m, err = r.FetchMessage(ctx)
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, ErrClosed
		}
		return nil, err
	}
	out := []Message{fromKafka(m)}
	if len(out) >= max || linger <= 0 {
		return out, nil
	}
	// Smart batching: take what the reader has queued already, and what keeps arriving
	// without a pause (a fetch response is decoded into the queue one message at a
	// time), but never wait for more: an idle gap of fetchGap ends the batch, and
	// linger bounds it. A message abandoned by a cancelled FetchMessage stays in the
	// reader's queue, so bounding the gathering by a timeout loses nothing.
	lctx, cancel := context.WithTimeout(ctx, linger)
	defer cancel()
	for len(out) < max {
		gctx, gcancel := context.WithTimeout(lctx, fetchGap)
		m, err := r.FetchMessage(gctx)
		gcancel()
		if err != nil {
			break // the error, if it is not the gap or the linger, comes back on the next Fetch
		}
		out = append(out, fromKafka(m))
	}
	return out, nil
}

// fetchGap is the pause in arrivals that ends a Fetch's batch: long enough to take a
// whole fetch response as the reader decodes it, far below any linger a caller asks for.
const fetchGap = 200 * time.Microsecond

func fromKafka(m kafka.Message) Message {
	return Message{
		Topic:         m.Topic,
		Partition:     m.Partition,
		Offset:        m.Offset,
		Key:           m.Key,
		Value:         m.Value,
		Time:          m.Time,
		HighWaterMark: m.HighWaterMark,
	}
}

// Commit implements Subscription.
func (s *kafkaSubscription) Commit(ctx context.Context, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	km := make([]kafka.Message, len(msgs))
	for i, m := range msgs {
		km[i] = kafka.Message{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}
	}
	if err := s.reader().CommitMessages(ctx, km...); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) {
			return ErrClosed
		}
		return fmt.Errorf("commit %d offsets: %w", len(msgs), err)
	}
	return nil
}

// Close implements Subscription: the member leaves the group so that its partitions move
// at once instead of after the session timeout.
func (s *kafkaSubscription) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return s.r.Close()
}

// rejoin handles a join refused for its session timeout: with the brokers' minimum
// known and longer, the reader is replaced by one that joins with it (the caller's next
// Fetch uses it), and nil is returned; otherwise the refusal is reported as a
// configuration error.
func (s *kafkaSubscription) rejoin(ctx context.Context, old *kafka.Reader, refused error) error {
	session := old.Config().SessionTimeout
	raised, err := s.k.raiseSessionTimeout(ctx, session)
	if err != nil || !raised {
		return fmt.Errorf("%w: the brokers refuse the group session timeout %v (--kafka-session-timeout; "+
			"their group.min.session.timeout.ms and group.max.session.timeout.ms bound it): %w",
			ErrInvalidConfig, session, errors.Join(refused, err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.r == old {
		_ = old.Close()
		s.r = s.k.newReader(s.group, s.topic, s.k.sessionTimeout())
	}
	return nil
}

// EnsureTopics creates the topics that do not exist yet, with partitions partitions and a
// replication factor of min(3, number of brokers), and waits until every topic has a
// leader for each partition. Existing topics are left alone even when their partition
// count differs: adding partitions would move keys, and with them the order of a room.
func EnsureTopics(ctx context.Context, brokers []string, partitions int, topics ...string) error {
	return ensureTopics(ctx, nil, brokers, partitions, topics...)
}

func ensureTopics(ctx context.Context, transport kafka.RoundTripper, brokers []string, partitions int, topics ...string) error {
	if len(brokers) == 0 || partitions < 1 {
		return fmt.Errorf("%w: need brokers and at least one partition", ErrInvalidConfig)
	}
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: transport}
	// Topic names are always given: a metadata request for all topics may be answered
	// from a stale cache.
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return fmt.Errorf("ensure topics: %w", err)
	}
	var missing []kafka.TopicConfig
	replication := min(3, len(meta.Brokers))
	for _, name := range topics {
		if topicReady(meta, name) {
			continue
		}
		missing = append(missing, kafka.TopicConfig{Topic: name, NumPartitions: partitions, ReplicationFactor: replication})
	}
	if len(missing) > 0 {
		resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: missing})
		if err != nil {
			return fmt.Errorf("ensure topics: create: %w", err)
		}
		for name, terr := range resp.Errors {
			// Another replica starting at the same time may have won the race.
			if terr != nil && !errors.Is(terr, kafka.TopicAlreadyExists) {
				return fmt.Errorf("ensure topics: create %s: %w", name, terr)
			}
		}
	}
	for {
		meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
		if err == nil {
			ready := true
			for _, name := range topics {
				ready = ready && topicReady(meta, name)
			}
			if ready {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ensure topics: waiting for leaders: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func topicReady(meta *kafka.MetadataResponse, name string) bool {
	for _, t := range meta.Topics {
		if t.Name != name {
			continue
		}
		if t.Error != nil || len(t.Partitions) == 0 {
			return false
		}
		for _, p := range t.Partitions {
			if p.Error != nil || p.Leader.Host == "" {
				return false
			}
		}
		return true
	}
	return false
}

// Ping asks the brokers for the metadata of topics, for readiness probes: it fails when
// no broker answers or a topic has no leader.
func (k *Kafka) Ping(ctx context.Context, topics ...string) error {
	client := &kafka.Client{Addr: kafka.TCP(k.cfg.Brokers...), Transport: k.transport}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return fmt.Errorf("kafka ping: %w", err)
	}
	for _, name := range topics {
		if !topicReady(meta, name) {
			return fmt.Errorf("kafka ping: topic %s has no leader: %w", name, ErrUnknownTopic)
		}
	}
	return nil
}

// Brokers returns the bootstrap addresses the bus was built with.
func (k *Kafka) Brokers() []string { return append([]string(nil), k.cfg.Brokers...) }
