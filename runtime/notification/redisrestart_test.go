package notification

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/runtime/bus"
	"github.com/parleychat/parley/runtime/presence"
	"github.com/parleychat/parley/runtime/protocol"
)

// ownRedis is a redis-server the test starts, kills and restarts (empty) on one port.
type ownRedis struct {
	t    *testing.T
	port int
	cmd  *exec.Cmd
}

func startOwnRedis(t *testing.T) *ownRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		testenv.Unavailable(t, "redis-server binary", err)
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	r := &ownRedis{t: t, port: port}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *ownRedis) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

func (r *ownRedis) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--protected-mode", "no")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: r.addr()})
	defer c.Close()
	waitFor(r.t, "redis-server to answer", func() bool { return c.Ping(context.Background()).Err() == nil })
}

func (r *ownRedis) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// Redis restarted empty (issue 11, fault 1): the gateway's routed subscription notices
// it lost Redis and got it back, re-asserts its connections at once, notification holds
// the events it could not fan out (not committed, not ready) and delivers them once
// presence is rebuilt: the connected clients get every message without reconnecting,
// and nobody is pushed as if offline.
func TestRedisRestartedEmptyLosesNothingForConnectedClients(t *testing.T) {
	srv := startOwnRedis(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: srv.addr(), DialTimeout: time.Second, ReadTimeout: 2 * time.Second, MaxRetries: 1})
	defer rdb.Close()
	pres := presence.NewRedis(rdb, "", presence.Config{})
	held := []presence.Conn{{UserID: "alice", GatewayID: "gw1", ConnID: "a1"}, {UserID: "bob", GatewayID: "gw1", ConnID: "b1"}}

	// The gateway: its hub holds alice and bob; a lost and regained subscription
	// triggers a heartbeat at once (what the gateway role wires to RunHeartbeatOn).
	routes := NewRedisRoutes(rdb, "", nil)
	box := newInbox()
	var mu sync.Mutex
	var states []bool
	reassert := make(chan struct{}, 1)
	stop, err := routes.SubscribeWatch(ctx, "gw1", box.add, func(up bool) {
		mu.Lock()
		states = append(states, up)
		mu.Unlock()
		if up {
			select {
			case reassert <- struct{}{}:
			default:
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if _, err := pres.Heartbeat(ctx, "gw1", held); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-reassert:
				for ctx.Err() == nil {
					if _, err := pres.Heartbeat(ctx, "gw1", held); err == nil {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		}
	}()

	// Notification.
	guard := NewPresenceGuard(pres, rdb, "", 500*time.Millisecond)
	pushes := &pushLog{}
	book := roomBook{members: map[string][]string{"r": {"alice", "bob"}}}
	n := New(book, guard, routes, pushes, nil, prometheus.NewRegistry(), WithRetry(Retry{Attempts: 2, Backoff: 10 * time.Millisecond}))
	mem, err := bus.NewMemory(1)
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx, mem) }()
	send := func(seq int) {
		publishEvent(t, mem, protocol.TopicMessageDelivered, "r", &protocol.MessageDelivered{RoomID: "r", SenderID: "alice",
			ClientID: fmt.Sprint("c", seq), ServerID: fmt.Sprint("m", seq), Seq: int64(seq), Body: "x", CreatedAt: time.Now()})
	}
	messages := func() []int64 {
		var seqs []int64
		for _, d := range box.snapshot() {
			if d.Frame.Type == protocol.FrameMessage {
				seqs = append(seqs, d.Frame.Seq)
			}
		}
		return seqs
	}
	send(1)
	waitFor(t, "message 1", func() bool { return len(messages()) == 1 })

	srv.stop()
	send(2)
	send(3)
	waitFor(t, "the subscription to report Redis lost", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(states) > 0 && !states[len(states)-1]
	})
	waitFor(t, "notification to report not ready", func() bool { return n.Ready() != nil })
	srv.start() // empty: presence and routing are gone
	back := time.Now()
	waitFor(t, "messages 2 and 3 after Redis came back", func() bool { return len(messages()) == 3 })
	t.Logf("missed messages delivered %s after Redis came back (rebuild grace 500ms)", time.Since(back).Round(time.Millisecond))
	if got := messages(); got[1] != 2 || got[2] != 3 {
		t.Fatalf("messages delivered in order %v, want 1 2 3", got)
	}
	waitFor(t, "notification to be ready again", func() bool { return n.Ready() == nil })
	if got := pushes.list(); len(got) != 0 {
		t.Fatalf("pushed %v: connected users were treated as offline", got)
	}
	mu.Lock()
	if last := states[len(states)-1]; !last {
		t.Fatalf("subscription states %v, want back up last", states)
	}
	mu.Unlock()
	cancel()
	<-done
}

func (b *inbox) snapshot() []Delivery {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Delivery(nil), b.got...)
}
