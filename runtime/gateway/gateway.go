// Package gateway is the WebSocket edge of Parley: it authenticates connections at
// upgrade, turns client frames into bus events, and writes the events that notification
// routes to this gateway onto the sockets of their recipients.
//
// Every connection has a bounded send queue: a client that cannot keep up is
// disconnected with the reason slow_consumer and never stalls anyone else.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/parleychat/parley/runtime/presence"
	"github.com/parleychat/parley/runtime/protocol"
)

// Authenticator turns an access token into the user it was issued to.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (userID string, err error)
}

// Publisher hands what clients do to the rest of the system (the bus in production).
type Publisher interface {
	PublishMessage(ctx context.Context, m protocol.MessageSent) error
	PublishReceipt(ctx context.Context, r protocol.Receipt) error
	PublishTyping(ctx context.Context, roomID, userID string) error
	PublishPresence(ctx context.Context, userID string, online bool) error
	// OnlineContacts are the users sharing a room with userID (and not blocking them)
	// who are online now: what a new connection is told, since presence frames only
	// carry changes.
	OnlineContacts(ctx context.Context, userID string) ([]string, error)
}

// Presence records which gateway holds which user's connections.
type Presence interface {
	Connect(ctx context.Context, c presence.Conn) (bool, error)
	Disconnect(ctx context.Context, c presence.Conn) (bool, error)
	// Heartbeat makes held exactly this gateway's live connections (re-adding missing
	// ones, expiring the rest) and returns the users who came back online.
	Heartbeat(ctx context.Context, gatewayID string, held []presence.Conn) ([]string, error)
	Typing(ctx context.Context, userID, roomID string) (bool, error)
}

// History replays what a reconnecting client missed, and answers who may act in a room.
type History interface {
	// MessagesAfter returns up to limit message frames of roomID with seq > after, oldest
	// first, as userID may see them (membership and blocks applied).
	MessagesAfter(ctx context.Context, userID, roomID string, after int64, limit int) ([]protocol.ServerFrame, error)
	// CheckMember returns nil when userID is a member of roomID, an error wrapping
	// ErrForbidden when they are not (or the room does not exist), any other error when
	// it cannot tell. Room-scoped frames (typing, mark) are checked before they go on.
	CheckMember(ctx context.Context, userID, roomID string) error
}

// EventHistory is what a History also implements when it can replay room events
// (edits, deletions) after a resume's per-room events cursor.
type EventHistory interface {
	// EventsAfter returns up to limit message_updated frames of roomID with event_seq >
	// after, oldest first, as userID may see them.
	EventsAfter(ctx context.Context, userID, roomID string, after int64, limit int) ([]protocol.ServerFrame, error)
}

