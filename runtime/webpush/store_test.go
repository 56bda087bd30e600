package webpush_test

import (
	"testing"

	"github.com/parleychat/parley/runtime/webpush"
	"github.com/parleychat/parley/runtime/webpush/webpushtest"
)

func TestMemoryStoreContract(t *testing.T) {
	webpushtest.StoreContract(t, func(*testing.T) webpush.Store { return webpush.NewMemoryStore() })
}
