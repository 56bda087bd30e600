package dev

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/parleychat/parley/internal/cli"
	"github.com/parleychat/parley/internal/role/core"
	"github.com/parleychat/parley/internal/role/gateway"
	"github.com/parleychat/parley/internal/role/notification"
)

func TestDevSeedingNeedsLoopbackListener(t *testing.T) {
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Core.JWTSigningKey = strings.Repeat("k", 32)
	cfg.Files.Blob.Dir = t.TempDir()
	cfg.DevSeeding = true
	var out bytes.Buffer
	err = Run(context.Background(), cli.Env{Stdout: &out, Stderr: &out}, cfg, ln)
	if !errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("Run on %s with --dev-seeding = %v, want a usage error about loopback", ln.Addr(), err)
	}
}

func TestProductionRolesHaveNoSeedingFlag(t *testing.T) {
	for _, r := range []cli.Role{core.Role(), gateway.Role(), notification.Role()} {
		fs := flag.NewFlagSet(r.Name, flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		r.Setup(fs)
		if err := fs.Parse([]string{"--dev-seeding"}); err == nil {
			t.Errorf("parley %s accepts --dev-seeding", r.Name)
		}
	}
}