// Config tunes one gateway process.
type Config struct {
	// ID names this gateway in presence and routing; unique per process.
	ID string
	// AllowedOrigins are the Origin values accepted at upgrade (scheme://host[:port]).
	// Empty means same host only, as browsers send it.
	AllowedOrigins []string
	// MaxFrameBytes bounds one client frame; larger ones close the connection (1009).
	MaxFrameBytes int64
	// SendQueue is how many frames may wait for one slow connection before it is dropped.
	SendQueue int
	// FramesPerSecond and Burst bound what one user may send across all devices.
	FramesPerSecond float64
	Burst           int
	// MessagesPerSecond and MessageBurst bound the send frames of one user across all
	// devices. This is where a message's rate is judged, when the user sends it: core
	// does not judge pipeline messages again, so a backlog it processes late is never
	// refused for rate. Keep it at core's --messages-per-second.
	MessagesPerSecond float64
	MessageBurst      int
	// PingInterval is how often the server pings; a connection silent for twice as long
	// is closed.
	PingInterval time.Duration
	// WriteTimeout bounds one write to a socket.
	WriteTimeout time.Duration
	// SocketSendBuffer caps the kernel's send buffer of each connection. Linux grows it
	// to megabytes, so a client that stopped reading would absorb that much before a
	// write blocks and WriteTimeout can fire; capped, it is dropped as a slow consumer
	// about WriteTimeout after its own buffers fill, and its memory stays bounded.
	SocketSendBuffer int
	// ResumeLimit bounds the messages replayed per room on resume.
	ResumeLimit int
	// HeartbeatInterval refreshes presence; keep it well under the presence TTL.
	HeartbeatInterval time.Duration
	// ReconnectAfter is the advice given to clients when this gateway drains.
	ReconnectAfter time.Duration
	// Shards is the number of hub shards (locks); a power of two is not required.
	Shards int
	// PresenceInterval is how often a connection may receive a presence_batch frame: the
	// changes routed to it meanwhile are coalesced into one.
	PresenceInterval time.Duration
	// PresenceLargeGroup is the member count above which a group does not announce its
	// members going online and offline: their presence reaches only the clients that
	// watch them, when they watch (docs/protocol.md). Whoever resolves contacts for
	// presence applies it (internal/bridge); it lives here so that every role sets it
	// with the other gateway limits.
	PresenceLargeGroup int
	// ReadBufferBytes sizes each connection's read buffer. Client frames are small; a
	// larger frame (up to MaxFrameBytes) is read through it in pieces.
	ReadBufferBytes int
}

// DefaultPresenceLargeGroup is the default of Config.PresenceLargeGroup.
const DefaultPresenceLargeGroup = 100

