// Package postgres implements the users and chat stores on PostgreSQL with pgx, and the
// embedded, versioned schema migrations that `parley migrate` applies.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migration is one embedded schema step.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// ErrSchemaTooNew means the database was migrated by a newer binary: running this one
// against it could corrupt data, so it refuses.
var ErrSchemaTooNew = errors.New("database schema is newer than this binary")

// ErrSchemaNotCurrent means the database needs `parley migrate` first.
var ErrSchemaNotCurrent = errors.New("database schema is not at this binary's version")

// Migrations returns the embedded migrations in version order. Files are named
// NNNN_name.sql.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration file %q: want NNNN_name.sql", e.Name())
		}
		b, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", e.Name(), err)
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migrations must be numbered 1..n without gaps; found %d at position %d", m.Version, i+1)
		}
	}
	return out, nil
}

// LatestVersion is the schema version this binary knows.
func LatestVersion() int {
	ms, err := Migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}

// MigrateResult says what Migrate did.
type MigrateResult struct {
	From, To int
	Applied  []int
}

// Migrate applies every pending migration, each in its own transaction. It is safe to
// run twice and concurrently: a session advisory lock, keyed by the current schema,
// serializes runners, and each re-reads the version under the lock. It refuses when the
// database's version is newer than the binary's.
func Migrate(ctx context.Context, pool *pgxpool.Pool) (MigrateResult, error) {
	ms, err := Migrations()
	if err != nil {
		return MigrateResult{}, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return MigrateResult{}, fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()
	// The lock key includes the schema so that parallel tests on separate schemas do not
	// wait for each other.
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtext('parley.migrate.' || current_schema()))`); err != nil {
		return MigrateResult{}, fmt.Errorf("advisory lock: %w", err)
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtext('parley.migrate.' || current_schema()))`)
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return MigrateResult{}, fmt.Errorf("create schema_migrations: %w", err)
	}
	cur, err := currentVersion(ctx, conn.Conn())
	if err != nil {
		return MigrateResult{}, err
	}
	latest := ms[len(ms)-1].Version
	res := MigrateResult{From: cur, To: cur}
	if cur > latest {
		return res, fmt.Errorf("%w: database at version %d, binary knows up to %d", ErrSchemaTooNew, cur, latest)
	}
	for _, m := range ms[cur:] {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name)
			return err
		})
		if err != nil {
			return res, fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
		}
		res.To = m.Version
		res.Applied = append(res.Applied, m.Version)
	}
	return res, nil
}

func currentVersion(ctx context.Context, conn *pgx.Conn) (int, error) {
	var v int
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// SchemaVersion returns the database's schema version (0 when never migrated).
func SchemaVersion(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v int
	if err := pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// CheckSchema returns nil when the database is exactly at this binary's version; core
// calls it at start so it never runs against a schema it does not know.
func CheckSchema(ctx context.Context, pool *pgxpool.Pool) error {
	v, err := SchemaVersion(ctx, pool)
	if err != nil {
		return err
	}
	latest := LatestVersion()
	switch {
	case v > latest:
		return fmt.Errorf("%w: database at %d, binary knows %d", ErrSchemaTooNew, v, latest)
	case v < latest:
		return fmt.Errorf("%w: database at %d, binary needs %d; run parley migrate", ErrSchemaNotCurrent, v, latest)
	}
	return nil
}
