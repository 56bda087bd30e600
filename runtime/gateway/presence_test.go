package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/parleychat/parley/runtime/presence"
	"github.com/parleychat/parley/runtime/protocol"
)

// readPresence reads frames until a presence_batch and returns its presence.
func readPresence(t *testing.T, ws *websocket.Conn) map[string]bool {
	t.Helper()
	for {
		fr := read(t, ws)
		if fr.Type == protocol.FramePresenceBatch {
			return fr.Presence
		}
		if fr.Type == protocol.FramePresence {
			t.Fatalf("unbatched presence frame %+v", fr)
		}
	}
}

func presenceFrame(user string, online bool) protocol.ServerFrame {
	return protocol.ServerFrame{Type: protocol.FramePresence, User: user, Online: &online}
}

// A burst of changes reaches a connection as one frame carrying the latest state of each
// user, however many were routed to it.
func TestPresenceChangesAreCoalescedPerConnection(t *testing.T) {
	const interval = 200 * time.Millisecond
	f := newFixture(t, Config{PresenceInterval: interval}, nil)
	ws := f.dial(t, "tok-alice")
	waitConns(t, f.gw, 1)
	start := time.Now()
	for i := range 300 {
		f.gw.Deliver([]string{"alice"}, presenceFrame(fmt.Sprintf("u%d", i%100), i < 200))
	}
	f.gw.Deliver([]string{"alice"}, presenceFrame("alice", true)) // one's own: never shown
	want := map[string]bool{}
	for i := range 100 {
		want[fmt.Sprintf("u%d", i)] = false // the last of the three changes of each
	}
	// The first change may leave at once, alone (nothing was sent in the last interval);
	// everything after it waits for the interval and goes together. However the machine
	// schedules the flusher, the batches add up to the last state of each user, and
	// there is at most one per interval (plus the first) while the changes came in.
	got, frames := map[string]bool{}, 0
	for !reflect.DeepEqual(got, want) {
		batch := readPresence(t, ws)
		frames++
		for u, online := range batch {
			got[u] = online
		}
		if _, ok := got["alice"]; ok || len(got) > len(want) {
			t.Fatalf("batches add up to %v (%d users), want the last state of u0..u99", got, len(got))
		}
	}
	if limit := 2 + int(time.Since(start)/interval); frames > limit {
		t.Fatalf("301 changes came in %d presence_batch frames in %v, want at most %d (one per %v)",
			frames, time.Since(start).Round(time.Millisecond), limit, interval)
	}
	// The next change comes in a batch of its own.
	f.gw.Deliver([]string{"alice"}, presenceFrame("u1", true))
	if got := readPresence(t, ws); !reflect.DeepEqual(got, map[string]bool{"u1": true}) {
		t.Fatalf("second batch = %v", got)
	}
}

// A watch is answered with the current presence of the users it names, and from then on
// only their changes are sent.
func TestWatchAnswersWithPresenceAndFiltersChanges(t *testing.T) {
	f := newFixture(t, Config{PresenceInterval: 100 * time.Millisecond}, nil)
	bob := f.dial(t, "tok-bob")
	_ = bob
	alice := f.dial(t, "tok-alice")
	waitConns(t, f.gw, 2)
	send(t, alice, `{"type":"watch","users":["bob","carol","alice"]}`)
	if got, want := readPresence(t, alice), map[string]bool{"bob": true, "carol": false}; !reflect.DeepEqual(got, want) {
		t.Fatalf("watch answer = %v, want %v", got, want)
	}
	f.gw.Deliver([]string{"alice"}, presenceFrame("dave", true)) // not watched
	f.gw.Deliver([]string{"alice"}, presenceFrame("carol", true))
	if got, want := readPresence(t, alice), map[string]bool{"carol": true}; !reflect.DeepEqual(got, want) {
		t.Fatalf("batch = %v, want %v", got, want)
	}
	// An empty watch stops presence altogether.
	send(t, alice, `{"type":"watch","users":[]}`)
	send(t, alice, `{"type":"ping","id":"after-watch"}`)
	if fr := read(t, alice); fr.Type != protocol.FramePong {
		t.Fatalf("frame %+v, want the pong", fr)
	}
	f.gw.Deliver([]string{"alice"}, presenceFrame("carol", false))
	time.Sleep(300 * time.Millisecond) // several intervals: a batch would have been sent
	send(t, alice, `{"type":"ping","id":"p2"}`)
	if fr := read(t, alice); fr.Type != protocol.FramePong {
		t.Fatalf("frame %+v after an empty watch, want only the pong", fr)
	}
}