// DefaultConfig holds the production defaults.
func DefaultConfig() Config {
	return Config{
		MaxFrameBytes:      64 << 10,
		SendQueue:          256,
		FramesPerSecond:    20,
		Burst:              40,
		MessagesPerSecond:  10,
		MessageBurst:       20,
		PingInterval:       25 * time.Second,
		WriteTimeout:       10 * time.Second,
		SocketSendBuffer:   64 << 10,
		ResumeLimit:        500,
		HeartbeatInterval:  15 * time.Second,
		ReconnectAfter:     time.Second,
		Shards:             32,
		PresenceInterval:   time.Second,
		ReadBufferBytes:    1024,
		PresenceLargeGroup: DefaultPresenceLargeGroup,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	orDefault(&c.MaxFrameBytes, d.MaxFrameBytes)
	orDefault(&c.SendQueue, d.SendQueue)
	orDefault(&c.FramesPerSecond, d.FramesPerSecond)
	orDefault(&c.Burst, d.Burst)
	orDefault(&c.MessagesPerSecond, d.MessagesPerSecond)
	if c.MessageBurst <= 0 {
		c.MessageBurst = max(1, int(2*c.MessagesPerSecond))
	}
	orDefault(&c.PingInterval, d.PingInterval)
	orDefault(&c.WriteTimeout, d.WriteTimeout)
	orDefault(&c.SocketSendBuffer, d.SocketSendBuffer)
	orDefault(&c.ResumeLimit, d.ResumeLimit)
	orDefault(&c.HeartbeatInterval, d.HeartbeatInterval)
	orDefault(&c.ReconnectAfter, d.ReconnectAfter)
	orDefault(&c.Shards, d.Shards)
	orDefault(&c.PresenceInterval, d.PresenceInterval)
	orDefault(&c.ReadBufferBytes, d.ReadBufferBytes)
	orDefault(&c.PresenceLargeGroup, d.PresenceLargeGroup)
	return c
}

// orDefault replaces a zero or negative setting with its default.
func orDefault[T int | int64 | float64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Close codes beyond RFC 6455's, in the private 4000–4999 range.
const (
	CloseSlowConsumer = 4008
	CloseUnauthorized = 4001
)

// CloseTryAgainLater (RFC 6455's 1013) closes a connection the gateway could not register
// in presence: nothing would be routed to it, so the client must reconnect.
const CloseTryAgainLater = websocket.CloseTryAgainLater

// reasonTryAgainLater is the close reason sent with CloseTryAgainLater.
const reasonTryAgainLater = "try_again_later"

// announcers bounds the presence announcements running at once, so a mass reconnect
// never floods the database with contact look-ups.
const announcers = 16

// Gateway serves /ws. Create it with New, serve it with ServeHTTP, feed it with Deliver,
// stop it with Drain.
type Gateway struct {
	cfg      Config
	auth     Authenticator
	pub      Publisher
	presence Presence
	history  History
	log      *slog.Logger
	metrics  *Metrics
	upgrader websocket.Upgrader

	hub      *hub
	draining atomic.Bool
	// boot is random per process: connection ids are boot-connSeq, so a process restarted
	// with the same gateway id never reuses its previous incarnation's ids.
	boot    string
	connSeq atomic.Uint64
	// presenceMu orders a heartbeat (exclusive: snapshot of the hub, then presence) against
	// registrations and removals (shared), so a heartbeat never re-adds a connection
	// closed meanwhile, nor expires one opened meanwhile.
	presenceMu sync.RWMutex
	announce   chan struct{} // semaphore of announcers
	// startMu orders "add a connection" against "start draining", so that wg.Wait in
	// Drain never races a wg.Add.
	startMu sync.Mutex
	wg      sync.WaitGroup

	limitersMu sync.Mutex
	limiters   map[string]*userLimiter

	presFlush presenceFlusher
	pinger    pinger
	// writers counts the connection writers running: few means the gateway is idle and
	// Deliver lets them start while it queues (deliverYield).
	writers atomic.Int64
	// oneWritePerFrame restores the writer before coalescing (one gorilla WriteMessage per
	// frame): the baseline of BenchmarkDelivery, never set otherwise.
	oneWritePerFrame bool
}

type userLimiter struct {
	lim   *rate.Limiter // every frame
	msgs  *rate.Limiter // send frames
	conns int
}

// New wires a gateway. metrics may be nil (then they are kept but not registered).
func New(cfg Config, auth Authenticator, pub Publisher, pres Presence, hist History, log *slog.Logger, metrics *Metrics) (*Gateway, error) {
	cfg = cfg.withDefaults()
	if cfg.ID == "" || strings.Contains(cfg.ID, "|") {
		return nil, fmt.Errorf("gateway: invalid id %q", cfg.ID)
	}
	if log == nil {
		log = slog.Default()
	}
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	g := &Gateway{
		cfg: cfg, auth: auth, pub: pub, presence: pres, history: hist, log: log.With("gateway", cfg.ID),
		metrics: metrics, hub: newHub(cfg.Shards), limiters: map[string]*userLimiter{},
		boot: newBootID(), announce: make(chan struct{}, announcers),
	}
	g.upgrader = websocket.Upgrader{
		// Right-sized: the read buffer is held for the connection's life (net/http's 4 KiB
		// one is released); gorilla's write buffer is only borrowed from the pool while a
		// control frame or a message is written, so an idle connection holds none.
		ReadBufferSize:  cfg.ReadBufferBytes,
		WriteBufferSize: 4096,
		WriteBufferPool: &writeBufferPool,
		Subprotocols:    []string{protocol.Subprotocol},
		CheckOrigin:     g.checkOrigin,
		Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
			writeHTTPError(w, status, "bad_handshake", reason.Error())
		},
	}
	return g, nil
}

// ID is this gateway's routing id.
func (g *Gateway) ID() string { return g.cfg.ID }

func (g *Gateway) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser: tokens, not origins, protect non-browser clients
	}
	if len(g.cfg.AllowedOrigins) == 0 {
		return sameOrigin(origin, r)
	}
	for _, allowed := range g.cfg.AllowedOrigins {
		if allowed == "*" || strings.EqualFold(strings.TrimSuffix(allowed, "/"), origin) {
			return true
		}
	}
	return false
}

