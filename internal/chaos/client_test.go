package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleychat/parley/internal/chatclient"
	"github.com/parleychat/parley/runtime/protocol"
)

// Client behaviour, as a good client does it (the web client's rules): a send waits
// ackTimeout for its ack and goes out again with the same id, waiting twice as long after
// each try up to maxAckWait (no retry storm while the system is down); rate_limited and
// internal answers are retried after retryAfter; every (re)connect sends resume with the last
// gap-free seq per room and then the sends still unanswered; a gap in a room (a seq
// seen above the gap-free cursor with no progress for gapWait) asks for resume of that room.
const (
	ackTimeout   = 5 * time.Second
	maxAckWait   = 30 * time.Second
	retryAfter   = time.Second
	gapWait      = time.Second
	maxPending   = 40 // a user with this many unanswered sends waits before typing more
	resendPerTic = 8  // stays under the per-user message rate (10/s)
	// settleTime after a (re)connect, the resume replay is over: a gap found later is a
	// live delivery that was lost while the connection stayed up.
	settleTime = 5 * time.Second
)

// sent is one message a client sent, as the ledger knows it.
type sent struct {
	user, room, clientID, body string
	issued                     time.Time
	acked                      time.Time
	msgID                      string
	seq                        int64
	nextTry                    time.Time // when to send it again without an answer
	transmissions              int
}

// ledger is everything the clients sent and were told: the checker's ground truth.
type ledger struct {
	mu       sync.Mutex
	sent     map[string]*sent // by client id (unique across users: it starts with the username)
	order    []*sent
	problems []string
	// duplicates counts message frames from others for a seq the client already had (a
	// replay overlapping live delivery, or a duplicate re-broadcast).
	duplicates atomic.Int64
	// rateLimited counts sends answered rate_limited (retried later with the same id).
	rateLimited atomic.Int64
}

func newLedger() *ledger { return &ledger{sent: map[string]*sent{}} }

func (l *ledger) problem(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.problems) < 200 {
		l.problems = append(l.problems, fmt.Sprintf(format, args...))
	}
}

func (l *ledger) takeProblems() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.problems
	l.problems = nil
	return p
}

// client is one user with one connection that keeps itself connected and resumes.
type client struct {
	l        *ledger
	user     chatclient.User
	gateways []string // ws://host:port, the preferred one first
	rooms    []string

	ratePerSec atomic.Uint64          // messages per second × 1000; 0 sends nothing
	only       atomic.Pointer[string] // the one room it sends to; nil: its rooms in turn
	bodyPad    atomic.Int64           // bytes of padding per body
	paused     atomic.Bool
	stalled    atomic.Bool  // stop reading the socket (frames pile up at the server)
	readDelay  atomic.Int64 // nanoseconds slept per frame read (a slow client)
	smallRcv   atomic.Bool  // dial with a small socket receive buffer, so a stall shows quickly

	wmu sync.Mutex // one writer per websocket

	mu          sync.Mutex
	ws          *websocket.Conn
	gateway     string // the gateway of ws
	pending     map[string]*sent
	got         map[string]map[int64]delivery // room → seq → what arrived first
	cursor      map[string]int64              // gap-free seq per room
	maxSeen     map[string]int64
	progressAt  map[string]time.Time
	resumedAt   map[string]time.Time
	n           int
	connects    int
	connectedAt time.Time
	// gapResumes counts rooms resumed because of a gap on a connection up for settleTime:
	// a live delivery lost without the connection dropping (silent loss).
	gapResumes int
	// resyncs counts the resync frames answered: the gateway said live deliveries may
	// have been lost, and the client resumed without reconnecting.
	resyncs int
	gaps    []gap    // the first few of them, for the failure report
	closes  []string // why each connection ended
	unstall chan struct{}
}

func newClient(l *ledger, u chatclient.User, gateways, rooms []string) *client {
	c := &client{
		l: l, user: u, gateways: gateways, rooms: rooms,
		pending: map[string]*sent{}, got: map[string]map[int64]delivery{}, cursor: map[string]int64{},
		maxSeen: map[string]int64{}, progressAt: map[string]time.Time{}, resumedAt: map[string]time.Time{},
		unstall: make(chan struct{}),
	}
	for _, r := range rooms {
		c.got[r] = map[int64]delivery{}
	}
	return c
}

