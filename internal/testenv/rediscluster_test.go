package testenv

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
)

// The cluster is a real one: keys spread over its nodes, a script over keys of two slots
// is refused with CROSSSLOT, and keys sharing a hash tag are allowed together.
func TestRedisCluster(t *testing.T) {
	ctx := context.Background()
	c := RedisClusterClient(t)
	nodes := map[string]bool{}
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		if err := c.Set(ctx, k, 1, 0).Err(); err != nil {
			t.Fatal(err)
		}
		owner, err := c.MasterForKey(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		nodes[owner.Options().Addr] = true
	}
	if len(nodes) < 2 {
		t.Fatalf("8 keys all on %v: the slots are not spread", nodes)
	}
	const both = `redis.call('SET', KEYS[1], 1) redis.call('SET', KEYS[2], 1) return 1`
	err := c.Eval(ctx, both, []string{"a", "b"}).Err()
	if err == nil || !redis.HasErrorPrefix(err, "CROSSSLOT") {
		t.Fatalf("script over two slots: err = %v, want CROSSSLOT", err)
	}
	if err := c.Eval(ctx, both, []string{"{u:x}:a", "{u:x}:b"}).Err(); err != nil {
		t.Fatalf("script over one hash tag: %v", err)
	}
}
