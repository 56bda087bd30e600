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
	"sync"
	"sync/atomic"
	"time"

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

// Pusher notifies users with no live connection (Web Push). It is called once per
// message with every member to push, and must not wait for push services: it queues.
type Pusher interface {
	PushMessage(ctx context.Context, userIDs []string, m *protocol.MessageDelivered) error
}

// Pruner is what a Locator also implements when it can forget a gateway's entries for
// some users: a routed delivery that reached no subscriber means the gateway is dead or
// resubscribing (a live one re-asserts its connections at its next heartbeat).
type Pruner interface {
	Prune(ctx context.Context, gatewayID string, userIDs []string) error
}

// Marks remember, across notification processes, which events were fanned out, so that
// an event redelivered after a rebalance or a rollout is not sent again. Entries expire.
type Marks interface {
	Seen(ctx context.Context, key string) (bool, error)
	Mark(ctx context.Context, key string) error
}

// Notifier turns events into deliveries.
type Notifier struct {
	rooms   Rooms
	locator Locator
	router  Router
	pusher  Pusher
	marks   Marks
	log     *slog.Logger
	retry   Retry

	running atomic.Bool
	health  consumerHealth
	members int // of the chat.message_delivered group (WithMembers)

	// announced remembers the server ids of the messages this notifier fanned out, so a
	// message announced again is acked to its sender only; events remembers the ids of
	// the events fanned out, so a redelivered one is skipped.
	announced *idMemory
	events    *idMemory

	routed prometheus.Counter
	pushed prometheus.Counter
	failed *prometheus.CounterVec
	lag    prometheus.Gauge
}

// Option changes a Notifier.
type Option func(*Notifier)

// WithMarks shares the memory of fanned-out events through m (Redis in production).
func WithMarks(m Marks) Option { return func(n *Notifier) { n.marks = m } }

// WithMembers sets how many members of chat.message_delivered's group Run starts
// (default Members()).
func WithMembers(count int) Option { return func(n *Notifier) { n.members = max(1, count) } }

// WithRetry replaces DefaultRetry.
func WithRetry(r Retry) Option { return func(n *Notifier) { n.retry = r.withDefaults() } }

// New wires a notifier; pusher may be nil (no Web Push), reg may be nil.
func New(rooms Rooms, locator Locator, router Router, pusher Pusher, log *slog.Logger, reg prometheus.Registerer, opts ...Option) *Notifier {
	if log == nil {
		log = slog.Default()
	}
	n := &Notifier{
		rooms: rooms, locator: locator, router: router, pusher: pusher, log: log,
		retry:     DefaultRetry(),
		members:   Members(),
		announced: newIDMemory(announcedMemory),
		events:    newIDMemory(announcedMemory),
		routed:    prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_notification_deliveries_total", Help: "Deliveries routed to gateways (one per gateway and recipient chunk per event)."}),
		pushed:    prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_notification_pushes_total", Help: "Web Push notifications handed to the pusher."}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_notification_failures_total",
			Help: "Fan-out failures, by stage (locate, route, no_receiver, recipients, push, typing, presence, retry, fetch, commit, decode, ...)."}, []string{"stage"}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "parley_notification_consumer_lag", Help: "Events behind the end of the partitions, as of the last fetch (largest partition)."}),
	}
	for _, o := range opts {
		o(n)
	}
	n.health.now = time.Now
	if reg != nil {
		reg.MustRegister(n.routed, n.pushed, n.failed, n.lag)
	}
	return n
}

// fanOut routes frame to every gateway holding one of users, once per gateway, and
// returns the users with no live connection. It is the at-most-once path of typing and
// presence: one attempt, every gateway tried whatever the others do.
func (n *Notifier) fanOut(ctx context.Context, users []string, frame protocol.ServerFrame) ([]string, error) {
	var st fanState
	err := n.deliver(ctx, &st, users, frame)
	if err != nil && frame.Type == protocol.FrameTypingOut {
		n.failed.WithLabelValues("typing").Inc() // Presence counts its own
	}
	return st.offline, err
}

// MessageUpdated fans a changed message out to the room's members, except those who
// blocked who changed it or its author (they see neither in real time nor in a replay).
// Transient failures are retried (Retry); an error means some recipient was not reached.
func (n *Notifier) MessageUpdated(ctx context.Context, m *protocol.MessageUpdated) error {
	var st eventState
	return n.retry.do(ctx, func() error { return n.messageUpdated(ctx, m, &st) })
}

func (n *Notifier) messageUpdated(ctx context.Context, m *protocol.MessageUpdated, st *eventState) error {
	if !st.resolved {
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
		st.recipients, st.resolved = recipients, true
	}
	return n.deliver(ctx, &st.main, st.recipients, protocol.MessageUpdatedFrame(m))
}

// MessageDelivered acks the sender's devices and delivers the message to every recipient
// (the sender's other devices included); recipients with no connection get a push. The
// ack, each gateway and the pushes go independently: one failing never holds the
// others back, and a retry redoes only what failed (Retry).
//
// A message this notifier has fanned out before (same server id) is only acked to its
// sender: that is a retried client id answered with the stored original, or a replayed
// batch, and the room saw it already. The memory is per process and bounded
// (announcedMemory ids), and shared through Marks when configured.
func (n *Notifier) MessageDelivered(ctx context.Context, m *protocol.MessageDelivered) error {
	var st eventState
	return n.retry.do(ctx, func() error { return n.messageDelivered(ctx, m, &st) })
}

