package postgres

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/runtime/chat/chattest"
	"github.com/parleychat/parley/runtime/users"
	"github.com/parleychat/parley/runtime/users/userstest"
)

// migratedPool is a pool on a fresh, migrated schema.
func migratedPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool := testenv.PostgresPool(t)
	if _, err := Migrate(context.Background(), pool); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return pool
}

func TestUsersContract(t *testing.T) {
	userstest.Run(t, func(t *testing.T) users.Store { return NewUsers(migratedPool(t)) })
}

func TestChatContract(t *testing.T) {
	chattest.Run(t, func(t *testing.T) chattest.Backend {
		pool := migratedPool(t)
		return chattest.Backend{Chat: NewChat(pool), Users: NewUsers(pool)}
	})
}
