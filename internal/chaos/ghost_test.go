package chaos

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/internal/chatclient"
	"github.com/parleychat/parley/runtime/presence"
	"github.com/parleychat/parley/runtime/protocol"
)

// ghostMargin is how long past the presence TTL (from the kill) a user whose only
// connection died with its gateway may still look online to a contact. Generous, since
// the machine may be loaded: a ghost (the restarted gateway re-asserting a connection
// of its previous boot) would stay online for good, not a few seconds more.
const ghostMargin = 30 * time.Second

// killGatewayFault kills gw1 and starts it again in place (same address and gateway
// id), under load. Its load clients reconnect to gw2 and resume (the checker proves
// nothing was lost); besides them, a user connected only to gw1 does not reconnect, on
// purpose: a contact watching it on gw2 must see it go offline within the presence TTL
// (plus a margin), and afterwards Redis must hold nothing of that user at all, live or
// expired, and must not announce it online again.
func killGatewayFault(t *testing.T, w *world) time.Time {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d := w.d
	api := chatclient.New("http://" + d.core.Addr)
	ghost, err := api.Register(ctx, "ghost_"+randomHex(3), password)
	if err != nil {
		t.Fatalf("register the ghost: %v", err)
	}
	contact, err := api.Register(ctx, "contact_"+randomHex(3), password)
	if err != nil {
		t.Fatalf("register the contact: %v", err)
	}
	if _, err := api.OpenDirect(ctx, contact, ghost.ID); err != nil {
		t.Fatalf("direct room of the ghost and the contact: %v", err)
	}
	cc, err := chatclient.Dial(ctx, "ws://"+d.gw2.Addr, contact.Token)
	if err != nil {
		t.Fatalf("contact on gw2: %v", err)
	}
	defer cc.Close()
	gc, err := chatclient.Dial(ctx, "ws://"+d.gw1.Addr, ghost.Token)
	if err != nil {
		t.Fatalf("ghost on gw1: %v", err)
	}
	defer gc.Close()
	if err := cc.Send(protocol.ClientFrame{Type: protocol.FrameWatch, Users: []string{ghost.ID}}); err != nil {
		t.Fatalf("watch: %v", err)
	}
	if err := waitPresence(ctx, cc, ghost.ID, true, time.Now().Add(30*time.Second)); err != nil {
		t.Fatalf("the contact never saw the ghost online: %v", err)
	}

	killed := time.Now()
	d.gw1.Restart(t)
	healed := time.Now()
	deadline := killed.Add(presenceTTL + ghostMargin)
	if err := waitPresence(ctx, cc, ghost.ID, false, deadline); err != nil {
		t.Errorf("the ghost still looks online to its contact %v after gw1 was killed (presence TTL %v, gw1 back after %v): %v",
			time.Since(killed).Round(time.Millisecond), presenceTTL, healed.Sub(killed).Round(time.Millisecond), err)
		return healed
	}
	offline := time.Since(killed)
	t.Logf("ghost: seen offline by its contact %v after the kill (presence TTL %v; gw1 was back after %v)",
		offline.Round(time.Millisecond), presenceTTL, healed.Sub(killed).Round(time.Millisecond))

	// Nothing of the ghost is left in presence: no live gateway through the presence
	// package, and no key or member naming it at all (expired entries included), once
	// the sweeper and the restarted gateway's heartbeat have cleaned up.
	rdb := redis.NewClient(&redis.Options{Addr: d.redisAddr})
	defer rdb.Close()
	pres := presence.NewRedis(rdb, "", presence.Config{TTL: presenceTTL})
	var left string
	for clean := time.Now().Add(2*presenceTTL + ghostMargin); ; time.Sleep(200 * time.Millisecond) {
		left = ghostInRedis(ctx, rdb, pres, ghost.ID)
		if left == "" || time.Now().After(clean) {
			break
		}
	}
	if left != "" {
		t.Errorf("Redis still holds presence of the ghost of gw1's previous boot: %s", left)
	}
	// Two heartbeats of the restarted gw1 later, the contact has not been told the ghost
	// is back (a heartbeat re-asserting the dead connection would announce it).
	watch, stop := context.WithTimeout(ctx, 2*presenceTTL/3+time.Second)
	defer stop()
	if f, err := cc.Next(watch, presenceOf(ghost.ID, true)); err == nil {
		t.Errorf("the contact was told the ghost is online again after the restart: %+v", f)
	}
	return healed
}

// presenceOf matches a presence frame that says userID is online (or not).
func presenceOf(userID string, online bool) func(protocol.ServerFrame) bool {
	return func(f protocol.ServerFrame) bool {
		switch f.Type {
		case protocol.FramePresenceBatch:
			v, ok := f.Presence[userID]
			return ok && v == online
		case protocol.FramePresence:
			return f.User == userID && f.Online != nil && *f.Online == online
		}
		return false
	}
}

// waitPresence reads the contact's frames until one says userID is online (or not), or
// deadline passes.
func waitPresence(ctx context.Context, c *chatclient.Conn, userID string, online bool, deadline time.Time) error {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	_, err := c.Next(ctx, presenceOf(userID, online))
	return err
}

// ghostInRedis says what Redis still holds of userID: a gateway the presence package
// finds, or any key whose name or content names the user (whatever the key layout),
// empty when nothing.
func ghostInRedis(ctx context.Context, rdb *redis.Client, pres *presence.Redis, userID string) string {
	gws, err := pres.Gateways(ctx, []string{userID})
	if err != nil {
		return fmt.Sprintf("presence lookup failed: %v", err)
	}
	if len(gws[userID]) > 0 {
		return fmt.Sprintf("live on gateways %v", gws[userID])
	}
	var found []string
	iter := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		if strings.Contains(key, userID) {
			found = append(found, "key "+key)
			continue
		}
		var members []string
		switch rdb.Type(ctx, key).Val() {
		case "zset":
			members = rdb.ZRange(ctx, key, 0, -1).Val()
		case "set":
			members = rdb.SMembers(ctx, key).Val()
		case "hash":
			members = rdb.HKeys(ctx, key).Val()
		case "list":
			members = rdb.LRange(ctx, key, 0, -1).Val()
		case "string":
			members = []string{rdb.Get(ctx, key).Val()}
		}
		for _, m := range members {
			if strings.Contains(m, userID) {
				found = append(found, fmt.Sprintf("%q in %s", m, key))
			}
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Sprintf("scan failed: %v", err)
	}
	return strings.Join(found, ", ")
}
