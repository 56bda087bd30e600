// Command parley is the one binary of Parley; its first argument picks the role.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/parleychat/parley/internal/cli"
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
		cli.NotBuilt("operator", "Kubernetes controller manager for ChatCluster resources", "the operator lands with issue #3"),
		cli.NotBuilt("gateway", "WebSocket endpoint, web client and presence heartbeats", "the gateway lands with issue #5"),
		cli.NotBuilt("core", "REST API and the chat.message_sent consumer", "core lands with issue #4"),
		cli.NotBuilt("notification", "fan-out to gateways and Web Push", "notification lands with issue #5"),
		cli.NotBuilt("migrate", "apply the database schema", "migrations land with issue #4"),
		cli.NotBuilt("dev", "every role in one process on embedded defaults", "parley dev lands with issue #5"),
		cli.NotBuilt("loadgen", "load generator for the benchmarks", "loadgen lands with issue #5"),
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
