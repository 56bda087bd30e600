// Package migrate is the `parley migrate` role: it applies the embedded schema
// migrations to PostgreSQL.
package migrate

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/internal/cli"
	"github.com/parleychat/parley/runtime/store/postgres"
)

// Role returns the migrate role.
func Role() cli.Role {
	return cli.Role{
		Name:    "migrate",
		Summary: "apply the database schema (idempotent, safe to run concurrently)",
		Setup: func(fs *flag.FlagSet) cli.RunFunc {
			url := fs.String("postgres-url", "", "PostgreSQL connection URL")
			return func(ctx context.Context, env cli.Env, _ []string) error {
				if *url == "" {
					return fmt.Errorf("%w: --postgres-url is required", cli.ErrUsage)
				}
				return Run(ctx, env, *url)
			}
		},
	}
}

// Run applies the migrations to the database at url and reports what it did.
func Run(ctx context.Context, env cli.Env, url string) error {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer pool.Close()
	res, err := postgres.Migrate(ctx, pool)
	if err != nil {
		if errors.Is(err, postgres.ErrSchemaTooNew) {
			return fmt.Errorf("refusing to migrate: %w", err)
		}
		return err
	}
	if len(res.Applied) == 0 {
		_, err = fmt.Fprintf(env.Stdout, "schema already at version %d\n", res.To)
		return err
	}
	_, err = fmt.Fprintf(env.Stdout, "schema migrated from version %d to %d (applied %v)\n", res.From, res.To, res.Applied)
	return err
}
