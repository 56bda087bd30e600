package core

import (
	"context"
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/internal/role/deps"
	"github.com/parleychat/parley/runtime/bus"
)

// Backends is what the gateway and notification roles stand on: the shared services
// over the database, Redis (presence and routing) and the bus.
type Backends struct {
	App     *App
	Redis   redis.UniversalClient
	Bus     bus.Bus
	BusPing func(context.Context) error
}

// OpenBackends opens all three, closing what it opened when one fails.
func OpenBackends(ctx context.Context, cfg Config, busCfg deps.BusConfig, logger *slog.Logger) (*Backends, error) {
	app, err := Build(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	rdb, err := deps.OpenRedis(ctx, cfg.RedisURL, cfg.RedisCluster)
	if err != nil {
		app.Close()
		return nil, err
	}
	b, ping, err := busCfg.Open(ctx, logger)
	if err != nil {
		rdb.Close()
		app.Close()
		return nil, err
	}
	return &Backends{App: app, Redis: rdb, Bus: b, BusPing: ping}, nil
}

// Close releases the bus, Redis and the database.
func (b *Backends) Close() {
	b.Bus.Close()
	b.Redis.Close()
	b.App.Close()
}
