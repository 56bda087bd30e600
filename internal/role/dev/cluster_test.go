package dev

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/chatclient"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/runtime/protocol"
)

// `parley dev --presence=redis --redis-cluster` over a real three-node Redis Cluster:
// presence, routing (sharded pub/sub) and the typing throttle all work with keys and
// channels spread over the nodes.
func TestDevOverRedisCluster(t *testing.T) {
	addrs := testenv.RedisCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := testConfig(t)
	cfg.Presence = PresenceRedis
	cfg.Core.RedisCluster = true
	cfg.Core.RedisURL = "redis://" + strings.Join(addrs, ",redis://")
	dev := startDev(t, ctx, cfg)
	api := dev.api
	var users []chatclient.User
	for _, name := range []string{"alice", "bob"} {
		u, err := api.Register(ctx, name, "correct horse battery staple")
		if err != nil {
			t.Fatalf("register %s: %v", name, err)
		}
		users = append(users, u)
	}
	alice, bob := users[0], users[1]
	dm, err := api.OpenDirect(ctx, alice, bob.ID)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(u chatclient.User) *chatclient.Conn {
		c, err := chatclient.Dial(ctx, "ws"+strings.TrimPrefix(dev.base, "http"), u.Token)
		if err != nil {
			t.Fatalf("dial %s: %v", u.Username, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	aliceWS, bobWS := dial(alice), dial(bob)
	must(t, aliceWS.Send(protocol.ClientFrame{Type: protocol.FrameSend, ID: "a-1", Room: dm, Body: "over the cluster"}))
	next(t, ctx, aliceWS, chatclient.Is(protocol.FrameAck))
	if m := next(t, ctx, bobWS, chatclient.Is(protocol.FrameMessage)); m.Body != "over the cluster" {
		t.Fatalf("bob got %+v", m)
	}
	must(t, bobWS.Send(protocol.ClientFrame{Type: protocol.FrameTyping, Room: dm}))
	if ty := next(t, ctx, aliceWS, chatclient.Is(protocol.FrameTypingOut)); ty.User != bob.ID {
		t.Fatalf("typing = %+v", ty)
	}
}
