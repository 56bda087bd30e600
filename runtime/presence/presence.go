// Package presence tracks which gateways hold a connection of which user, and throttles
// typing signals. Nothing here is durable: a gateway that dies without cleaning up stops
// heartbeating and its connections expire after the TTL.
//
// Two implementations share one contract: Memory for `parley dev` and single-process
// tests, Redis for real deployments.
package presence

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Conn is one WebSocket connection of a user, held by one gateway.
type Conn struct {
	UserID    string
	GatewayID string
	ConnID    string
}

// Transition is a user going online (first live connection) or offline (last one gone).
type Transition struct {
	UserID string
	Online bool
}

// Config bounds how long presence lasts without a heartbeat and how often typing
// signals pass.
type Config struct {
	// TTL is how long a connection stays live after its gateway's last heartbeat.
	TTL time.Duration
	// TypingThrottle is the least time between two forwarded typing signals of one user
	// in one room; a typing indicator also expires by itself after this long.
	TypingThrottle time.Duration
	// Now is the clock; time.Now when nil. Tests move it by hand.
	Now func() time.Time
}

// DefaultConfig is what the roles use unless told otherwise: gateways heartbeat every
// TTL/3, so one lost heartbeat never marks anyone offline.
func DefaultConfig() Config {
	return Config{TTL: 45 * time.Second, TypingThrottle: 3 * time.Second}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.TTL <= 0 {
		c.TTL = d.TTL
	}
	if c.TypingThrottle <= 0 {
		c.TypingThrottle = d.TypingThrottle
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// ErrInvalidID is returned for an empty id or one containing the key separator.
var ErrInvalidID = errors.New("presence: invalid id")

// sep joins ids inside keys and members; ids may not contain it.
const sep = "|"

func checkIDs(ids ...string) error {
	for _, id := range ids {
		if id == "" || strings.Contains(id, sep) {
			return fmt.Errorf("%w: %q", ErrInvalidID, id)
		}
	}
	return nil
}

func (c Conn) validate() error { return checkIDs(c.UserID, c.GatewayID, c.ConnID) }

// checkHeld validates a heartbeat: every held connection is a valid one of gatewayID.
func checkHeld(gatewayID string, held []Conn) error {
	if err := checkIDs(gatewayID); err != nil {
		return err
	}
	for _, c := range held {
		if err := c.validate(); err != nil {
			return err
		}
		if c.GatewayID != gatewayID {
			return fmt.Errorf("%w: connection %q of gateway %q in the heartbeat of %q", ErrInvalidID, c.ConnID, c.GatewayID, gatewayID)
		}
	}
	return nil
}

// heldMembers are the "user|conn" members of held, sorted by user so that one user's
// connections are re-asserted together.
func heldMembers(held []Conn) []string {
	out := make([]string, 0, len(held))
	for _, c := range held {
		out = append(out, c.UserID+sep+c.ConnID)
	}
	sort.Strings(out)
	return out
}

func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
