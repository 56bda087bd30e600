package gateway

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleychat/parley/runtime/presence"
	"github.com/parleychat/parley/runtime/protocol"
)

// The baseline: a bare gorilla/websocket server that writes each broadcast straight to
// every connection, with no auth, hub, queues or JSON per frame.
type bareServer struct {
	mu    sync.Mutex
	conns []*websocket.Conn
}

func (b *bareServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{Subprotocols: []string{protocol.Subprotocol}}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	b.mu.Lock()
	b.conns = append(b.conns, ws)
	b.mu.Unlock()
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
}

func (b *bareServer) broadcast(msg []byte) {
	b.mu.Lock()
	conns := append([]*websocket.Conn(nil), b.conns...)
	b.mu.Unlock()
	for _, c := range conns {
		_ = c.WriteMessage(websocket.TextMessage, msg)
	}
}

// members connects n clients, each counting the frames it reads into wg.
func members(tb testing.TB, url string, n int, tokenFor func(i int) string, got *sync.WaitGroup) []*websocket.Conn {
	tb.Helper()
	conns := make([]*websocket.Conn, n)
	for i := range n {
		d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol, protocol.AuthSubprotocolPrefix + tokenFor(i)}}
		ws, _, err := d.Dial(url, nil)
		if err != nil {
			tb.Fatalf("dial %d: %v", i, err)
		}
		conns[i] = ws
		go func() {
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
				if got != nil {
					got.Done()
				}
			}
		}()
	}
	return conns
}

type anyToken struct{}

func (anyToken) Authenticate(_ context.Context, token string) (string, error) { return token, nil }

type nopPublisher struct{}

func (nopPublisher) PublishMessage(context.Context, protocol.MessageSent) error { return nil }
func (nopPublisher) PublishReceipt(context.Context, protocol.Receipt) error     { return nil }
func (nopPublisher) PublishTyping(context.Context, string, string) error        { return nil }
func (nopPublisher) PublishPresence(context.Context, string, bool) error        { return nil }
func (nopPublisher) OnlineContacts(context.Context, string) ([]string, error)   { return nil, nil }

const roomSize = 1000

