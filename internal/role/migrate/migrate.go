// Package migrate is the `parley migrate` role: it applies the embedded schema
// migrations to PostgreSQL.
package migrate

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

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
			wait := fs.Duration("wait-for-database", 2*time.Minute, "how long to retry connecting, with backoff, before giving up (0: try once); a database that is still starting is waited for")
			return func(ctx context.Context, env cli.Env, _ []string) error {
				if *url == "" {
					return fmt.Errorf("%w: --postgres-url is required", cli.ErrUsage)
				}
				if *wait < 0 {
					return fmt.Errorf("%w: --wait-for-database must not be negative", cli.ErrUsage)
				}
				return RunWaiting(ctx, env, *url, *wait)
			}
		},
	}
}

// Run applies the migrations to the database at url and reports what it did.
func Run(ctx context.Context, env cli.Env, url string) error {
	return RunWaiting(ctx, env, url, 0)
}

// RunWaiting is Run after waiting up to wait for the database to accept a connection.
func RunWaiting(ctx context.Context, env cli.Env, url string, wait time.Duration) error {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer pool.Close()
	if err := waitForDatabase(ctx, env, pool, wait); err != nil {
		return err
	}
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

// Backoff between connection attempts: doubling from the first to the last.
const (
	firstBackoff = 250 * time.Millisecond
	maxBackoff   = 5 * time.Second
)

// waitForDatabase pings until the database answers, retrying with backoff for at most
// wait, and then fails with the last error and how long it tried.
func waitForDatabase(ctx context.Context, env cli.Env, pool *pgxpool.Pool, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	backoff := firstBackoff
	for attempt := 1; ; attempt++ {
		err := pool.Ping(ctx)
		if err == nil {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			if wait == 0 {
				return fmt.Errorf("postgres: %w", err)
			}
			return fmt.Errorf("postgres: not reachable within %s (%d attempts): %w", wait, attempt, err)
		}
		if attempt == 1 && env.Stderr != nil {
			fmt.Fprintf(env.Stderr, "waiting up to %s for the database: %v\n", wait, err)
		}
		t := time.NewTimer(min(backoff, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("postgres: %w (while waiting for the database: %v)", ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}
