// Package deps opens what several roles share from their flags: the bus (Kafka or
// memory), Redis, and the HTTP server every role runs for health, metrics and its API.
package deps

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/runtime/bus"
	"github.com/parleychat/parley/runtime/protocol"
)

// Bus kinds.
const (
	BusKafka  = "kafka"
	BusMemory = "memory"
)

// BusConfig selects and tunes the bus.
type BusConfig struct {
	Kind       string
	Brokers    string
	Partitions int
}

// RegisterFlags binds --bus, --kafka-brokers and --kafka-partitions.
func (c *BusConfig) RegisterFlags(fs *flag.FlagSet) {
	if c.Kind == "" {
		c.Kind = BusKafka
	}
	if c.Partitions == 0 {
		c.Partitions = 12
	}
	fs.StringVar(&c.Kind, "bus", c.Kind, "event bus: kafka, or memory (single process only)")
	fs.StringVar(&c.Brokers, "kafka-brokers", c.Brokers, "comma-separated Kafka bootstrap servers")
	fs.IntVar(&c.Partitions, "kafka-partitions", c.Partitions, "partitions of topics created at start")
}

// Validate reports a usage mistake.
func (c BusConfig) Validate() error {
	switch {
	case c.Kind != BusKafka && c.Kind != BusMemory:
		return fmt.Errorf("--bus %q: want kafka or memory", c.Kind)
	case c.Kind == BusKafka && len(c.brokers()) == 0:
		return errors.New("--kafka-brokers is required with --bus=kafka")
	case c.Partitions < 1:
		return errors.New("--kafka-partitions must be at least 1")
	}
	return nil
}

func (c BusConfig) brokers() []string {
	var out []string
	for _, b := range strings.Split(c.Brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}


// Open returns the bus; for Kafka it first creates the missing topics.
func (c BusConfig) Open(ctx context.Context, logger *slog.Logger) (bus.Bus, func(context.Context) error, error) {
	if c.Kind == BusMemory {
		b, err := bus.NewMemory(c.Partitions)
		return b, func(context.Context) error { return nil }, err
	}
	ensure, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := bus.EnsureTopics(ensure, c.brokers(), c.Partitions, protocol.Topics()...); err != nil {
		return nil, nil, err
	}
	k, err := bus.NewKafka(bus.KafkaConfig{Brokers: c.brokers(), Partitions: c.Partitions, Logger: logger})
	if err != nil {
		return nil, nil, err
	}
	ping := func(ctx context.Context) error { return k.Ping(ctx, protocol.Topics()...) }
	return k, ping, nil
}

// OpenRedis connects to url and checks it answers.
func OpenRedis(ctx context.Context, url string) (*redis.Client, error) {
	if url == "" {
		return nil, errors.New("--redis-url is required")
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("--redis-url: %w", err)
	}
	rdb := redis.NewClient(opts)
	ping, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := rdb.Ping(ping).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redis %s: %w", opts.Addr, err)
	}
	return rdb, nil
}

// Serve answers HTTP on addr until ctx ends, then runs beforeShutdown (for draining
// WebSockets) and shuts the server down within grace.
func Serve(ctx context.Context, logger *slog.Logger, ln net.Listener, h http.Handler, grace time.Duration, beforeShutdown func(context.Context)) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if beforeShutdown != nil {
		beforeShutdown(shutdown)
	}
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}
