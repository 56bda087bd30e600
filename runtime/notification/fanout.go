package notification

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/parleychat/parley/runtime/chat"
	"github.com/parleychat/parley/runtime/protocol"
)

// RouteChunk bounds the recipients of one routed delivery: a big room's members on one
// gateway go in several small payloads, so a burst never passes Redis's pub/sub
// output-buffer limit (which would drop the gateway's subscription and everything
// queued for it).
const RouteChunk = 256

// fanState is the progress of delivering one frame to some users, kept across retries
// so that a retry only redoes what failed. The per-user maps are filled only for users a
// round left unsettled (some gateway of theirs failed), so that the usual fan-out, where
// every route succeeds at once, costs no map entry per recipient beyond settled.
type fanState struct {
	routed  map[string]bool // gateway+"\x00"+user: that gateway has it (unsettled users only)
	reached map[string]bool // unsettled users that at least one gateway accepted
	settled map[string]bool // users done: every gateway of theirs handled, or offline
	offline []string        // settled users with no live connection, in settling order
}

// eventState is the progress of one event's fan-out.
type eventState struct {
	started, repeat bool
	resolved        bool
	recipients      []string
	ack, main       fanState
	pushedUpTo      int      // main.offline already considered for push
	toPush          []string // offline recipients whose push is not queued yet
}

func (st *fanState) settle(u string, offline bool) {
	st.settled[u] = true
	if offline {
		st.offline = append(st.offline, u)
	}
}

// Outcome of one gateway for one user in a round, when it was not a plain success.
const (
	routeFailed     = 1 // retry it
	routeNoReceiver = 2 // nobody listens there: handled, not reached
)

// deliver routes frame to every gateway holding one of users that does not have it yet,
// each gateway (and each RouteChunk of its users) on its own. A gateway that no
// subscriber listens for, while presence still reads complete, is pruned from those
// users' presence and counts as not reaching them: a user no gateway reached is offline
// (pushed). The error joins the failures; what succeeded is remembered in st.
func (n *Notifier) deliver(ctx context.Context, st *fanState, users []string, frame protocol.ServerFrame) error {
	if st.settled == nil {
		st.settled = make(map[string]bool, len(users))
	}
	pending := make([]string, 0, len(users))
	var dup map[string]struct{} // a room's members come unique; this guards other callers
	if len(users) > 16 {
		dup = make(map[string]struct{}, len(users))
	}
	for _, u := range users {
		if st.settled[u] {
			continue
		}
		if dup != nil {
			if _, ok := dup[u]; ok {
				continue
			}
			dup[u] = struct{}{}
		} else if slices.Contains(pending, u) {
			continue
		}
		pending = append(pending, u)
	}
	if len(pending) == 0 {
		return nil
	}
	gws, err := n.locator.Gateways(ctx, pending)
	if err != nil {
		n.failed.WithLabelValues("locate").Inc()
		return fmt.Errorf("locate recipients: %w", err)
	}
	byGateway := map[string][]string{}
	for _, u := range pending {
		if len(gws[u]) == 0 {
			st.settle(u, !st.reached[u])
			continue
		}
		for _, gw := range gws[u] {
			if st.routed == nil || !st.routed[gw+"\x00"+u] {
				byGateway[gw] = append(byGateway[gw], u)
			}
		}
	}
	gateways := make([]string, 0, len(byGateway))
	for gw := range byGateway {
		gateways = append(gateways, gw)
	}
	sort.Strings(gateways)
	var (
		errs []error
		bad  map[string]uint8 // gateway+"\x00"+user → routeFailed or routeNoReceiver
	)
	mark := func(gw string, chunk []string, outcome uint8) {
		if bad == nil {
			bad = map[string]uint8{}
		}
		for _, u := range chunk {
			bad[gw+"\x00"+u] = outcome
		}
	}
	for _, gw := range gateways {
		all := byGateway[gw]
		for start := 0; start < len(all); start += RouteChunk {
			chunk := all[start:min(start+RouteChunk, len(all))]
			err := n.router.Route(ctx, gw, Delivery{Users: chunk, Frame: frame})
			switch {
			case err == nil:
				n.routed.Inc()
			case errors.Is(err, ErrNoReceiver):
				n.failed.WithLabelValues("no_receiver").Inc()
				// Redis may have restarted empty between locating and publishing: then
				// nobody has resubscribed yet, and "offline" would be a lie. Only a
				// presence that still reads complete makes the gateway dead.
				if _, cerr := n.locator.Gateways(ctx, chunk); cerr != nil {
					errs = append(errs, fmt.Errorf("gateway %s had no subscriber, presence cannot confirm it is gone: %w", gw, cerr))
					mark(gw, chunk, routeFailed)
					continue
				}
				n.prune(ctx, gw, chunk)
				mark(gw, chunk, routeNoReceiver) // handled: nobody there to retry for
			default:
				n.failed.WithLabelValues("route").Inc()
				errs = append(errs, err)
				mark(gw, chunk, routeFailed)
			}
		}
	}
	for _, u := range pending {
		if st.settled[u] || len(gws[u]) == 0 {
			continue
		}
		done, reached := true, st.reached[u]
		var handled []string // gateways of u handled this round, kept only if u is not done
		for _, gw := range gws[u] {
			if st.routed != nil && st.routed[gw+"\x00"+u] {
				continue // an earlier round
			}
			outcome := uint8(0)
			if bad != nil {
				outcome = bad[gw+"\x00"+u]
			}
			switch outcome {
			case 0:
				reached = true
				handled = append(handled, gw)
			case routeNoReceiver:
				handled = append(handled, gw)
			default:
				done = false
			}
		}
		if done {
			st.settle(u, !reached)
			continue
		}
		if st.routed == nil {
			st.routed, st.reached = map[string]bool{}, map[string]bool{}
		}
		for _, gw := range handled {
			st.routed[gw+"\x00"+u] = true
		}
		if reached {
			st.reached[u] = true
		}
	}
	return errors.Join(errs...)
}

