package notification

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/runtime/notification"
	"github.com/parleychat/parley/runtime/presence"
	"github.com/parleychat/parley/runtime/protocol"
	"github.com/parleychat/parley/runtime/users"
	"github.com/parleychat/parley/runtime/webpush"
	"github.com/parleychat/parley/runtime/webpush/webpushtest"
)

// rooms is a fixed membership with no blocks; everyone wants pushes.
type rooms map[string][]string

func (r rooms) Recipients(_ context.Context, room, _ string) ([]string, error) { return r[room], nil }
func (r rooms) Contacts(context.Context, string) ([]string, error)             { return nil, nil }
func (r rooms) PushTargets(_ context.Context, _ string, us []string) ([]string, error) {
	return us, nil
}

// countingStore counts how subscriptions are loaded.
type countingStore struct {
	*webpush.MemoryStore
	one, many atomic.Int32
}

func (s *countingStore) ListByUser(ctx context.Context, u string) ([]webpush.Subscription, error) {
	s.one.Add(1)
	return s.MemoryStore.ListByUser(ctx, u)
}

func (s *countingStore) ListByUsers(ctx context.Context, us []string) (map[string][]webpush.Subscription, error) {
	s.many.Add(1)
	return s.MemoryStore.ListByUsers(ctx, us)
}

type countingUsers struct{ calls atomic.Int32 }

func (u *countingUsers) User(_ context.Context, id string) (users.User, error) {
	u.calls.Add(1)
	return users.User{ID: id, Username: id}, nil
}

// A 2 000-member room with 1 500 members offline, pushed through a push service that
// does not answer: the message's fan-out returns while the pushes are still in flight,
// and another room's ack and delivery flow meanwhile. The pushes then all go out, with
// one look-up of the sender's name and one query for the subscriptions.
func TestBigRoomPushesDoNotBlockOtherRooms(t *testing.T) {
	ctx := context.Background()
	release := make(chan struct{})
	var inFlight, served atomic.Int32
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		inFlight.Add(1)
		<-release
		served.Add(1)
		w.WriteHeader(http.StatusCreated)
	}))
	defer slow.Close()
	var releaseOnce sync.Once
	releaseAll := func() { releaseOnce.Do(func() { close(release) }) }
	defer releaseAll()

	pub, priv, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	cfg := webpush.Config{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subject: "mailto:ops@parley.test",
		AllowInsecureEndpoints: true, Workers: 2, QueueSize: 8, RequestTimeout: time.Minute}
	store := &countingStore{MemoryStore: webpush.NewMemoryStore()}
	browser, err := webpushtest.NewBrowser()
	if err != nil {
		t.Fatal(err)
	}
	pres := presence.NewMemory(presence.Config{})
	routes := notification.NewMemoryRoutes()
	var mu sync.Mutex
	var got []notification.Delivery
	stop, err := routes.Subscribe(ctx, "gw1", func(d notification.Delivery) {
		mu.Lock()
		got = append(got, d)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	var members []string
	for i := range 2000 {
		u := fmt.Sprintf("u%04d", i)
		members = append(members, u)
		if i < 500 {
			if _, err := pres.Connect(ctx, presence.Conn{UserID: u, GatewayID: "gw1", ConnID: "c"}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := store.Add(ctx, u, browser.Subscription(fmt.Sprintf("%s/push/%s", slow.URL, u))); err != nil {
			t.Fatal(err)
		}
	}
	sender, err := webpush.NewSender(cfg, store, webpush.WithMetrics(webpush.NewMetrics(prometheus.NewRegistry())))
	if err != nil {
		t.Fatal(err)
	}
	names := &countingUsers{}
	pusher := &Pusher{Pool: webpush.NewPool(sender), Users: names}
	defer pusher.Close()
	n := notification.New(rooms{"big": members, "small": {"u0001", "u0002"}}, pres, routes, pusher, nil, nil)

	big := &protocol.MessageDelivered{RoomID: "big", SenderID: "u0000", ClientID: "c1", ServerID: "m1", Seq: 1, Body: "hi", CreatedAt: time.Now()}
	if err := n.MessageDelivered(ctx, big); err != nil {
		t.Fatal(err)
	}
	// Returned with pushes still held by the push service.
	waitUntil(t, "pushes in flight", func() bool { return inFlight.Load() > 0 })
	if s := served.Load(); s != 0 {
		t.Fatalf("%d pushes answered before release", s)
	}
	small := &protocol.MessageDelivered{RoomID: "small", SenderID: "u0001", ClientID: "c2", ServerID: "m2", Seq: 1, Body: "yo", CreatedAt: time.Now()}
	if err := n.MessageDelivered(ctx, small); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	var ack, msg bool
	for _, d := range got {
		ack = ack || (d.Frame.Type == protocol.FrameAck && d.Frame.MessageID == "m2")
		msg = msg || (d.Frame.Type == protocol.FrameMessage && d.Frame.MessageID == "m2")
	}
	mu.Unlock()
	if !ack || !msg {
		t.Fatal("the other room's ack and delivery did not go out while the big room's pushes were held")
	}
	if s := served.Load(); s != 0 {
		t.Fatalf("%d pushes answered before release: the test did not hold them", s)
	}
	releaseAll()
	dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := pusher.Pool.Drained(dctx); err != nil {
		t.Fatal(err)
	}
	if s := served.Load(); s != 1500 {
		t.Fatalf("%d pushes sent, want 1500", s)
	}
	if c := names.calls.Load(); c != 1 {
		t.Fatalf("sender's name looked up %d times, want once per message", c)
	}
	if one, many := store.one.Load(), store.many.Load(); one != 0 || many != 1 {
		t.Fatalf("subscriptions loaded with %d per-user and %d batch queries, want one batch", one, many)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
