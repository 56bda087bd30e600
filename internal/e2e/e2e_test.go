// Package e2e runs Parley's roles as separate `parley` processes over real sockets:
// core, notification and two gateways, against real PostgreSQL and Redis and an
// in-process Kafka-protocol broker that the test owns.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/chatclient"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/runtime/protocol"
	"github.com/parleychat/parley/runtime/users"
	"github.com/parleychat/parley/runtime/webpush"
	"github.com/parleychat/parley/runtime/webpush/webpushtest"
)

// cluster starts roles of one binary with a shared environment.
type cluster struct {
	t   *testing.T
	bin string
	env []string
}

// start runs role as a process listening on addr and waits for its /readyz; it is
// stopped (SIGTERM) when the test ends.
func (c *cluster) start(name, role, addr string, extra ...string) *testenv.Process {
	c.t.Helper()
	p := &testenv.Process{Name: name, Path: c.bin, Args: append([]string{role}, extra...), Addr: addr,
		Env: append(append([]string(nil), c.env...), "PARLEY_LISTEN="+addr), ReadyTimeout: 60 * time.Second}
	p.Start(c.t)
	return p
}

// run runs a one-shot command (migrate) to its end.
func run(t *testing.T, bin string, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := (&testenv.Process{Path: bin, Args: args, Env: env}).Output(ctx)
	if err != nil {
		t.Fatalf("parley %v: %v\n%s", args, err, out)
	}
	return string(out)
}

var signingKey = strings.Repeat("e2e-signing-key-", 3)

