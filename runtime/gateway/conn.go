package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleychat/parley/runtime/presence"
	"github.com/parleychat/parley/runtime/protocol"
)

// ErrForbidden is what History returns (wrapped) for a room the user may not read.
var ErrForbidden = errors.New("forbidden")

// closeRequest asks the writer to flush, send a close frame and hang up.
type closeRequest struct {
	code   int
	reason string
}

type conn struct {
	g    *Gateway
	ws   *websocket.Conn
	id   string
	user string
	lim  *userLimiter

	send     chan *outbound
	replay   chan *outbound // resume frames, handed to the writer one at a time
	resumes  chan protocol.ClientFrame
	closeReq chan closeRequest
	quit     chan struct{} // closed when the connection is finished
	quitOnce sync.Once
	killOnce sync.Once
	dead     atomic.Bool // set by kill: further frames are dropped silently

	ctx    context.Context
	cancel context.CancelFunc
}

func (g *Gateway) newConn(ws *websocket.Conn, userID string) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{
		g: g, ws: ws, user: userID,
		id:       g.boot + "-" + strconv.FormatUint(g.connSeq.Add(1), 36),
		lim:      g.limiter(userID),
		send:     make(chan *outbound, g.cfg.SendQueue),
		replay:   make(chan *outbound),
		resumes:  make(chan protocol.ClientFrame, pendingResumes),
		closeReq: make(chan closeRequest, 1),
		quit:     make(chan struct{}),
		ctx:      ctx, cancel: cancel,
	}
}

func (c *conn) presenceConn() presence.Conn {
	return presence.Conn{UserID: c.user, GatewayID: c.g.cfg.ID, ConnID: c.id}
}

// pendingResumes is how many resume frames may wait while one is replayed.
const pendingResumes = 2

// registerTimeout bounds the presence registration of a new connection.
const registerTimeout = 5 * time.Second

// run owns the connection: it starts the writer, registers the connection in presence,
// announces it in the background, reads until either side ends, and cleans up.
func (c *conn) run() {
	g := c.g
	g.metrics.connections.Inc()
	// The writer first: deliveries may arrive as soon as the connection is in the hub.
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
		// Whatever stopped the writer (a write error, a close request, a kill), the
		// connection is over: hang up now, so the reader ends instead of waiting for its
		// read deadline, and the connection leaves the hub and presence at once.
		c.finish()
		c.ws.Close()
	}()
	go c.resumeLoop()

	announced := make(chan struct{})
	online, err := c.register()
	switch {
	case err != nil:
		close(announced)
		// Nothing would ever be routed to it: tell the client to come back.
		g.log.Warn("presence connect failed; closing the connection", "user", c.user, "err", err)
		c.kill(CloseTryAgainLater, reasonTryAgainLater)
		<-c.quit // kill has written the close frame
	case online:
		go func() {
			defer close(announced)
			g.announceOnline(c.ctx, c.user)
		}()
	default:
		close(announced)
	}
	if err == nil {
		go c.sendPresenceSnapshot()
		c.readLoop()
	}
	c.finish()
	<-writerDone
	c.ws.Close()
	<-announced // so that "offline" never overtakes this connection's "online"

	g.hub.remove(c)
	g.metrics.connections.Dec()
	g.releaseLimiter(c.user)
	// The connection is gone: presence bookkeeping gets its own short deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	g.presenceMu.RLock()
	offline, err := g.presence.Disconnect(ctx, c.presenceConn())
	g.presenceMu.RUnlock()
	if err != nil {
		g.log.Warn("presence disconnect failed", "user", c.user, "err", err)
	}
	if offline {
		if err := g.pub.PublishPresence(ctx, c.user, false); err != nil {
			g.log.Warn("publish presence failed", "user", c.user, "err", err)
		}
	}
}

// register records the connection in presence; online tells whether the user had no
// live connection before.
func (c *conn) register() (online bool, err error) {
	ctx, cancel := context.WithTimeout(c.ctx, registerTimeout)
	defer cancel()
	c.g.presenceMu.RLock()
	defer c.g.presenceMu.RUnlock()
	return c.g.presence.Connect(ctx, c.presenceConn())
}

