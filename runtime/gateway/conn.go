package gateway

import (
	"context"
	"encoding/binary"
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

	// The send queue: a slice under qmu rather than a channel, so that an idle
	// connection holds no buffer and the writer takes everything queued at once. The
	// writer goroutine runs only while there is something to write (frames, a ping, a
	// close): an idle connection has its reader and nothing else.
	qmu       sync.Mutex
	queue     []*outbound
	writing   bool          // a writer goroutine runs
	pingDue   bool          // the pinger asked for a ping
	closeWant *closeRequest // close cleanly once the queue is flushed
	resumes   []protocol.ClientFrame
	resuming  bool // a replay goroutine runs

	// wmu is held by whoever writes to the socket: the writer goroutine, or the replay
	// goroutine, which writes its frames itself, at the pace the client reads.
	wmu sync.Mutex
	// writeDeadline is the socket's write deadline as last set by writeFrames (unix ns,
	// under wmu): it is moved only once half of WriteTimeout has passed, not per write.
	writeDeadline int64

	quit     chan struct{} // closed when the connection is finished
	quitOnce sync.Once
	killOnce sync.Once
	dead     atomic.Bool // set by kill: further frames are dropped silently

	pres connPresence

	ctx    context.Context
	cancel context.CancelFunc
}

func (g *Gateway) newConn(ws *websocket.Conn, userID string) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{
		g: g, ws: ws, user: userID,
		id:   g.boot + "-" + strconv.FormatUint(g.connSeq.Add(1), 36),
		lim:  g.limiter(userID),
		quit: make(chan struct{}),
		ctx:  ctx, cancel: cancel,
	}
}

func (c *conn) presenceConn() presence.Conn {
	return presence.Conn{UserID: c.user, GatewayID: c.g.cfg.ID, ConnID: c.id}
}

// pendingResumes is how many resume frames may wait while one is replayed.
const pendingResumes = 2

// registerTimeout bounds the presence registration of a new connection.
const registerTimeout = 5 * time.Second

// run owns the connection: it registers the connection in presence, announces it in the
// background, reads until either side ends, and cleans up. Deliveries may arrive as soon
// as the connection is in the hub: each starts a writer when none runs.
func (c *conn) run() {
	g := c.g
	g.metrics.connections.Inc()

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
	c.ws.Close() // a write in progress fails now
	<-announced  // so that "offline" never overtakes this connection's "online"

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

// outbound is a frame encoded once, however many connections it goes to: its wire
// form (WebSocket header and JSON payload) is built once per fan-out and written as is
// to every connection.
type outbound struct {
	typ  protocol.FrameType
	id   string
	ref  protocol.FrameType
	wire []byte // a complete unmasked text frame
}

// payload is the JSON of the frame, without the WebSocket header.
func (o *outbound) payload() []byte { return o.wire[wireHeaderLen(len(o.wire)):] }

func encode(f protocol.ServerFrame) (*outbound, error) {
	raw, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encode %s frame: %w", f.Type, err)
	}
	return &outbound{typ: f.Type, id: f.ID, ref: f.Ref, wire: textFrame(raw)}, nil
}

// textFrame returns payload as one final, unmasked WebSocket text frame (RFC 6455 5.2), as
// a server sends it without compression (the upgrader never negotiates it).
func textFrame(payload []byte) []byte {
	n := len(payload)
	var out []byte
	switch {
	case n < 126:
		out = make([]byte, 2, 2+n)
		out[1] = byte(n)
	case n < 1<<16:
		out = make([]byte, 4, 4+n)
		out[1] = 126
		binary.BigEndian.PutUint16(out[2:], uint16(n))
	default:
		out = make([]byte, 10, 10+n)
		out[1] = 127
		binary.BigEndian.PutUint64(out[2:], uint64(n))
	}
	out[0] = 0x80 | websocket.TextMessage // FIN + opcode
	return append(out, payload...)
}

// wireHeaderLen is the header length of a frame built by textFrame, from its total length.
func wireHeaderLen(total int) int {
	switch {
	case total < 126+2:
		return 2
	case total < 1<<16+4:
		return 4
	default:
		return 10
	}
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
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.ended() {
		return false
	}
	// Real-time frames queued meanwhile go first, in the same write.
	if err := c.writeFrames(append(c.takeQueue(nil), o)); err != nil {
		c.writeFailed(err)
		return false
	}
	return true
}

