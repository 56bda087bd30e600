// Package gateway is the `parley gateway` role: the WebSocket endpoint. It reads the
// shared settings of core (database for history, signing key for tokens) so that one
// settings ConfigMap serves every role.
package gateway

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/internal/bridge"
	"github.com/parleychat/parley/internal/cli"
	"github.com/parleychat/parley/internal/role/core"
	"github.com/parleychat/parley/internal/role/deps"
	wsgateway "github.com/parleychat/parley/runtime/gateway"
	"github.com/parleychat/parley/runtime/notification"
	"github.com/parleychat/parley/runtime/presence"
	"github.com/parleychat/parley/runtime/web"
)

// Config of the gateway role on top of core's shared settings.
type Config struct {
	Core           core.Config
	Bus            deps.BusConfig
	ID             string
	AllowedOrigins string
	// Gateway holds the WebSocket limits, each a flag (wsgateway.Config.RegisterFlags).
	Gateway      wsgateway.Config
	PresenceTTL  time.Duration
	DrainTimeout time.Duration
}

// DefaultConfig holds the defaults.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	d := wsgateway.DefaultConfig()
	return Config{
		Core: core.DefaultConfigFor("gateway"), ID: host, Gateway: d,
		PresenceTTL: presence.DefaultConfig().TTL, DrainTimeout: 25 * time.Second,
	}
}

// RegisterFlags binds every setting.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Core.RegisterFlags(fs)
	// Core's help says it does not use Redis; the gateway does, for everything it routes.
	fs.Lookup("redis-url").Usage = "Redis URL: presence and the per-gateway channels (required)"
	c.Bus.RegisterFlags(fs)
	fs.StringVar(&c.ID, "gateway-id", c.ID, "this gateway's routing id, unique per process (the pod name)")
	fs.StringVar(&c.AllowedOrigins, "allowed-origins", c.AllowedOrigins, "comma-separated browser origins allowed to connect (empty: same host only)")
	c.Gateway.RegisterFlags(fs)
	fs.DurationVar(&c.PresenceTTL, "presence-ttl", c.PresenceTTL, "how long a connection stays online without a heartbeat")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", c.DrainTimeout, "how long SIGTERM waits for clients to move elsewhere")
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Role returns the gateway role.
func Role() cli.Role {
	return cli.Role{
		Name:    "gateway",
		Summary: "WebSocket endpoint: authenticates clients, publishes what they send, delivers what notification routes here",
		Setup: func(fs *flag.FlagSet) cli.RunFunc {
			cfg := DefaultConfig()
			cfg.RegisterFlags(fs)
			return func(ctx context.Context, env cli.Env, _ []string) error {
				if err := cfg.Bus.Validate(); err != nil {
					return fmt.Errorf("%w: %w", cli.ErrUsage, err)
				}
				if cfg.ID == "" {
					return fmt.Errorf("%w: --gateway-id is required", cli.ErrUsage)
				}
				return run(ctx, env, cfg)
			}
		},
	}
}

func run(ctx context.Context, env cli.Env, cfg Config) error {
	logger := cfg.Core.Logger(env).With("role", "gateway")
	backends, err := core.OpenBackends(ctx, cfg.Core, cfg.Bus, logger)
	if err != nil {
		return err
	}
	defer backends.Close()
	app, rdb, b, busPing := backends.App, backends.Redis, backends.Bus, backends.BusPing

	health := deps.NewHealth()
	pres := presence.NewRedis(rdb, "", presence.Config{TTL: cfg.PresenceTTL})
	routes := notification.NewRedisRoutes(rdb, "", logger)
	// Typing and presence are fanned out here, by the gateway that hears them: they are
	// at most once and never stored, so a bus hop would only add latency.
	ephemeral := notification.New(bridge.Rooms{Chat: bridge.Chat{Service: app.Chat}, People: app.Users,
		LargeGroup: cfg.Gateway.PresenceLargeGroup}, pres, routes, nil, logger, nil)
	gcfg := cfg.Gateway
	gcfg.ID, gcfg.AllowedOrigins = cfg.ID, splitList(cfg.AllowedOrigins)
	// Messages are rate-limited where they are admitted, here, with core's setting: core
	// never refuses a backlog for rate (docs/api.md).
	gcfg.MessagesPerSecond = cfg.Core.MessagesPerSecond
	gcfg.HeartbeatInterval = cfg.PresenceTTL / 3
	gw, err := wsgateway.New(gcfg, bridge.Tokens{Auth: app.Users.Auth()}, bridge.Publisher{Bus: b, Ephemeral: ephemeral},
		pres, bridge.Chat{Service: app.Chat}, logger, wsgateway.NewMetrics(health.Registry))
	if err != nil {
		return fmt.Errorf("%w: %w", cli.ErrUsage, err)
	}
	// While the routed subscription is down (Redis unreachable or restarted) nothing
	// routed here arrives: not ready. When it is back, presence may have been lost with
	// Redis: re-assert what the hub holds at once rather than at the next heartbeat.
	var routed atomic.Bool
	routed.Store(true)
	reassert := make(chan struct{}, 1)
	stop, err := routes.SubscribeWatch(ctx, gw.ID(), func(d notification.Delivery) { gw.Deliver(d.Users, d.Frame) }, func(up bool) {
		routed.Store(up)
		if !up {
			logger.Warn("routed subscription lost; not ready until it is back")
			return
		}
		logger.Info("routed subscription back; re-asserting presence")
		select {
		case reassert <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return err
	}
	defer stop()
	go gw.RunHeartbeatOn(ctx, reassert)
	health.AddReadiness("routes", func(context.Context) error {
		if !routed.Load() {
			return errors.New("routed subscription down: deliveries to this gateway are lost")
		}
		return nil
	})

	health.AddReadiness("redis", func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
	health.AddReadiness("bus", busPing)
	health.AddReadiness("draining", func(context.Context) error {
		if gw.Draining() {
			return errors.New("draining")
		}
		return nil
	})
	// No database readiness: on a PostgreSQL blip the gateway keeps delivering, and
	// what needs the database (resume, membership checks) answers an error frame the
	// client retries; marking every gateway unready would drop all connections instead.
	// The gateway serves the web client too: the Ingress sends / to it, /api/ to core.
	client, err := web.NewHandler(web.Build())
	if err != nil {
		return err
	}
	internal := http.NewServeMux()
	health.Register(internal)
	mux := http.NewServeMux()
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		mux.Handle(p, clusterOnly(internal))
	}
	mux.Handle("GET /ws", gw)
	mux.Handle("/", client)
	ln, err := net.Listen("tcp", cfg.Core.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	logger.Info("parley gateway listening", "addr", ln.Addr().String(), "gateway_id", gw.ID())
	return deps.Serve(ctx, logger, ln, mux, cfg.DrainTimeout, func(ctx context.Context) {
		if err := gw.Drain(ctx); err != nil {
			logger.Warn("drain incomplete", "err", err)
		}
	})
}

// clusterOnly hides an endpoint from requests that came through a proxy. The Ingress
// routes / to the gateway for the web client, so /metrics would otherwise be public;
// kubelet probes and Prometheus scrapes reach the pod directly, without the forwarding
// headers every ingress controller adds.
func clusterOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Forwarded-For") != "" || r.Header.Get("Forwarded") != "" || r.Header.Get("X-Real-Ip") != "" {
			http.NotFound(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
