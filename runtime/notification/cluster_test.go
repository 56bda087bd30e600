package notification

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/internal/testenv"
)

// The routes contract over a real Redis Cluster (sharded pub/sub).
func TestRoutesContractRedisCluster(t *testing.T) {
	rdb := testenv.RedisClusterClient(t)
	runRoutesContract(t, func(t *testing.T) routes {
		return NewRedisRoutes(rdb, fmt.Sprintf("test:%s:%d:", t.Name(), time.Now().UnixNano()), nil)
	})
}

// Each gateway process subscribes through its own cluster client, notification routes
// through another: SPUBLISH reaches a subscriber whatever node its channel lives on, and
// reports zero receivers for a gateway nobody listens for.
func TestClusterRoutesReachEveryNode(t *testing.T) {
	ctx := context.Background()
	addrs := testenv.RedisCluster(t, 3)
	client := func() *redis.ClusterClient {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
		t.Cleanup(func() { c.Close() })
		return c
	}
	pub := client()
	publisher := NewRedisRoutes(pub, "", nil)
	// Gateways until their channels sit on every node.
	byNode := map[string]string{}
	for i := 0; len(byNode) < 3 && i < 1000; i++ {
		gw := fmt.Sprint("gw-", i)
		owner, err := pub.MasterForKey(ctx, publisher.Channel(gw))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := byNode[owner.Options().Addr]; !ok {
			byNode[owner.Options().Addr] = gw
		}
	}
	if len(byNode) != 3 {
		t.Fatalf("channels landed on %d nodes only: %v", len(byNode), byNode)
	}
	boxes := map[string]*inbox{}
	for _, gw := range byNode {
		box := newInbox()
		stop, err := NewRedisRoutes(client(), "", nil).Subscribe(ctx, gw, box.add)
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		boxes[gw] = box
	}
	for gw := range boxes {
		if err := publisher.Route(ctx, gw, Delivery{Users: []string{"u-" + gw}}); err != nil {
			t.Fatalf("route to %s: %v", gw, err)
		}
	}
	for gw, box := range boxes {
		got := box.waitLen(t, 1)
		if len(got) != 1 || got[0].Users[0] != "u-"+gw {
			t.Fatalf("%s received %+v, want only its own delivery", gw, got)
		}
	}
	if err := publisher.Route(ctx, "gw-nobody", Delivery{Users: []string{"a"}}); !errors.Is(err, ErrNoReceiver) {
		t.Fatalf("route to a gateway without subscriber: %v, want ErrNoReceiver", err)
	}
}

// The rebuild grace of the guard holds on a cluster: AliveKey and the users live on
// different nodes.
func TestPresenceGuardWaitsForTheRebuildCluster(t *testing.T) {
	runGuardRebuild(t, testenv.RedisClusterClient(t))
}

// Marks of events hash to every node; each is seen once marked, by any client.
func TestRedisMarksCluster(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.RedisClusterClient(t)
	a, b := NewRedisMarks(rdb, "", time.Minute), NewRedisMarks(rdb, "", time.Minute)
	for i := range 50 {
		key := fmt.Sprint("event-", i)
		if seen, err := a.Seen(ctx, key); err != nil || seen {
			t.Fatalf("%s seen before marking: %v, %v", key, seen, err)
		}
		if err := a.Mark(ctx, key); err != nil {
			t.Fatal(err)
		}
		if seen, err := b.Seen(ctx, key); err != nil || !seen {
			t.Fatalf("%s not seen after marking: %v, %v", key, seen, err)
		}
	}
}

// End to end on a cluster: a delivery to a gateway nobody listens for falls back to push
// and prunes that gateway's entries (slot-local steps on the users' and the gateway's
// nodes), while the live gateway gets its delivery.
func TestClusterNoReceiverIsPushedAndPruned(t *testing.T) {
	noReceiverIsPushedAndPruned(t, testenv.RedisClusterClient(t), "")
}

// When the cluster moves a gateway channel's slot to another node (resharding; a
// failover looks the same to the subscriber), Redis drops the subscription: the
// subscriber reports itself down, subscribes again on the new owner and reports itself
// up, and deliveries arrive again.
func TestClusterRoutesFollowAMovedSlot(t *testing.T) {
	ctx := context.Background()
	addrs := testenv.RedisCluster(t, 3)
	sub := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer sub.Close()
	pub := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer pub.Close()
	routes := NewRedisRoutes(sub, "", nil)
	states := make(chan bool, 16)
	box := newInbox()
	stop, err := routes.SubscribeWatch(ctx, "gw-moving", box.add, func(up bool) { states <- up })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	publisher := NewRedisRoutes(pub, "", nil)
	if err := publisher.Route(ctx, "gw-moving", Delivery{Users: []string{"before"}}); err != nil {
		t.Fatal(err)
	}
	box.waitLen(t, 1)

	channel := routes.Channel("gw-moving")
	slot, err := pub.ClusterKeySlot(ctx, channel).Result()
	if err != nil {
		t.Fatal(err)
	}
	from, err := pub.MasterForKey(ctx, channel)
	if err != nil {
		t.Fatal(err)
	}
	var to *redis.Client
	for _, a := range addrs {
		if a != from.Options().Addr {
			to = redis.NewClient(&redis.Options{Addr: a})
			defer to.Close()
			break
		}
	}
	toID, err := to.Do(ctx, "cluster", "myid").Text()
	if err != nil {
		t.Fatal(err)
	}
	// The slot holds no key: assigning it to the other node is the whole migration.
	for _, c := range []*redis.Client{to, from} {
		if err := c.Do(ctx, "cluster", "setslot", slot, "node", toID).Err(); err != nil {
			t.Fatalf("setslot on %s: %v", c.Options().Addr, err)
		}
	}
	waitState := func(want bool) {
		t.Helper()
		select {
		case got := <-states:
			if got != want {
				t.Fatalf("subscription state %v, want %v", got, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("subscription never reported up=%v after the slot moved", want)
		}
	}
	waitState(false)
	waitState(true)
	// Only the new owner accepts the subscription (the others answer MOVED); the
	// client's own slot map may lag, so ask the node.
	counts, err := to.PubSubShardNumSub(ctx, channel).Result()
	if err != nil {
		t.Fatal(err)
	}
	if counts[channel] != 1 {
		t.Fatalf("subscribers of %s on its new owner %s = %v, want 1", channel, to.Options().Addr, counts)
	}
	// The publisher's client still believes in the old owner: its MOVED is followed.
	waitFor(t, "a delivery after the move", func() bool {
		return publisher.Route(ctx, "gw-moving", Delivery{Users: []string{"after"}}) == nil
	})
	got := box.waitLen(t, 2)
	if got[len(got)-1].Users[0] != "after" {
		t.Fatalf("deliveries %+v, want the one after the move last", got)
	}
}
