package memory

import (
	"testing"

	"github.com/parleychat/parley/runtime/chat/chattest"
)

func TestChatContract(t *testing.T) {
	chattest.Run(t, func(*testing.T) chattest.Backend { return chattest.Backend{Chat: NewChat(), Users: NewUsers()} })
}
