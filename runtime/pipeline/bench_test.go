package pipeline

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parleychat/parley/runtime/bus"
	"github.com/parleychat/parley/runtime/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkPipeline measures messages per second through the whole path, Kafka (kfake)
// and PostgreSQL included: an operation publishes 500 messages over 20 rooms and waits
// for their 500 delivered events. It compares one message per transaction (MaxBatch 1)
// with group commit (MaxBatch 256) in the same run and prints the ratio.
//
//	go test -run '^$' -bench Pipeline -benchtime 5x ./runtime/pipeline/
func BenchmarkPipeline(b *testing.B) {
	const n, rooms = 500, 20
	var rates = map[int]float64{}
	for _, size := range []int{1, 256} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			k := kafkaBus(b, 4)
			chat := newPGChat(b)
			for r := range rooms {
				chat.addMembers(b, fmt.Sprintf("room-%d", r), "ann")
			}
			reg := prometheus.NewRegistry()
			cfg := testConfig(reg)
			cfg.MaxBatch = size
			p, err := New(k, chat, nil, cfg)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			defer func() { cancel(); <-done }()
			out, err := k.Subscribe(ctx, "observer", protocol.TopicMessageDelivered)
			if err != nil {
				b.Fatal(err)
			}
			defer out.Close()

			// Warm up outside the measurement: group joins, connections, first batch.
			warm := msg("room-0", "ann", "warm-up", "hello")
			raw, err := protocol.Encode(&warm)
			if err != nil {
				b.Fatal(err)
			}
			if err := k.Publish(ctx, protocol.TopicMessageSent, bus.Record{Key: []byte(warm.RoomID), Value: raw}); err != nil {
				b.Fatal(err)
			}
			wait, cancelWait := context.WithTimeout(ctx, waitFor)
			if _, err := out.Fetch(wait, 1, 0); err != nil {
				b.Fatalf("warm-up: %v", err)
			}
			cancelWait()

			round := 0
			for b.Loop() {
				recs := make([]bus.Record, n)
				for i := range recs {
					m := msg(fmt.Sprintf("room-%d", i%rooms), "ann", fmt.Sprintf("r%d-%d", round, i), "hello")
					raw, err := protocol.Encode(&m)
					if err != nil {
						b.Fatal(err)
					}
					recs[i] = bus.Record{Key: []byte(m.RoomID), Value: raw}
				}
				round++
				if err := k.Publish(ctx, protocol.TopicMessageSent, recs...); err != nil {
					b.Fatal(err)
				}
				wait, cancelWait := context.WithTimeout(ctx, waitFor)
				for got := 0; got < n; {
					msgs, err := out.Fetch(wait, n-got, time.Millisecond)
					if err != nil {
						b.Fatalf("waiting for delivered events: %d of %d: %v", got, n, err)
					}
					got += len(msgs)
				}
				cancelWait()
			}
			rate := float64(b.N*n) / b.Elapsed().Seconds()
			rates[size] = rate
			b.ReportMetric(rate, "msgs/s")
			if batches := metric(b, reg, "parley_pipeline_batches_total", "consumer", "messages"); batches > 0 {
				b.ReportMetric(float64(b.N*n+1)/batches, "events/batch")
			}
			if base := rates[1]; size != 1 && base > 0 {
				b.ReportMetric(rate/base, "x_vs_batch=1")
			}
		})
	}
}
