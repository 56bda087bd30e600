package core

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/internal/cli"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/runtime/files/blob"
	"github.com/parleychat/parley/runtime/store/postgres"
)

const key = "0123456789abcdef0123456789abcdef"

func runRole(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := cli.Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }}
	code := cli.Main(context.Background(), e, []cli.Role{Role()}, append([]string{"core"}, args...))
	return code, errb.String()
}

func TestRole_refusesBadConfig(t *testing.T) {
	unmigrated := testenv.Postgres(t)
	tests := []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"no signing key", map[string]string{"PARLEY_POSTGRES_URL": unmigrated}, nil, cli.ExitUsage, "jwt-signing-key"},
		{"short signing key", map[string]string{"PARLEY_POSTGRES_URL": unmigrated, "PARLEY_JWT_SIGNING_KEY": "short"}, nil, cli.ExitUsage, "jwt-signing-key"},
		{"no postgres url", map[string]string{"PARLEY_JWT_SIGNING_KEY": key}, nil, cli.ExitUsage, "postgres-url"},
		{"bad registration", map[string]string{"PARLEY_JWT_SIGNING_KEY": key, "PARLEY_REGISTRATION": "maybe"}, []string{"--store", "memory"}, cli.ExitUsage, "registration"},
		{"bad log level", map[string]string{"PARLEY_JWT_SIGNING_KEY": key, "PARLEY_LOG_LEVEL": "loud"}, []string{"--store", "memory"}, cli.ExitUsage, "log-level"},
		{"kafka without brokers", map[string]string{"PARLEY_JWT_SIGNING_KEY": key}, []string{"--store", "memory"}, cli.ExitUsage, "--kafka-brokers is required"},
		{"unknown bus", map[string]string{"PARLEY_JWT_SIGNING_KEY": key, "PARLEY_BUS": "carrier-pigeon"}, []string{"--store", "memory"}, cli.ExitUsage, "--bus"},
		{"unmigrated database", map[string]string{"PARLEY_POSTGRES_URL": unmigrated, "PARLEY_JWT_SIGNING_KEY": key}, []string{"--bus", "memory"}, cli.ExitFailure, "run parley migrate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stderr := runRole(t, tc.env, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want %d mentioning %q", code, stderr, tc.code, tc.want)
			}
		})
	}
}

func TestBuild_servesOverPostgres(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	app := migratedApp(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()

	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"database":"ok"`) {
		t.Fatalf("/readyz = %d %s", resp.StatusCode, body)
	}
	resp, err = http.Post(base+"/api/v1/auth/register", "application/json", strings.NewReader(`{"username":"alice","password":"correct horse"}`))
	if err != nil {
		t.Fatal(err)
	}
	var reg struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || reg.AccessToken == "" {
		t.Fatalf("register = %d", resp.StatusCode)
	}
	if c, err := app.Users.Auth().VerifyAccessToken(reg.AccessToken); err != nil || c.UserID == "" {
		t.Fatalf("the app's verifier refuses its own token: %v", err)
	}
	var n int
	if err := app.Pool.QueryRow(ctx, `SELECT count(*) FROM users WHERE username_key = 'alice'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("alice in PostgreSQL: %d, %v", n, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

// migratedApp builds the app over a fresh, migrated PostgreSQL schema, closed when the
// test ends.
func migratedApp(t *testing.T, tune ...func(*Config)) *App {
	t.Helper()
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := postgres.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.PostgresURL, cfg.JWTSigningKey = dsn, key
	for _, f := range tune {
		f(&cfg)
	}
	app, err := Build(ctx, cfg, cfg.Logger(cli.Env{Stderr: io.Discard}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(app.Close)
	return app
}

// TestEnableFiles_signedLinksAcrossReplicas: a link handed out by one core replica is
// honoured by another with the same --jwt-signing-key (no key of its own to configure),
// refused by one with another key, and lives --files-link-ttl.
func TestEnableFiles_signedLinksAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := postgres.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	const ttl = 2 * time.Minute
	replica := func(signingKey string) string {
		cfg := DefaultConfig()
		cfg.PostgresURL, cfg.JWTSigningKey = dsn, signingKey
		app, err := Build(ctx, cfg, cfg.Logger(cli.Env{Stderr: io.Discard}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(app.Close)
		if err := app.EnableFiles(ctx, FilesConfig{Blob: blob.Flags{Backend: blob.BackendLocal, Dir: dir}, LinkTTL: ttl}); err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(app.Handler())
		t.Cleanup(srv.Close)
		return srv.URL
	}
	one, two, other := replica(key), replica(key), replica(strings.Repeat("k", 32))

	resp, err := http.Post(one+"/api/v1/auth/register", "application/json", strings.NewReader(`{"username":"alice","password":"correct horse"}`))
	if err != nil {
		t.Fatal(err)
	}
	var reg struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()
	start := time.Now()
	req, _ := http.NewRequest(http.MethodPut, one+"/api/v1/files?name=a.txt", strings.NewReader("hello"))
	req.Header.Set("Authorization", "Bearer "+reg.AccessToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var up struct {
		URL          string    `json:"url"`
		URLsExpireAt time.Time `json:"urls_expire_at"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&up)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || up.URL == "" {
		t.Fatalf("upload = %d %+v", resp.StatusCode, up)
	}
	// Issued at or after start, truncated to a quarter of the TTL, never beyond it.
	if up.URLsExpireAt.Before(start.Add(ttl*3/4).Truncate(time.Second)) || up.URLsExpireAt.After(time.Now().Add(ttl)) {
		t.Fatalf("links expire at %s; want within --files-link-ttl %s of the upload", up.URLsExpireAt, ttl)
	}
	tests := []struct {
		name, base string
		status     int
		body       string
	}{
		{"same replica", one, http.StatusOK, "hello"},
		{"another replica", two, http.StatusOK, "hello"},
		{"a replica with another key", other, http.StatusUnauthorized, `"invalid_link"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get(tc.base + up.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.body) {
				t.Fatalf("GET %s = %d %s, want %d %s", up.URL, resp.StatusCode, body, tc.status, tc.body)
			}
		})
	}
}

func TestEnableFiles_refusesTinyLinkTTL(t *testing.T) {
	app := migratedApp(t)
	err := app.EnableFiles(context.Background(), FilesConfig{Blob: blob.Flags{Backend: blob.BackendLocal, Dir: t.TempDir()}, LinkTTL: 500 * time.Millisecond})
	if !errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), "files-link-ttl") {
		t.Fatalf("EnableFiles with a 500ms link TTL = %v, want a usage error naming --files-link-ttl", err)
	}
}

func TestFilesConfig_linkTTLFlag(t *testing.T) {
	tests := []struct {
		args []string
		want time.Duration
	}{
		{nil, 15 * time.Minute},
		{[]string{"--files-link-ttl", "90s"}, 90 * time.Second},
	}
	for _, tc := range tests {
		var c FilesConfig
		fs := flag.NewFlagSet("core", flag.ContinueOnError)
		c.RegisterFlags(fs)
		if err := fs.Parse(tc.args); err != nil || c.LinkTTL != tc.want {
			t.Fatalf("%v: LinkTTL %s (%v), want %s", tc.args, c.LinkTTL, err, tc.want)
		}
	}
}
