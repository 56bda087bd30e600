package presence

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Memory keeps presence in this process. Safe for concurrent use.
type Memory struct {
	cfg Config

	mu sync.Mutex
	// conns: user → "gateway|conn" → expiry.
	conns map[string]map[string]time.Time
	// gateways: gateway → set of Conn it holds.
	gateways map[string]map[Conn]struct{}
	// typing: "room|user" → when the throttle window ends.
	typing map[string]time.Time
}

// NewMemory returns an empty in-process tracker.
func NewMemory(cfg Config) *Memory {
	return &Memory{
		cfg:      cfg.withDefaults(),
		conns:    map[string]map[string]time.Time{},
		gateways: map[string]map[Conn]struct{}{},
		typing:   map[string]time.Time{},
	}
}

func (m *Memory) liveLocked(userID string, now time.Time) int {
	n := 0
	for _, exp := range m.conns[userID] {
		if exp.After(now) {
			n++
		}
	}
	return n
}

// Connect records c as live until TTL from now; cameOnline tells whether the user had no
// live connection before.
func (m *Memory) Connect(_ context.Context, c Conn) (bool, error) {
	if err := c.validate(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now()
	m.dropExpiredLocked(c.UserID, now)
	was := m.liveLocked(c.UserID, now)
	if m.conns[c.UserID] == nil {
		m.conns[c.UserID] = map[string]time.Time{}
	}
	m.conns[c.UserID][c.GatewayID+sep+c.ConnID] = now.Add(m.cfg.TTL)
	if m.gateways[c.GatewayID] == nil {
		m.gateways[c.GatewayID] = map[Conn]struct{}{}
	}
	m.gateways[c.GatewayID][c] = struct{}{}
	return was == 0, nil
}

// dropExpiredLocked forgets c's user's expired connections, as the Redis script does.
func (m *Memory) dropExpiredLocked(userID string, now time.Time) {
	for member, exp := range m.conns[userID] {
		if !exp.After(now) {
			delete(m.conns[userID], member)
			gw, conn, _ := strings.Cut(member, sep)
			delete(m.gateways[gw], Conn{UserID: userID, GatewayID: gw, ConnID: conn})
		}
	}
}

// Disconnect forgets c; wentOffline tells whether it was the user's last live connection.
func (m *Memory) Disconnect(_ context.Context, c Conn) (bool, error) {
	if err := c.validate(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now()
	member := c.GatewayID + sep + c.ConnID
	exp, ok := m.conns[c.UserID][member]
	if !ok {
		return false, nil
	}
	delete(m.conns[c.UserID], member)
	delete(m.gateways[c.GatewayID], c)
	return exp.After(now) && m.liveLocked(c.UserID, now) == 0, nil
}

// Heartbeat makes held exactly the live connections of gatewayID, as Redis.Heartbeat
// does: held ones are extended (re-added when missing), all others of gatewayID expire
// now for the sweeper to announce. It returns the users who came back online, sorted.
func (m *Memory) Heartbeat(_ context.Context, gatewayID string, held []Conn) ([]string, error) {
	if err := checkHeld(gatewayID, held); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now()
	exp := now.Add(m.cfg.TTL)
	liveBefore := map[string]bool{}
	for _, c := range held {
		if _, ok := liveBefore[c.UserID]; !ok {
			liveBefore[c.UserID] = m.liveLocked(c.UserID, now) > 0
		}
	}
	keep := make(map[Conn]bool, len(held))
	online := map[string]bool{}
	for _, c := range held {
		keep[c] = true
		member := c.GatewayID + sep + c.ConnID
		if m.conns[c.UserID] == nil {
			m.conns[c.UserID] = map[string]time.Time{}
		}
		if _, ok := m.conns[c.UserID][member]; !ok && !liveBefore[c.UserID] {
			online[c.UserID] = true
		}
		m.conns[c.UserID][member] = exp
		if m.gateways[gatewayID] == nil {
			m.gateways[gatewayID] = map[Conn]struct{}{}
		}
		m.gateways[gatewayID][c] = struct{}{}
	}
	for c := range m.gateways[gatewayID] {
		if keep[c] {
			continue
		}
		member := c.GatewayID + sep + c.ConnID
		if until, ok := m.conns[c.UserID][member]; !ok {
			delete(m.gateways[gatewayID], c)
		} else if until.After(now) {
			m.conns[c.UserID][member] = now
		}
	}
	return sortedKeys(online), nil
}

// Sweep forgets connections whose gateway stopped heartbeating and reports the users who
// went offline because of it, each once, sorted.
func (m *Memory) Sweep(_ context.Context) ([]Transition, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now()
	var out []Transition
	for user, conns := range m.conns {
		expired := false
		for member, exp := range conns {
			if !exp.After(now) {
				expired = true
				delete(conns, member)
				gw, conn, _ := strings.Cut(member, sep)
				delete(m.gateways[gw], Conn{UserID: user, GatewayID: gw, ConnID: conn})
			}
		}
		if expired && m.liveLocked(user, now) == 0 {
			out = append(out, Transition{UserID: user, Online: false})
		}
		if len(conns) == 0 {
			delete(m.conns, user)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UserID < out[j].UserID })
	return out, nil
}

// Gateways returns, for each user with a live connection, the sorted gateways holding one.
func (m *Memory) Gateways(_ context.Context, userIDs []string) (map[string][]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now()
	out := make(map[string][]string, len(userIDs))
	for _, u := range userIDs {
		// A user has a few connections on fewer gateways: a slice de-duplicates them
		// without a map per user (this runs for every recipient of every message).
		var gws []string
		for member, exp := range m.conns[u] {
			if exp.After(now) {
				gw, _, _ := strings.Cut(member, sep)
				if !slices.Contains(gws, gw) {
					gws = append(gws, gw)
				}
			}
		}
		if len(gws) > 0 {
			slices.Sort(gws)
			out[u] = gws
		}
	}
	return out, nil
}

// Typing reports whether a typing signal of userID in roomID should be forwarded now.
func (m *Memory) Typing(_ context.Context, userID, roomID string) (bool, error) {
	if err := checkIDs(userID, roomID); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now()
	key := roomID + sep + userID
	if until, ok := m.typing[key]; ok && until.After(now) {
		return false, nil
	}
	m.typing[key] = now.Add(m.cfg.TypingThrottle)
	// Forget expired windows so the map stays as small as the number of active typists.
	for k, until := range m.typing {
		if !until.After(now) {
			delete(m.typing, k)
		}
	}
	return true, nil
}
