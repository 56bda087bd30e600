// Package notification is the `parley notification` role: it consumes delivered
// messages, rejections and receipts, and routes each to the gateways of its recipients.
// It also sweeps presence, announcing users whose gateway died as offline.
package notification

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/parleychat/parley/internal/bridge"
	"github.com/parleychat/parley/internal/cli"
	"github.com/parleychat/parley/internal/role/core"
	"github.com/parleychat/parley/internal/role/deps"
	"github.com/parleychat/parley/runtime/notification"
	"github.com/parleychat/parley/runtime/presence"
	"github.com/parleychat/parley/runtime/protocol"
	"github.com/parleychat/parley/runtime/users"
	"github.com/parleychat/parley/runtime/webpush"
	"github.com/prometheus/client_golang/prometheus"
)

// Config of the notification role on top of core's shared settings.
type Config struct {
	Core          core.Config
	Bus           deps.BusConfig
	Push          webpush.Config
	PresenceTTL   time.Duration
	SweepInterval time.Duration
	// RebuildGrace is how long after Redis comes back empty events wait for the gateways
	// to re-assert their connections.
	RebuildGrace time.Duration
	// StuckAfter is how long a consumer may make no progress with events waiting before
	// readiness fails.
	StuckAfter time.Duration
	// DedupeTTL is how long fanned-out events are remembered (in Redis) so that one
	// redelivered after a rebalance or rollout is not sent again.
	DedupeTTL time.Duration
}

// DefaultConfig holds the defaults.
func DefaultConfig() Config {
	c := core.DefaultConfigFor("notification")
	// Notification issues and verifies no tokens: it needs no signing key (the operator
	// gives it none), and must not invent one.
	c.NoTokenAuth = true
	return Config{Core: c, PresenceTTL: presence.DefaultConfig().TTL, SweepInterval: 5 * time.Second,
		RebuildGrace: notification.DefaultRebuildGrace, StuckAfter: notification.DefaultStuckAfter, DedupeTTL: notification.DefaultMarksTTL}
}

// RegisterFlags binds every setting.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Core.RegisterFlags(fs)
	c.Bus.RegisterFlags(fs)
	c.Push.RegisterFlags(fs)
	fs.DurationVar(&c.PresenceTTL, "presence-ttl", c.PresenceTTL, "how long a connection stays online without a heartbeat (same as the gateways')")
	fs.DurationVar(&c.SweepInterval, "sweep-interval", c.SweepInterval, "how often expired connections are swept and announced offline")
	fs.DurationVar(&c.RebuildGrace, "presence-rebuild-grace", c.RebuildGrace, "after Redis comes back empty, how long events wait for the gateways to re-assert their connections")
	fs.DurationVar(&c.StuckAfter, "consumer-stuck-after", c.StuckAfter, "readiness fails when a consumer makes no progress this long with events waiting")
	fs.DurationVar(&c.DedupeTTL, "dedupe-ttl", c.DedupeTTL, "how long fanned-out events are remembered, so a redelivered one is not sent again")
}

// Role returns the notification role.
func Role() cli.Role {
	return cli.Role{
		Name:    "notification",
		Summary: "fan-out of messages, receipts and presence to the gateways holding each recipient",
		Setup: func(fs *flag.FlagSet) cli.RunFunc {
			cfg := DefaultConfig()
			cfg.RegisterFlags(fs)
			return func(ctx context.Context, env cli.Env, _ []string) error {
				if err := cfg.Bus.Validate(); err != nil {
					return fmt.Errorf("%w: %w", cli.ErrUsage, err)
				}
				return run(ctx, env, cfg)
			}
		},
	}
}

