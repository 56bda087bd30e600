// Package core is the `parley core` role: the REST API over the users and chat services.
// Build assembles everything from a Config so the role (and later the pipeline consumer
// and `parley dev`) share one wiring.
package core

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/parleychat/parley/internal/bridge"
	"github.com/parleychat/parley/internal/cli"
	"github.com/parleychat/parley/internal/role/deps"
	"github.com/parleychat/parley/runtime/bus"
	"github.com/parleychat/parley/runtime/chat"
	"github.com/parleychat/parley/runtime/files"
	"github.com/parleychat/parley/runtime/files/blob"
	"github.com/parleychat/parley/runtime/files/fileshttp"
	"github.com/parleychat/parley/runtime/files/filespg"
	"github.com/parleychat/parley/runtime/httpapi"
	"github.com/parleychat/parley/runtime/pipeline"
	"github.com/parleychat/parley/runtime/protocol"
	"github.com/parleychat/parley/runtime/store/memory"
	"github.com/parleychat/parley/runtime/store/postgres"
	"github.com/parleychat/parley/runtime/users"
	"github.com/parleychat/parley/runtime/webpush"
	"github.com/parleychat/parley/runtime/webpush/webpushpg"
)

// Store backends.
const (
	StorePostgres = "postgres"
	StoreMemory   = "memory"
)

// Config is every setting of the role; each is a flag with a PARLEY_* default.
type Config struct {
	Listen        string
	Store         string
	PostgresURL   string
	RedisURL      string
	RedisCluster  bool // RedisURL lists comma-separated seed URLs of a Redis Cluster
	JWTSigningKey string
	// JWTPreviousKey is the signing key before a rotation: still accepted, never used.
	JWTPreviousKey    string
	TokenTTL          time.Duration
	RefreshTTL        time.Duration
	Registration      string
	MaxMessageBytes   int
	MessagesPerSecond float64
	MaxRoomMembers    int
	EditWindow        time.Duration // how long after sending a message may be edited (0: always)
	LogLevel          string
	// MigrateSchema applies the embedded migrations at start (under the same advisory lock
	// as parley migrate) instead of refusing a database that is behind; parley dev sets it.
	MigrateSchema bool
	// RegistrationsPerAddress bounds registrations per client address per 15 minutes
	// (0: the users default).
	RegistrationsPerAddress int
	// TrustedProxies is a comma-separated list of CIDRs whose X-Forwarded-For is believed.
	TrustedProxies string
	// PostgresMaxConns caps the role's PostgreSQL pool (DefaultPostgresMaxConns per role);
	// 0 leaves pgx's own default, the larger of 4 and the node's cores.
	PostgresMaxConns int
	// PprofListen serves Go's profiles on a loopback address (deps.ServePprof); empty: off.
	PprofListen string
	// NoTokenAuth builds the shared services without token authentication, for a role
	// that neither issues nor verifies tokens (notification): no signing key is needed,
	// the --jwt-* flags are accepted but ignored, and the app has no token Auth, so its
	// REST API and file transfer must not be served. Not a flag: the role decides.
	NoTokenAuth bool
}

// DefaultPostgresMaxConns is each role's PostgreSQL pool size, sized to its work rather
// than to the node's cores (pgx's default, which gave 32 connections per pod on 32-core
// nodes whatever the role):
//   - core: the message and receipt consumers hold one connection each per batch, the
//     outbox relay one, and the REST API the rest (a request holds one at a time);
//   - gateway: membership checks of room-scoped frames and history replays on resume;
//   - notification: recipient and push-target look-ups per event, and push subscriptions;
//   - dev: every role in one process on one pool.
var DefaultPostgresMaxConns = map[string]int{
	"core":         16,
	"gateway":      8,
	"notification": 8,
	"dev":          16,
}