// prune forgets gw's presence entries of users, when the locator can.
func (n *Notifier) prune(ctx context.Context, gw string, users []string) {
	p, ok := n.locator.(Pruner)
	if !ok {
		return
	}
	if err := p.Prune(ctx, gw, users); err != nil {
		n.failed.WithLabelValues("prune").Inc()
		n.log.Warn("prune presence of a gateway nobody listens for", "gateway", gw, "err", err)
	}
}

// Retry bounds the attempts one event's fan-out makes before the caller hears of the
// failure (the consumer then keeps retrying it, never committing it).
type Retry struct {
	// Attempts is how many times a transient failure is tried within the event.
	Attempts int
	// Backoff is the wait after the first failure, doubled after each one.
	Backoff time.Duration
}

// DefaultRetry is three attempts within about 75 ms.
func DefaultRetry() Retry { return Retry{Attempts: 3, Backoff: 25 * time.Millisecond} }

func (r Retry) withDefaults() Retry {
	d := DefaultRetry()
	if r.Attempts < 1 {
		r.Attempts = d.Attempts
	}
	if r.Backoff <= 0 {
		r.Backoff = d.Backoff
	}
	return r
}

// do runs attempt until it succeeds, fails permanently, ctx ends, or the attempts run out.
func (r Retry) do(ctx context.Context, attempt func() error) error {
	wait := r.Backoff
	for i := 1; ; i++ {
		err := attempt()
		if err == nil || i >= r.Attempts || Permanent(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// ErrUndeliverable marks an event that no retry can fan out (undecodable, unknown type):
// the consumer logs it and moves on.
var ErrUndeliverable = errors.New("undeliverable event")

// Permanent reports whether retrying err is pointless: the event is undeliverable, or
// its room or user no longer exists. Everything else (Redis, the database, a gateway's
// channel) is a dependency that may come back.
func Permanent(err error) bool {
	return errors.Is(err, ErrUndeliverable) || errors.Is(err, ErrNotMember) ||
		errors.Is(err, chat.ErrRoomNotFound) || errors.Is(err, chat.ErrUserNotFound)
}

func serverKey(serverID string) string {
	if serverID == "" {
		return ""
	}
	return "m:" + serverID
}

func eventKey(id string) string {
	if id == "" {
		return ""
	}
	return "e:" + id
}

// seen asks the shared marks; when they cannot tell, the event is fanned out (clients
// deduplicate on message_id, a duplicate is better than a loss).
func (n *Notifier) seen(ctx context.Context, key string) bool {
	if n.marks == nil || key == "" {
		return false
	}
	ok, err := n.marks.Seen(ctx, key)
	if err != nil {
		n.failed.WithLabelValues("marks").Inc()
		return false
	}
	return ok
}

func (n *Notifier) mark(ctx context.Context, key string) {
	if n.marks == nil || key == "" {
		return
	}
	if err := n.marks.Mark(ctx, key); err != nil {
		n.failed.WithLabelValues("marks").Inc()
	}
}
