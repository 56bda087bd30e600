package files_test

import (
	"testing"

	"github.com/parleychat/parley/runtime/files"
	"github.com/parleychat/parley/runtime/files/filestest"
)

func TestMemoryContract(t *testing.T) {
	filestest.MetaStoreContract(t, func(*testing.T) files.MetaStore { return files.NewMemory() })
}

func TestMemoryQuotaContract(t *testing.T) {
	filestest.QuotaContract(t, func(*testing.T) files.MetaStore { return files.NewMemory() })
}
