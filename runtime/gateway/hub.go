package gateway

import (
	"sync"
)

// hub maps users to their local connections. It is sharded so that connects,
// disconnects and deliveries for different users rarely contend on one lock.
type hub struct {
	shards []hubShard
}

type hubShard struct {
	mu    sync.RWMutex
	users map[string]map[*conn]struct{}
}

func newHub(n int) *hub {
	h := &hub{shards: make([]hubShard, n)}
	for i := range h.shards {
		h.shards[i].users = map[string]map[*conn]struct{}{}
	}
	return h
}

func (h *hub) shard(user string) *hubShard {
	// FNV-1a inline: hash/fnv would allocate for every delivery.
	x := uint32(2166136261)
	for i := 0; i < len(user); i++ {
		x ^= uint32(user[i])
		x *= 16777619
	}
	return &h.shards[x%uint32(len(h.shards))]
}

func (h *hub) add(c *conn) {
	s := h.shard(c.user)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users[c.user] == nil {
		s.users[c.user] = map[*conn]struct{}{}
	}
	s.users[c.user][c] = struct{}{}
}

func (h *hub) remove(c *conn) {
	s := h.shard(c.user)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.users[c.user], c)
	if len(s.users[c.user]) == 0 {
		delete(s.users, c.user)
	}
}

// conns returns a snapshot, so that delivery never holds a shard lock while enqueueing.
func (h *hub) conns(user string) []*conn {
	s := h.shard(user)
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*conn, 0, len(s.users[user]))
	for c := range s.users[user] {
		out = append(out, c)
	}
	return out
}

// each calls fn for every connection of user, under the shard's read lock: fn must not
// block nor touch the hub (enqueueing never blocks).
func (h *hub) each(user string, fn func(*conn)) {
	s := h.shard(user)
	s.mu.RLock()
	defer s.mu.RUnlock()
	for c := range s.users[user] {
		fn(c)
	}
}

func (h *hub) all() []*conn { return h.appendAll(nil) }

// appendAll appends every connection to out.
func (h *hub) appendAll(out []*conn) []*conn {
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		for _, cs := range s.users {
			for c := range cs {
				out = append(out, c)
			}
		}
		s.mu.RUnlock()
	}
	return out
}

func (h *hub) count() int {
	n := 0
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		for _, cs := range s.users {
			n += len(cs)
		}
		s.mu.RUnlock()
	}
	return n
}
