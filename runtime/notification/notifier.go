// Package notification fans events out to the people who should see them: it resolves
// recipients (room members minus those who blocked the sender), finds the gateways that
// hold their connections, and routes each event only to those gateways. Members with no
// live connection get a Web Push instead, when a pusher is configured.
package notification

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/runtime/protocol"
)

// Rooms resolves who should receive a room's events.
type Rooms interface {
	// Recipients are the room's members who may see an event caused by actorID: every
	// member except those who blocked actorID (the actor's own devices included).
	Recipients(ctx context.Context, roomID, actorID string) ([]string, error)
	// Contacts are the users sharing a room with userID who did not block them, for
	// presence.
	Contacts(ctx context.Context, userID string) ([]string, error)
	// PushTargets are those of userIDs whose notification level for the room asks for a
	// Web Push for an ordinary message (all; not muted, not mentions only). Members the
	// message mentions are pushed whatever their level.
	PushTargets(ctx context.Context, roomID string, userIDs []string) ([]string, error)
}

// Locator says which gateways hold each user's connections.
type Locator interface {
	Gateways(ctx context.Context, userIDs []string) (map[string][]string, error)
}

// Router carries a delivery to one gateway.
type Router interface {
	Route(ctx context.Context, gatewayID string, d Delivery) error
}

// Pusher notifies users with no live connection (Web Push).
type Pusher interface {
	PushMessage(ctx context.Context, userID string, m *protocol.MessageDelivered) error
}

// Notifier turns events into deliveries.
type Notifier struct {
	rooms   Rooms
	locator Locator
	router  Router
	pusher  Pusher
	log     *slog.Logger

	running atomic.Bool

	// announced remembers the server ids of the messages this notifier fanned out, so a
	// message announced again is acked to its sender only.
	announced *idMemory

	routed prometheus.Counter
	pushed prometheus.Counter
	failed *prometheus.CounterVec
}

// New wires a notifier; pusher may be nil (no Web Push), reg may be nil.
func New(rooms Rooms, locator Locator, router Router, pusher Pusher, log *slog.Logger, reg prometheus.Registerer) *Notifier {
	if log == nil {
		log = slog.Default()
	}
	n := &Notifier{
		rooms: rooms, locator: locator, router: router, pusher: pusher, log: log,
		announced: newIDMemory(announcedMemory),
		routed:    prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_notification_deliveries_total", Help: "Deliveries routed to gateways (one per gateway per event)."}),
		pushed:    prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_notification_pushes_total", Help: "Web Push notifications handed to the pusher."}),
		failed:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_notification_failures_total", Help: "Fan-out failures, by stage."}, []string{"stage"}),
	}
	if reg != nil {
		reg.MustRegister(n.routed, n.pushed, n.failed)
	}
	return n
}

// fanOut routes frame to every gateway holding one of users, once per gateway, and
// returns the users with no live connection.
func (n *Notifier) fanOut(ctx context.Context, users []string, frame protocol.ServerFrame) ([]string, error) {
	if len(users) == 0 {
		return nil, nil
	}
	gws, err := n.locator.Gateways(ctx, users)
	if err != nil {
		n.failed.WithLabelValues("locate").Inc()
		return nil, fmt.Errorf("locate recipients: %w", err)
	}
	byGateway := map[string][]string{}
	var offline []string
	for _, u := range users {
		if len(gws[u]) == 0 {
			offline = append(offline, u)
			continue
		}
		for _, gw := range gws[u] {
			byGateway[gw] = append(byGateway[gw], u)
		}
	}
	gateways := make([]string, 0, len(byGateway))
	for gw := range byGateway {
		gateways = append(gateways, gw)
	}
	sort.Strings(gateways)
	var errs []error
	for _, gw := range gateways {
		if err := n.router.Route(ctx, gw, Delivery{Users: byGateway[gw], Frame: frame}); err != nil {
			n.failed.WithLabelValues("route").Inc()
			errs = append(errs, err)
			continue
		}
		n.routed.Inc()
	}
	return offline, errors.Join(errs...)
}