// stormPublisher announces presence the way the notifier does for one room whose
// members are all contacts: every change to every online member (the N² fan-out).
type stormPublisher struct {
	nopPublisher
	gw      atomic.Pointer[Gateway]
	mu      sync.Mutex
	members []string
	online  map[string]bool
}

func (p *stormPublisher) PublishPresence(_ context.Context, user string, online bool) error {
	p.mu.Lock()
	p.online[user] = online
	members := append([]string(nil), p.members...)
	p.mu.Unlock()
	p.gw.Load().Deliver(members, presenceFrame(user, online))
	return nil
}

func (p *stormPublisher) OnlineContacts(_ context.Context, user string) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for u, on := range p.online {
		if on && u != user {
			out = append(out, u)
		}
	}
	return out, nil
}

// Issue 14's presence storm: the members of one room connect at once. No connection may
// be dropped, each receives a bounded number of presence frames (one per interval, plus
// its snapshot), and each ends up seeing every other member online.
func TestPresenceStormClosesNoConnection(t *testing.T) {
	n := 1000
	if raceEnabled {
		n = 250 // the same paths, at a size the race detector runs in reasonable time
	}
	const interval = time.Second
	pub := &stormPublisher{online: map[string]bool{}}
	for i := range n {
		pub.members = append(pub.members, fmt.Sprintf("m%d", i))
	}
	reg := NewMetrics(nil)
	gw, err := New(Config{ID: "storm", PresenceInterval: interval, PingInterval: time.Hour}, anyToken{}, pub,
		presence.NewMemory(presence.Config{}), nil, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	pub.gw.Store(gw)
	srv := httptest.NewServer(gw)
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")

	type client struct {
		mu       sync.Mutex
		frames   int // presence frames of either kind
		seen     map[string]bool
		closeErr error
	}
	clients := make([]*client, n)
	start := time.Now()
	var wg sync.WaitGroup
	dials := make(chan int)
	for range 50 { // 50 dialers, as in the measurement
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range dials {
				d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol, protocol.AuthSubprotocolPrefix + pub.members[i]}}
				ws, _, err := d.Dial(url, nil)
				if err != nil {
					t.Errorf("dial %d: %v", i, err)
					continue
				}
				c := &client{seen: map[string]bool{}}
				clients[i] = c
				go func() {
					defer ws.Close()
					for {
						_, raw, err := ws.ReadMessage()
						if err != nil {
							c.mu.Lock()
							c.closeErr = err
							c.mu.Unlock()
							return
						}
						var fr protocol.ServerFrame
						if json.Unmarshal(raw, &fr) != nil {
							continue
						}
						c.mu.Lock()
						switch fr.Type {
						case protocol.FramePresence:
							c.frames++
							c.seen[fr.User] = *fr.Online
						case protocol.FramePresenceBatch:
							c.frames++
							for u, on := range fr.Presence {
								c.seen[u] = on
							}
						}
						c.mu.Unlock()
					}
				}()
			}
		}()
	}
	for i := range n {
		dials <- i
	}
	close(dials)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// Every member sees every other online: the state converged.
	deadline := time.Now().Add(120 * time.Second)
	for i := 0; i < n; {
		c := clients[i]
		c.mu.Lock()
		online, closed := 0, c.closeErr
		for _, on := range c.seen {
			if on {
				online++
			}
		}
		c.mu.Unlock()
		if closed != nil {
			t.Fatalf("member %d's connection ended: %v", i, closed)
		}
		if online == n-1 {
			i++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("member %d sees %d members online, want %d", i, online, n-1)
		}
		time.Sleep(50 * time.Millisecond)
	}
	elapsed := time.Since(start)
	if got := gw.Connections(); got != n {
		t.Fatalf("%d connections open, want %d", got, n)
	}
	if v := testutil.ToFloat64(reg.queueDrops); v != 0 {
		t.Fatalf("%v connections dropped as slow consumers", v)
	}
	// At most one batch per interval since the first connect, plus the snapshot and the
	// batch of a partial interval at each end.
	bound := int(elapsed/interval) + 3
	most := 0
	for _, c := range clients {
		c.mu.Lock()
		most = max(most, c.frames)
		c.mu.Unlock()
	}
	if most > bound {
		t.Fatalf("a connection received %d presence frames in %v, want at most %d", most, elapsed, bound)
	}
	t.Logf("%d members connected and converged in %v; at most %d presence frames per connection", n, elapsed, most)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = gw.Drain(ctx)
}