func (c *conn) finish() {
	c.quitOnce.Do(func() {
		close(c.quit)
		c.cancel()
	})
}

// outbound is a frame encoded once, however many connections it goes to.
type outbound struct {
	typ protocol.FrameType
	id  string
	ref protocol.FrameType
	raw []byte
}

func encode(f protocol.ServerFrame) (*outbound, error) {
	raw, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encode %s frame: %w", f.Type, err)
	}
	return &outbound{typ: f.Type, id: f.ID, ref: f.Ref, raw: raw}, nil
}

// enqueue encodes f for this connection alone.
func (c *conn) enqueue(f protocol.ServerFrame) {
	o, err := encode(f)
	if err != nil {
		c.g.log.Error("unencodable frame", "err", err)
		return
	}
	c.enqueueEncoded(o)
}

// replayFrame hands f to the writer, waiting until it takes it: a replay goes at the
// pace the client reads, beside real-time frames, and never fills the send queue. It
// reports false when the connection ended.
func (c *conn) replayFrame(f protocol.ServerFrame) bool {
	o, err := encode(f)
	if err != nil {
		c.g.log.Error("unencodable frame", "err", err)
		return true
	}
	select {
	case c.replay <- o:
		return true
	case <-c.quit:
		return false
	}
}

// enqueueEncoded never blocks: when the queue is full the client is too slow and is dropped.
func (c *conn) enqueueEncoded(f *outbound) {
	if c.dead.Load() {
		return
	}
	select {
	case <-c.quit:
		return
	default:
	}
	select {
	case c.send <- f:
	default:
		c.kill(CloseSlowConsumer, string(protocol.CodeSlowConsumer))
	}
}

// kill hangs up at once with a close frame carrying the reason; it never blocks the caller.
func (c *conn) kill(code int, reason string) {
	c.killOnce.Do(func() {
		c.dead.Store(true)
		if code == CloseSlowConsumer {
			c.g.metrics.queueDrops.Inc()
		}
		c.g.metrics.disconnects.WithLabelValues(reason).Inc()
		go func() {
			msg := websocket.FormatCloseMessage(code, reason)
			_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
			c.finish()
			c.ws.Close()
		}()
	})
}

// closeAfter sends a last frame, then closes cleanly once the queue is flushed.
func (c *conn) closeAfter(last protocol.ServerFrame, code int, reason string) {
	c.enqueue(last)
	select {
	case c.closeReq <- closeRequest{code: code, reason: reason}:
	default:
	}
}

func (c *conn) write(f *outbound) error {
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.g.cfg.WriteTimeout))
	if err := c.ws.WriteMessage(websocket.TextMessage, f.raw); err != nil {
		return err
	}
	c.g.metrics.framesOut.WithLabelValues(string(f.typ)).Inc()
	if f.typ == protocol.FrameAck || (f.typ == protocol.FrameError && f.ref == protocol.FrameSend) {
		c.g.observeAck(c.user, f.id) // a refusal also ends the wait
	}
	return nil
}

func (c *conn) writeLoop() {
	ping := time.NewTicker(c.g.cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-c.quit:
			return
		case f := <-c.send:
			if err := c.write(f); err != nil {
				c.writeFailed(err)
				return
			}
		case f := <-c.replay:
			if err := c.write(f); err != nil {
				c.writeFailed(err)
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.g.cfg.WriteTimeout)); err != nil {
				c.writeFailed(err)
				return
			}
		case req := <-c.closeReq:
			c.flush()
			c.g.metrics.disconnects.WithLabelValues(req.reason).Inc()
			msg := websocket.FormatCloseMessage(req.code, req.reason)
			_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(c.g.cfg.WriteTimeout))
			// Give the client a moment to answer the close before hanging up.
			select {
			case <-c.quit:
			case <-time.After(2 * time.Second):
			}
			c.finish()
			return
		}
	}
}

