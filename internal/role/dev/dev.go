// Package dev is `parley dev`: every role in one process on one port, on embedded
// defaults (memory store, memory bus, memory presence), each switchable by flag or env to
// PostgreSQL, Kafka and Redis.
package dev

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/parleychat/parley/internal/bridge"
	"github.com/parleychat/parley/internal/cli"
	"github.com/parleychat/parley/internal/role/core"
	"github.com/parleychat/parley/internal/role/deps"
	notificationrole "github.com/parleychat/parley/internal/role/notification"
	"github.com/parleychat/parley/runtime/bus"
	"github.com/parleychat/parley/runtime/files/blob"
	wsgateway "github.com/parleychat/parley/runtime/gateway"
	"github.com/parleychat/parley/runtime/notification"
	"github.com/parleychat/parley/runtime/pipeline"
	"github.com/parleychat/parley/runtime/presence"
	"github.com/parleychat/parley/runtime/users"
	"github.com/parleychat/parley/runtime/web"
	"github.com/parleychat/parley/runtime/webpush"
)

// Presence backends.
const (
	PresenceMemory = "memory"
	PresenceRedis  = "redis"
)

// Config of `parley dev`.
type Config struct {
	Core     core.Config
	Bus      deps.BusConfig
	Files    core.FilesConfig
	Push     webpush.Config
	Presence string
	// Gateway holds the WebSocket limits, each a flag as in `parley gateway`.
	Gateway wsgateway.Config
	// DevSeeding serves POST /dev/seed (seed.go) for benchmark fixtures; loopback only,
	// and no production role has the flag.
	DevSeeding bool
}

// DefaultConfig runs everything in memory on 127.0.0.1:8080.
func DefaultConfig() Config {
	c := core.DefaultConfigFor("dev")
	c.Listen, c.Store = "127.0.0.1:8080", core.StoreMemory
	// With --store postgres, dev applies the schema itself (parley migrate's code and lock).
	c.MigrateSchema = true
	return Config{
		Core: c, Bus: deps.BusConfig{Kind: deps.BusMemory, Kafka: bus.KafkaConfig{Partitions: 4}}, Presence: PresenceMemory,
		Files:   core.FilesConfig{Blob: blob.Flags{Backend: blob.BackendLocal, Dir: DefaultFilesDir()}},
		Gateway: wsgateway.DefaultConfig(),
	}
}

// DefaultFilesDir is where `parley dev` keeps uploads unless told otherwise.
func DefaultFilesDir() string {
	return filepath.Join(os.TempDir(), "parley-dev", "files")
}

// RegisterFlags binds every setting.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Core.RegisterFlags(fs)
	c.Bus.RegisterFlags(fs)
	c.Files.RegisterFlags(fs)
	c.Push.RegisterFlags(fs)
	// The files flags default to the server's volume; dev keeps uploads in a temp dir.
	if f := fs.Lookup("files-dir"); f != nil {
		_ = f.Value.Set(DefaultFilesDir())
		f.DefValue = DefaultFilesDir()
	}
	fs.StringVar(&c.Presence, "presence", c.Presence, "presence and routing: memory, or redis (uses --redis-url)")
	c.Gateway.RegisterFlags(fs)
	fs.BoolVar(&c.DevSeeding, "dev-seeding", false, "serve POST "+SeedPath+" (bulk users and rooms for benchmarks; loopback listener only)")
}

// Role returns the dev role.
func Role() cli.Role {
	return cli.Role{
		Name:    "dev",
		Summary: "every role in one process on one port, on embedded defaults (make run)",
		Setup: func(fs *flag.FlagSet) cli.RunFunc {
			cfg := DefaultConfig()
			cfg.RegisterFlags(fs)
			return func(ctx context.Context, env cli.Env, _ []string) error {
				if cfg.Presence != PresenceMemory && cfg.Presence != PresenceRedis {
					return fmt.Errorf("%w: --presence %q: want memory or redis", cli.ErrUsage, cfg.Presence)
				}
				if err := cfg.Bus.Validate(); err != nil {
					return fmt.Errorf("%w: %w", cli.ErrUsage, err)
				}
				if cfg.Core.JWTSigningKey == "" {
					// Tokens die with the process, like the memory store's accounts.
					key := make([]byte, 32)
					_, _ = rand.Read(key)
					cfg.Core.JWTSigningKey = base64.RawURLEncoding.EncodeToString(key)
				}
				ln, err := net.Listen("tcp", cfg.Core.Listen)
				if err != nil {
					return fmt.Errorf("listen: %w", err)
				}
				return Run(ctx, env, cfg, ln)
			}
		},
	}
}

