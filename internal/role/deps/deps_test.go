package deps

import (
	"context"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/internal/testenv"
)

func TestParseClusterURLs(t *testing.T) {
	tests := []struct {
		name      string
		urls      string
		wantAddrs []string
		wantUser  string
		wantPass  string
		wantTLS   bool
		wantErr   string
	}{
		{"one seed", "redis://10.0.0.1:6379", []string{"10.0.0.1:6379"}, "", "", false, ""},
		{"several seeds, spaces", "redis://:pw@a:7000, redis://b:7001 ,redis://c", []string{"a:7000", "b:7001", "c:6379"}, "", "pw", false, ""},
		{"TLS and user from the first", "rediss://u:pw@a:7000,rediss://b:7000", []string{"a:7000", "b:7000"}, "u", "pw", true, ""},
		{"database 0 explicit", "redis://a:7000/0", []string{"a:7000"}, "", "", false, ""},
		{"another database", "redis://a:7000/3", nil, "", "", false, "only database 0"},
		{"another database later", "redis://a:7000,redis://b:7000/2", nil, "", "", false, "only database 0"},
		{"empty", " , ", nil, "", "", false, "no seed"},
		{"bad scheme", "http://a:7000", nil, "", "", false, "--redis-url"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := ParseClusterURLs(tc.urls)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(o.Addrs, tc.wantAddrs) || o.Username != tc.wantUser || o.Password != tc.wantPass || (o.TLSConfig != nil) != tc.wantTLS {
				t.Fatalf("options = addrs %v user %q password %q TLS %v", o.Addrs, o.Username, o.Password, o.TLSConfig != nil)
			}
		})
	}
}

// OpenRedis with cluster set returns a cluster client that reaches every node from one
// seed.
func TestOpenRedisCluster(t *testing.T) {
	ctx := context.Background()
	addrs := testenv.RedisCluster(t, 3)
	rdb, err := OpenRedis(ctx, "redis://"+addrs[0], true)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	c, ok := rdb.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("OpenRedis(cluster) returned %T", rdb)
	}
	var masters atomic.Int32
	if err := c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return n.Ping(ctx).Err() }); err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		if err := c.Set(ctx, strings.Repeat("k", i+1), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		if n.DBSize(ctx).Val() > 0 {
			masters.Add(1)
		}
		return nil
	})
	if n := masters.Load(); n < 2 {
		t.Fatalf("keys on %d nodes: the client did not spread them", n)
	}
	if _, err := OpenRedis(ctx, "redis://"+addrs[0]+"/4", true); err == nil {
		t.Fatal("a cluster URL naming database 4 was accepted")
	}
}