// writeFailed ends the connection after a failed write. A write that timed out is a
// client that stopped reading: counted as a slow consumer, like a full queue.
func (c *conn) writeFailed(err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.g.metrics.disconnects.WithLabelValues(string(protocol.CodeSlowConsumer)).Inc()
	}
	c.finish()
}

// flush writes whatever is queued, without waiting for more.
func (c *conn) flush() {
	for {
		select {
		case f := <-c.send:
			if c.write(f) != nil {
				return
			}
		default:
			return
		}
	}
}

func (c *conn) readLoop() {
	g := c.g
	c.ws.SetReadLimit(g.cfg.MaxFrameBytes)
	silence := 2 * g.cfg.PingInterval
	_ = c.ws.SetReadDeadline(time.Now().Add(silence))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(silence))
	})
	for {
		kind, raw, err := c.ws.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				g.metrics.framesIn.WithLabelValues("too_large").Inc()
				g.metrics.disconnects.WithLabelValues(string(protocol.CodeFrameTooBig)).Inc()
			}
			return
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(silence))
		if kind != websocket.TextMessage {
			g.metrics.framesIn.WithLabelValues("binary").Inc()
			c.enqueue(protocol.ErrorFrame(protocol.CodeBadFrame, "frames are JSON text messages", "", ""))
			continue
		}
		f, err := protocol.DecodeClientFrame(raw)
		if err != nil {
			g.metrics.framesIn.WithLabelValues("invalid").Inc()
			var bad *protocol.BadFrameError
			code, msg := protocol.CodeBadFrame, err.Error()
			if errors.As(err, &bad) {
				code, msg = bad.Code, bad.Message
			}
			c.enqueue(protocol.ErrorFrame(code, msg, f.Type, f.ID))
			continue
		}
		g.metrics.framesIn.WithLabelValues(string(f.Type)).Inc()
		if !c.lim.lim.Allow() { // every frame counts, pings included
			c.enqueue(protocol.ErrorFrame(protocol.CodeRateLimited, "too many frames; this one was dropped", f.Type, f.ID))
			continue
		}
		c.handle(f)
	}
}

func (c *conn) handle(f protocol.ClientFrame) {
	g := c.g
	switch f.Type {
	case protocol.FrameSend:
		if !c.lim.msgs.Allow() {
			c.enqueue(protocol.ErrorFrame(protocol.CodeRateLimited, "too many messages; this one was dropped, send it again later with the same id", f.Type, f.ID))
			return
		}
		m := protocol.MessageSent{RoomID: f.Room, SenderID: c.user, ClientID: f.ID, Body: f.Body,
			Attachments: f.Attachments, ReplyTo: f.ReplyTo, SentAt: time.Now().UTC()}
		g.trackSend(c.user, f.ID)
		if err := g.pub.PublishMessage(c.ctx, m); err != nil {
			g.log.Error("publish message failed", "user", c.user, "room", f.Room, "err", err)
			c.enqueue(protocol.ErrorFrame(protocol.CodeInternal, "the message could not be queued; retry with the same id", f.Type, f.ID))
		}
	case protocol.FrameTyping:
		if !c.member(f) {
			return
		}
		forward, err := g.presence.Typing(c.ctx, c.user, f.Room)
		if err != nil {
			g.log.Warn("typing throttle failed", "err", err)
			return
		}
		if forward {
			if err := g.pub.PublishTyping(c.ctx, f.Room, c.user); err != nil {
				g.log.Warn("publish typing failed", "err", err)
			}
		}
	case protocol.FrameMark:
		if !c.member(f) {
			return
		}
		r := protocol.Receipt{RoomID: f.Room, UserID: c.user, Kind: f.Kind, Seq: f.Seq}
		if err := g.pub.PublishReceipt(c.ctx, r); err != nil {
			g.log.Error("publish receipt failed", "err", err)
			c.enqueue(protocol.ErrorFrame(protocol.CodeInternal, "the receipt could not be queued; retry", f.Type, f.ID))
		}
	case protocol.FrameResume:
		// Replayed beside the reader, which keeps reading pings, pongs and frames.
		select {
		case c.resumes <- f:
		default:
			c.enqueue(protocol.ErrorFrame(protocol.CodeRateLimited, "a resume is already running; this one was dropped", f.Type, f.ID))
		}
	case protocol.FramePing:
		c.enqueue(protocol.ServerFrame{Type: protocol.FramePong, ID: f.ID})
	}
}