// sameOrigin reports whether origin names the scheme, host and port the request was made
// to. The scheme is https when the connection is TLS or a TLS-terminating proxy says so
// (X-Forwarded-Proto: https), http otherwise; missing ports are the scheme's default.
func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") {
		return false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != requestScheme(r) {
		return false
	}
	oh, op := hostPort(u.Host, scheme)
	rh, rp := hostPort(r.Host, scheme)
	return oh != "" && strings.EqualFold(oh, rh) && op == rp
}

// requestScheme is the scheme the client used to reach us.
func requestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	if strings.EqualFold(strings.TrimSpace(proto), "https") {
		return "https"
	}
	return "http"
}

// hostPort splits host[:port], filling in the scheme's default port.
func hostPort(host, scheme string) (string, string) {
	u := url.URL{Host: host}
	port := u.Port()
	if port == "" {
		port = "80"
		if scheme == "https" {
			port = "443"
		}
	}
	return u.Hostname(), port
}

// tokenFromSubprotocols finds "parley.auth.<token>" among the offered subprotocols.
func tokenFromSubprotocols(r *http.Request) (string, bool) {
	wantV1 := false
	token := ""
	for _, p := range websocket.Subprotocols(r) {
		switch {
		case p == protocol.Subprotocol:
			wantV1 = true
		case strings.HasPrefix(p, protocol.AuthSubprotocolPrefix):
			token = strings.TrimPrefix(p, protocol.AuthSubprotocolPrefix)
		}
	}
	return token, wantV1
}

// ServeHTTP upgrades an authenticated request to a WebSocket connection.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.draining.Load() {
		w.Header().Set("Retry-After", "1")
		writeHTTPError(w, http.StatusServiceUnavailable, string(protocol.CodeShutdown), "this gateway is shutting down; reconnect")
		return
	}
	// Origin first: a foreign page learns nothing about the token it may have stolen.
	if !g.checkOrigin(r) {
		g.metrics.refused.WithLabelValues("origin").Inc()
		writeHTTPError(w, http.StatusForbidden, "origin_not_allowed", "origin "+r.Header.Get("Origin")+" is not allowed")
		return
	}
	token, v1 := tokenFromSubprotocols(r)
	if !v1 {
		writeHTTPError(w, http.StatusBadRequest, "bad_handshake", "ask for the "+protocol.Subprotocol+" subprotocol")
		return
	}
	if token == "" {
		g.metrics.refused.WithLabelValues("no_token").Inc()
		writeHTTPError(w, http.StatusUnauthorized, string(protocol.CodeUnauthorized), "send the access token as the subprotocol "+protocol.AuthSubprotocolPrefix+"<token>")
		return
	}
	userID, err := g.auth.Authenticate(r.Context(), token)
	if err != nil {
		g.metrics.refused.WithLabelValues("bad_token").Inc()
		writeHTTPError(w, http.StatusUnauthorized, string(protocol.CodeUnauthorized), "invalid or expired access token")
		return
	}
	ws, err := g.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	if tc, ok := ws.NetConn().(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(g.cfg.SocketSendBuffer)
	}
	g.startMu.Lock()
	// Drain is checked before the connection takes its user's rate-limiter slot, so a
	// refused connection never holds one.
	if g.draining.Load() {
		g.startMu.Unlock()
		msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, string(protocol.CodeShutdown))
		_ = ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		ws.Close()
		return
	}
	c := g.newConn(ws, userID)
	g.wg.Add(1)
	g.hub.add(c) // before unlocking, so Drain's snapshot cannot miss it
	g.startMu.Unlock()
	g.startPinger()
	go func() {
		defer g.wg.Done()
		c.run()
	}()
}

