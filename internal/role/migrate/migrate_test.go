package migrate

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

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

// Against an address nothing listens on, migrate retries for --wait-for-database and then
// fails saying so; a database that is there is used at once.
func TestWaitsForTheDatabase(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	run := func(url string, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		env := cli.Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
		code := cli.Main(context.Background(), env, []cli.Role{Role()}, append([]string{"migrate", "--postgres-url", url}, args...))
		return code, out.String(), errb.String()
	}
	start := time.Now()
	code, _, errs := run("postgres://parley@"+addr+"/parley?connect_timeout=1", "--wait-for-database", "1500ms")
	elapsed := time.Since(start)
	if code != cli.ExitFailure || !strings.Contains(errs, "not reachable within 1.5s") {
		t.Fatalf("unreachable database: code %d, stderr %q", code, errs)
	}
	var attempts int
	if _, err := fmt.Sscanf(errs[strings.Index(errs, "within 1.5s")+len("within 1.5s"):], " (%d attempts)", &attempts); err != nil || attempts < 2 {
		t.Fatalf("stderr %q: want at least 2 attempts (%v)", errs, err)
	}
	if elapsed < 1500*time.Millisecond || elapsed > 10*time.Second {
		t.Fatalf("gave up after %s, want the 1.5s bound", elapsed)
	}

	url := testenv.Postgres(t)
	code, out, errs := run(url, "--wait-for-database", "1m")
	if code != cli.ExitOK || !strings.Contains(out, "schema") {
		t.Fatalf("reachable database: code %d, stdout %q, stderr %q", code, out, errs)
	}
}
