package bus

import (
	"context"
	"fmt"
	"github.com/parleychat/parley/internal/testenv"
	"testing"
	"time"
)

// batch is what one benchmark operation publishes and then consumes.
const benchBatch = 100

// memoryMsgsPerSec lets the Kafka run print how it compares with the memory run.
var memoryMsgsPerSec float64

// BenchmarkPublishConsume measures round trips through each bus: publish 100 records of
// 200 bytes over 16 keys, then fetch and commit them as group "core" does.
//
//	go test -run '^$' -bench PublishConsume -benchtime 2s ./runtime/bus/
func BenchmarkPublishConsume(b *testing.B) {
	value := make([]byte, 200)
	recs := make([]Record, benchBatch)
	for i := range recs {
		recs[i] = Record{Key: fmt.Appendf(nil, "room-%d", i%16), Value: value}
	}
	run := func(b *testing.B, bus Bus) float64 {
		ctx := context.Background()
		sub, err := bus.Subscribe(ctx, "core", "bench")
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Close()
		for b.Loop() {
			if err := bus.Publish(ctx, "bench", recs...); err != nil {
				b.Fatal(err)
			}
			for got := 0; got < benchBatch; {
				msgs, err := sub.Fetch(ctx, benchBatch-got, time.Millisecond)
				if err != nil {
					b.Fatal(err)
				}
				if err := sub.Commit(ctx, msgs...); err != nil {
					b.Fatal(err)
				}
				got += len(msgs)
			}
		}
		rate := float64(b.N*benchBatch) / b.Elapsed().Seconds()
		b.ReportMetric(rate, "msgs/s")
		return rate
	}
	b.Run("memory", func(b *testing.B) {
		m, err := NewMemory(4)
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		memoryMsgsPerSec = run(b, m)
	})
	b.Run("kafka", func(b *testing.B) {
		k := newBenchKafka(b, DefaultBatchTimeout)
		rate := run(b, k)
		if memoryMsgsPerSec > 0 {
			b.ReportMetric(memoryMsgsPerSec/rate, "memory/kafka")
		}
	})
}

func newBenchKafka(b *testing.B, batchTimeout time.Duration) *Kafka {
	b.Helper()
	brokers := testenv.Kafka(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := EnsureTopics(ctx, brokers, 4, "bench"); err != nil {
		b.Fatal(err)
	}
	cfg := testKafkaConfig(brokers)
	cfg.BatchTimeout = batchTimeout
	k, err := NewKafka(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = k.Close() })
	return k
}

// newBenchKafkaFixed is the producer before smart batching: every Publish goes straight
// to kafka-go's writer, which holds each batch for batchTimeout unless it fills.
func newBenchKafkaFixed(b *testing.B, batchTimeout time.Duration) *Kafka {
	k := newBenchKafka(b, batchTimeout)
	k.writer.BatchTimeout = batchTimeout
	k.direct = true
	return k
}

// BenchmarkWriterSmallSends publishes one record at a time and waits for each, as a
// gateway does for one chat message: through kafka-go's writer alone with its default
// BatchTimeout (1 s) and with the 5 ms Parley used before smart batching, and through
// the batcher (a write starts at once when none is in flight), in the same operation;
// it prints each latency and the ratios. Each operation takes about a second because of
// the default writer; keep -benchtime small.
//
//	go test -run '^$' -bench WriterSmallSends -benchtime 3x ./runtime/bus/
func BenchmarkWriterSmallSends(b *testing.B) {
	slow := newBenchKafkaFixed(b, time.Second)
	fixed := newBenchKafkaFixed(b, DefaultBatchTimeout)
	smart := newBenchKafka(b, DefaultBatchTimeout)
	ctx := context.Background()
	rec := Record{Key: []byte("room-1"), Value: make([]byte, 200)}
	// Warm the writers up: the first send also fetches metadata and dials.
	for _, k := range []*Kafka{slow, fixed, smart} {
		if err := k.Publish(ctx, "bench", rec); err != nil {
			b.Fatal(err)
		}
	}
	var slowTotal, fixedTotal, smartTotal time.Duration
	const fastSends = 20 // several fast sends per slow one, for a steadier figure
	for b.Loop() {
		start := time.Now()
		if err := slow.Publish(ctx, "bench", rec); err != nil {
			b.Fatal(err)
		}
		slowTotal += time.Since(start)
		for _, w := range []struct {
			k     *Kafka
			total *time.Duration
		}{{fixed, &fixedTotal}, {smart, &smartTotal}} {
			start = time.Now()
			for range fastSends {
				if err := w.k.Publish(ctx, "bench", rec); err != nil {
					b.Fatal(err)
				}
			}
			*w.total += time.Since(start)
		}
	}
	slowPer := slowTotal.Seconds() * 1000 / float64(b.N)
	fixedPer := fixedTotal.Seconds() * 1000 / float64(b.N*fastSends)
	smartPer := smartTotal.Seconds() * 1000 / float64(b.N*fastSends)
	b.ReportMetric(slowPer, "ms/send@1s")
	b.ReportMetric(fixedPer, "ms/send@5ms")
	b.ReportMetric(smartPer, "ms/send@smart")
	b.ReportMetric(slowPer/fixedPer, "1s/5ms")
	b.ReportMetric(fixedPer/smartPer, "5ms/smart")
}
