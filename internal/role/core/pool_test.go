package core

import (
	"context"
	"flag"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/internal/cli"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/runtime/store/postgres"
)

// TestPostgresPoolSizedPerRole (issue 15 item 14): each role's default pool size is its
// own, not the node's cores, and --postgres-max-conns (PARLEY_POSTGRES_MAX_CONNS) sets
// the pool the role opens.
func TestPostgresPoolSizedPerRole(t *testing.T) {
	for _, tc := range []struct {
		role string
		args []string
		want int32
	}{
		{"core", nil, 16},
		{"gateway", nil, 8},
		{"notification", nil, 8},
		{"dev", nil, 16},
		{"gateway", []string{"--postgres-max-conns", "3"}, 3},
	} {
		t.Run(tc.role, func(t *testing.T) {
			cfg := DefaultConfigFor(tc.role)
			fs := flag.NewFlagSet(tc.role, flag.ContinueOnError)
			cfg.RegisterFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if cfg.PostgresMaxConns != int(tc.want) {
				t.Fatalf("%s: PostgresMaxConns = %d, want %d", tc.role, cfg.PostgresMaxConns, tc.want)
			}
		})
	}
	if got := cli.EnvName("postgres-max-conns"); got != "PARLEY_POSTGRES_MAX_CONNS" {
		t.Fatalf("env name %s", got)
	}

	ctx := context.Background()
	dsn := testenv.Postgres(t)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	pool.Close()
	cfg := DefaultConfigFor("gateway")
	cfg.PostgresURL, cfg.JWTSigningKey, cfg.PostgresMaxConns = dsn, key, 3
	app, err := Build(ctx, cfg, cfg.Logger(cli.Env{Stderr: io.Discard}))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if got := app.Pool.Config().MaxConns; got != 3 {
		t.Fatalf("pool MaxConns = %d, want 3", got)
	}
	cfg.PostgresMaxConns = -1
	if err := cfg.Validate(); err == nil {
		t.Fatal("a negative --postgres-max-conns was accepted")
	}
}