// MessageDelivered acks the sender's devices and delivers the message to every recipient
// (the sender's other devices included); recipients with no connection get a push.
//
// A message this notifier has fanned out before (same server id) is only acked to its
// sender: that is a retried client id answered with the stored original, or a replayed
// batch, and the room saw it already. The memory is per process and bounded
// (announcedMemory ids); a room's events all go to one consumer, so it only misses
// when the partition moved to another process in between, and then clients deduplicate
// on message_id as they must anyway.
// MessageUpdated fans a changed message out to the room's members, except those who
// blocked who changed it or its author (they see neither in real time nor in a replay).
// At most once, like every real-time delivery: resume replays the room's events.
func (n *Notifier) MessageUpdated(ctx context.Context, m *protocol.MessageUpdated) error {
	recipients, err := n.rooms.Recipients(ctx, m.RoomID, m.ActorID)
	if err == nil && m.SenderID != m.ActorID {
		var ofSender []string
		if ofSender, err = n.rooms.Recipients(ctx, m.RoomID, m.SenderID); err == nil {
			recipients = slices.DeleteFunc(recipients, func(u string) bool { return !slices.Contains(ofSender, u) })
		}
	}
	if err != nil {
		n.failed.WithLabelValues("recipients").Inc()
		return fmt.Errorf("recipients of room %s: %w", m.RoomID, err)
	}
	_, err = n.fanOut(ctx, recipients, protocol.MessageUpdatedFrame(m))
	return err
}

func (n *Notifier) MessageDelivered(ctx context.Context, m *protocol.MessageDelivered) error {
	if n.announced.has(m.ServerID) {
		_, err := n.fanOut(ctx, []string{m.SenderID}, protocol.AckFrame(m))
		return err
	}
	recipients, err := n.rooms.Recipients(ctx, m.RoomID, m.SenderID)
	if err != nil {
		n.failed.WithLabelValues("recipients").Inc()
		return fmt.Errorf("recipients of room %s: %w", m.RoomID, err)
	}
	if _, err := n.fanOut(ctx, []string{m.SenderID}, protocol.AckFrame(m)); err != nil {
		return err
	}
	offline, err := n.fanOut(ctx, recipients, protocol.MessageFrame(m))
	if err != nil {
		return err // not remembered: the retry fans out again
	}
	n.announced.add(m.ServerID)
	if n.pusher == nil {
		return nil
	}
	offline = slices.DeleteFunc(offline, func(u string) bool { return u == m.SenderID })
	if len(offline) == 0 {
		return nil
	}
	targets, err := n.rooms.PushTargets(ctx, m.RoomID, offline)
	if err != nil {
		// The message reached every live connection; a push is a hint, not worth a retry.
		n.failed.WithLabelValues("push").Inc()
		n.log.Warn("notification levels unavailable; no web push", "room", m.RoomID, "err", err)
		targets = nil // the mentioned are still pushed below
	}
	// A mention pushes to the member mentioned even in a room set to mentions only or
	// muted (offline holds only recipients: never someone who blocked the sender).
	for _, u := range offline {
		if slices.Contains(m.Mentions, u) && !slices.Contains(targets, u) {
			targets = append(targets, u)
		}
	}
	for _, u := range targets {
		if err := n.pusher.PushMessage(ctx, u, m); err != nil {
			n.failed.WithLabelValues("push").Inc()
			n.log.Warn("web push failed", "user", u, "room", m.RoomID, "err", err)
			continue
		}
		n.pushed.Inc()
	}
	return nil
}

// MessageRejected tells the sender's devices why their message was refused.
func (n *Notifier) MessageRejected(ctx context.Context, m *protocol.MessageRejected) error {
	frame := protocol.ErrorFrame(protocol.ErrorCode(m.Reason), rejectionText(m), protocol.FrameSend, m.ClientID)
	frame.Room = m.RoomID
	_, err := n.fanOut(ctx, []string{m.SenderID}, frame)
	return err
}

func rejectionText(m *protocol.MessageRejected) string {
	if m.Detail != "" {
		return m.Detail
	}
	return "message refused: " + string(m.Reason)
}