func (c *client) setRate(perSec float64) { c.ratePerSec.Store(uint64(perSec * 1000)) }

// sendTo makes the client send into room only.
func (c *client) sendTo(room string) { c.only.Store(&room) }

func (c *client) run(ctx context.Context) {
	go c.connectLoop(ctx)
	go c.sendLoop(ctx)
	go c.retryLoop(ctx)
}

func (c *client) dial(ctx context.Context, gw string) (*websocket.Conn, error) {
	nd := &net.Dialer{Timeout: 5 * time.Second}
	small := c.smallRcv.Load()
	if small {
		nd.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	d := websocket.Dialer{
		Subprotocols:     []string{protocol.Subprotocol, protocol.AuthSubprotocolPrefix + c.user.Token},
		HandshakeTimeout: 5 * time.Second,
		NetDialContext:   nd.DialContext,
	}
	if small {
		d.ReadBufferSize = 1024
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ws, resp, err := d.DialContext(dctx, gw+"/ws", nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: %w (status %d)", gw, err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial %s: %w", gw, err)
	}
	return ws, nil
}

func (c *client) connectLoop(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		gw := c.gateways[failures%len(c.gateways)]
		ws, err := c.dial(ctx, gw)
		if err != nil {
			failures++
			sleep(ctx, backoff(failures))
			continue
		}
		failures = 0
		c.mu.Lock()
		c.ws, c.gateway, c.connectedAt = ws, gw, time.Now()
		c.connects++
		c.mu.Unlock()
		c.resume(ctx, ws)
		why := c.readLoop(ctx, ws)
		_ = ws.Close()
		c.mu.Lock()
		c.ws = nil
		c.closes = append(c.closes, why)
		c.mu.Unlock()
		sleep(ctx, time.Duration(100+rand.IntN(200))*time.Millisecond)
	}
}

// resume sends resume with the gap-free cursor of every room, then the unanswered sends
// again (8 per second, under the message rate, while the replay is read): what the
// client does on every connect, and on a resync frame without reconnecting.
func (c *client) resume(ctx context.Context, ws *websocket.Conn) {
	c.mu.Lock()
	cursors := map[string]int64{}
	for _, r := range c.rooms {
		cursors[r] = c.cursor[r]
		c.resumedAt[r] = time.Now()
	}
	var again []*sent
	for _, s := range c.pending {
		again = append(again, s)
	}
	c.mu.Unlock()
	_ = c.write(ws, protocol.ClientFrame{Type: protocol.FrameResume, Rooms: cursors})
	go func() {
		for i, s := range again {
			if i > 0 && i%resendPerTic == 0 {
				sleep(ctx, time.Second)
			}
			c.transmit(ws, s)
		}
	}()
}

func backoff(failures int) time.Duration {
	d := 100 * time.Millisecond << min(failures, 5)
	return min(d, 2*time.Second) + time.Duration(rand.IntN(100))*time.Millisecond
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func (c *client) write(ws *websocket.Conn, f protocol.ClientFrame) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return ws.WriteMessage(websocket.TextMessage, b)
}

func (c *client) transmit(ws *websocket.Conn, s *sent) {
	c.l.mu.Lock()
	s.transmissions++
	s.nextTry = time.Now().Add(min(ackTimeout<<min(s.transmissions-1, 3), maxAckWait))
	acked := !s.acked.IsZero()
	c.l.mu.Unlock()
	if acked {
		return
	}
	_ = c.write(ws, protocol.ClientFrame{Type: protocol.FrameSend, ID: s.clientID, Room: s.room, Body: s.body})
}

// readIdle is how long a connection may bring nothing, not even the server's ping
// (every 25 s), before the client gives it up and reconnects.
const readIdle = 60 * time.Second

