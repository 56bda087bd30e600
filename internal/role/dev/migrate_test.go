package dev

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/chatclient"
	"github.com/parleychat/parley/internal/cli"
	"github.com/parleychat/parley/internal/role/core"
	"github.com/parleychat/parley/internal/testenv"
)

// `parley dev --store postgres` on a database never migrated applies the schema itself
// and serves.
func TestDevMigratesAnEmptyDatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Core.Store, cfg.Core.PostgresURL = core.StorePostgres, testenv.Postgres(t)
	cfg.Files.Blob.Dir = t.TempDir()
	cfg.Core.JWTSigningKey = strings.Repeat("k", 32)
	cfg.Core.LogLevel = "warn"
	var out, logs bytes.Buffer
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Run(runCtx, cli.Env{Stdout: &out, Stderr: &logs}, cfg, ln) }()
	api := chatclient.New("http://" + ln.Addr().String())
	for {
		var body map[string]any
		if api.Do(ctx, "GET", "/readyz", "", nil, &body) == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("dev on an unmigrated database stopped: %v\n%s", err, logs.String())
		case <-ctx.Done():
			t.Fatal("never ready")
		case <-time.After(20 * time.Millisecond):
		}
	}
	if _, err := api.Register(ctx, "alice", "correct horse battery staple"); err != nil {
		t.Fatalf("register: %v", err)
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("dev stopped with %v", err)
	}
}
