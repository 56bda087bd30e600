package postgres

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/parleychat/parley/internal/testenv"
)

func TestMigrate_idempotentAndConcurrent(t *testing.T) {
	ctx := context.Background()
	pool := testenv.PostgresPool(t)
	latest := LatestVersion()
	if latest < 1 {
		t.Fatalf("LatestVersion = %d", latest)
	}
	if err := CheckSchema(ctx, pool); !errors.Is(err, ErrSchemaNotCurrent) {
		t.Fatalf("CheckSchema on an empty schema: %v", err)
	}
	var wg sync.WaitGroup
	results := make([]MigrateResult, 4)
	errs := make([]error, 4)
	for i := range results {
		wg.Go(func() { results[i], errs[i] = Migrate(ctx, pool) })
	}
	wg.Wait()
	applied := 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Migrate %d: %v", i, err)
		}
		if results[i].To != latest {
			t.Fatalf("Migrate %d ended at %d, want %d", i, results[i].To, latest)
		}
		applied += len(results[i].Applied)
	}
	if applied != latest {
		t.Fatalf("concurrent runs applied %d migrations in total, want %d (each exactly once)", applied, latest)
	}
	again, err := Migrate(ctx, pool)
	if err != nil || len(again.Applied) != 0 || again.From != latest {
		t.Fatalf("second Migrate = %+v, %v; want nothing applied", again, err)
	}
	if err := CheckSchema(ctx, pool); err != nil {
		t.Fatalf("CheckSchema after migrate: %v", err)
	}
}

func TestMigrate_refusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	pool := migratedPool(t)
	if _, err := pool.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, 'from_the_future')`, LatestVersion()+1); err != nil {
		t.Fatal(err)
	}
	res, err := Migrate(ctx, pool)
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Migrate on a newer schema = %+v, %v; want ErrSchemaTooNew", res, err)
	}
	if err := CheckSchema(ctx, pool); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("CheckSchema on a newer schema: %v", err)
	}
}

func TestMigrations_numbered(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if m.Version != i+1 || m.Name == "" || m.SQL == "" {
			t.Fatalf("migration %d = %+v", i, m)
		}
	}
}
