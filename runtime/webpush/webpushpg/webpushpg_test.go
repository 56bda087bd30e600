package webpushpg

import (
	"context"
	"testing"

	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/runtime/webpush"
	"github.com/parleychat/parley/runtime/webpush/webpushtest"
)

func TestPostgresContract(t *testing.T) {
	webpushtest.StoreContract(t, func(t *testing.T) webpush.Store {
		pool := testenv.PostgresPool(t)
		if err := ApplySchema(context.Background(), pool); err != nil {
			t.Fatal(err)
		}
		return New(pool)
	})
}

func TestSchemaIsIdempotent(t *testing.T) {
	pool := testenv.PostgresPool(t)
	for i := range 2 {
		if err := ApplySchema(context.Background(), pool); err != nil {
			t.Fatalf("apply %d: %v", i+1, err)
		}
	}
}
