package cli

import (
	"bytes"
	"context"
	"flag"
	"strings"
	"testing"
	"time"
)

type run struct {
	listen  string
	timeout time.Duration
	args    []string
	ran     bool
}

func testRoles(got *run) []Role {
	return []Role{
		{
			Name:    "serve",
			Summary: "serve things",
			Setup: func(fs *flag.FlagSet) RunFunc {
				listen := fs.String("listen", "127.0.0.1:8080", "listen address")
				timeout := fs.Duration("write-timeout", time.Second, "write deadline")
				return func(_ context.Context, _ Env, args []string) error {
					got.listen, got.timeout, got.args, got.ran = *listen, *timeout, args, true
					return nil
				}
			},
		},
		NotBuilt("later", "comes later", "issue #9"),
	}
}

func TestMain_dispatch(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		env         map[string]string
		wantCode    int
		wantListen  string
		wantTimeout time.Duration
		wantStdout  string
		wantStderr  string
		wantRan     bool
	}{
		{name: "no args prints usage", args: nil, wantCode: ExitUsage, wantStderr: "Usage: parley <role>"},
		{name: "top help lists roles", args: []string{"--help"}, wantCode: ExitOK, wantStdout: "later"},
		{name: "help for role lists env", args: []string{"help", "serve"}, wantCode: ExitOK, wantStdout: "env PARLEY_WRITE_TIMEOUT"},
		{name: "role --help", args: []string{"serve", "--help"}, wantCode: ExitOK, wantStdout: "env PARLEY_LISTEN, default \"127.0.0.1:8080\""},
		{name: "unknown role", args: []string{"nope"}, wantCode: ExitUsage, wantStderr: `unknown role "nope"`},
		{name: "defaults", args: []string{"serve"}, wantCode: ExitOK, wantRan: true, wantListen: "127.0.0.1:8080", wantTimeout: time.Second},
		{
			name: "env sets default", args: []string{"serve"}, wantCode: ExitOK, wantRan: true,
			env:        map[string]string{"PARLEY_LISTEN": ":9000", "PARLEY_WRITE_TIMEOUT": "5s"},
			wantListen: ":9000", wantTimeout: 5 * time.Second,
		},
		{
			name: "flag beats env", args: []string{"serve", "--listen", ":7000"}, wantCode: ExitOK, wantRan: true,
			env:        map[string]string{"PARLEY_LISTEN": ":9000"},
			wantListen: ":7000", wantTimeout: time.Second,
		},
		{name: "positional arguments refused", args: []string{"serve", "extra"}, wantCode: ExitUsage, wantStderr: `unexpected arguments ["extra"]`},
		{
			name: "bad env value names the variable", args: []string{"serve"}, wantCode: ExitUsage,
			env:        map[string]string{"PARLEY_WRITE_TIMEOUT": "soon"},
			wantStderr: `PARLEY_WRITE_TIMEOUT="soon"`,
		},
		{name: "bad flag", args: []string{"serve", "--bogus"}, wantCode: ExitUsage, wantStderr: "flag provided but not defined"},
		{name: "not built exits non-zero", args: []string{"later"}, wantCode: ExitNotBuilt, wantStderr: "parley later: role not built yet (issue #9)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got run
			var stdout, stderr bytes.Buffer
			env := Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return tt.env[k] }}
			code := Main(context.Background(), env, testRoles(&got), tt.args)
			if code != tt.wantCode {
				t.Fatalf("exit = %d, want %d; stderr: %s", code, tt.wantCode, stderr.String())
			}
			if got.ran != tt.wantRan {
				t.Fatalf("ran = %v, want %v", got.ran, tt.wantRan)
			}
			if tt.wantRan && (got.listen != tt.wantListen || got.timeout != tt.wantTimeout) {
				t.Fatalf("listen, timeout = %q, %v; want %q, %v", got.listen, got.timeout, tt.wantListen, tt.wantTimeout)
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Fatalf("stdout %q does not contain %q", stdout.String(), tt.wantStdout)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Fatalf("stderr %q does not contain %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{
		"listen":       "PARLEY_LISTEN",
		"postgres-url": "PARLEY_POSTGRES_URL",
		"a-b-c":        "PARLEY_A_B_C",
	} {
		if got := EnvName(in); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", in, got, want)
		}
	}
}