// DefaultConfigFor is DefaultConfig with role's pool size.
func DefaultConfigFor(role string) Config {
	c := DefaultConfig()
	if n, ok := DefaultPostgresMaxConns[role]; ok {
		c.PostgresMaxConns = n
	}
	return c
}

// DefaultConfig is the role's defaults.
func DefaultConfig() Config {
	l := chat.DefaultLimits()
	u := users.DefaultConfig()
	return Config{
		Listen: ":8080", Store: StorePostgres, TokenTTL: 15 * time.Minute, RefreshTTL: u.RefreshTTL,
		Registration: u.Registration, MaxMessageBytes: l.MaxMessageBytes, MessagesPerSecond: l.MessagesPerSecond,
		MaxRoomMembers: l.MaxRoomMembers, LogLevel: "info", RegistrationsPerAddress: u.MaxRegistrationsPerAddress,
		PostgresMaxConns: DefaultPostgresMaxConns["core"],
	}
}

// RegisterFlags binds the config to fs, with the current values as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", c.Listen, "HTTP listen address")
	fs.StringVar(&c.Store, "store", c.Store, "persistence: postgres, or memory (data is lost on exit; for development)")
	fs.StringVar(&c.PostgresURL, "postgres-url", c.PostgresURL, "PostgreSQL connection URL (schema applied by parley migrate)")
	fs.IntVar(&c.PostgresMaxConns, "postgres-max-conns", c.PostgresMaxConns, "most PostgreSQL connections this process opens (0: pgx's default, max(4, cores))")
	fs.StringVar(&c.PprofListen, "pprof-listen", c.PprofListen, deps.PprofFlagHelp)
	fs.StringVar(&c.RedisURL, "redis-url", c.RedisURL, "Redis URL; accepted for uniform configuration, core keeps sessions and throttling in PostgreSQL")
	fs.BoolVar(&c.RedisCluster, "redis-cluster", c.RedisCluster, "Redis is a Redis Cluster: --redis-url holds comma-separated seed URLs (redis://host:port,...)")
	if c.NoTokenAuth {
		// Still accepted, so one command line or settings set serves every role.
		fs.StringVar(&c.JWTSigningKey, "jwt-signing-key", c.JWTSigningKey, "ignored: this role verifies no tokens")
		fs.StringVar(&c.JWTPreviousKey, "jwt-previous-signing-key", c.JWTPreviousKey, "ignored: this role verifies no tokens")
	} else {
		fs.StringVar(&c.JWTSigningKey, "jwt-signing-key", c.JWTSigningKey, "HS256 key for access tokens, at least 32 bytes (shared with the gateway)")
		fs.StringVar(&c.JWTPreviousKey, "jwt-previous-signing-key", c.JWTPreviousKey, "the signing key before a rotation: tokens it signed stay valid until they expire (empty: none)")
	}
	fs.DurationVar(&c.TokenTTL, "token-ttl", c.TokenTTL, "access token lifetime")
	fs.DurationVar(&c.RefreshTTL, "refresh-ttl", c.RefreshTTL, "refresh token lifetime")
	fs.StringVar(&c.Registration, "registration", c.Registration, "registration mode: open, closed or invite")
	fs.IntVar(&c.MaxMessageBytes, "max-message-bytes", c.MaxMessageBytes, "largest message body in bytes")
	fs.Float64Var(&c.MessagesPerSecond, "messages-per-second", c.MessagesPerSecond, "per-user message rate (burst twice that)")
	fs.IntVar(&c.MaxRoomMembers, "max-room-members", c.MaxRoomMembers, "largest group size")
	fs.DurationVar(&c.EditWindow, "edit-window", c.EditWindow, "how long after sending a message its author may edit it (0: no limit)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.IntVar(&c.RegistrationsPerAddress, "registrations-per-address", c.RegistrationsPerAddress, "registrations allowed per client address per 15 minutes (429 throttled beyond)")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", c.TrustedProxies, "comma-separated CIDRs of proxies (the ingress controller) whose X-Forwarded-For names the client, for login throttling")
}