// Run serves every role on ln until ctx ends.
func Run(ctx context.Context, env cli.Env, cfg Config, ln net.Listener) error {
	logger := cfg.Core.Logger(env)
	if cfg.DevSeeding {
		if err := checkSeedingListener(ln); err != nil {
			ln.Close()
			return fmt.Errorf("%w: %w", cli.ErrUsage, err)
		}
	}
	app, err := core.Build(ctx, cfg.Core, logger)
	if err != nil {
		ln.Close()
		return err
	}
	defer app.Close()
	// As in `parley notification`: a new notification group starts at the end of its topic.
	cfg.Bus.Kafka.StartLatest = notification.IsGroup
	b, busPing, err := cfg.Bus.Open(ctx, logger)
	if err != nil {
		ln.Close()
		return err
	}
	defer b.Close()

	type routes interface {
		notification.Router
		Subscribe(ctx context.Context, gatewayID string, fn func(notification.Delivery)) (func(), error)
	}
	var pres interface {
		notification.Locator
		wsgateway.Presence
	}
	var rts routes
	switch cfg.Presence {
	case PresenceRedis:
		rdb, err := deps.OpenRedis(ctx, cfg.Core.RedisURL, cfg.Core.RedisCluster)
		if err != nil {
			ln.Close()
			return err
		}
		defer rdb.Close()
		pres = presence.NewRedis(rdb, "", presence.Config{})
		rts = notification.NewRedisRoutes(rdb, "", logger)
		app.API.AddReadiness("redis", func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
	default:
		pres = presence.NewMemory(presence.Config{})
		rts = notification.NewMemoryRoutes()
	}

	chatBridge := bridge.Chat{Service: app.Chat}
	pipe, err := app.Pipeline(b, pipeline.Config{})
	if err != nil {
		ln.Close()
		return err
	}
	if err := app.EnableFiles(ctx, cfg.Files); err != nil {
		ln.Close()
		return err
	}
	if err := app.EnablePush(cfg.Push); err != nil {
		ln.Close()
		return err
	}
	pusher, err := notificationrole.NewPusher(app, cfg.Push, app.Registry)
	if err != nil {
		ln.Close()
		return err
	}
	notifier := notification.New(bridge.Rooms{Chat: chatBridge, People: app.Users, LargeGroup: cfg.Gateway.PresenceLargeGroup},
		pres, rts, pusher, logger, app.Registry)
	// Messages are rate-limited where they arrive, at the rate core would apply.
	gcfg := cfg.Gateway
	gcfg.ID, gcfg.MessagesPerSecond = "dev", cfg.Core.MessagesPerSecond
	gw, err := wsgateway.New(gcfg, bridge.Tokens{Auth: app.Users.Auth()},
		bridge.Publisher{Bus: b, Ephemeral: notifier}, pres, chatBridge, logger, wsgateway.NewMetrics(app.Registry))
	if err != nil {
		ln.Close()
		return err
	}
	stop, err := rts.Subscribe(ctx, gw.ID(), func(d notification.Delivery) { gw.Deliver(d.Users, d.Frame) })
	if err != nil {
		ln.Close()
		return err
	}
	defer stop()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() { errc <- pipe.Run(ctx) }()
	go func() { errc <- notifier.Run(ctx, b) }()
	go gw.RunHeartbeat(ctx)
	go app.Files.RunOrphanCleanup(ctx, time.Hour)
	app.API.AddReadiness("notification", func(context.Context) error {
		if !notifier.Running() {
			return errors.New("consumer not running")
		}
		return nil
	})
	app.API.AddReadiness("bus", busPing)

	client, err := web.NewHandler(web.Build())
	if err != nil {
		ln.Close()
		return err
	}
	if !client.Built() {
		logger.Warn("this binary has no web client: / explains how to build it (make run does)")
	}
	mux := http.NewServeMux()
	mux.Handle("GET /ws", gw)
	api := app.Handler()
	for _, p := range []string{"/api/", "/healthz", "/readyz", "/metrics"} {
		mux.Handle(p, api)
	}
	mux.Handle("/", client)
	if cfg.DevSeeding {
		logger.Warn("--dev-seeding: POST " + SeedPath + " creates accounts and hands out their tokens to any local process")
		mux.Handle("POST "+SeedPath, seeder{users: app.UserStore, rooms: app.ChatStore, tokens: app.Users.Auth(),
			maxRoom: cfg.Core.MaxRoomMembers, hashOnce: func(pw string) (string, error) { return users.HashPassword(pw, users.DefaultPasswordParams) }})
	}
	url := "http://" + ln.Addr().String() + "/"
	fmt.Fprintf(env.Stdout, "Parley is running at %s  (REST API under /api/v1, WebSocket at /ws; store %s, bus %s, presence %s)\n",
		url, cfg.Core.Store, cfg.Bus.Kind, cfg.Presence)
	serveErr := deps.Serve(ctx, logger, ln, mux, 10*time.Second, func(ctx context.Context) {
		if err := gw.Drain(ctx); err != nil {
			logger.Warn("drain incomplete", "err", err)
		}
	})
	cancel()
	for range 2 {
		if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
			logger.Warn("stopped with error", "err", err)
		}
	}
	return serveErr
}
