package webpushpg

import (
	"context"
	"testing"

	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/runtime/store/postgres"
	"github.com/parleychat/parley/runtime/webpush"
	"github.com/parleychat/parley/runtime/webpush/webpushtest"
)

func TestPostgresContract(t *testing.T) {
	webpushtest.StoreContract(t, func(t *testing.T) webpush.Store {
		pool := testenv.PostgresPool(t)
		if _, err := postgres.Migrate(context.Background(), pool); err != nil {
			t.Fatal(err)
		}
		return New(pool)
	})
}