// ReceiptUpdated shows a member's moved cursors to the room's members (ticks).
func (n *Notifier) ReceiptUpdated(ctx context.Context, r *protocol.ReceiptUpdated) error {
	recipients, err := n.rooms.Recipients(ctx, r.RoomID, r.UserID)
	if err != nil {
		n.failed.WithLabelValues("recipients").Inc()
		return fmt.Errorf("recipients of room %s: %w", r.RoomID, err)
	}
	frame := protocol.ServerFrame{Type: protocol.FrameReceipt, Room: r.RoomID, User: r.UserID,
		DeliveredSeq: r.DeliveredSeq, ReadSeq: r.ReadSeq}
	_, err = n.fanOut(ctx, recipients, frame)
	return err
}

// ErrNotMember is returned for typing by someone who is not a member of the room: nothing
// is fanned out.
var ErrNotMember = errors.New("not a member of the room")

// Typing shows that userID types in roomID to the other members who did not block them.
// A typist who is not a member is refused with ErrNotMember (the gateway checks first;
// this holds even if a caller forgets).
func (n *Notifier) Typing(ctx context.Context, roomID, userID string) error {
	recipients, err := n.rooms.Recipients(ctx, roomID, userID)
	if err != nil {
		return fmt.Errorf("recipients of room %s: %w", roomID, err)
	}
	// Recipients are the members minus those who blocked userID, and nobody blocks
	// themselves: userID is among them exactly when a member.
	member := false
	others := recipients[:0:0]
	for _, u := range recipients {
		if u != userID {
			others = append(others, u)
		} else {
			member = true
		}
	}
	if !member {
		return fmt.Errorf("typing of %s in room %s: %w", userID, roomID, ErrNotMember)
	}
	_, err = n.fanOut(ctx, others, protocol.ServerFrame{Type: protocol.FrameTypingOut, Room: roomID, User: userID})
	return err
}

// Presence shows userID going online or offline to their contacts.
func (n *Notifier) Presence(ctx context.Context, userID string, online bool) error {
	contacts, err := n.rooms.Contacts(ctx, userID)
	if err != nil {
		return fmt.Errorf("contacts of %s: %w", userID, err)
	}
	_, err = n.fanOut(ctx, contacts, protocol.ServerFrame{Type: protocol.FramePresence, User: userID, Online: &online})
	return err
}

// OnlineContacts are userID's contacts (sharing a room, not blocking userID) with at
// least one live connection: the presence a new connection starts from.
func (n *Notifier) OnlineContacts(ctx context.Context, userID string) ([]string, error) {
	contacts, err := n.rooms.Contacts(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("contacts of %s: %w", userID, err)
	}
	if len(contacts) == 0 {
		return nil, nil
	}
	gws, err := n.locator.Gateways(ctx, contacts)
	if err != nil {
		return nil, fmt.Errorf("locate contacts of %s: %w", userID, err)
	}
	var online []string
	for _, u := range contacts {
		if u != userID && len(gws[u]) > 0 {
			online = append(online, u)
		}
	}
	return online, nil
}

// announcedMemory is how many announced server ids a notifier remembers (about 64 bytes
// each).
const announcedMemory = 1 << 16

// idMemory is a bounded set of ids, forgetting the oldest first. It grows as ids come
// (a notifier that only fans out typing and presence never allocates it).
type idMemory struct {
	mu   sync.Mutex
	size int
	set  map[string]struct{}
	ring []string
	next int
}

func newIDMemory(size int) *idMemory {
	return &idMemory{size: size, set: map[string]struct{}{}}
}

func (m *idMemory) has(id string) bool {
	if id == "" {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.set[id]
	return ok
}

func (m *idMemory) add(id string) {
	if id == "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.set[id]; ok {
		return
	}
	if len(m.ring) < m.size {
		m.ring = append(m.ring, id)
	} else {
		delete(m.set, m.ring[m.next])
		m.ring[m.next] = id
		m.next = (m.next + 1) % m.size
	}
	m.set[id] = struct{}{}
}
