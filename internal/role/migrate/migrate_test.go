package migrate

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/internal/cli"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/runtime/store/postgres"
)

func TestRole(t *testing.T) {
	url := testenv.Postgres(t)
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		env := cli.Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
			if k == "PARLEY_POSTGRES_URL" {
				return url
			}
			return ""
		}}
		code := cli.Main(context.Background(), env, []cli.Role{Role()}, append([]string{"migrate"}, args...))
		return code, out.String(), errb.String()
	}
	code, out, errs := run()
	want := fmt.Sprintf("to %d", postgres.LatestVersion())
	if code != cli.ExitOK || !strings.Contains(out, want) {
		t.Fatalf("first run: code %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, _ = run()
	if code != cli.ExitOK || !strings.Contains(out, "already at version") {
		t.Fatalf("second run: code %d, stdout %q", code, out)
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `INSERT INTO schema_migrations (version, name) VALUES (9999, 'future')`); err != nil {
		t.Fatal(err)
	}
	code, _, errs = run()
	if code != cli.ExitFailure || !strings.Contains(errs, "newer than this binary") {
		t.Fatalf("newer schema: code %d, stderr %q", code, errs)
	}
	code, _, _ = run("--postgres-url", "")
	if code != cli.ExitUsage {
		t.Fatalf("empty url: code %d, want usage", code)
	}
}
