package filespg

import (
	"context"
	"testing"

	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/runtime/files"
	"github.com/parleychat/parley/runtime/files/filestest"
	"github.com/parleychat/parley/runtime/store/postgres"
)

func TestPostgresContract(t *testing.T) {
	filestest.MetaStoreContract(t, func(t *testing.T) files.MetaStore {
		pool := testenv.PostgresPool(t)
		if _, err := postgres.Migrate(context.Background(), pool); err != nil {
			t.Fatal(err)
		}
		return New(pool)
	})
}

func TestPostgresQuotaContract(t *testing.T) {
	filestest.QuotaContract(t, func(t *testing.T) files.MetaStore {
		pool := testenv.PostgresPool(t)
		if _, err := postgres.Migrate(context.Background(), pool); err != nil {
			t.Fatal(err)
		}
		return New(pool)
	})
}
