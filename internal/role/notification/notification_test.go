package notification

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/cli"
	"github.com/parleychat/parley/internal/role/core"
	"github.com/parleychat/parley/internal/role/gateway"
	"github.com/parleychat/parley/internal/testenv"
)

// TestRole_startsWithoutSigningKey: notification verifies no tokens, so it starts and
// becomes ready with no signing key at all (the operator gives it none), while core and
// gateway, which do verify tokens, still refuse to start without one.
func TestRole_startsWithoutSigningKey(t *testing.T) {
	rdb := testenv.Redis(t)
	addr := testenv.FreeAddr(t)
	env := map[string]string{
		"PARLEY_STORE":     "memory",
		"PARLEY_BUS":       "memory",
		"PARLEY_REDIS_URL": fmt.Sprintf("redis://%s/%d", rdb.Addr, rdb.DB),
		"PARLEY_LISTEN":    addr,
	}
	getenv := func(k string) string { return env[k] }

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr testenv.LogTail // written by the role's goroutines while the test reads it
	exited := make(chan int, 1)
	go func() {
		exited <- cli.Main(ctx, cli.Env{Stdout: io.Discard, Stderr: &stderr, Getenv: getenv}, []cli.Role{Role()}, []string{"notification"})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case code := <-exited:
			t.Fatalf("notification exited with %d without a signing key: %s", code, stderr.Tail(40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("notification not ready after 30 s (%v): %s", err, stderr.Tail(40))
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if code := <-exited; code != cli.ExitOK {
		t.Errorf("notification exited with %d after a clean stop: %s", code, stderr.Tail(40))
	}

	for _, role := range []cli.Role{core.Role(), gateway.Role()} {
		t.Run(role.Name, func(t *testing.T) {
			var out bytes.Buffer
			code := cli.Main(context.Background(), cli.Env{Stdout: io.Discard, Stderr: &out, Getenv: getenv}, []cli.Role{role}, []string{role.Name})
			if code != cli.ExitUsage || !strings.Contains(out.String(), "jwt-signing-key") {
				t.Fatalf("%s without a signing key: exit %d, stderr %q; want %d naming --jwt-signing-key", role.Name, code, out.String(), cli.ExitUsage)
			}
		})
	}
}

// TestConfig_noTokenAuth: the role's defaults skip the key checks (and only those),
// and the --jwt-* flags are still accepted, so one settings set serves every role.
func TestConfig_noTokenAuth(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Core.Store = core.StoreMemory
	if err := cfg.Core.Validate(); err != nil {
		t.Fatalf("notification's defaults without a key: %v", err)
	}
	fs := flag.NewFlagSet("notification", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse([]string{"--jwt-signing-key=short"}); err != nil {
		t.Fatalf("--jwt-signing-key is no longer accepted: %v", err)
	}
	if err := cfg.Core.Validate(); err != nil {
		t.Fatalf("an ignored key was validated: %v", err)
	}
	app, err := core.Build(context.Background(), cfg.Core, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Build without a key: %v", err)
	}
	defer app.Close()
	if app.Users.Auth() != nil {
		t.Errorf("notification built a token Auth")
	}
	// What needs the key refuses rather than run with none: file links and the REST API.
	if err := app.EnableFiles(context.Background(), core.FilesConfig{}); err == nil {
		t.Errorf("EnableFiles accepted a role without a signing key")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := app.Serve(context.Background(), ln); err == nil {
		t.Errorf("Serve served the REST API without token authentication")
	}
	shared := core.DefaultConfig()
	shared.Store = core.StoreMemory
	if err := shared.Validate(); err == nil || !strings.Contains(err.Error(), "jwt-signing-key") {
		t.Errorf("core's defaults without a key validate: %v", err)
	}
}