// ended reports whether the connection is finished.
func (c *conn) ended() bool {
	select {
	case <-c.quit:
		return true
	default:
		return false
	}
}

// enqueueEncoded never blocks: when the queue is full the client is too slow and is dropped.
func (c *conn) enqueueEncoded(f *outbound) {
	if c.dead.Load() {
		return
	}
	c.qmu.Lock()
	if len(c.queue) >= c.g.cfg.SendQueue {
		c.qmu.Unlock()
		c.kill(CloseSlowConsumer, string(protocol.CodeSlowConsumer))
		return
	}
	c.queue = append(c.queue, f)
	c.startWriterLocked()
	c.qmu.Unlock()
}

// startWriterLocked starts the writer unless it runs; qmu is held.
func (c *conn) startWriterLocked() {
	if !c.writing && !c.ended() {
		c.writing = true
		c.g.writers.Add(1)
		go c.writeLoop()
	}
}

// ping asks the writer for a ping (the gateway's pinger calls it).
func (c *conn) ping() {
	c.qmu.Lock()
	c.pingDue = true
	c.startWriterLocked()
	c.qmu.Unlock()
}

// takeQueue hands the writer everything queued, and keeps the previous batch's array
// for the next frames (so a steady stream allocates nothing). A long idle queue array
// is dropped, so that an idle connection keeps no buffer.
func (c *conn) takeQueue(prev []*outbound) []*outbound {
	clear(prev)
	if cap(prev) > idleQueueCap {
		prev = nil
	}
	c.qmu.Lock()
	batch := c.queue
	c.queue = prev[:0]
	c.qmu.Unlock()
	return batch
}

// idleQueueCap is the largest queue array kept between batches.
const idleQueueCap = 64

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
	c.qmu.Lock()
	if c.closeWant == nil {
		c.closeWant = &closeRequest{code: code, reason: reason}
	}
	c.startWriterLocked()
	c.qmu.Unlock()
}

// maxWriteBatch bounds the frames of one write, so one write stays bounded in size and
// in time (WriteTimeout applies to each).
const maxWriteBatch = 128

// writeFrames writes frames with as few system calls as possible: the prepared wire
// frames go out together in one vectored write per maxWriteBatch. gorilla/websocket
// writes one message per system call; writing the socket directly is safe because every
// frame is complete and unmasked (a server never masks and never compresses here), and
// the kernel write of one call is never interleaved with gorilla's control frames.
func (c *conn) writeFrames(frames []*outbound) error {
	if c.g.oneWritePerFrame {
		for _, f := range frames {
			if err := c.writeOne(f); err != nil {
				return err
			}
		}
		return nil
	}
	nc := c.ws.NetConn()
	c.refreshWriteDeadline(nc)
	if len(frames) == 1 {
		// The usual case at low rate: one frame, one plain write (no vector to build).
		if _, err := nc.Write(frames[0].wire); err != nil {
			return err
		}
		c.wrote(frames[0])
		return nil
	}
	for len(frames) > 0 {
		n := min(len(frames), maxWriteBatch)
		bufs := make(net.Buffers, n)
		for i, f := range frames[:n] {
			bufs[i] = f.wire
		}
		c.refreshWriteDeadline(nc)
		if _, err := bufs.WriteTo(nc); err != nil {
			return err
		}
		for _, f := range frames[:n] {
			c.wrote(f)
		}
		frames = frames[n:]
	}
	return nil
}

// refreshWriteDeadline gives the next write at least half of WriteTimeout: the deadline
// is moved to a whole WriteTimeout ahead once half of it has passed, so a steady stream
// of writes does not reset the runtime's timer for every one (a client that stops
// reading is still dropped between WriteTimeout/2 and WriteTimeout after its buffers
// fill). Gorilla's control frames set their own deadline, never an earlier one. wmu is
// held.
func (c *conn) refreshWriteDeadline(nc net.Conn) {
	now := time.Now()
	if c.writeDeadline-now.UnixNano() > int64(c.g.cfg.WriteTimeout/2) {
		return
	}
	d := now.Add(c.g.cfg.WriteTimeout)
	_ = nc.SetWriteDeadline(d)
	c.writeDeadline = d.UnixNano()
}

