// Command parley is the one binary of Parley; its first argument picks the role.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/parleychat/parley/internal/cli"
	"github.com/parleychat/parley/internal/role/core"
	"github.com/parleychat/parley/internal/role/dev"
	"github.com/parleychat/parley/internal/role/gateway"
	"github.com/parleychat/parley/internal/role/loadgen"
	"github.com/parleychat/parley/internal/role/migrate"
	"github.com/parleychat/parley/internal/role/notification"
	"github.com/parleychat/parley/internal/role/operator"
	"github.com/parleychat/parley/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, cli.Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}, roles(), os.Args[1:])
	stop()
	os.Exit(code)
}

func roles() []cli.Role {
	return []cli.Role{
		operator.Role(),
		gateway.Role(),
		core.Role(),
		notification.Role(),
		migrate.Role(),
		dev.Role(),
		loadgen.Role(),
		{
			Name:    "version",
			Summary: "print the version and exit",
			Run: func(_ context.Context, env cli.Env, _ []string) error {
				_, err := fmt.Fprintln(env.Stdout, version.String())
				return err
			},
		},
	}
}
