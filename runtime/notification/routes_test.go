package notification

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/runtime/protocol"
)

type routes interface {
	Router
	Subscribe(ctx context.Context, gatewayID string, fn func(Delivery)) (func(), error)
}

func TestRoutesContractMemory(t *testing.T) {
	runRoutesContract(t, func(*testing.T) routes { return NewMemoryRoutes() })
}

func TestRoutesContractRedis(t *testing.T) {
	runRoutesContract(t, func(t *testing.T) routes {
		rdb := redis.NewClient(testenv.Redis(t))
		t.Cleanup(func() { rdb.Close() })
		// Pub/sub channels ignore the database number: a unique prefix isolates tests.
		return NewRedisRoutes(rdb, fmt.Sprintf("test:%s:%d:", t.Name(), time.Now().UnixNano()), nil)
	})
}

// inbox collects what one gateway receives.
type inbox struct {
	mu  sync.Mutex
	got []Delivery
	ch  chan struct{}
}

func newInbox() *inbox { return &inbox{ch: make(chan struct{}, 1000)} }

func (b *inbox) add(d Delivery) {
	b.mu.Lock()
	b.got = append(b.got, d)
	b.mu.Unlock()
	b.ch <- struct{}{}
}

func (b *inbox) waitLen(t *testing.T, n int) []Delivery {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		b.mu.Lock()
		if len(b.got) >= n {
			out := append([]Delivery(nil), b.got...)
			b.mu.Unlock()
			return out
		}
		b.mu.Unlock()
		select {
		case <-b.ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %d deliveries", n)
		}
	}
}

func (b *inbox) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.got)
}

func runRoutesContract(t *testing.T, newRoutes func(*testing.T) routes) {
	ctx := context.Background()
	t.Run("only the addressed gateway receives, in order", func(t *testing.T) {
		r := newRoutes(t)
		one, two := newInbox(), newInbox()
		stop1, err := r.Subscribe(ctx, "gw1", one.add)
		if err != nil {
			t.Fatal(err)
		}
		defer stop1()
		stop2, err := r.Subscribe(ctx, "gw2", two.add)
		if err != nil {
			t.Fatal(err)
		}
		defer stop2()
		for i := 1; i <= 20; i++ {
			d := Delivery{Users: []string{"bob"}, Frame: protocol.ServerFrame{Type: protocol.FrameMessage, Seq: int64(i), Body: "é ✓"}}
			if err := r.Route(ctx, "gw1", d); err != nil {
				t.Fatal(err)
			}
		}
		got := one.waitLen(t, 20)
		for i, d := range got {
			if d.Frame.Seq != int64(i+1) || d.Users[0] != "bob" || d.Frame.Body != "é ✓" {
				t.Fatalf("delivery %d = %+v", i, d)
			}
		}
		// A marker to gw2 proves gw2's subscription works and that nothing else reached it.
		if err := r.Route(ctx, "gw2", Delivery{Users: []string{"x"}, Frame: protocol.ServerFrame{Type: protocol.FramePong}}); err != nil {
			t.Fatal(err)
		}
		if got := two.waitLen(t, 1); len(got) != 1 || got[0].Frame.Type != protocol.FramePong {
			t.Fatalf("gw2 received %+v", got)
		}
	})
	t.Run("nobody listening is ErrNoReceiver, and stop unsubscribes", func(t *testing.T) {
		r := newRoutes(t)
		if err := r.Route(ctx, "ghost", Delivery{Users: []string{"a"}}); !errors.Is(err, ErrNoReceiver) {
			t.Fatalf("route to an absent gateway: %v, want ErrNoReceiver", err)
		}
		box := newInbox()
		stop, err := r.Subscribe(ctx, "gw", box.add)
		if err != nil {
			t.Fatal(err)
		}
		stop()
		stop() // idempotent
		if err := r.Route(ctx, "gw", Delivery{Users: []string{"a"}}); !errors.Is(err, ErrNoReceiver) {
			t.Fatalf("route after stop: %v, want ErrNoReceiver", err)
		}
		// Re-subscribe and send a marker: only the marker may arrive.
		stop, err = r.Subscribe(ctx, "gw", box.add)
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		if err := r.Route(ctx, "gw", Delivery{Users: []string{"marker"}}); err != nil {
			t.Fatal(err)
		}
		got := box.waitLen(t, 1)
		if len(got) != 1 || got[0].Users[0] != "marker" {
			t.Fatalf("received %+v, want only the marker", got)
		}
	})
}
