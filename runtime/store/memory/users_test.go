package memory

import (
	"testing"

	"github.com/parleychat/parley/runtime/users"
	"github.com/parleychat/parley/runtime/users/userstest"
)

func TestUsersContract(t *testing.T) {
	userstest.Run(t, func(*testing.T) users.Store { return NewUsers() })
}
