package bus

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/testenv"
	"github.com/segmentio/kafka-go"
)

func TestMemoryContract(t *testing.T) {
	runContract(t, func(t *testing.T, partitions int, _ ...string) Bus {
		b, err := NewMemory(partitions)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	})
}

// testKafkaConfig shortens the group timers so that members leave and join quickly on
// the in-process broker.
func testKafkaConfig(brokers []string) KafkaConfig {
	return KafkaConfig{
		Brokers:           brokers,
		SessionTimeout:    2 * time.Second,
		HeartbeatInterval: 200 * time.Millisecond,
		RebalanceTimeout:  2 * time.Second,
	}
}

func newTestKafka(t *testing.T, partitions int, topics ...string) *Kafka {
	brokers := testenv.Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := EnsureTopics(ctx, brokers, partitions, topics...); err != nil {
		t.Fatal(err)
	}
	b, err := NewKafka(testKafkaConfig(brokers))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestKafkaContract(t *testing.T) {
	runContract(t, func(t *testing.T, partitions int, topics ...string) Bus {
		return newTestKafka(t, partitions, topics...)
	})
}

func TestEnsureTopics(t *testing.T) {
	brokers := testenv.Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := EnsureTopics(ctx, brokers, 3, "a", "b"); err != nil {
		t.Fatal(err)
	}
	// Running again, with a different count, creates nothing and changes nothing.
	if err := EnsureTopics(ctx, brokers, 5, "a", "b", "c"); err != nil {
		t.Fatalf("second run: %v", err)
	}
	client := &kafka.Client{Addr: kafka.TCP(brokers...)}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{"a", "b", "c"}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"a": 3, "b": 3, "c": 5}
	for _, topic := range meta.Topics {
		if topic.Error != nil || len(topic.Partitions) != want[topic.Name] {
			t.Fatalf("topic %s: %d partitions (error %v), want %d", topic.Name, len(topic.Partitions), topic.Error, want[topic.Name])
		}
		delete(want, topic.Name)
	}
	if len(want) != 0 {
		t.Fatalf("topics missing from metadata: %v", want)
	}
}

func TestKafkaPublishToMissingTopicFails(t *testing.T) {
	b := newTestKafka(t, 1, "present")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Publish(ctx, "absent", Record{Key: []byte("k"), Value: []byte("v")}); err == nil {
		t.Fatal("publishing to a topic that was never created succeeded")
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := NewMemory(0); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("NewMemory(0) = %v", err)
	}
	if _, err := NewKafka(KafkaConfig{}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("NewKafka without brokers = %v", err)
	}
	if _, err := NewKafka(KafkaConfig{Brokers: []string{"x:1"}, SessionTimeout: time.Second, HeartbeatInterval: time.Second}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("NewKafka with heartbeat = session timeout: %v", err)
	}
	if err := EnsureTopics(context.Background(), nil, 1, "t"); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("EnsureTopics without brokers = %v", err)
	}
}

func TestMemoryClosed(t *testing.T) {
	b, _ := NewMemory(1)
	s, err := b.Subscribe(context.Background(), "g", "t")
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	if err := b.Publish(context.Background(), "t", Record{Value: []byte("x")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("publish after close = %v", err)
	}
	if _, err := s.Fetch(context.Background(), 1, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("fetch after close = %v", err)
	}
}

func TestKafkaFlags(t *testing.T) {
	var cfg KafkaConfig
	fs := flag.NewFlagSet("core", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if cfg.Partitions != DefaultPartitions || cfg.BatchTimeout != DefaultBatchTimeout ||
		cfg.SessionTimeout != DefaultSessionTimeout || cfg.HeartbeatInterval != DefaultHeartbeatInterval {
		t.Fatalf("defaults: %+v", cfg)
	}
	// A killed member is replaced within a session timeout plus a heartbeat: 3 s at most.
	if d := DefaultSessionTimeout + DefaultHeartbeatInterval; d > 3*time.Second {
		t.Fatalf("default session timeout + heartbeat = %v, more than 3 s", d)
	}
	err := fs.Parse([]string{"--kafka-brokers", " k1:9092, k2:9092,", "--kafka-partitions", "12", "--kafka-batch-timeout", "2ms",
		"--kafka-session-timeout", "6s", "--kafka-heartbeat-interval", "2s", "--kafka-rebalance-timeout", "20s"})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(cfg.Brokers); got != "[k1:9092 k2:9092]" || cfg.Partitions != 12 || cfg.BatchTimeout != 2*time.Millisecond ||
		cfg.SessionTimeout != 6*time.Second || cfg.HeartbeatInterval != 2*time.Second || cfg.RebalanceTimeout != 20*time.Second {
		t.Fatalf("parsed %+v", cfg)
	}
	if err := fs.Parse([]string{"--kafka-partitions", "many"}); err == nil {
		t.Fatal("a non-numeric partition count was accepted")
	}
}

func TestKafkaEnsureTopicsUsesConfiguredPartitions(t *testing.T) {
	brokers := testenv.Kafka(t)
	k, err := NewKafka(KafkaConfig{Brokers: brokers, Partitions: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := k.EnsureTopics(ctx, "seven"); err != nil {
		t.Fatal(err)
	}
	meta, err := (&kafka.Client{Addr: kafka.TCP(brokers...)}).Metadata(ctx, &kafka.MetadataRequest{Topics: []string{"seven"}})
	if err != nil || len(meta.Topics) != 1 || len(meta.Topics[0].Partitions) != 7 {
		t.Fatalf("metadata %+v, %v; want one topic with 7 partitions", meta, err)
	}
}

func TestKafkaPing(t *testing.T) {
	k := newTestKafka(t, 1, "present")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := k.Ping(ctx, "present"); err != nil {
		t.Fatalf("ping a live broker: %v", err)
	}
	if err := k.Ping(ctx, "present", "absent"); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("ping with a missing topic = %v, want ErrUnknownTopic", err)
	}
	// A port that was just free: nothing listens there.
	dead, err := NewKafka(KafkaConfig{Brokers: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	if err := dead.Ping(ctx, "present"); err == nil {
		t.Fatal("ping of an address where no broker listens succeeded")
	}
}

func TestMemoryCommitOfAnotherMembersPartition(t *testing.T) {
	b, _ := NewMemory(2)
	defer b.Close()
	ctx := context.Background()
	first, _ := b.Subscribe(ctx, "g", "t")
	second, _ := b.Subscribe(ctx, "g", "t") // partition 0 stays with first, 1 goes to second
	if err := b.Publish(ctx, "t", Record{Key: []byte("k"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	var got []Message
	for _, s := range []Subscription{first, second} {
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		msgs, _ := s.Fetch(short, 1, 0)
		cancel()
		if len(msgs) > 0 {
			got = msgs
			other := second
			if s == second {
				other = first
			}
			if err := other.Commit(ctx, msgs...); !errors.Is(err, ErrNotAssigned) {
				t.Fatalf("commit by the member that does not own the partition = %v, want ErrNotAssigned", err)
			}
			if err := s.Commit(ctx, msgs...); err != nil {
				t.Fatalf("commit by the owner: %v", err)
			}
		}
	}
	if len(got) != 1 {
		t.Fatalf("the two members fetched %d messages in all, want 1", len(got))
	}
}