func TestRolesAsSeparateProcesses(t *testing.T) {
	pg := testenv.Postgres(t)
	rdb := testenv.Redis(t)
	brokers := testenv.Kafka(t)
	bin := testenv.ParleyBinary(t)
	vapidPublic, vapidPrivate, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	const subject = "mailto:ops@parley.test"
	pushService := webpushtest.StartPushService(t, vapidPublic, subject, false)
	env := []string{
		"PARLEY_VAPID_PUBLIC_KEY=" + vapidPublic,
		"PARLEY_VAPID_PRIVATE_KEY=" + vapidPrivate,
		"PARLEY_VAPID_SUBJECT=" + subject,
		"PARLEY_WEBPUSH_ALLOW_INSECURE_ENDPOINTS=true",
		"PARLEY_POSTGRES_URL=" + pg,
		fmt.Sprintf("PARLEY_REDIS_URL=redis://%s/%d", rdb.Addr, rdb.DB),
		"PARLEY_KAFKA_BROKERS=" + strings.Join(brokers, ","),
		"PARLEY_KAFKA_PARTITIONS=4",
		"PARLEY_BUS=kafka",
		"PARLEY_JWT_SIGNING_KEY=" + signingKey,
		"PARLEY_LOG_LEVEL=info",
		"PARLEY_PRESENCE_TTL=6s", // short, so the killed gateway expires fast; heartbeats every 2 s
	}
	run(t, bin, env, "migrate")
	run(t, bin, env, "migrate") // idempotent

	c := &cluster{t: t, bin: bin, env: env}
	core := c.start("core", "core", testenv.FreeAddr(t))
	// As the operator deploys it, notification gets no signing key: it verifies no tokens.
	noKey := &cluster{t: t, bin: bin, env: append(append([]string(nil), env...), "PARLEY_JWT_SIGNING_KEY=")}
	noKey.start("notification", "notification", testenv.FreeAddr(t), "--sweep-interval=500ms")
	gw1 := c.start("gw1", "gateway", testenv.FreeAddr(t), "--gateway-id=gw1")
	gw2 := c.start("gw2", "gateway", testenv.FreeAddr(t), "--gateway-id=gw2")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	api := chatclient.New("http://" + core.Addr)
	register := func(name string) chatclient.User {
		u, err := api.Register(ctx, name, "correct horse battery staple")
		if err != nil {
			t.Fatalf("register %s: %v", name, err)
		}
		return u
	}
	alice, bob, carol, dave := register("alice"), register("bob"), register("carol"), register("dave")
	dm, err := api.OpenDirect(ctx, alice, bob.ID)
	if err != nil {
		t.Fatal(err)
	}
	group, err := api.CreateGroup(ctx, alice, "team", []string{bob.ID, carol.ID})
	if err != nil {
		t.Fatal(err)
	}
	dial := func(u chatclient.User, gw *testenv.Process) *chatclient.Conn {
		conn, err := chatclient.Dial(ctx, "ws://"+gw.Addr, u.Token)
		if err != nil {
			t.Fatalf("dial %s on %s: %v", u.Username, gw.Name, err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	// The gateways verify tokens with the shared key: an expired one, or one signed with
	// another key, is refused at the upgrade.
	past := func() time.Time { return time.Now().Add(-time.Hour) }
	stale, err := users.NewAuth([]byte(signingKey), time.Minute, past)
	if err != nil {
		t.Fatal(err)
	}
	other, err := users.NewAuth([]byte(strings.Repeat("another-key-", 3)), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, auth := range map[string]*users.Auth{"expired": stale, "foreign": other} {
		token, _, err := auth.IssueAccessToken(alice.ID)
		if err != nil {
			t.Fatal(err)
		}
		if c, err := chatclient.Dial(ctx, "ws://"+gw1.Addr, token); err == nil || !strings.Contains(err.Error(), "401") {
			if c != nil {
				c.Close()
			}
			t.Fatalf("%s token: dial = %v, want 401", name, err)
		}
	}
	aliceWS := dial(alice, gw1)
	bobPhone, bobLaptop := dial(bob, gw2), dial(bob, gw1)
	carolWS := dial(carol, gw2)

	// DM across gateways: ack for alice, the message on both of bob's devices.
	send(t, aliceWS, protocol.ClientFrame{Type: protocol.FrameSend, ID: "a-1", Room: dm, Body: "hi bob"})
	ack := next(t, ctx, aliceWS, func(f protocol.ServerFrame) bool { return f.Type == protocol.FrameAck && f.ID == "a-1" })
	if ack.Seq != 1 {
		t.Fatalf("ack = %+v", ack)
	}
	for _, d := range []*chatclient.Conn{bobPhone, bobLaptop} {
		m := next(t, ctx, d, chatclient.Is(protocol.FrameMessage))
		if m.Body != "hi bob" || m.Sender != alice.ID || m.MessageID != ack.MessageID {
			t.Fatalf("bob got %+v", m)
		}
	}
	// Delivered and read receipts come back to alice.
	send(t, bobPhone, protocol.ClientFrame{Type: protocol.FrameMark, Room: dm, Kind: protocol.ReceiptDelivered, Seq: 1})
	next(t, ctx, aliceWS, func(f protocol.ServerFrame) bool {
		return f.Type == protocol.FrameReceipt && f.User == bob.ID && f.DeliveredSeq == 1 && f.ReadSeq == 0
	})
	send(t, bobLaptop, protocol.ClientFrame{Type: protocol.FrameMark, Room: dm, Kind: protocol.ReceiptRead, Seq: 1})
	next(t, ctx, aliceWS, func(f protocol.ServerFrame) bool {
		return f.Type == protocol.FrameReceipt && f.User == bob.ID && f.ReadSeq == 1
	})
	// Typing crosses gateways too.
	send(t, bobPhone, protocol.ClientFrame{Type: protocol.FrameTyping, Room: dm})
	next(t, ctx, aliceWS, func(f protocol.ServerFrame) bool { return f.Type == protocol.FrameTypingOut && f.User == bob.ID })

	// Group message to bob and carol on different gateways; then carol blocks alice.
	send(t, aliceWS, protocol.ClientFrame{Type: protocol.FrameSend, ID: "a-2", Room: group, Body: "hello team"})
	next(t, ctx, carolWS, func(f protocol.ServerFrame) bool { return f.Type == protocol.FrameMessage && f.Body == "hello team" })
	if err := api.Block(ctx, carol, alice.ID); err != nil {
		t.Fatal(err)
	}
	send(t, aliceWS, protocol.ClientFrame{Type: protocol.FrameSend, ID: "a-3", Room: group, Body: "not for carol"})
	next(t, ctx, bobPhone, func(f protocol.ServerFrame) bool { return f.Type == protocol.FrameMessage && f.Body == "not for carol" })
	send(t, bobPhone, protocol.ClientFrame{Type: protocol.FrameSend, ID: "b-1", Room: group, Body: "marker"})
	got := next(t, ctx, carolWS, chatclient.Is(protocol.FrameMessage))
	if got.Body != "marker" {
		t.Fatalf("carol received %q before the marker: a blocked sender reached her", got.Body)
	}

	// Dave has no connection, only a push subscription: a DM to him arrives as an
	// encrypted Web Push that the local push service decrypts with his browser's keys.
	var key struct {
		PublicKey string `json:"public_key"`
	}
	if err := api.Do(ctx, "GET", "/api/v1/push/vapid-public-key", dave.Token, nil, &key); err != nil || key.PublicKey != vapidPublic {
		t.Fatalf("vapid key = %q, %v", key.PublicKey, err)
	}
	sub, _ := pushService.Subscribe(t)
	if err := api.Do(ctx, "PUT", "/api/v1/push/subscriptions", dave.Token, sub, nil); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	daveDM, err := api.OpenDirect(ctx, alice, dave.ID)
	if err != nil {
		t.Fatal(err)
	}
	send(t, aliceWS, protocol.ClientFrame{Type: protocol.FrameSend, ID: "a-push", Room: daveDM, Body: "are you there, dave?"})
	next(t, ctx, aliceWS, func(f protocol.ServerFrame) bool { return f.Type == protocol.FrameAck && f.ID == "a-push" })
	push := waitPush(t, pushService, 1)
	var payload struct {
		Type, Room, Sender, Preview string
	}
	if err := json.Unmarshal(push.Plaintext, &payload); err != nil {
		t.Fatalf("push payload %q: %v", push.Plaintext, err)
	}
	if payload.Type != "message" || payload.Room != daveDM || payload.Sender != alice.ID || payload.Preview != "are you there, dave?" {
		t.Fatalf("push payload = %+v", payload)
	}
	// Dave blocks alice: her next group message produces no push (a later one from bob
	// does). A blocker can no longer be added to her groups, so the group comes first.
	bobDave, err := api.OpenDirect(ctx, bob, dave.ID)
	if err != nil {
		t.Fatal(err)
	}
	daveGroup, err := api.CreateGroup(ctx, alice, "with dave", []string{dave.ID, bob.ID})
	if err != nil {
		t.Fatal(err)
	}
	if err := api.Block(ctx, dave, alice.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := api.CreateGroup(ctx, alice, "sneaky", []string{dave.ID}); err == nil {
		t.Fatal("alice added dave, who blocked her, to a new group")
	}
	send(t, aliceWS, protocol.ClientFrame{Type: protocol.FrameSend, ID: "a-push-2", Room: daveGroup, Body: "blocked preview"})
	next(t, ctx, bobLaptop, func(f protocol.ServerFrame) bool {
		return f.Type == protocol.FrameMessage && f.Body == "blocked preview"
	})
	send(t, bobPhone, protocol.ClientFrame{Type: protocol.FrameSend, ID: "b-push", Room: bobDave, Body: "from bob"})
	push = waitPush(t, pushService, 2)
	if err := json.Unmarshal(push.Plaintext, &payload); err != nil || payload.Preview != "from bob" {
		t.Fatalf("second push = %s (%v); alice's blocked message must not have been pushed", push.Plaintext, err)
	}
	// Dave mutes his DM with bob: bob's next message there is not pushed; one in the group,
	// which dave did not mute, is.
	if err := api.Do(ctx, "PUT", "/api/v1/rooms/"+bobDave+"/notifications", dave.Token, map[string]string{"level": "muted"}, nil); err != nil {
		t.Fatal(err)
	}
	send(t, bobPhone, protocol.ClientFrame{Type: protocol.FrameSend, ID: "b-muted", Room: bobDave, Body: "muted, no push"})
	next(t, ctx, bobPhone, func(f protocol.ServerFrame) bool { return f.Type == protocol.FrameAck && f.ID == "b-muted" })
	send(t, bobPhone, protocol.ClientFrame{Type: protocol.FrameSend, ID: "b-group", Room: daveGroup, Body: "the group is not muted"})
	push = waitPush(t, pushService, 3)
	if err := json.Unmarshal(push.Plaintext, &payload); err != nil || payload.Preview != "the group is not muted" {
		t.Fatalf("third push = %s (%v); the message in the muted DM must not have been pushed", push.Plaintext, err)
	}
	// Dave mutes the group too: bob's next message there is not pushed, but one that
	// mentions dave is (a mention pushes to the member mentioned whatever the level).
	if err := api.Do(ctx, "PUT", "/api/v1/rooms/"+daveGroup+"/notifications", dave.Token, map[string]string{"level": "muted"}, nil); err != nil {
		t.Fatal(err)
	}
	send(t, bobPhone, protocol.ClientFrame{Type: protocol.FrameSend, ID: "b-group-muted", Room: daveGroup, Body: "muted group, no push"})
	next(t, ctx, bobPhone, func(f protocol.ServerFrame) bool { return f.Type == protocol.FrameAck && f.ID == "b-group-muted" })
	mention := "look @" + strings.ToUpper(dave.Username)
	send(t, bobPhone, protocol.ClientFrame{Type: protocol.FrameSend, ID: "b-mention", Room: daveGroup, Body: mention})
	mentioned := next(t, ctx, bobLaptop, func(f protocol.ServerFrame) bool { return f.Type == protocol.FrameMessage && f.ID == "b-mention" })
	if len(mentioned.Mentions) != 1 || mentioned.Mentions[0] != dave.ID {
		t.Fatalf("message frame mentions = %v, want [dave]", mentioned.Mentions)
	}
	push = waitPush(t, pushService, 4)
	if err := json.Unmarshal(push.Plaintext, &payload); err != nil || payload.Preview != mention {
		t.Fatalf("fourth push = %s (%v); want the mention (the unmentioned message in the muted group must not be pushed)", push.Plaintext, err)
	}

	// Kill gateway 1 without any cleanup. Alice is offline for bob once presence expires;
	// meanwhile bob writes; alice reconnects to gateway 2 and resumes with no gap.
	gw1.Kill()
	next(t, ctx, bobPhone, func(f protocol.ServerFrame) bool {
		online, named := f.Presence[alice.ID]
		return f.Type == protocol.FramePresenceBatch && named && !online
	})
	for i := range 5 {
		send(t, bobPhone, protocol.ClientFrame{Type: protocol.FrameSend, ID: fmt.Sprint("b-dm-", i), Room: dm, Body: fmt.Sprint("while you were away ", i)})
		next(t, ctx, bobPhone, func(f protocol.ServerFrame) bool {
			return f.Type == protocol.FrameAck && f.ID == fmt.Sprint("b-dm-", i)
		})
	}
	aliceAgain := dial(alice, gw2)
	send(t, aliceAgain, protocol.ClientFrame{Type: protocol.FrameResume, Rooms: map[string]int64{dm: ack.Seq}})
	// The replay may interleave with a late real-time delivery of the same messages
	// (clients deduplicate by seq): what matters is that none is missing.
	missing := map[int64]bool{}
	for want := ack.Seq + 1; want <= ack.Seq+5; want++ {
		missing[want] = true
	}
	for len(missing) > 0 {
		m := next(t, ctx, aliceAgain, chatclient.Is(protocol.FrameMessage))
		if m.Room != dm || m.Seq <= ack.Seq || m.Seq > ack.Seq+5 {
			t.Fatalf("after resume: unexpected message seq %d in room %s (%q)", m.Seq, m.Room, m.Body)
		}
		delete(missing, m.Seq)
	}
}

// waitPush waits until the push service has received n notifications and returns the
// n-th, checking that it decrypted and carried a valid VAPID token.
func waitPush(t *testing.T, ps *webpushtest.PushService, n int) webpushtest.Received {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := ps.Received()
		if len(got) > n {
			t.Fatalf("push service received %d notifications, want %d", len(got), n)
		}
		if len(got) == n {
			r := got[n-1]
			if r.Err != nil {
				t.Fatalf("push %d was not valid Web Push: %v", n, r.Err)
			}
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("push service received %d notifications, want %d", len(got), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func send(t *testing.T, c *chatclient.Conn, f protocol.ClientFrame) {
	t.Helper()
	if err := c.Send(f); err != nil {
		t.Fatalf("send %s: %v", f.Type, err)
	}
}

func next(t *testing.T, ctx context.Context, c *chatclient.Conn, match func(protocol.ServerFrame) bool) protocol.ServerFrame {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	f, err := c.Next(ctx, match)
	if err != nil {
		t.Fatalf("waiting for a frame: %v", err)
	}
	return f
}
