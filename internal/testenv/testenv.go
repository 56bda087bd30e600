// Package testenv hands tests the real services they talk to: a PostgreSQL schema of
// their own, a Redis database of their own and an in-process Kafka broker (kfake).
//
// A service that cannot be reached skips the test on a developer's machine and fails it
// under CI=true, so a green CI always means the tests ran against the real thing.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Defaults match the services on a development machine; the environment overrides them.
const (
	DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	DefaultRedisURL    = "redis://127.0.0.1:6379/0"
)

// InCI reports whether missing services must fail rather than skip.
func InCI() bool {
	v, _ := strconv.ParseBool(os.Getenv("CI"))
	return v
}

// Unavailable ends the test because a service it needs is missing: a skip locally, a
// failure under CI=true.
func Unavailable(t testing.TB, service string, err error) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s unavailable under CI=true: %v", service, err)
	}
	t.Skipf("%s unavailable (set CI=true to make this a failure): %v", service, err)
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// PostgresURL returns the base URL of the test database: PARLEY_TEST_POSTGRES_URL or the default.
func PostgresURL() string {
	if v := os.Getenv("PARLEY_TEST_POSTGRES_URL"); v != "" {
		return v
	}
	return DefaultPostgresURL
}

// Postgres creates a fresh schema for the test, dropped when the test ends, and returns a
// connection URL whose search_path points at it. Everything the code under test creates
// without a schema qualifier lands there, so tests running in parallel never see each
// other's tables.
func Postgres(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	base := PostgresURL()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		Unavailable(t, "PostgreSQL at "+redactURL(base), err)
		return ""
	}
	defer conn.Close(ctx)
	schema := "t_" + randomSuffix()
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", redactURL(base), err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// PostgresPool opens a pool on a fresh schema (see Postgres), closed when the test ends.
func PostgresPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	dsn := Postgres(t)
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatalf("pgxpool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// RedisURL returns the base Redis URL: PARLEY_TEST_REDIS_URL or the default.
func RedisURL() string {
	if v := os.Getenv("PARLEY_TEST_REDIS_URL"); v != "" {
		return v
	}
	return DefaultRedisURL
}

// redisDatabases is how many logical databases a stock Redis has; database 0 holds the
// claims, the others are handed out.
const redisDatabases = 16

// Redis claims a logical database for the test (1–15), flushes it, and returns options
// that select it. The claim is a key with a TTL in the base database, so concurrent test
// binaries never share a database and a crashed test cannot hold one forever.
func Redis(t testing.TB) *redis.Options {
	t.Helper()
	opts, err := redis.ParseURL(RedisURL())
	if err != nil {
		t.Fatalf("PARLEY_TEST_REDIS_URL: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin := redis.NewClient(opts)
	defer admin.Close()
	if err := admin.Ping(ctx).Err(); err != nil {
		Unavailable(t, "Redis at "+opts.Addr, err)
		return nil
	}
	token := randomSuffix()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		for db := 1; db < redisDatabases; db++ {
			key := fmt.Sprintf("parley:testenv:db:%d", db)
			ok, err := admin.SetNX(ctx, key, token, 10*time.Minute).Result()
			if err != nil {
				t.Fatalf("claim redis db %d: %v", db, err)
			}
			if !ok {
				continue
			}
			mine := *opts
			mine.DB = db
			c := redis.NewClient(&mine)
			if err := c.FlushDB(ctx).Err(); err != nil {
				c.Close()
				t.Fatalf("flush redis db %d: %v", db, err)
			}
			c.Close()
			t.Cleanup(func() { releaseRedis(t, opts, key, token) })
			return &mine
		}
		if time.Now().After(deadline) {
			t.Fatalf("no free Redis database after 2m: every one of 1..%d is claimed", redisDatabases-1)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// releaseRedis frees the claim only if it is still ours.
func releaseRedis(t testing.TB, opts *redis.Options, key, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := redis.NewClient(opts)
	defer c.Close()
	const release = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`
	if err := c.Eval(ctx, release, []string{key}, token).Err(); err != nil {
		t.Errorf("release %s: %v", key, err)
	}
}

// RedisClient is Redis with a client already open, closed when the test ends.
func RedisClient(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(Redis(t))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Kafka starts an in-process Kafka-protocol broker (kfake) for the test and returns its
// bootstrap addresses. The group session timeout floor is lowered to 100 ms so that
// consumer-group tests can rebalance quickly; pass more options to change anything else.
func Kafka(t testing.TB, opts ...kfake.Opt) []string {
	t.Helper()
	all := append([]kfake.Opt{
		kfake.NumBrokers(1),
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
	}, opts...)
	c, err := kfake.NewCluster(all...)
	if err != nil {
		// kfake runs in this process: failing to start is a bug, not a missing service.
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}
