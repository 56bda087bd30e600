package dev

import (
	"context"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/role/core"
	"github.com/parleychat/parley/internal/testenv"
)

// `parley dev --store postgres` on a database never migrated applies the schema itself
// and serves.
func TestDevMigratesAnEmptyDatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := testConfig(t)
	cfg.Core.Store, cfg.Core.PostgresURL = core.StorePostgres, testenv.Postgres(t)
	api := startDev(t, ctx, cfg).api
	if _, err := api.Register(ctx, "alice", "correct horse battery staple"); err != nil {
		t.Fatalf("register: %v", err)
	}
}
