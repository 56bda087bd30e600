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

// BenchmarkWriterSmallSends publishes one record at a time and waits for each, as a
// gateway does for one chat message: once with kafka-go's default BatchTimeout (1 s) and
// once with ours, in the same operation, and prints the ratio. Each operation takes about
// a second because of the default writer; keep -benchtime small.
//
//	go test -run '^$' -bench WriterSmallSends -benchtime 3x ./runtime/bus/
func BenchmarkWriterSmallSends(b *testing.B) {
	slow := newBenchKafka(b, time.Second)
	fast := newBenchKafka(b, DefaultBatchTimeout)
	ctx := context.Background()
	rec := Record{Key: []byte("room-1"), Value: make([]byte, 200)}
	// Warm both writers up: the first send also fetches metadata and dials.
	for _, k := range []*Kafka{slow, fast} {
		if err := k.Publish(ctx, "bench", rec); err != nil {
			b.Fatal(err)
		}
	}
	var slowTotal, fastTotal time.Duration
	const fastSends = 20 // several fast sends per slow one, for a steadier figure
	for b.Loop() {
		start := time.Now()
		if err := slow.Publish(ctx, "bench", rec); err != nil {
			b.Fatal(err)
		}
		slowTotal += time.Since(start)
		start = time.Now()
		for range fastSends {
			if err := fast.Publish(ctx, "bench", rec); err != nil {
				b.Fatal(err)
			}
		}
		fastTotal += time.Since(start)
	}
	slowPer := slowTotal.Seconds() * 1000 / float64(b.N)
	fastPer := fastTotal.Seconds() * 1000 / float64(b.N*fastSends)
	b.ReportMetric(slowPer, "ms/send@1s")
	b.ReportMetric(fastPer, "ms/send@5ms")
	b.ReportMetric(slowPer/fastPer, "ratio")
}
