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
	Kind  string
	Kafka bus.KafkaConfig
}

// RegisterFlags binds --bus and the Kafka settings (--kafka-brokers, --kafka-partitions, ...).
func (c *BusConfig) RegisterFlags(fs *flag.FlagSet) {
	if c.Kind == "" {
		c.Kind = BusKafka
	}
	fs.StringVar(&c.Kind, "bus", c.Kind, "event bus: kafka, or memory (single process only)")
	c.Kafka.RegisterFlags(fs)
}

// Validate reports a usage mistake.
func (c BusConfig) Validate() error {
	switch {
	case c.Kind != BusKafka && c.Kind != BusMemory:
		return fmt.Errorf("--bus %q: want kafka or memory", c.Kind)
	case c.Kind == BusKafka && len(c.Kafka.Brokers) == 0:
		return errors.New("--kafka-brokers is required with --bus=kafka")
	case c.Kafka.Partitions < 1:
		return errors.New("--kafka-partitions must be at least 1")
	}
	return nil
}

// Open returns the bus and its readiness probe; for Kafka it first creates the missing
// topics.
func (c BusConfig) Open(ctx context.Context, logger *slog.Logger) (bus.Bus, func(context.Context) error, error) {
	if c.Kind == BusMemory {
		b, err := bus.NewMemory(c.Kafka.Partitions)
		return b, func(context.Context) error { return nil }, err
	}
	kcfg := c.Kafka
	kcfg.Logger = logger
	if strings.EqualFold(kcfg.SASLMechanism, bus.SASLPlain) && !kcfg.TLS && kcfg.TLSCAFile == "" {
		logger.Warn("SASL plain without TLS sends the Kafka password in clear text; set --kafka-tls")
	}
	k, err := bus.NewKafka(kcfg)
	if err != nil {
		return nil, nil, err
	}
	ensure, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := k.EnsureTopics(ensure, protocol.Topics()...); err != nil {
		k.Close()
		return nil, nil, err
	}
	ping := func(ctx context.Context) error { return k.Ping(ctx, protocol.Topics()...) }
	return k, ping, nil
}

// OpenRedis connects to url and checks it answers. With cluster, url is a
// comma-separated list of seed URLs of one Redis Cluster (any reachable node is enough;
// the client learns the others from it) and the client routes each command to the node
// owning its key's hash slot. Callers see one redis.UniversalClient either way.
func OpenRedis(ctx context.Context, url string, cluster bool) (redis.UniversalClient, error) {
	if url == "" {
		return nil, errors.New("--redis-url is required")
	}
	var (
		rdb  redis.UniversalClient
		addr string
	)
	if cluster {
		opts, err := ParseClusterURLs(url)
		if err != nil {
			return nil, err
		}
		rdb, addr = redis.NewClusterClient(opts), strings.Join(opts.Addrs, ",")
	} else {
		opts, err := redis.ParseURL(url)
		if err != nil {
			return nil, fmt.Errorf("--redis-url: %w", err)
		}
		rdb, addr = redis.NewClient(opts), opts.Addr
	}
	ping, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := rdb.Ping(ping).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redis %s: %w", addr, err)
	}
	return rdb, nil
}

// ParseClusterURLs turns comma-separated redis:// (or rediss://) seed URLs into cluster
// options: the addresses of every URL, the credentials and TLS of the first. A database
// other than 0 is refused, since Redis Cluster has only database 0.
func ParseClusterURLs(urls string) (*redis.ClusterOptions, error) {
	var list []string
	for _, u := range strings.Split(urls, ",") {
		if u = strings.TrimSpace(u); u != "" {
			list = append(list, u)
		}
	}
	if len(list) == 0 {
		return nil, errors.New("--redis-url: no seed address")
	}
	// ParseClusterURL reads one URL (its path is ignored) and its addr= parameters.
	first := list[0]
	extra := make([]string, 0, len(list)-1)
	for _, u := range list[1:] {
		o, err := redis.ParseURL(u)
		if err != nil {
			return nil, fmt.Errorf("--redis-url %q: %w", u, err)
		}
		if o.DB != 0 {
			return nil, fmt.Errorf("--redis-url %q: Redis Cluster has only database 0", u)
		}
		extra = append(extra, o.Addr)
	}
	o, err := redis.ParseURL(first)
	if err != nil {
		return nil, fmt.Errorf("--redis-url %q: %w", first, err)
	}
	if o.DB != 0 {
		return nil, fmt.Errorf("--redis-url %q: Redis Cluster has only database 0", first)
	}
	opts, err := redis.ParseClusterURL(first)
	if err != nil {
		return nil, fmt.Errorf("--redis-url %q: %w", first, err)
	}
	opts.Addrs = append(opts.Addrs, extra...)
	return opts, nil
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
