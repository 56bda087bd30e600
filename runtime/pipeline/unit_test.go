package pipeline

import (
	"context"
	"errors"
	"flag"
	"testing"
	"time"

	"github.com/parleychat/parley/runtime/bus"
	"github.com/prometheus/client_golang/prometheus"
)

func TestConfigFlags(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("core", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if cfg.MaxBatch != DefaultMaxBatch || cfg.Linger != DefaultLinger {
		t.Fatalf("defaults: %+v", cfg)
	}
	if err := fs.Parse([]string{"--pipeline-batch-size", "32", "--pipeline-batch-linger", "1ms"}); err != nil {
		t.Fatal(err)
	}
	if cfg.MaxBatch != 32 || cfg.Linger != time.Millisecond {
		t.Fatalf("parsed %+v", cfg)
	}
}

func TestLagSumsPartitions(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	c := newConsumer("messages", "core", "t", nil, Config{}.withDefaults(), m, newLagTracker(), nil)
	c.observeLag([]bus.Message{
		{Partition: 0, Offset: 3, HighWaterMark: 10}, // 6 behind
		{Partition: 0, Offset: 5, HighWaterMark: 10}, // the later message wins: 4
		{Partition: 1, Offset: 9, HighWaterMark: 10}, // caught up
		{Partition: 2, Offset: 0, HighWaterMark: 3},  // 2
	})
	if got := metric(t, reg, "parley_pipeline_consumer_lag", "consumer", "messages"); got != 6 {
		t.Fatalf("lag = %v, want 6", got)
	}
	c.observeLag([]bus.Message{{Partition: 2, Offset: 2, HighWaterMark: 3}})
	if got := metric(t, reg, "parley_pipeline_consumer_lag", "consumer", "messages"); got != 4 {
		t.Fatalf("lag = %v, want 4 after partition 2 caught up", got)
	}
	// Another member of the group in this process adds its own partitions to the sum.
	other := newConsumer("messages", "core", "t", nil, Config{}.withDefaults(), m, c.lag, nil)
	other.observeLag([]bus.Message{{Partition: 3, Offset: 0, HighWaterMark: 8}})
	if got := metric(t, reg, "parley_pipeline_consumer_lag", "consumer", "messages"); got != 11 {
		t.Fatalf("lag = %v, want 11 with the second member's partition 3", got)
	}
}

func TestRunEndsWithAnErrorWhenTheBusCloses(t *testing.T) {
	b := memoryBus(t, 1)
	chat := newPGChat(t)
	p, err := New(b, chat, chat, testConfig(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	waitUntil(t, func() bool { return p.Ready() == nil })
	_ = b.Close()
	select {
	case err := <-done:
		if !errors.Is(err, bus.ErrClosed) {
			t.Fatalf("Run = %v, want bus.ErrClosed", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Run kept going on a closed bus")
	}
	if err := p.Ready(); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Ready = %v, want ErrNotRunning", err)
	}
}