// writeOne is the path before write coalescing (one gorilla WriteMessage per frame), kept
// as the baseline of BenchmarkDelivery.
func (c *conn) writeOne(f *outbound) error {
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.g.cfg.WriteTimeout))
	if err := c.ws.WriteMessage(websocket.TextMessage, f.payload()); err != nil {
		return err
	}
	c.wrote(f)
	return nil
}

// wrote accounts for a frame that left.
func (c *conn) wrote(f *outbound) {
	c.g.metrics.frameOut(f.typ)
	if f.typ == protocol.FrameAck || (f.typ == protocol.FrameError && f.ref == protocol.FrameSend) {
		c.g.observeAck(c.user, f.id) // a refusal also ends the wait
	}
}

// writeLoop writes everything queued at once, then whatever was queued meanwhile, and
// ends when nothing is left: under load one system call carries many frames, so the cost
// per delivery falls as the rate rises, and an idle connection keeps no writer.
func (c *conn) writeLoop() {
	defer c.g.writers.Add(-1)
	var batch []*outbound
	for {
		c.qmu.Lock()
		if len(c.queue) == 0 && !c.pingDue && c.closeWant == nil || c.ended() {
			c.writing = false
			c.qmu.Unlock()
			return
		}
		ping, closing := c.pingDue, c.closeWant
		c.pingDue = false
		c.qmu.Unlock()

		c.wmu.Lock()
		batch = c.takeQueue(batch)
		err := c.writeFrames(batch)
		if err == nil && ping {
			err = c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.g.cfg.WriteTimeout))
		}
		c.wmu.Unlock()
		if err != nil {
			c.writeFailed(err)
			c.qmu.Lock()
			c.writing = false
			c.qmu.Unlock()
			return
		}
		if closing != nil {
			c.closeCleanly(*closing)
			c.qmu.Lock()
			c.writing = false
			c.qmu.Unlock()
			return
		}
	}
}

// closeCleanly flushes the queue, sends a close frame and hangs up once the client
// answers, or after a moment.
func (c *conn) closeCleanly(req closeRequest) {
	c.wmu.Lock()
	c.flush()
	c.g.metrics.disconnects.WithLabelValues(req.reason).Inc()
	msg := websocket.FormatCloseMessage(req.code, req.reason)
	_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(c.g.cfg.WriteTimeout))
	c.wmu.Unlock()
	select {
	case <-c.quit:
	case <-time.After(2 * time.Second):
	}
	c.finish()
	c.ws.Close()
}

// writeFailed ends the connection after a failed write. A write that timed out is a
// client that stopped reading: counted as a slow consumer, like a full queue.
//
// Whatever stopped the writer, the connection is over: it hangs up now, so the reader ends
// instead of waiting for its read deadline, and the connection leaves the hub and presence
// at once.
func (c *conn) writeFailed(err error) {
	var ne net.Error
	// A killed connection was counted by kill, whose close frame may cut this write short;
	// one that ended meanwhile fails its writes for that reason.
	if errors.As(err, &ne) && ne.Timeout() && !c.dead.Load() && !c.ended() {
		c.g.metrics.disconnects.WithLabelValues(string(protocol.CodeSlowConsumer)).Inc()
	}
	c.finish()
	c.ws.Close()
}

// flush writes whatever is queued, without waiting for more; wmu is held.
func (c *conn) flush() {
	_ = c.writeFrames(c.takeQueue(nil))
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
		if !c.queueResume(f) {
			c.enqueue(protocol.ErrorFrame(protocol.CodeRateLimited, "a resume is already running; this one was dropped", f.Type, f.ID))
		}
	case protocol.FrameWatch:
		c.watch(f.Users)
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

// queueResume hands f to the replay goroutine, starting one when none runs: an idle
// connection keeps no goroutine for resumes. It reports false when pendingResumes wait.
func (c *conn) queueResume(f protocol.ClientFrame) bool {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if len(c.resumes) >= pendingResumes {
		return false
	}
	c.resumes = append(c.resumes, f)
	if !c.resuming {
		c.resuming = true
		go c.resumeLoop()
	}
	return true
}

// resumeLoop replays resume requests one after the other, and ends when none is left.
func (c *conn) resumeLoop() {
	for {
		c.qmu.Lock()
		if len(c.resumes) == 0 || c.ctx.Err() != nil {
			c.resuming = false
			c.resumes = nil
			c.qmu.Unlock()
			return
		}
		f := c.resumes[0]
		c.resumes = c.resumes[1:]
		c.qmu.Unlock()
		c.resume(f)
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