// Deliver writes frame to every local connection of each user. It never blocks: a full
// queue disconnects that connection instead.
//
// Presence changes are not written as they come: each connection coalesces them into a
// presence_batch frame (presence.go).
func (g *Gateway) Deliver(users []string, frame protocol.ServerFrame) {
	if frame.Type == protocol.FramePresence && frame.Online != nil {
		g.presenceChanged(users, frame.User, *frame.Online)
		return
	}
	o, err := encode(frame) // once, whatever the number of recipients
	if err != nil {
		g.log.Error("unencodable frame", "err", err)
		return
	}
	// At low load (few writers running), let the writers started so far run while the
	// rest are queued: on a busy core the first recipients of a big room then get the
	// frame after a few dozen enqueues rather than after all of them. Under load the
	// writers are busy anyway, and queueing without yielding lets each connection's next
	// frames join its current write (coalescing), which is what keeps the cost per
	// delivery falling as the rate rises.
	yield := len(users) > deliverYield && g.writers.Load() < deliverYield
	for i, u := range users {
		g.hub.each(u, func(c *conn) { c.enqueueEncoded(o) })
		if yield && i%deliverYield == deliverYield-1 {
			runtime.Gosched()
		}
	}
}

// deliverYield is how many recipients Deliver queues between yields, and the number of
// running writers above which it does not yield.
const deliverYield = 64

// Connections is the number of open connections.
func (g *Gateway) Connections() int { return g.hub.count() }

// Draining reports whether Drain has started (readiness turns false).
func (g *Gateway) Draining() bool { return g.draining.Load() }

// RunHeartbeat keeps this gateway's presence exactly what its hub holds until ctx ends:
// once at start (which expires whatever a previous incarnation with the same id left
// behind), then every HeartbeatInterval.
func (g *Gateway) RunHeartbeat(ctx context.Context) { g.RunHeartbeatOn(ctx, nil) }

// heartbeatRetry bounds how soon a failed heartbeat is tried again: presence lost with
// Redis comes back within about this long of Redis answering again.
const (
	heartbeatRetryMin = 250 * time.Millisecond
	heartbeatRetryMax = 2 * time.Second
)