// member reports whether the user may act in the room f names; when not, the client is
// told (not_member, or internal when membership could not be checked) and the frame goes
// no further.
func (c *conn) member(f protocol.ClientFrame) bool {
	err := c.g.history.CheckMember(c.ctx, c.user, f.Room)
	if err == nil {
		return true
	}
	code, msg := protocol.CodeInternal, "membership could not be checked; retry"
	if errors.Is(err, ErrForbidden) {
		code, msg = protocol.ErrorCode(protocol.ReasonNotMember), "not a member of room "+f.Room
	} else if c.ctx.Err() == nil {
		c.g.log.Warn("membership check failed", "user", c.user, "room", f.Room, "err", err)
	}
	e := protocol.ErrorFrame(code, msg, f.Type, f.ID)
	e.Room = f.Room
	c.enqueue(e)
	return false
}

// resumeLoop replays resume requests one after the other until the connection ends.
func (c *conn) resumeLoop() {
	for {
		select {
		case <-c.quit:
			return
		case f := <-c.resumes:
			c.resume(f)
		}
	}
}

// resume replays, room by room in a stable order, what the client missed. It runs beside
// the reader and goes at the writer's pace.
func (c *conn) resume(f protocol.ClientFrame) {
	rooms := make([]string, 0, len(f.Rooms))
	for r := range f.Rooms {
		rooms = append(rooms, r)
	}
	sort.Strings(rooms)
	for _, room := range rooms {
		msgs, err := c.g.history.MessagesAfter(c.ctx, c.user, room, f.Rooms[room], c.g.cfg.ResumeLimit)
		if err != nil {
			if c.ctx.Err() != nil {
				return
			}
			code := protocol.CodeInternal
			msg := "history unavailable; retry"
			if errors.Is(err, ErrForbidden) {
				code, msg = protocol.ErrorCode(protocol.ReasonNotMember), "not a member of room "+room
			}
			if !c.replayFrame(protocol.ServerFrame{Type: protocol.FrameError, Code: code, Message: msg, Ref: f.Type, Room: room}) {
				return
			}
			continue
		}
		for _, m := range msgs {
			if !c.replayFrame(m) {
				return
			}
		}
	}
	c.resumeEvents(f)
}

// resumeEvents replays, room by room, the room events after the client's cursors: after
// the messages, so that a change never arrives before the message it changes. Clients
// that send no events cursors (older ones) get none.
func (c *conn) resumeEvents(f protocol.ClientFrame) {
	eh, ok := c.g.history.(EventHistory)
	if !ok || len(f.Events) == 0 {
		return
	}
	rooms := make([]string, 0, len(f.Events))
	for r := range f.Events {
		rooms = append(rooms, r)
	}
	sort.Strings(rooms)
	for _, room := range rooms {
		frames, err := eh.EventsAfter(c.ctx, c.user, room, f.Events[room], c.g.cfg.ResumeLimit)
		if err != nil {
			if c.ctx.Err() != nil {
				return
			}
			code, msg := protocol.CodeInternal, "room events unavailable; retry"
			if errors.Is(err, ErrForbidden) {
				code, msg = protocol.ErrorCode(protocol.ReasonNotMember), "not a member of room "+room
			}
			if !c.replayFrame(protocol.ServerFrame{Type: protocol.FrameError, Code: code, Message: msg, Ref: f.Type, Room: room}) {
				return
			}
			continue
		}
		for _, fr := range frames {
			if !c.replayFrame(fr) {
				return
			}
		}
	}
}
