package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisSlots is the number of hash slots of a Redis Cluster.
const redisSlots = 16384

// RedisCluster starts a Redis Cluster of `primaries` redis-server processes (no
// replicas) on free loopback ports in a temporary directory, assigns each an equal range
// of the hash slots, waits until every node reports cluster_state:ok, and returns the
// nodes' addresses ("127.0.0.1:port"). The processes are killed when the test ends.
//
// A missing redis-server skips the test locally and fails it under CI=true.
func RedisCluster(t testing.TB, primaries int) []string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		Unavailable(t, "redis-server (for a Redis Cluster)", err)
		return nil
	}
	if primaries < 1 {
		t.Fatalf("RedisCluster: %d primaries", primaries)
	}
	dir := t.TempDir()
	addrs := make([]string, primaries)
	for i := range primaries {
		addrs[i] = startClusterNode(t, bin, dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := formCluster(ctx, addrs); err != nil {
		t.Fatalf("form Redis Cluster %v: %v", addrs, err)
	}
	return addrs
}

// RedisClusterClient starts a three-primary cluster (RedisCluster) and returns a cluster
// client for it that knows every node's slots, closed when the test ends.
func RedisClusterClient(t testing.TB) *redis.ClusterClient {
	t.Helper()
	addrs := RedisCluster(t, 3)
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return n.Ping(ctx).Err() }); err != nil {
		t.Fatalf("Redis Cluster %v: %v", addrs, err)
	}
	return c
}

// startClusterNode runs one cluster-enabled redis-server on a free port (the cluster bus
// takes port+10000, which must be free too) and returns its address once it answers.
func startClusterNode(t testing.TB, bin, dir string) string {
	t.Helper()
	var lastErr error
	for range 10 {
		port, err := freeClusterPort()
		if err != nil {
			lastErr = err
			continue
		}
		addr, err := runClusterNode(t, bin, dir, port)
		if err == nil {
			return addr
		}
		lastErr = err
	}
	t.Fatalf("start a cluster redis-server: %v", lastErr)
	return ""
}

// freeClusterPort picks a loopback port that is free, as is its cluster bus port. Another
// process may still take either before redis-server binds: the caller retries.
func freeClusterPort() (int, error) {
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if port+10000 > 65535 {
			continue
		}
		bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000))
		if err != nil {
			continue
		}
		bus.Close()
		return port, nil
	}
	return 0, errors.New("no free port pair (port, port+10000)")
}

func runClusterNode(t testing.TB, bin, dir string, port int) (string, error) {
	p := strconv.Itoa(port)
	nodeDir := filepath.Join(dir, p)
	if err := os.MkdirAll(nodeDir, 0o755); err != nil {
		return "", err
	}
	cmd := exec.Command(bin,
		"--port", p, "--bind", "127.0.0.1", "--protected-mode", "no",
		"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000",
		"--dir", nodeDir, "--save", "", "--appendonly", "no", "--daemonize", "no")
	out := &LogTail{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	addr := "127.0.0.1:" + p
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			break
		}
		select {
		case werr := <-exited:
			return "", fmt.Errorf("redis-server on %s exited (%v): %s", addr, werr, out.Tail(20))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return "", fmt.Errorf("redis-server on %s does not answer: %v: %s", addr, err, out.Tail(20))
		}
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	return addr, nil
}

// formCluster gives each node an equal slot range, introduces them to the first one and
// waits until every node sees all of them and all slots served.
func formCluster(ctx context.Context, addrs []string) error {
	clients := make([]*redis.Client, len(addrs))
	for i, a := range addrs {
		clients[i] = redis.NewClient(&redis.Options{Addr: a})
		defer clients[i].Close()
	}
	per := redisSlots / len(addrs)
	for i, c := range clients {
		start, end := i*per, (i+1)*per-1
		if i == len(clients)-1 {
			end = redisSlots - 1
		}
		if err := c.ClusterAddSlotsRange(ctx, start, end).Err(); err != nil {
			return fmt.Errorf("%s: add slots %d-%d: %w", addrs[i], start, end, err)
		}
	}
	host, port, _ := net.SplitHostPort(addrs[0])
	for i, c := range clients[1:] {
		if err := c.ClusterMeet(ctx, host, port).Err(); err != nil {
			return fmt.Errorf("%s: meet %s: %w", addrs[i+1], addrs[0], err)
		}
	}
	want := []string{"cluster_state:ok", "cluster_slots_assigned:" + strconv.Itoa(redisSlots),
		"cluster_known_nodes:" + strconv.Itoa(len(addrs))}
	for {
		ready := true
		var last string
		for _, c := range clients {
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			for _, w := range want {
				if !strings.Contains(info, w) {
					ready, last = false, info
				}
			}
			// Every node must also route every slot: its own view of the slot map.
			if ready {
				shards, err := c.ClusterShards(ctx).Result()
				if err != nil {
					return err
				}
				serving := 0
				for _, sh := range shards {
					if len(sh.Slots) > 0 {
						serving++
					}
				}
				if serving != len(addrs) {
					ready, last = false, fmt.Sprintf("%d shards serving slots known", serving)
				}
			}
		}
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not ok: %w (last: %s)", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