// RunHeartbeatOn is RunHeartbeat that also heartbeats at once each time reassert fires
// (the routed subscription came back: Redis may have restarted empty, and nobody here
// looks online until the hub is re-asserted). A failed heartbeat is retried within
// heartbeatRetryMax rather than after a whole interval.
//
// Once the heartbeat that follows a reassert succeeded, every connection is told to
// resync (Resync): Redis pub/sub is at most once, and what was routed here while the
// subscription was down, or accepted by a Redis that crashed before writing it out, is
// gone for good. After that heartbeat everything fanned out reaches this gateway again,
// so a resume sent in answer fetches from history whatever was lost before.
func (g *Gateway) RunHeartbeatOn(ctx context.Context, reassert <-chan struct{}) {
	t := time.NewTicker(g.cfg.HeartbeatInterval)
	defer t.Stop()
	retry := heartbeatRetryMin
	resync := false
	for {
		var again <-chan time.Time
		if err := g.heartbeat(ctx); err != nil && ctx.Err() == nil {
			g.log.Warn("presence heartbeat failed", "err", err, "retry_in", retry)
			again = time.After(retry)
			retry = min(2*retry, heartbeatRetryMax)
		} else {
			retry = heartbeatRetryMin
			if resync && ctx.Err() == nil {
				resync = false
				g.Resync()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-reassert:
			resync = true
		case <-again:
		}
	}
}

// Resync tells every connection that live deliveries to it may have been lost (the
// routed subscription was down): a resync frame, which clients answer with resume (and
// by sending their unacknowledged messages again), without reconnecting.
func (g *Gateway) Resync() {
	o, err := encode(protocol.ServerFrame{Type: protocol.FrameResync})
	if err != nil {
		g.log.Error("unencodable frame", "err", err)
		return
	}
	conns := g.hub.all()
	for _, c := range conns {
		c.enqueueEncoded(o)
	}
	g.log.Info("told connections to resync", "connections", len(conns))
}

// heartbeat re-asserts every connection in the hub (re-adding those presence lost) and
// expires the gateway's other entries, then announces the users who came back online.
func (g *Gateway) heartbeat(ctx context.Context) error {
	// Bounded, since registrations and removals wait for it.
	ctx, cancel := context.WithTimeout(ctx, max(g.cfg.HeartbeatInterval, 5*time.Second))
	defer cancel()
	g.presenceMu.Lock()
	conns := g.hub.all()
	held := make([]presence.Conn, len(conns))
	for i, c := range conns {
		held[i] = c.presenceConn()
	}
	back, err := g.presence.Heartbeat(ctx, g.cfg.ID, held)
	g.presenceMu.Unlock()
	for _, u := range back {
		go func() {
			// Skip a user whose connections closed meanwhile: their "offline" went out.
			if len(g.hub.conns(u)) > 0 {
				g.announceOnline(context.WithoutCancel(ctx), u)
			}
		}()
	}
	return err
}

// announceOnline tells userID's contacts they are online, a few announcements at a time.
func (g *Gateway) announceOnline(ctx context.Context, userID string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	select {
	case g.announce <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-g.announce }()
	if err := g.pub.PublishPresence(ctx, userID, true); err != nil && ctx.Err() == nil {
		g.log.Warn("publish presence failed", "user", userID, "err", err)
	}
}

// maxPresenceSnapshot bounds the contacts a new connection is told about at connect.
const maxPresenceSnapshot = 1000

// sendPresenceSnapshot tells a new connection which of its contacts are online, in one
// presence_batch frame. Lookups share the announcers' bound, so a mass reconnect queues
// them instead of hammering presence.
func (c *conn) sendPresenceSnapshot() {
	g := c.g
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	select {
	case g.announce <- struct{}{}:
	case <-ctx.Done():
		return
	}
	users, err := g.pub.OnlineContacts(ctx, c.user)
	<-g.announce
	if err != nil {
		if ctx.Err() == nil {
			g.log.Warn("presence snapshot failed", "user", c.user, "err", err)
		}
		return
	}
	states := make(map[string]bool, min(len(users), maxPresenceSnapshot))
	for _, u := range users[:min(len(users), maxPresenceSnapshot)] {
		states[u] = true
	}
	c.answerPresence(states)
}

func newBootID() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// Drain stops accepting connections, tells every client to reconnect elsewhere, and
// closes them, returning when all are gone or ctx ends.
func (g *Gateway) Drain(ctx context.Context) error {
	g.startMu.Lock()
	g.draining.Store(true)
	g.startMu.Unlock()
	advice := protocol.ServerFrame{Type: protocol.FrameReconnect, Code: protocol.CodeShutdown,
		Message: "this gateway is shutting down", RetryAfterMS: g.cfg.ReconnectAfter.Milliseconds()}
	for _, c := range g.hub.all() {
		c.closeAfter(advice, websocket.CloseGoingAway, string(protocol.CodeShutdown))
	}
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, c := range g.hub.all() {
			c.ws.Close()
		}
		return fmt.Errorf("gateway drain: %d connections left: %w", g.hub.count(), ctx.Err())
	}
}

func (g *Gateway) limiter(userID string) *userLimiter {
	g.limitersMu.Lock()
	defer g.limitersMu.Unlock()
	l := g.limiters[userID]
	if l == nil {
		l = &userLimiter{lim: rate.NewLimiter(rate.Limit(g.cfg.FramesPerSecond), g.cfg.Burst),
			msgs: rate.NewLimiter(rate.Limit(g.cfg.MessagesPerSecond), g.cfg.MessageBurst)}
		g.limiters[userID] = l
	}
	l.conns++
	return l
}

func (g *Gateway) releaseLimiter(userID string) {
	g.limitersMu.Lock()
	defer g.limitersMu.Unlock()
	if l := g.limiters[userID]; l != nil {
		l.conns--
		if l.conns <= 0 {
			delete(g.limiters, userID)
		}
	}
}
