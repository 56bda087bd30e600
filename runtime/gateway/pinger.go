package gateway

import (
	"sync"
	"time"
)

// writeBufferPool lends gorilla/websocket its write buffers: a connection holds one only
// while gorilla writes through it (control frames build their own; data frames are
// written by writeFrames), so idle connections share a few instead of 4 KiB each.
var writeBufferPool sync.Pool

// pinger pings every connection once per PingInterval from one goroutine, instead of a
// ticker per connection. It runs only while the gateway holds connections.
type pinger struct {
	mu      sync.Mutex
	running bool
}

// startPinger starts the pinger unless it runs.
func (g *Gateway) startPinger() {
	g.pinger.mu.Lock()
	defer g.pinger.mu.Unlock()
	if !g.pinger.running {
		g.pinger.running = true
		go g.pingLoop()
	}
}

// pingLoop asks each connection for a ping (written by its writer, which the request
// starts), and ends when the hub is empty.
func (g *Gateway) pingLoop() {
	t := time.NewTicker(g.cfg.PingInterval)
	defer t.Stop()
	var conns []*conn
	for range t.C {
		g.pinger.mu.Lock()
		conns = g.hub.appendAll(conns[:0])
		if len(conns) == 0 {
			g.pinger.running = false
			g.pinger.mu.Unlock()
			return
		}
		g.pinger.mu.Unlock()
		for _, c := range conns {
			c.ping()
		}
		clear(conns)
	}
}
