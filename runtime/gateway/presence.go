package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/parleychat/parley/runtime/protocol"
)

// Presence reaches a client coalesced: changes routed to a connection wait in its pending
// map (the latest state of each user wins) and leave in one presence_batch frame, at most
// once per PresenceInterval. However many contacts connect at once, a connection receives
// about one presence frame per interval, and a burst of changes costs one frame.
//
// A client that sent a watch frame receives the presence of the users it named only (what
// it shows); one that never did receives every change routed to it (the contacts the
// notifier announces to: direct chats and groups under the large-group threshold).

// connPresence is one connection's presence state.
type connPresence struct {
	mu      sync.Mutex
	watch   map[string]struct{} // nil until the client sends a watch frame
	pending map[string]bool     // changes not sent yet
	queued  bool                // in the gateway's flush list
}

// presenceFlusher sends the pending presence of the connections that have some, once per
// interval. Its goroutine runs only while changes are pending.
type presenceFlusher struct {
	mu      sync.Mutex
	dirty   []*conn
	running bool
}

// Locator answers which gateways hold each user's connections (presence.Memory and
// presence.Redis implement it): the answer to a watch frame is read from it.
type Locator interface {
	Gateways(ctx context.Context, userIDs []string) (map[string][]string, error)
}

// watchTimeout bounds the presence look-up answering a watch frame.
const watchTimeout = 5 * time.Second

// presenceChanged hands a routed presence change of user to the connections of recipients.
func (g *Gateway) presenceChanged(recipients []string, user string, online bool) {
	for _, r := range recipients {
		g.hub.each(r, func(c *conn) { c.notePresence(user, online) })
	}
}

// notePresence records a change for the next batch, when the connection wants it.
func (c *conn) notePresence(user string, online bool) {
	if user == c.user || c.dead.Load() {
		return
	}
	p := &c.pres
	p.mu.Lock()
	if p.watch != nil {
		if _, ok := p.watch[user]; !ok {
			p.mu.Unlock()
			return
		}
	}
	if p.pending == nil {
		p.pending = map[string]bool{}
	}
	p.pending[user] = online
	schedule := !p.queued
	p.queued = true
	p.mu.Unlock()
	if schedule {
		c.g.schedulePresence(c)
	}
}

// schedulePresence puts c on the flush list, starting the flusher when it sleeps.
func (g *Gateway) schedulePresence(c *conn) {
	f := &g.presFlush
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dirty = append(f.dirty, c)
	if !f.running {
		f.running = true
		go g.flushPresenceLoop()
	}
}

// flushPresenceLoop sends every pending batch once per interval, and stops when a whole
// interval passed with no change.
func (g *Gateway) flushPresenceLoop() {
	f := &g.presFlush
	var dirty []*conn
	for {
		time.Sleep(g.cfg.PresenceInterval)
		clear(dirty)
		f.mu.Lock()
		dirty, f.dirty = f.dirty, dirty[:0]
		if len(dirty) == 0 {
			f.running = false
			f.dirty = nil
			f.mu.Unlock()
			return
		}
		f.mu.Unlock()
		for _, c := range dirty {
			c.flushPresence()
		}
	}
}

// flushPresence sends the pending changes in one frame.
func (c *conn) flushPresence() {
	p := &c.pres
	p.mu.Lock()
	defer p.mu.Unlock() // the frame is queued under the lock, so batches keep their order
	pending := p.pending
	p.pending, p.queued = nil, false
	if len(pending) > 0 {
		c.enqueue(protocol.ServerFrame{Type: protocol.FramePresenceBatch, Presence: pending})
	}
}

// answerPresence sends states (a snapshot: the answer to a watch, or the contacts online
// at connect) at once, with the changes pending meanwhile, which are newer.
func (c *conn) answerPresence(states map[string]bool) {
	p := &c.pres
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.watch != nil {
		for u := range states {
			if _, ok := p.watch[u]; !ok {
				delete(states, u)
			}
		}
	}
	for u, online := range p.pending {
		states[u] = online
	}
	p.pending = nil
	if len(states) > 0 {
		c.enqueue(protocol.ServerFrame{Type: protocol.FramePresenceBatch, Presence: states})
	}
}

// watch makes users the connection's watch list and answers with their presence.
func (c *conn) watch(users []string) {
	set := make(map[string]struct{}, len(users))
	for _, u := range users {
		if u != c.user {
			set[u] = struct{}{}
		}
	}
	p := &c.pres
	p.mu.Lock()
	p.watch = set
	for u := range p.pending {
		if _, ok := set[u]; !ok {
			delete(p.pending, u)
		}
	}
	p.mu.Unlock()
	if len(set) == 0 {
		return
	}
	loc, ok := c.g.presence.(Locator)
	if !ok {
		return
	}
	ids := make([]string, 0, len(set))
	for u := range set {
		ids = append(ids, u)
	}
	ctx, cancel := context.WithTimeout(c.ctx, watchTimeout)
	defer cancel()
	gws, err := loc.Gateways(ctx, ids)
	if err != nil {
		if c.ctx.Err() == nil {
			c.g.log.Warn("presence look-up for watch failed", "user", c.user, "err", err)
			c.enqueue(protocol.ErrorFrame(protocol.CodeInternal, "presence unavailable; send watch again later", protocol.FrameWatch, ""))
		}
		return
	}
	states := make(map[string]bool, len(ids))
	for _, u := range ids {
		states[u] = len(gws[u]) > 0
	}
	c.answerPresence(states)
}