// Sends whose ack never comes are evicted from the latency bookkeeping, which stays
// bounded; acks still time the sends that are pending.
func TestPendingAcksAreEvicted(t *testing.T) {
	m := NewMetrics(nil)
	t0 := time.Unix(1_000_000, 0)
	for i := range 1000 {
		m.trackSendAt(fmt.Sprintf("u|lost%d", i), t0) // never acked
	}
	later := t0.Add(pendingAckTTL + time.Second)
	m.trackSendAt("u|fresh", later)
	if got := m.pendingAcks(); got != 1 {
		t.Fatalf("%d sends pending after their ttl, want 1 (the fresh one)", got)
	}
	// Past the bound, the oldest entry goes, whatever its age.
	for i := range maxPendingAcks + 10 {
		m.trackSendAt(fmt.Sprintf("u|b%d", i), later)
	}
	if got := m.pendingAcks(); got > maxPendingAcks {
		t.Fatalf("%d sends pending, want at most %d", got, maxPendingAcks)
	}
	g := &Gateway{metrics: m}
	g.observeAck("u", "lost3") // evicted: not timed
	g.observeAck("u", fmt.Sprintf("b%d", maxPendingAcks+9))
	var out dto.Metric
	if err := m.sendToAck.Write(&out); err != nil {
		t.Fatal(err)
	}
	if c := out.GetHistogram().GetSampleCount(); c != 1 {
		t.Fatalf("acks timed = %d, want 1", c)
	}
}

// drainingAuth starts the gateway's drain while it authenticates, so the drain begins
// between ServeHTTP's first check and the upgrade.
type drainingAuth struct{ gw atomic.Pointer[Gateway] }

func (a *drainingAuth) Authenticate(context.Context, string) (string, error) {
	g := a.gw.Load()
	g.startMu.Lock()
	g.draining.Store(true)
	g.startMu.Unlock()
	return "alice", nil
}

// An upgrade refused because the gateway started draining must not keep its user's
// rate-limiter slot (it was never returned).
func TestDrainingUpgradeTakesNoLimiterSlot(t *testing.T) {
	auth := &drainingAuth{}
	gw, err := New(Config{ID: "gw"}, auth, nopPublisher{}, presence.NewMemory(presence.Config{}), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	auth.gw.Store(gw)
	srv := httptest.NewServer(gw)
	defer srv.Close()
	d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol, protocol.AuthSubprotocolPrefix + "t"}}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("read = %v, want close 1001", err)
	}
	gw.limitersMu.Lock()
	n := len(gw.limiters)
	gw.limitersMu.Unlock()
	if n != 0 {
		t.Fatalf("%d limiters held after a refused upgrade", n)
	}
}

// An idle connection costs one goroutine (its reader) and no timer: a writer runs only
// while there is something to write, a replay only during a resume, and pings come from
// one pinger per gateway.
func TestIdleConnectionKeepsOneGoroutine(t *testing.T) {
	f := newFixture(t, Config{}, nil)
	const n = 50
	stable := func() int {
		prev := -1
		for {
			time.Sleep(100 * time.Millisecond)
			cur := runtime.NumGoroutine()
			if cur == prev {
				return cur
			}
			prev = cur
		}
	}
	before := stable()
	var conns []*websocket.Conn
	for range n {
		conns = append(conns, f.dial(t, "tok-bob")) // the test never reads: no client goroutine
	}
	waitConns(t, f.gw, n)
	after := stable()
	// The shared pinger and, for a moment, the presence flusher are per gateway.
	if per := float64(after-before-2) / n; per > 1 {
		t.Fatalf("%.2f goroutines per idle connection, want 1", per)
	}
	_ = conns
}
