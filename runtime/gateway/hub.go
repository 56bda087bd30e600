package gateway

import (
	"slices"
	"sync"
)

// hub maps users to their local connections. It is sharded so that connects,
// disconnects and deliveries for different users rarely contend on one lock.
type hub struct {
	shards []hubShard
}

type hubShard struct {
	mu sync.RWMutex
	// users holds each user's connections in a slice: a user has one or a few, and a
	// delivery walks them for every recipient (a slice walk is cheaper than a map's, and
	// an idle user costs a slice header rather than a map).
	users map[string][]*conn
}

func newHub(n int) *hub {
	h := &hub{shards: make([]hubShard, n)}
	for i := range h.shards {
		h.shards[i].users = map[string][]*conn{}
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
	if slices.Contains(s.users[c.user], c) {
		return
	}
	s.users[c.user] = append(s.users[c.user], c)
}

func (h *hub) remove(c *conn) {
	s := h.shard(c.user)
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := slices.DeleteFunc(s.users[c.user], func(o *conn) bool { return o == c })
	if len(cs) == 0 {
		delete(s.users, c.user)
		return
	}
	s.users[c.user] = cs
}

// conns returns a snapshot, so that delivery never holds a shard lock while enqueueing.
func (h *hub) conns(user string) []*conn {
	s := h.shard(user)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.users[user])
}

// each calls fn for every connection of user, under the shard's read lock: fn must not
// block nor touch the hub (enqueueing never blocks).
func (h *hub) each(user string, fn func(*conn)) {
	s := h.shard(user)
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, c := range s.users[user] {
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
			out = append(out, cs...)
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