// readLoop handles frames until the connection ends, and says why it ended.
func (c *client) readLoop(ctx context.Context, ws *websocket.Conn) string {
	ws.SetPingHandler(func(data string) error {
		_ = ws.SetReadDeadline(time.Now().Add(readIdle))
		// WriteControl may run beside the other writer.
		_ = ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(5*time.Second))
		return nil
	})
	for {
		if c.stalled.Load() {
			select {
			case <-ctx.Done():
				return "test over"
			case <-c.unstallChan():
			}
		}
		if d := c.readDelay.Load(); d > 0 {
			time.Sleep(time.Duration(d))
		}
		_ = ws.SetReadDeadline(time.Now().Add(readIdle))
		_, raw, err := ws.ReadMessage()
		if err != nil {
			return err.Error()
		}
		var f protocol.ServerFrame
		if err := json.Unmarshal(raw, &f); err != nil {
			c.l.problem("%s: undecodable frame %q: %v", c.user.Username, raw, err)
			continue
		}
		if f.Type == protocol.FrameReconnect {
			return "reconnect frame: " + f.Message
		}
		if f.Type == protocol.FrameResync {
			c.mu.Lock()
			c.resyncs++
			c.mu.Unlock()
			c.resume(ctx, ws)
			continue
		}
		c.handle(f)
	}
}

func (c *client) unstallChan() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unstall
}

func (c *client) setStalled(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if on {
		c.unstall = make(chan struct{})
		c.stalled.Store(true)
		return
	}
	c.stalled.Store(false)
	close(c.unstall)
}

func (c *client) handle(f protocol.ServerFrame) {
	switch f.Type {
	case protocol.FrameAck:
		c.l.mu.Lock()
		s := c.l.sent[f.ID]
		if s == nil {
			c.l.mu.Unlock()
			c.l.problem("%s: ack for a client id it never sent: %+v", c.user.Username, f)
			return
		}
		if s.acked.IsZero() {
			s.acked, s.msgID, s.seq = time.Now(), f.MessageID, f.Seq
		} else if s.msgID != f.MessageID || s.seq != f.Seq {
			c.l.problem("%s: %s acked twice differently: %s/%d then %s/%d", c.user.Username, f.ID, s.msgID, s.seq, f.MessageID, f.Seq)
		}
		c.l.mu.Unlock()
		c.mu.Lock()
		delete(c.pending, f.ID)
		c.mu.Unlock()
		c.record(f.Room, f.Seq, f.MessageID, false)
	case protocol.FrameMessage:
		// The sender's own device also gets its message after the ack: not a duplicate.
		c.record(f.Room, f.Seq, f.MessageID, f.Sender != c.user.ID)
	case protocol.FrameError:
		c.handleError(f)
	}
}

func (c *client) handleError(f protocol.ServerFrame) {
	switch {
	case f.Ref == protocol.FrameSend && (f.Code == protocol.CodeRateLimited || f.Code == protocol.CodeInternal):
		// Retry soon with the same id.
		if f.Code == protocol.CodeRateLimited {
			c.l.rateLimited.Add(1)
		}
		c.l.mu.Lock()
		if s := c.l.sent[f.ID]; s != nil {
			s.nextTry = time.Now().Add(retryAfter)
		}
		c.l.mu.Unlock()
	case f.Ref == protocol.FrameResume && f.Code == protocol.CodeRateLimited:
		c.mu.Lock()
		clear(c.resumedAt)
		c.mu.Unlock()
	case f.Code == protocol.CodeRateLimited && f.Ref != protocol.FrameSend:
		// A dropped resume or other frame: the gap check asks again.
	default:
		c.l.problem("%s: error frame %s (ref %s, id %s, room %s): %s", c.user.Username, f.Code, f.Ref, f.ID, f.Room, f.Message)
	}
}

