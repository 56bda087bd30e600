package presence

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/internal/testenv"
)

// scriptSizes records how many "user|conn" members each script call carries.
type scriptSizes struct {
	mu        sync.Mutex
	sizes     []int
	pipelines []int // members carried by all the scripts of each pipeline
}

func (s *scriptSizes) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessPipelineHook sees the per-user scripts, sent as one pipeline per batch: the
// pipeline as a whole is bounded too.
func (s *scriptSizes) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		total := 0
		for _, cmd := range cmds {
			total += s.record(cmd)
		}
		s.mu.Lock()
		s.pipelines = append(s.pipelines, total)
		s.mu.Unlock()
		return next(ctx, cmds)
	}
}

func (s *scriptSizes) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		s.record(cmd)
		return next(ctx, cmd)
	}
}

// record notes the members a script call carries and returns their number.
func (s *scriptSizes) record(cmd redis.Cmder) int {
	if name := strings.ToLower(cmd.Name()); name != "evalsha" && name != "eval" {
		return 0
	}
	members := 0
	for _, a := range cmd.Args() {
		if v, ok := a.(string); ok && strings.Contains(v, sep) {
			members++
		}
	}
	s.mu.Lock()
	s.sizes = append(s.sizes, members)
	s.mu.Unlock()
	return members
}

// The heartbeat of a big gateway is never one unbounded script: every call, and every
// pipeline of per-user calls, carries at most heartbeatBatch connections, and the result is still exactly the hub (2 100 held,
// 1 100 stale from before expired).
func TestHeartbeatRunsInBoundedChunks(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(testenv.Redis(t))
	defer rdb.Close()
	hook := &scriptSizes{}
	rdb.AddHook(hook)
	r := NewRedis(rdb, "", Config{})
	var before, held []Conn
	for i := range 3200 {
		c := Conn{UserID: fmt.Sprintf("u%04d", i), GatewayID: "gw", ConnID: "1"}
		before = append(before, c)
		if i < 2100 {
			held = append(held, c)
		}
	}
	if _, err := r.Heartbeat(ctx, "gw", before); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Heartbeat(ctx, "gw", held); err != nil {
		t.Fatal(err)
	}
	hook.mu.Lock()
	sizes := append([]int(nil), hook.sizes...)
	pipelines := append([]int(nil), hook.pipelines...)
	hook.mu.Unlock()
	for _, n := range pipelines {
		if n > heartbeatBatch {
			t.Fatalf("a pipeline of scripts carried %d connections, more than %d", n, heartbeatBatch)
		}
	}
	calls := 0
	for _, n := range sizes {
		if n > heartbeatBatch {
			t.Fatalf("a script call carried %d connections, more than %d", n, heartbeatBatch)
		}
		calls++
	}
	if calls < 3200/heartbeatBatch {
		t.Fatalf("%d script calls for 3 200 + 2 100 + 1 100 connections: the hook saw nothing", calls)
	}
	users := make([]string, 0, len(before))
	for _, c := range before {
		users = append(users, c.UserID)
	}
	got, err := r.Gateways(ctx, users)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(held) {
		t.Fatalf("%d users online after the heartbeat, want exactly the %d held", len(got), len(held))
	}
}