// Validate reports the first usage mistake.
func (c Config) Validate() error {
	switch {
	case c.Store != StorePostgres && c.Store != StoreMemory:
		return fmt.Errorf("--store %q: want postgres or memory", c.Store)
	case c.Store == StorePostgres && c.PostgresURL == "":
		return errors.New("--postgres-url is required with --store=postgres")
	case !c.NoTokenAuth && len(c.JWTSigningKey) < users.MinSigningKeyLen:
		return fmt.Errorf("--jwt-signing-key must be at least %d bytes", users.MinSigningKeyLen)
	case !c.NoTokenAuth && c.JWTPreviousKey != "" && len(c.JWTPreviousKey) < users.MinSigningKeyLen:
		return fmt.Errorf("--jwt-previous-signing-key must be empty or at least %d bytes", users.MinSigningKeyLen)
	case c.TokenTTL <= 0 || c.RefreshTTL <= 0:
		return errors.New("--token-ttl and --refresh-ttl must be positive")
	case c.RegistrationsPerAddress < 0:
		return errors.New("--registrations-per-address must not be negative")
	case c.EditWindow < 0:
		return errors.New("--edit-window must not be negative")
	case c.PostgresMaxConns < 0 || c.PostgresMaxConns > math.MaxInt32:
		return errors.New("--postgres-max-conns must be between 0 and 2^31-1")
	case c.MaxMessageBytes <= 0 || c.MessagesPerSecond <= 0 || c.MaxRoomMembers < 2:
		return errors.New("--max-message-bytes and --messages-per-second must be positive, --max-room-members at least 2")
	}
	if _, err := users.ParseRegistration(c.Registration); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if _, err := c.trustedProxies(); err != nil {
		return err
	}
	return nil
}

func (c Config) trustedProxies() ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, s := range strings.Split(c.TrustedProxies, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			return nil, fmt.Errorf("--trusted-proxies: %w", err)
		}
		out = append(out, n)
	}
	return out, nil
}

// Logger builds the role's logger at the configured level.
func (c Config) Logger(env cli.Env) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.LogLevel))
	return slog.New(slog.NewJSONHandler(env.Stderr, &slog.HandlerOptions{Level: lvl}))
}

// App is the assembled core: services, API and the resources to close.
type App struct {
	Config   Config
	Logger   *slog.Logger
	Pool     *pgxpool.Pool // nil with the memory store
	Users    *users.Service
	Chat     *chat.Service
	API      *httpapi.Server
	Registry *prometheus.Registry
	// Files is the file transfer service once EnableFiles ran; nil before.
	Files *files.Service
	// PushStore keeps Web Push subscriptions once EnablePush ran; nil before.
	PushStore webpush.Store
	// UserStore and ChatStore are the stores the services were built on; only
	// `parley dev --dev-seeding` writes benchmark fixtures straight into them.
	UserStore users.Store
	ChatStore chat.Store

	filesHandler http.Handler
}

// FilesConfig selects the blob store and the upload limits (flags --files-*).
type FilesConfig struct {
	Blob   blob.Flags
	Limits files.Config
	// LinkTTL is how long the signed file links handed out by /meta live; 0 means
	// fileshttp.DefaultLinkTTL. Their key derives from --jwt-signing-key.
	LinkTTL time.Duration
}

// RegisterFlags binds the files settings.
func (c *FilesConfig) RegisterFlags(fs *flag.FlagSet) {
	c.Blob.Register(fs)
	c.Limits.RegisterFlags(fs)
	ttl := c.LinkTTL
	if ttl == 0 {
		ttl = fileshttp.DefaultLinkTTL
	}
	fs.DurationVar(&c.LinkTTL, "files-link-ttl", ttl, "lifetime of signed file links (for <img src> and downloads without a bearer header)")
}