func (c *client) record(room string, seq int64, msgID string, countDuplicate bool) {
	if seq <= 0 || msgID == "" {
		c.l.problem("%s: frame without seq or id in %s: seq %d id %q", c.user.Username, room, seq, msgID)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	got, ok := c.got[room]
	if !ok {
		c.mu.Unlock()
		c.l.problem("%s: message in room %s it is not a member of", c.user.Username, room)
		c.mu.Lock()
		return
	}
	if prev, ok := got[seq]; ok {
		if prev.id != msgID {
			c.mu.Unlock()
			c.l.problem("%s: room %s seq %d is %s, earlier %s", c.user.Username, room, seq, msgID, prev.id)
			c.mu.Lock()
		} else if countDuplicate {
			c.l.duplicates.Add(1)
		}
		return
	}
	got[seq] = delivery{id: msgID, at: time.Now()}
	c.maxSeen[room] = max(c.maxSeen[room], seq)
	for got[c.cursor[room]+1].id != "" {
		c.cursor[room]++
		c.progressAt[room] = time.Now()
	}
}

// sendLoop types new messages at the client's rate.
func (c *client) sendLoop(ctx context.Context) {
	for ctx.Err() == nil {
		rate := float64(c.ratePerSec.Load()) / 1000
		if rate <= 0 || c.paused.Load() {
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		// ±20 % jitter so the users do not send in lockstep.
		sleep(ctx, time.Duration(float64(time.Second)/rate*(0.8+0.4*rand.Float64())))
		if c.paused.Load() {
			continue
		}
		c.mu.Lock()
		if len(c.pending) >= maxPending {
			c.mu.Unlock()
			continue
		}
		c.n++
		room := c.rooms[c.n%len(c.rooms)]
		if only := c.only.Load(); only != nil {
			room = *only
		}
		s := &sent{user: c.user.ID, room: room, clientID: fmt.Sprintf("%s-%d", c.user.Username, c.n), issued: time.Now()}
		s.body = fmt.Sprintf("%s #%d", c.user.Username, c.n)
		if pad := c.bodyPad.Load(); pad > 0 {
			s.body += " " + strings.Repeat("x", int(pad))
		}
		c.pending[s.clientID] = s
		ws := c.ws
		c.mu.Unlock()
		c.l.mu.Lock()
		c.l.sent[s.clientID] = s
		c.l.order = append(c.l.order, s)
		c.l.mu.Unlock()
		if ws != nil {
			c.transmit(ws, s)
		}
	}
}

// retryLoop resends unanswered sends and asks for resume where a room has a gap.
func (c *client) retryLoop(ctx context.Context) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if c.stalled.Load() {
			continue
		}
		now := time.Now()
		c.mu.Lock()
		ws := c.ws
		var due []*sent
		c.l.mu.Lock()
		for _, s := range c.pending {
			if !s.nextTry.IsZero() && !now.Before(s.nextTry) && len(due) < resendPerTic/2 {
				due = append(due, s)
			}
		}
		c.l.mu.Unlock()
		gaps := map[string]int64{}
		for _, r := range c.rooms {
			if c.maxSeen[r] > c.cursor[r] && now.Sub(c.progressAt[r]) >= gapWait && now.Sub(c.resumedAt[r]) >= 2*time.Second {
				gaps[r] = c.cursor[r]
				c.resumedAt[r] = now
				if now.Sub(c.connectedAt) >= settleTime {
					c.gapResumes++
					if len(c.gaps) < 20 {
						c.gaps = append(c.gaps, gap{user: c.user.Username, room: r, seq: c.cursor[r] + 1, found: now})
					}
				}
			}
		}
		c.mu.Unlock()
		if ws == nil {
			continue
		}
		for _, s := range due {
			c.transmit(ws, s)
		}
		if len(gaps) > 0 {
			_ = c.write(ws, protocol.ClientFrame{Type: protocol.FrameResume, Rooms: gaps})
		}
	}
}

// reconnect closes the connection; the client dials again and resumes.
func (c *client) reconnect() {
	c.mu.Lock()
	ws := c.ws
	c.mu.Unlock()
	if ws != nil {
		_ = ws.Close()
	}
}

func (c *client) currentGateway() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ws == nil {
		return ""
	}
	return c.gateway
}

// describe says how the client stands in room, for failure reports.
func (c *client) describe(room string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	closes := c.closes
	if len(closes) > 5 {
		closes = closes[len(closes)-5:]
	}
	return fmt.Sprintf("%s: connected %v, %d connects, gap-free to %d, highest seen %d, last closes %q",
		c.user.Username, c.ws != nil, c.connects, c.cursor[room], c.maxSeen[room], closes)
}

// gap is a live delivery a connected client found missing.
type gap struct {
	user, room string
	seq        int64 // the first seq missing
	found      time.Time
}

// delivery is a message as a client first got it (ack, live frame or resume replay).
type delivery struct {
	id string
	at time.Time
}

// has reports whether the client holds message msgID as seq of room.
func (c *client) has(room string, seq int64, msgID string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got[room][seq].id == msgID
}

// receivedAt is when the client first got seq of room (zero if never).
func (c *client) receivedAt(room string, seq int64) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got[room][seq].at
}