func (n *Notifier) messageDelivered(ctx context.Context, m *protocol.MessageDelivered, st *eventState) error {
	if !st.started {
		st.started = true
		st.repeat = n.announced.has(m.ServerID) || n.seen(ctx, serverKey(m.ServerID))
	}
	// The ack goes first and on its own: the sender waits for it.
	errAck := n.deliver(ctx, &st.ack, []string{m.SenderID}, protocol.AckFrame(m))
	if st.repeat {
		return errAck
	}
	if !st.resolved {
		recipients, err := n.rooms.Recipients(ctx, m.RoomID, m.SenderID)
		if err != nil {
			n.failed.WithLabelValues("recipients").Inc()
			return errors.Join(errAck, fmt.Errorf("recipients of room %s: %w", m.RoomID, err))
		}
		st.recipients, st.resolved = recipients, true
	}
	errMsg := n.deliver(ctx, &st.main, st.recipients, protocol.MessageFrame(m))
	errPush := n.push(ctx, m, st)
	if err := errors.Join(errAck, errMsg, errPush); err != nil {
		return err
	}
	n.announced.add(m.ServerID)
	n.mark(ctx, serverKey(m.ServerID))
	return nil
}

// push notifies the recipients found offline since the last attempt (not the sender).
func (n *Notifier) push(ctx context.Context, m *protocol.MessageDelivered, st *eventState) error {
	for _, u := range st.main.offline[st.pushedUpTo:] {
		if u != m.SenderID {
			st.toPush = append(st.toPush, u)
		}
	}
	st.pushedUpTo = len(st.main.offline)
	if n.pusher == nil || len(st.toPush) == 0 {
		st.toPush = nil
		return nil
	}
	targets, err := n.rooms.PushTargets(ctx, m.RoomID, st.toPush)
	if err != nil {
		n.failed.WithLabelValues("push_targets").Inc()
		return fmt.Errorf("notification levels of room %s: %w", m.RoomID, err)
	}
	// A mention pushes to the member mentioned even in a room set to mentions only or
	// muted (toPush holds only recipients: never someone who blocked the sender).
	for _, u := range st.toPush {
		if slices.Contains(m.Mentions, u) && !slices.Contains(targets, u) {
			targets = append(targets, u)
		}
	}
	st.toPush = nil
	if len(targets) == 0 {
		return nil
	}
	// The pusher queues: a full queue drops, which is counted there and not retried (a
	// push is a hint; the message is in history).
	if err := n.pusher.PushMessage(ctx, targets, m); err != nil {
		n.failed.WithLabelValues("push").Inc()
		n.log.Warn("web push not queued", "room", m.RoomID, "users", len(targets), "err", err)
		return nil
	}
	n.pushed.Add(float64(len(targets)))
	return nil
}

// MessageRejected tells the sender's devices why their message was refused.
func (n *Notifier) MessageRejected(ctx context.Context, m *protocol.MessageRejected) error {
	frame := protocol.ErrorFrame(protocol.ErrorCode(m.Reason), rejectionText(m), protocol.FrameSend, m.ClientID)
	frame.Room = m.RoomID
	var st fanState
	return n.retry.do(ctx, func() error { return n.deliver(ctx, &st, []string{m.SenderID}, frame) })
}

func rejectionText(m *protocol.MessageRejected) string {
	if m.Detail != "" {
		return m.Detail
	}
	return "message refused: " + string(m.Reason)
}

// ReceiptUpdated shows a member's moved cursors to the room's members (ticks).
func (n *Notifier) ReceiptUpdated(ctx context.Context, r *protocol.ReceiptUpdated) error {
	var st eventState
	return n.retry.do(ctx, func() error { return n.receiptUpdated(ctx, r, &st) })
}

func (n *Notifier) receiptUpdated(ctx context.Context, r *protocol.ReceiptUpdated, st *eventState) error {
	if !st.resolved {
		recipients, err := n.rooms.Recipients(ctx, r.RoomID, r.UserID)
		if err != nil {
			n.failed.WithLabelValues("recipients").Inc()
			return fmt.Errorf("recipients of room %s: %w", r.RoomID, err)
		}
		st.recipients, st.resolved = recipients, true
	}
	frame := protocol.ServerFrame{Type: protocol.FrameReceipt, Room: r.RoomID, User: r.UserID,
		DeliveredSeq: r.DeliveredSeq, ReadSeq: r.ReadSeq}
	return n.deliver(ctx, &st.main, st.recipients, frame)
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
//
// Contacts are the members of userID's direct chats and small groups (large groups
// announce no joins and leaves), and each gateway coalesces what it receives into one
// presence_batch per connection and interval, so a room whose members all connect at
// once costs each of them a bounded number of frames (docs/protocol.md).
func (n *Notifier) Presence(ctx context.Context, userID string, online bool) error {
	contacts, err := n.rooms.Contacts(ctx, userID)
	if err != nil {
		n.failed.WithLabelValues("presence").Inc()
		return fmt.Errorf("contacts of %s: %w", userID, err)
	}
	_, err = n.fanOut(ctx, contacts, protocol.ServerFrame{Type: protocol.FramePresence, User: userID, Online: &online})
	if err != nil {
		n.failed.WithLabelValues("presence").Inc()
	}
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
