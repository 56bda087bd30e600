package filespg

import (
	"context"
	"testing"

	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/runtime/files"
	"github.com/parleychat/parley/runtime/files/filestest"
)

func TestPostgresContract(t *testing.T) {
	filestest.MetaStoreContract(t, func(t *testing.T) files.MetaStore {
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