// BenchmarkFanOut measures deliveries per second into a 1 000-member room: the gateway
// (hub lookup, per-connection queue, JSON encoding per connection) against the bare
// server in the same run. Compare the deliveries/s of the two sub-benchmarks.
func BenchmarkFanOut(b *testing.B) {
	users := make([]string, roomSize)
	for i := range users {
		users[i] = fmt.Sprintf("u%d", i)
	}
	frame := protocol.ServerFrame{Type: protocol.FrameMessage, Room: "big", MessageID: "m", Seq: 1, Sender: "u0", Body: strings.Repeat("x", 100)}

	b.Run("bare-gorilla", func(b *testing.B) {
		srv := &bareServer{}
		ts := httptest.NewServer(srv)
		defer ts.Close()
		var got sync.WaitGroup
		conns := members(b, "ws"+strings.TrimPrefix(ts.URL, "http"), roomSize, func(i int) string { return users[i] }, &got)
		defer closeAll(conns)
		// The server registers each connection after the client's dial returns: a
		// broadcast before the last one would never be received whole.
		for {
			srv.mu.Lock()
			n := len(srv.conns)
			srv.mu.Unlock()
			if n >= roomSize {
				break
			}
			time.Sleep(time.Millisecond)
		}
		msg := []byte(`{"type":"message","room":"big","message_id":"m","seq":1,"sender":"u0","body":"` + strings.Repeat("x", 100) + `"}`)
		b.ResetTimer()
		for range b.N {
			got.Add(roomSize)
			srv.broadcast(msg)
			got.Wait()
		}
		b.ReportMetric(float64(b.N*roomSize)/b.Elapsed().Seconds(), "deliveries/s")
	})
	b.Run("gateway", func(b *testing.B) {
		gw, err := New(Config{ID: "bench", SendQueue: 1024, PingInterval: time.Hour}, anyToken{}, nopPublisher{}, presence.NewMemory(presence.Config{}), nil, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		ts := httptest.NewServer(gw)
		defer ts.Close()
		var got sync.WaitGroup
		conns := members(b, "ws"+strings.TrimPrefix(ts.URL, "http"), roomSize, func(i int) string { return users[i] }, &got)
		defer closeAll(conns)
		for gw.Connections() < roomSize {
			time.Sleep(time.Millisecond)
		}
		b.ResetTimer()
		for range b.N {
			got.Add(roomSize)
			gw.Deliver(users, frame)
			got.Wait()
		}
		b.ReportMetric(float64(b.N*roomSize)/b.Elapsed().Seconds(), "deliveries/s")
	})
}

// BenchmarkDelivery reports the cost of one delivery into a 1 000-member room on one
// gateway, at a low rate (one frame in flight per connection: every frame is a write of
// its own) and a high rate (bursts of 32 frames per member: the writers find frames
// waiting), for the writer before coalescing (one gorilla WriteMessage per frame,
// "per-frame") and the coalescing writer (everything queued in one vectored write,
// "coalesced"), in the same run. ns/delivery is wall time, cpu-ns/delivery the process's
// CPU time (the in-process clients included: the same work for both writers) per delivery.
func BenchmarkDelivery(b *testing.B) {
	users := make([]string, roomSize)
	for i := range users {
		users[i] = fmt.Sprintf("u%d", i)
	}
	frame := protocol.ServerFrame{Type: protocol.FrameMessage, Room: "big", MessageID: "m", Seq: 1, Sender: "u0", Body: strings.Repeat("x", 100)}
	for _, rate := range []struct {
		name  string
		burst int
	}{{"low", 1}, {"high", 32}} {
		for _, path := range []string{"per-frame", "coalesced"} {
			b.Run("rate="+rate.name+"/"+path, func(b *testing.B) {
				gw, err := New(Config{ID: "bench", SendQueue: 1024, PingInterval: time.Hour}, anyToken{}, nopPublisher{}, presence.NewMemory(presence.Config{}), nil, nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				gw.oneWritePerFrame = path == "per-frame"
				ts := httptest.NewServer(gw)
				defer ts.Close()
				var got sync.WaitGroup
				conns := members(b, "ws"+strings.TrimPrefix(ts.URL, "http"), roomSize, func(i int) string { return users[i] }, &got)
				defer closeAll(conns)
				for gw.Connections() < roomSize {
					time.Sleep(time.Millisecond)
				}
				cpu0 := cpuTime()
				b.ResetTimer()
				for range b.N {
					got.Add(roomSize * rate.burst)
					for range rate.burst {
						gw.Deliver(users, frame)
					}
					got.Wait()
				}
				b.StopTimer()
				n := float64(b.N * roomSize * rate.burst)
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/delivery")
				b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/n, "cpu-ns/delivery")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// cpuTime is the CPU time (user and system) this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIdleConnectionMemory reports the heap held per idle connection on the server
// side, gateway against bare gorilla, measured in the same run.
func BenchmarkIdleConnectionMemory(b *testing.B) {
	const n = 1000
	measure := func(b *testing.B, h http.Handler, ready func() bool, reset func()) {
		ts := httptest.NewServer(h)
		defer ts.Close()
		for range b.N {
			before := heapInUse()
			conns := members(b, "ws"+strings.TrimPrefix(ts.URL, "http"), n, func(i int) string { return fmt.Sprintf("idle%d", i) }, nil)
			for !ready() {
				time.Sleep(time.Millisecond)
			}
			after := heapInUse()
			// Both sides of every connection live in this process; the client side is the
			// same in both sub-benchmarks, so the difference between them is the server's.
			b.ReportMetric(float64(after-before)/n, "heap-bytes/conn")
			closeAll(conns)
			reset()
		}
	}
	b.Run("bare-gorilla", func(b *testing.B) {
		srv := &bareServer{}
		measure(b, srv, func() bool { srv.mu.Lock(); defer srv.mu.Unlock(); return len(srv.conns) >= n }, func() {
			srv.mu.Lock()
			defer srv.mu.Unlock()
			closeAll(srv.conns)
			srv.conns = nil
		})
	})
	b.Run("gateway", func(b *testing.B) {
		gw, err := New(Config{ID: "bench", PingInterval: time.Hour}, anyToken{}, nopPublisher{}, presence.NewMemory(presence.Config{}), nil, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		measure(b, gw, func() bool { return gw.Connections() >= n }, func() {
			for gw.Connections() > 0 {
				time.Sleep(time.Millisecond)
			}
		})
	})
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func closeAll(conns []*websocket.Conn) {
	for _, c := range conns {
		c.Close()
	}
}
