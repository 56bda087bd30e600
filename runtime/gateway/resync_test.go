package gateway

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleychat/parley/runtime/presence"
	"github.com/parleychat/parley/runtime/protocol"
)

// failingHeartbeats is a presence whose next heartbeats fail on demand (Redis still
// coming back), counting what happened.
type failingHeartbeats struct {
	*presence.Memory
	mu        sync.Mutex
	failNext  int
	failed    int
	succeeded int
}

func (p *failingHeartbeats) Heartbeat(ctx context.Context, gatewayID string, held []presence.Conn) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failNext > 0 {
		p.failNext--
		p.failed++
		return nil, errors.New("redis: connection refused")
	}
	p.succeeded++
	return p.Memory.Heartbeat(ctx, gatewayID, held)
}

func (p *failingHeartbeats) counts() (failed, succeeded int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed, p.succeeded
}

// readType reads frames until one of type want (presence batches and the like come
// first), and returns it.
func readType(t *testing.T, ws *websocket.Conn, want protocol.FrameType) protocol.ServerFrame {
	t.Helper()
	for {
		if f := read(t, ws); f.Type == want {
			return f
		}
	}
}

// After the routed subscription came back (Redis restarted: what was routed meanwhile, or
// accepted by Redis just before it died, is lost), every connection is told to resync,
// and only once the re-assert heartbeat succeeded: before it, presence does not route
// to this gateway yet, so a resume could miss what is fanned out meanwhile.
func TestReassertTellsEveryConnectionToResyncAfterPresenceIsBack(t *testing.T) {
	pres := &failingHeartbeats{Memory: presence.NewMemory(presence.Config{})}
	f := newFixtureWith(t, Config{ID: "gw-r", HeartbeatInterval: time.Hour}, nil, pres)
	alice, bob := f.dial(t, "tok-alice"), f.dial(t, "tok-bob")
	waitConns(t, f.gw, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	trigger := make(chan struct{}, 1)
	go f.gw.RunHeartbeatOn(ctx, trigger)
	f.pub.waitFor(t, "the first heartbeat", func() bool { _, ok := pres.counts(); return ok > 0 })

	pres.mu.Lock()
	pres.failNext = 2 // Redis answers again only at the third try
	pres.mu.Unlock()
	trigger <- struct{}{}
	for name, ws := range map[string]*websocket.Conn{"alice": alice, "bob": bob} {
		readType(t, ws, protocol.FrameResync)
		if failed, succeeded := pres.counts(); failed != 2 || succeeded < 2 {
			t.Fatalf("%s told to resync after %d failed and %d successful heartbeats; want it after the re-assert succeeded (2 failed, then success)", name, failed, succeeded)
		}
	}
}