// EnableFiles builds the files service over the app's store and serves it under
// /api/v1/files; attachments of new messages must then be files the sender may read.
func (a *App) EnableFiles(ctx context.Context, cfg FilesConfig) error {
	if a.Config.NoTokenAuth {
		return errors.New("files: file links are signed with the token key, and this role has none")
	}
	if cfg.LinkTTL != 0 && cfg.LinkTTL < time.Second {
		return fmt.Errorf("%w: --files-link-ttl must be at least 1s, got %s", cli.ErrUsage, cfg.LinkTTL)
	}
	blobs, err := cfg.Blob.Open(ctx)
	if err != nil {
		return fmt.Errorf("files: %w", err)
	}
	var meta files.MetaStore = files.NewMemory()
	if a.Pool != nil {
		meta = filespg.New(a.Pool)
	}
	metrics, err := files.NewMetrics(a.Registry)
	if err != nil {
		return err
	}
	limits := cfg.Limits
	limits.Metrics, limits.Logger = metrics, a.Logger
	access := bridge.Files{Chat: a.Chat, Auth: a.Users.Auth()}
	a.Files = files.NewService(blobs, meta, access, access, limits)
	a.Chat.SetFileChecker(bridge.Attachments{Files: a.Files})
	links := fileshttp.WithSignedLinks(fileshttp.LinkKey([]byte(a.Config.JWTSigningKey)), cfg.LinkTTL)
	a.filesHandler = fileshttp.New(a.Files, access, links)
	return nil
}

// Build assembles the app. With the PostgreSQL store it refuses a schema that is not at
// this binary's version.
func Build(ctx context.Context, cfg Config, logger *slog.Logger) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", cli.ErrUsage, err)
	}
	if _, err := deps.ServePprof(ctx, cfg.PprofListen, logger); err != nil {
		return nil, fmt.Errorf("%w: %w", cli.ErrUsage, err)
	}
	app := &App{Config: cfg, Logger: logger, Registry: prometheus.NewRegistry()}
	app.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var userStore users.Store
	var chatStore chat.Store
	switch cfg.Store {
	case StorePostgres:
		pool, err := openPool(ctx, cfg)
		if err != nil {
			return nil, err
		}
		if cfg.MigrateSchema {
			res, err := postgres.Migrate(ctx, pool)
			if err != nil {
				pool.Close()
				return nil, fmt.Errorf("migrate: %w", err)
			}
			if len(res.Applied) > 0 {
				logger.Info("schema migrated", "from", res.From, "to", res.To)
			}
		}
		if err := postgres.CheckSchema(ctx, pool); err != nil {
			pool.Close()
			return nil, err
		}
		app.Pool = pool
		userStore, chatStore = postgres.NewUsers(pool), postgres.NewChat(pool)
	case StoreMemory:
		logger.Warn("memory store: every account and message is lost on exit")
		userStore, chatStore = memory.NewUsers(), memory.NewChat()
	}
	app.UserStore, app.ChatStore = userStore, chatStore
	var auth *users.Auth
	var err error
	if !cfg.NoTokenAuth {
		auth, err = users.NewAuth([]byte(cfg.JWTSigningKey), cfg.TokenTTL, nil)
		if err == nil {
			err = auth.AcceptPreviousKey([]byte(cfg.JWTPreviousKey))
		}
		if err != nil {
			app.Close()
			return nil, err
		}
	}
	ucfg := users.DefaultConfig()
	ucfg.Registration, ucfg.RefreshTTL = cfg.Registration, cfg.RefreshTTL
	if cfg.RegistrationsPerAddress > 0 {
		ucfg.MaxRegistrationsPerAddress = cfg.RegistrationsPerAddress
	}
	if app.Users, err = users.NewService(userStore, auth, ucfg, nil); err != nil {
		app.Close()
		return nil, err
	}
	limits := chat.Limits{MaxMessageBytes: cfg.MaxMessageBytes, MessagesPerSecond: cfg.MessagesPerSecond, MaxRoomMembers: cfg.MaxRoomMembers,
		EditWindow: cfg.EditWindow}
	if app.Chat, err = chat.NewService(chatStore, app.Users, limits, nil); err != nil {
		app.Close()
		return nil, err
	}
	proxies, _ := cfg.trustedProxies() // checked by Validate
	app.API = httpapi.New(httpapi.Config{Users: app.Users, Chat: app.Chat, Logger: logger, Registry: app.Registry, TrustedProxies: proxies})
	app.Chat.SetObserver(app.API.Metrics())
	if app.Pool != nil {
		pool := app.Pool
		app.API.AddReadiness("database", func(ctx context.Context) error { return pool.Ping(ctx) })
	}
	return app, nil
}

