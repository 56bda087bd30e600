package gateway

import (
	"context"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleychat/parley/runtime/protocol"
)

// BenchmarkConnectStorm dials PARLEY_STORM_CONNS (default 2000) connections from 50
// concurrent dialers into a server in its own process (as BenchmarkIdleConnectionRSS),
// the gateway against a bare gorilla/websocket server in the same run, and reports
// connections per second until the server holds them all.
func BenchmarkConnectStorm(b *testing.B) {
	n, dialers := 2000, 50
	if v, err := strconv.Atoi(os.Getenv("PARLEY_STORM_CONNS")); err == nil && v > 0 {
		n = v
	}
	rates := map[string]float64{}
	for _, kind := range []string{"bare-gorilla", "gateway"} {
		b.Run(kind, func(b *testing.B) {
			var total time.Duration
			for range b.N {
				srv := startRSSServer(b, map[string]string{"bare-gorilla": "bare", "gateway": "gateway"}[kind])
				conns := make([]*websocket.Conn, n)
				var next atomic.Int64
				var wg sync.WaitGroup
				errs := make(chan error, dialers)
				start := time.Now()
				for range dialers {
					wg.Go(func() {
						for {
							i := int(next.Add(1)) - 1
							if i >= n {
								return
							}
							d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol, protocol.AuthSubprotocolPrefix + "storm" + strconv.Itoa(i)}}
							ws, _, err := d.DialContext(context.Background(), "ws://"+srv.addr+"/ws", nil)
							if err != nil {
								errs <- err
								return
							}
							conns[i] = ws
						}
					})
				}
				wg.Wait()
				close(errs)
				if err := <-errs; err != nil {
					b.Fatalf("dial: %v", err)
				}
				for srv.get(b, "/count") != strconv.Itoa(n) {
					time.Sleep(time.Millisecond)
				}
				total += time.Since(start)
				closeAll(conns)
				srv.stop()
			}
			rates[kind] = float64(n*b.N) / total.Seconds()
			b.ReportMetric(rates[kind], "conns/s")
			b.ReportMetric(0, "ns/op")
		})
	}
	if rates["bare-gorilla"] > 0 {
		b.Logf("connect storm, %d connections from %d dialers: gateway %.0f/s, bare gorilla %.0f/s: %.2fx bare",
			n, dialers, rates["gateway"], rates["bare-gorilla"], rates["gateway"]/rates["bare-gorilla"])
	}
}
