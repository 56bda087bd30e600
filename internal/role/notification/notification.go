// Package notification is the `parley notification` role: it consumes delivered
// messages, rejections and receipts, and routes each to the gateways of its recipients.
// It also sweeps presence, announcing users whose gateway died as offline.
package notification

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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
}

// DefaultConfig holds the defaults.
func DefaultConfig() Config {
	return Config{Core: core.DefaultConfig(), PresenceTTL: presence.DefaultConfig().TTL, SweepInterval: 5 * time.Second}
}

// RegisterFlags binds every setting.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Core.RegisterFlags(fs)
	c.Bus.RegisterFlags(fs)
	c.Push.RegisterFlags(fs)
	fs.DurationVar(&c.PresenceTTL, "presence-ttl", c.PresenceTTL, "how long a connection stays online without a heartbeat (same as the gateways')")
	fs.DurationVar(&c.SweepInterval, "sweep-interval", c.SweepInterval, "how often expired connections are swept and announced offline")
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
	if cfg.Core.JWTSigningKey == "" {
		// Notification never issues or verifies tokens, so the operator does not hand it
		// the signing key; the shared services still want one.
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		cfg.Core.JWTSigningKey = hex.EncodeToString(key)
	}
	backends, err := core.OpenBackends(ctx, cfg.Core, cfg.Bus, logger)
	if err != nil {
		return err
	}
	defer backends.Close()
	app, rdb, b, busPing := backends.App, backends.Redis, backends.Bus, backends.BusPing

	health := deps.NewHealth()
	pres := presence.NewRedis(rdb, "", presence.Config{TTL: cfg.PresenceTTL})
	routes := notification.NewRedisRoutes(rdb, "", logger)
	pusher, err := NewPusher(app, cfg.Push, health.Registry)
	if err != nil {
		return err
	}
	n := notification.New(bridge.Rooms{Chat: bridge.Chat{Service: app.Chat}, People: app.Users}, pres, routes, pusher, logger, health.Registry)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- n.Run(ctx, b) }()
	go Sweep(ctx, pres, n, cfg.SweepInterval, logger)

	health.AddReadiness("consumer", func(context.Context) error {
		if !n.Running() {
			return fmt.Errorf("consumer not running")
		}
		return nil
	})
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
// keys are configured (members with no connection then wait for their next visit).
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
	return bridge.Pusher{Sender: sender, Users: app.Users}, nil
}