// openPool opens the PostgreSQL pool with the role's size.
func openPool(ctx context.Context, cfg Config) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(cfg.PostgresURL)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if cfg.PostgresMaxConns > 0 {
		pcfg.MaxConns = int32(cfg.PostgresMaxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return pool, nil
}

// EnablePush serves the push subscription endpoints with cfg's public key. Without a
// VAPID public key the endpoints answer push_disabled.
func (a *App) EnablePush(cfg webpush.Config) error {
	// Core only hands out the public key; notification, which signs, checks the pair.
	if cfg.VAPIDPublicKey == "" {
		return nil
	}
	a.PushStore = webpush.NewMemoryStore()
	if a.Pool != nil {
		a.PushStore = webpushpg.New(a.Pool)
	}
	a.API.SetPush(bridge.Push{Store: a.PushStore, Config: cfg})
	return nil
}

// Handler is the HTTP handler of the app: the REST API, and file transfer when enabled.
func (a *App) Handler() http.Handler {
	if a.filesHandler == nil {
		return a.API.Handler()
	}
	mux := http.NewServeMux()
	mux.Handle(fileshttp.Prefix, a.filesHandler)
	mux.Handle(fileshttp.Prefix+"/", a.filesHandler)
	mux.Handle("/", a.API.Handler())
	return mux
}

// Close releases the database pool.
func (a *App) Close() {
	if a.Pool != nil {
		a.Pool.Close()
	}
}

// Serve answers HTTP on ln until ctx ends, then drains in-flight requests.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	if a.Config.NoTokenAuth {
		return errors.New("http: the REST API authenticates with tokens, and this app was built without token authentication")
	}
	srv := &http.Server{
		Handler: a.Handler(),
		// No ReadTimeout or WriteTimeout: file uploads and downloads stream for as long as
		// they take; a client that goes away cancels its request.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(a.Logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}

// Role returns the core role: the REST API and the consumers of chat.message_sent and
// chat.receipt.
func Role() cli.Role {
	return cli.Role{
		Name:    "core",
		Summary: "REST API (accounts, rooms, messages, history, receipts, blocks) and the chat.message_sent consumer",
		Setup: func(fs *flag.FlagSet) cli.RunFunc {
			cfg := DefaultConfigFor("core")
			cfg.RegisterFlags(fs)
			var busCfg deps.BusConfig
			busCfg.RegisterFlags(fs)
			var pipeCfg pipeline.Config
			pipeCfg.RegisterFlags(fs)
			var filesCfg FilesConfig
			filesCfg.RegisterFlags(fs)
			var pushCfg webpush.Config
			pushCfg.RegisterFlags(fs)
			return func(ctx context.Context, env cli.Env, _ []string) error {
				if err := cfg.Validate(); err != nil {
					return fmt.Errorf("%w: %w", cli.ErrUsage, err)
				}
				if err := busCfg.Validate(); err != nil {
					return fmt.Errorf("%w: %w", cli.ErrUsage, err)
				}
				logger := cfg.Logger(env).With("role", "core")
				app, err := Build(ctx, cfg, logger)
				if err != nil {
					return err
				}
				defer app.Close()
				b, busPing, err := busCfg.Open(ctx, logger)
				if err != nil {
					return err
				}
				defer b.Close()
				pipe, err := app.Pipeline(b, pipeCfg)
				if err != nil {
					return err
				}
				if err := app.EnableFiles(ctx, filesCfg); err != nil {
					return err
				}
				if err := app.EnablePush(pushCfg); err != nil {
					return err
				}
				app.API.AddReadiness("bus", busPing)
				ln, err := net.Listen("tcp", cfg.Listen)
				if err != nil {
					return fmt.Errorf("listen: %w", err)
				}
				logger.Info("parley core listening", "addr", ln.Addr().String(), "store", cfg.Store, "bus", busCfg.Kind, "registration", cfg.Registration)
				// The pipeline and the API live and die together: a core whose consumer
				// stopped must exit so that Kubernetes restarts it, not keep serving.
				runCtx, cancel := context.WithCancel(ctx)
				defer cancel()
				pipeErr := make(chan error, 1)
				go func() { pipeErr <- pipe.Run(runCtx) }()
				go app.Files.RunOrphanCleanup(runCtx, time.Hour)
				serveErr := make(chan error, 1)
				go func() { serveErr <- app.Serve(runCtx, ln) }()
				select {
				case err := <-pipeErr:
					stopping := ctx.Err() != nil
					cancel()
					<-serveErr
					if err != nil && !stopping {
						return fmt.Errorf("pipeline: %w", err)
					}
					if !stopping {
						return errors.New("pipeline stopped")
					}
					return nil
				case err := <-serveErr:
					cancel()
					<-pipeErr
					return err
				}
			}
		},
	}
}

// Bridge is the app's chat service as the pipeline's acceptor and advancer.
func Bridge(a *App) bridge.Chat { return bridge.Chat{Service: a.Chat} }

// Pipeline builds the consumers of chat.message_sent and chat.receipt over b and the
// outbox relay that announces every stored message (sent over the bus or over REST) on
// b, announces the other REST writes on b, and adds the consumer to /readyz.
func (a *App) Pipeline(b bus.Bus, cfg pipeline.Config) (*pipeline.Pipeline, error) {
	cfg.Logger, cfg.Registerer = a.Logger, a.Registry
	cfg.Outbox = Outbox{Chat: a.Chat}
	chatBridge := Bridge(a)
	pipe, err := pipeline.New(b, chatBridge, chatBridge, cfg)
	if err != nil {
		return nil, err
	}
	a.Chat.OnStored(pipe.Wake)
	a.API.SetEvents(bridge.Announcer{Bus: b})
	a.API.AddReadiness("pipeline", func(context.Context) error { return pipe.Ready() })
	return pipe, nil
}

// Outbox is the chat store's outbox as the pipeline's: stored messages become
// chat.message_delivered payloads.
type Outbox struct{ Chat *chat.Service }

// Relay implements pipeline.Outbox.
func (o Outbox) Relay(ctx context.Context, limit int, publish func(context.Context, []protocol.MessageDelivered) error) (int, error) {
	n, err := o.Chat.RelayAnnouncements(ctx, limit, func(ctx context.Context, msgs []chat.Message) error {
		ds := make([]protocol.MessageDelivered, len(msgs))
		for i, m := range msgs {
			// SentAt is when the sender's request arrived; the store keeps CreatedAt, a
			// few milliseconds later.
			ds[i] = protocol.MessageDelivered{RoomID: m.RoomID, SenderID: m.SenderID, ClientID: m.ClientID, ServerID: m.ID, Seq: m.Seq,
				Body: m.Body, Attachments: m.Attachments, ReplyTo: m.ReplyTo, Mentions: m.Mentions, SentAt: m.CreatedAt, CreatedAt: m.CreatedAt}
		}
		return publish(ctx, ds)
	})
	if errors.Is(err, chat.ErrRelayBusy) {
		return 0, pipeline.ErrRelayBusy
	}
	return n, err
}