func run(ctx context.Context, env cli.Env, cfg Config) error {
	logger := cfg.Core.Logger(env).With("role", "notification")
	// New notification groups start from the end of their topics (core's from the start).
	cfg.Bus.Kafka.StartLatest = notification.IsGroup
	backends, err := core.OpenBackends(ctx, cfg.Core, cfg.Bus, logger)
	if err != nil {
		return err
	}
	defer backends.Close()
	app, rdb, b, busPing := backends.App, backends.Redis, backends.Bus, backends.BusPing

	health := deps.NewHealth()
	pres := presence.NewRedis(rdb, "", presence.Config{TTL: cfg.PresenceTTL})
	// Until the gateways re-asserted their connections after Redis lost its data, nobody
	// looks online: events wait rather than be dropped as if everyone were offline.
	located := notification.NewPresenceGuard(pres, rdb, "", cfg.RebuildGrace)
	routes := notification.NewRedisRoutes(rdb, "", logger)
	pusher, err := NewPusher(app, cfg.Push, health.Registry)
	if err != nil {
		return err
	}
	if c, ok := pusher.(interface{ Close() }); ok {
		defer c.Close()
	}
	n := notification.New(bridge.Rooms{Chat: bridge.Chat{Service: app.Chat}, People: app.Users}, located, routes, pusher, logger, health.Registry,
		notification.WithMarks(notification.NewRedisMarks(rdb, "", cfg.DedupeTTL)), notification.WithStuckAfter(cfg.StuckAfter))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- n.Run(ctx, b) }()
	go Sweep(ctx, pres, n, cfg.SweepInterval, logger)

	health.AddReadiness("consumer", func(context.Context) error { return n.Ready() })
	health.AddReadiness("redis", func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
	health.AddReadiness("bus", busPing)
	mux := http.NewServeMux()
	health.Register(mux)
	ln, err := net.Listen("tcp", cfg.Core.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	logger.Info("parley notification listening", "addr", ln.Addr().String())
	serveErr := make(chan error, 1)
	go func() { serveErr <- deps.Serve(ctx, logger, ln, mux, 10*time.Second, nil) }()
	select {
	case err := <-errc:
		cancel()
		<-serveErr
		if err != nil {
			return fmt.Errorf("consumer: %w", err)
		}
		return nil
	case err := <-serveErr:
		cancel()
		<-errc
		return err
	}
}

// Sweeper finds connections whose gateway stopped heartbeating.
type Sweeper interface {
	Sweep(ctx context.Context) ([]presence.Transition, error)
}

// Announcer tells contacts a user went offline.
type Announcer interface {
	Presence(ctx context.Context, userID string, online bool) error
}

// Sweep runs until ctx ends: every interval it expires dead connections and announces the
// users left with none. Several notification replicas may sweep: each expiry is reported
// by exactly one of them.
func Sweep(ctx context.Context, s Sweeper, a Announcer, interval time.Duration, logger *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		gone, err := s.Sweep(ctx)
		if err != nil {
			if ctx.Err() == nil {
				logger.Warn("presence sweep failed", "err", err)
			}
			continue
		}
		for _, tr := range gone {
			if err := a.Presence(ctx, tr.UserID, false); err != nil {
				logger.Warn("announce offline failed", "user", tr.UserID, "err", err)
			}
		}
	}
}

// NewPusher returns the Web Push sender over the app's subscriptions, or nil when no VAPID
// keys are configured (members with no connection then wait for their next visit). It
// queues: a bounded pool of workers sends (--webpush-workers, --webpush-queue-size), so
// push services never hold up fan-out. Close stops the workers.
func NewPusher(app *core.App, cfg webpush.Config, reg prometheus.Registerer) (notification.Pusher, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	if app.PushStore == nil {
		if err := app.EnablePush(cfg); err != nil {
			return nil, err
		}
	}
	sender, err := webpush.NewSender(cfg, app.PushStore, webpush.WithMetrics(webpush.NewMetrics(reg)))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", cli.ErrUsage, err)
	}
	return &Pusher{Pool: webpush.NewPool(sender), Users: app.Users}, nil
}

// Pusher queues the Web Push of a delivered message for the members with no live
// connection. Notification only calls it for recipients, who never include those who
// blocked the sender, so previews respect blocks.
type Pusher struct {
	Pool  *webpush.Pool
	Users interface {
		User(ctx context.Context, id string) (users.User, error)
	}
}

// PushMessage implements notification.Pusher: one look-up of the sender's name, then
// one queued job for every user (their subscriptions are loaded in one query).
func (p *Pusher) PushMessage(ctx context.Context, userIDs []string, m *protocol.MessageDelivered) error {
	name := ""
	if u, err := p.Users.User(ctx, m.SenderID); err == nil {
		name = u.DisplayName
		if name == "" {
			name = u.Username
		}
	}
	payload := webpush.PayloadFromMessage(webpush.Message{ID: m.ServerID, Room: m.RoomID, Sender: m.SenderID,
		SenderName: name, Body: m.Body, Seq: m.Seq}, webpush.PreviewOptions{})
	return p.Pool.Enqueue(userIDs, payload)
}

// Close stops the push workers.
func (p *Pusher) Close() { p.Pool.Close() }
