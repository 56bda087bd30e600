package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

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
	lim  *rate.Limiter

	send     chan *outbound
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
		id:       strconv.FormatUint(g.connSeq.Add(1), 36),
		lim:      g.limiter(userID),
		send:     make(chan *outbound, g.cfg.SendQueue),
		closeReq: make(chan closeRequest, 1),
		quit:     make(chan struct{}),
		ctx:      ctx, cancel: cancel,
	}
}

func (c *conn) presenceConn() presence.Conn {
	return presence.Conn{UserID: c.user, GatewayID: c.g.cfg.ID, ConnID: c.id}
}

// run owns the connection: it registers it, runs the writer beside the reader, and
// cleans up when either ends.
func (c *conn) run() {
	g := c.g
	g.metrics.connections.Inc()
	online, err := g.presence.Connect(c.ctx, c.presenceConn())
	if err != nil {
		g.log.Warn("presence connect failed", "user", c.user, "err", err)
	}
	if online {
		if err := g.pub.PublishPresence(c.ctx, c.user, true); err != nil {
			g.log.Warn("publish presence failed", "user", c.user, "err", err)
		}
	}

	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()
	c.readLoop()
	c.finish()
	<-writerDone
	c.ws.Close()

	g.hub.remove(c)
	g.metrics.connections.Dec()
	g.releaseLimiter(c.user)
	// The connection is gone: presence bookkeeping gets its own short deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	offline, err := g.presence.Disconnect(ctx, c.presenceConn())
	if err != nil {
		g.log.Warn("presence disconnect failed", "user", c.user, "err", err)
	}
	if offline {
		if err := g.pub.PublishPresence(ctx, c.user, false); err != nil {
			g.log.Warn("publish presence failed", "user", c.user, "err", err)
		}
	}
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

// enqueueWait queues f, waiting for room: for the connection's own replies (resume),
// which only ever hold up this connection's reader. It gives up when the connection ends.
func (c *conn) enqueueWait(f protocol.ServerFrame) {
	o, err := encode(f)
	if err != nil {
		c.g.log.Error("unencodable frame", "err", err)
		return
	}
	select {
	case c.send <- o:
	case <-c.quit:
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
				c.finish()
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.g.cfg.WriteTimeout)); err != nil {
				c.finish()
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
		if f.Type != protocol.FramePing && !c.lim.Allow() {
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
		m := protocol.MessageSent{RoomID: f.Room, SenderID: c.user, ClientID: f.ID, Body: f.Body,
			Attachments: f.Attachments, SentAt: time.Now().UTC()}
		g.trackSend(c.user, f.ID)
		if err := g.pub.PublishMessage(c.ctx, m); err != nil {
			g.log.Error("publish message failed", "user", c.user, "room", f.Room, "err", err)
			c.enqueue(protocol.ErrorFrame(protocol.CodeInternal, "the message could not be queued; retry with the same id", f.Type, f.ID))
		}
	case protocol.FrameTyping:
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
		r := protocol.Receipt{RoomID: f.Room, UserID: c.user, Kind: f.Kind, Seq: f.Seq}
		if err := g.pub.PublishReceipt(c.ctx, r); err != nil {
			g.log.Error("publish receipt failed", "err", err)
			c.enqueue(protocol.ErrorFrame(protocol.CodeInternal, "the receipt could not be queued; retry", f.Type, f.ID))
		}
	case protocol.FrameResume:
		c.resume(f)
	case protocol.FramePing:
		c.enqueue(protocol.ServerFrame{Type: protocol.FramePong, ID: f.ID})
	}
}

// resume replays, room by room in a stable order, what the client missed.
func (c *conn) resume(f protocol.ClientFrame) {
	rooms := make([]string, 0, len(f.Rooms))
	for r := range f.Rooms {
		rooms = append(rooms, r)
	}
	sort.Strings(rooms)
	for _, room := range rooms {
		msgs, err := c.g.history.MessagesAfter(c.ctx, c.user, room, f.Rooms[room], c.g.cfg.ResumeLimit)
		if err != nil {
			code := protocol.CodeInternal
			msg := "history unavailable; retry"
			if errors.Is(err, ErrForbidden) {
				code, msg = protocol.ErrorCode(protocol.ReasonNotMember), "not a member of room "+room
			}
			c.enqueue(protocol.ServerFrame{Type: protocol.FrameError, Code: code, Message: msg, Ref: f.Type, Room: room})
			continue
		}
		// A replay may be longer than the send queue: wait for the writer rather than
		// mistake this client for a slow one.
		for _, m := range msgs {
			c.enqueueWait(m)
		}
	}
}
