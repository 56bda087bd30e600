package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/parleychat/parley/runtime/presence"
	"github.com/parleychat/parley/runtime/protocol"
)

// tokens is the test's own Authenticator: token → user.
type tokens map[string]string

func (t tokens) Authenticate(_ context.Context, token string) (string, error) {
	if u, ok := t[token]; ok {
		return u, nil
	}
	return "", errors.New("bad token")
}

// recorder is the test's Publisher: it keeps what the gateway hands to the bus.
type recorder struct {
	mu       sync.Mutex
	messages []protocol.MessageSent
	receipts []protocol.Receipt
	typing   []string
	presence []string
	notify   chan struct{}
	// hold, when set, makes PublishPresence signal entered and wait until hold closes.
	hold    chan struct{}
	entered chan struct{}
	// online answers OnlineContacts: user → contacts online.
	online map[string][]string
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1000)} }

func (r *recorder) record(f func()) error {
	r.mu.Lock()
	f()
	r.mu.Unlock()
	r.notify <- struct{}{}
	return nil
}
func (r *recorder) PublishMessage(_ context.Context, m protocol.MessageSent) error {
	return r.record(func() { r.messages = append(r.messages, m) })
}
func (r *recorder) PublishReceipt(_ context.Context, rc protocol.Receipt) error {
	return r.record(func() { r.receipts = append(r.receipts, rc) })
}
func (r *recorder) PublishTyping(_ context.Context, room, user string) error {
	return r.record(func() { r.typing = append(r.typing, room+"/"+user) })
}
func (r *recorder) PublishPresence(_ context.Context, user string, online bool) error {
	if r.hold != nil {
		r.entered <- struct{}{}
		<-r.hold
	}
	return r.record(func() { r.presence = append(r.presence, fmt.Sprintf("%s:%v", user, online)) })
}

func (r *recorder) OnlineContacts(_ context.Context, user string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.online[user]...), nil
}

// waitFor polls cond until it holds; a deadline, not a timing assertion.
func (r *recorder) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.notify:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// history is the test's History: room → messages.
type history map[string][]protocol.MessageDelivered

func (h history) MessagesAfter(_ context.Context, _ string, room string, after int64, limit int) ([]protocol.ServerFrame, error) {
	msgs, ok := h[room]
	if !ok {
		return nil, fmt.Errorf("room %s: %w", room, ErrForbidden)
	}
	var out []protocol.ServerFrame
	for i := range msgs {
		if msgs[i].Seq > after && len(out) < limit {
			out = append(out, protocol.MessageFrame(&msgs[i]))
		}
	}
	return out, nil
}

// CheckMember: everyone is a member of the rooms the history knows.
func (h history) CheckMember(_ context.Context, _ string, room string) error {
	if _, ok := h[room]; !ok {
		return fmt.Errorf("room %s: %w", room, ErrForbidden)
	}
	return nil
}

// roster is a History with real membership: room → members.
type roster map[string][]string

func (r roster) MessagesAfter(ctx context.Context, user, room string, after int64, limit int) ([]protocol.ServerFrame, error) {
	if err := r.CheckMember(ctx, user, room); err != nil {
		return nil, err
	}
	return nil, nil
}

func (r roster) CheckMember(_ context.Context, user, room string) error {
	for _, m := range r[room] {
		if m == user {
			return nil
		}
	}
	return fmt.Errorf("%s in %s: %w", user, room, ErrForbidden)
}

type fixture struct {
	gw  *Gateway
	pub *recorder
	srv *httptest.Server
	url string
	reg *prometheus.Registry
}

func newFixture(t *testing.T, cfg Config, hist history) *fixture {
	t.Helper()
	return newFixtureWith(t, cfg, hist, presence.NewMemory(presence.Config{}))
}

// newFixtureWith is newFixture over the given presence.
func newFixtureWith(t *testing.T, cfg Config, hist history, pres Presence) *fixture {
	t.Helper()
	return newFixtureOver(t, cfg, hist, pres)
}

// newFixtureOver is newFixtureWith over any History.
func newFixtureOver(t *testing.T, cfg Config, hist History, pres Presence) *fixture {
	t.Helper()
	if cfg.ID == "" {
		cfg.ID = "gw-test"
	}
	pub := newRecorder()
	reg := prometheus.NewRegistry()
	gw, err := New(cfg, tokens{"tok-alice": "alice", "tok-bob": "bob", "tok-carol": "carol"}, pub,
		pres, hist, nil, NewMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = gw.Drain(ctx)
		srv.Close()
	})
	return &fixture{gw: gw, pub: pub, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http"), reg: reg}
}

func (f *fixture) dial(t *testing.T, token string) *websocket.Conn {
	t.Helper()
	ws, resp, err := f.tryDial(token, nil)
	if err != nil {
		t.Fatalf("dial: %v (status %v)", err, statusOf(resp))
	}
	if ws.Subprotocol() != protocol.Subprotocol {
		t.Fatalf("negotiated subprotocol %q", ws.Subprotocol())
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

func (f *fixture) tryDial(token string, header http.Header) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol}}
	if token != "" {
		d.Subprotocols = append(d.Subprotocols, protocol.AuthSubprotocolPrefix+token)
	}
	return d.Dial(f.url, header)
}

func statusOf(r *http.Response) int {
	if r == nil {
		return 0
	}
	return r.StatusCode
}

func send(t *testing.T, ws *websocket.Conn, frame string) {
	t.Helper()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func read(t *testing.T, ws *websocket.Conn) protocol.ServerFrame {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, raw, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var f protocol.ServerFrame
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return f
}

func TestUpgradeRefusals(t *testing.T) {
	f := newFixture(t, Config{AllowedOrigins: []string{"https://chat.example"}}, nil)
	tests := []struct {
		name       string
		protocols  []string
		origin     string
		wantStatus int
		wantCode   string
	}{
		{"no subprotocol", nil, "", http.StatusBadRequest, "bad_handshake"},
		{"no token", []string{protocol.Subprotocol}, "", http.StatusUnauthorized, "unauthorized"},
		{"bad token", []string{protocol.Subprotocol, protocol.AuthSubprotocolPrefix + "forged"}, "", http.StatusUnauthorized, "unauthorized"},
		{"foreign origin", []string{protocol.Subprotocol, protocol.AuthSubprotocolPrefix + "tok-alice"}, "https://evil.example", http.StatusForbidden, "origin_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.origin != "" {
				h.Set("Origin", tt.origin)
			}
			d := websocket.Dialer{Subprotocols: tt.protocols}
			ws, resp, err := d.Dial(f.url, h)
			if err == nil {
				ws.Close()
				t.Fatal("upgrade accepted")
			}
			if statusOf(resp) != tt.wantStatus {
				t.Fatalf("status = %d, want %d", statusOf(resp), tt.wantStatus)
			}
			body, _ := io.ReadAll(resp.Body)
			var e struct{ Code, Message string }
			if json.Unmarshal(body, &e) != nil || e.Code != tt.wantCode || e.Message == "" {
				t.Fatalf("body = %s, want code %s", body, tt.wantCode)
			}
		})
	}
	h := http.Header{"Origin": {"https://chat.example"}}
	ws, resp, err := f.tryDial("tok-alice", h)
	if err != nil {
		t.Fatalf("allowed origin refused: %v (%d)", err, statusOf(resp))
	}
	ws.Close()
}

func TestSendCarriesAuthenticatedSenderAndAckArrives(t *testing.T) {
	f := newFixture(t, Config{}, nil)
	alice := f.dial(t, "tok-alice")
	send(t, alice, `{"type":"send","id":"c-1","room":"r1","body":"hello"}`)
	f.pub.waitFor(t, "the message on the bus", func() bool { return len(f.pub.messages) == 1 })
	m := f.pub.messages[0]
	if m.SenderID != "alice" || m.ClientID != "c-1" || m.RoomID != "r1" || m.Body != "hello" || m.SentAt.IsZero() {
		t.Fatalf("published %+v", m)
	}
	// A client may not claim another sender: unknown fields are refused.
	send(t, alice, `{"type":"send","id":"c-2","room":"r1","body":"x","sender_id":"bob"}`)
	if e := read(t, alice); e.Type != protocol.FrameError || e.Code != protocol.CodeBadFrame {
		t.Fatalf("spoofed sender answered with %+v", e)
	}

	d := &protocol.MessageDelivered{RoomID: "r1", SenderID: "alice", ClientID: "c-1", ServerID: "m-1", Seq: 1, Body: "hello", CreatedAt: time.Now()}
	f.gw.Deliver([]string{"alice"}, protocol.AckFrame(d))
	ack := read(t, alice)
	if ack.Type != protocol.FrameAck || ack.ID != "c-1" || ack.MessageID != "m-1" || ack.Seq != 1 {
		t.Fatalf("ack = %+v", ack)
	}
	if n := testutil.CollectAndCount(f.reg, "parley_gateway_send_ack_seconds"); n != 1 {
		t.Fatalf("send→ack histogram has %d series", n)
	}
}

func TestEveryBadFrameGetsItsCode(t *testing.T) {
	f := newFixture(t, Config{}, nil)
	ws := f.dial(t, "tok-bob")
	tests := []struct {
		frame string
		code  protocol.ErrorCode
		ref   protocol.FrameType
	}{
		{`not json`, protocol.CodeBadFrame, ""},
		{`{"type":"shout"}`, protocol.CodeUnknownType, "shout"},
		{`{"room":"r"}`, protocol.CodeUnknownType, ""},
		{`{"type":"send","room":"r","body":"no id"}`, protocol.CodeInvalid, protocol.FrameSend},
		{`{"type":"mark","room":"r","kind":"seen","seq":1}`, protocol.CodeInvalid, protocol.FrameMark},
	}
	for _, tt := range tests {
		send(t, ws, tt.frame)
		got := read(t, ws)
		if got.Type != protocol.FrameError || got.Code != tt.code || got.Ref != tt.ref || got.Message == "" {
			t.Fatalf("%s → %+v, want code %s ref %q", tt.frame, got, tt.code, tt.ref)
		}
	}
	if err := ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if got := read(t, ws); got.Code != protocol.CodeBadFrame {
		t.Fatalf("binary frame → %+v", got)
	}
	// Still connected, nothing reached the bus.
	send(t, ws, `{"type":"ping","id":"p1"}`)
	if got := read(t, ws); got.Type != protocol.FramePong || got.ID != "p1" {
		t.Fatalf("ping → %+v", got)
	}
	f.pub.mu.Lock()
	defer f.pub.mu.Unlock()
	if len(f.pub.messages) != 0 || len(f.pub.receipts) != 0 {
		t.Fatalf("bad frames reached the bus: %+v %+v", f.pub.messages, f.pub.receipts)
	}
}

func TestRateLimitPerUserAcrossDevices(t *testing.T) {
	f := newFixture(t, Config{FramesPerSecond: 0.001, Burst: 3}, nil)
	phone, laptop := f.dial(t, "tok-alice"), f.dial(t, "tok-alice")
	send(t, phone, `{"type":"send","id":"1","room":"r","body":"a"}`)
	send(t, phone, `{"type":"send","id":"2","room":"r","body":"b"}`)
	f.pub.waitFor(t, "two messages", func() bool { return len(f.pub.messages) == 2 })
	send(t, laptop, `{"type":"send","id":"3","room":"r","body":"c"}`)
	f.pub.waitFor(t, "three messages", func() bool { return len(f.pub.messages) == 3 })
	// The burst of 3 is spent across both devices: the phone's next frame is refused.
	send(t, phone, `{"type":"send","id":"4","room":"r","body":"d"}`)
	got := read(t, phone)
	if got.Code != protocol.CodeRateLimited || got.ID != "4" || got.Ref != protocol.FrameSend {
		t.Fatalf("fourth frame → %+v, want rate_limited for id 4", got)
	}
	f.pub.mu.Lock()
	defer f.pub.mu.Unlock()
	if len(f.pub.messages) != 3 {
		t.Fatalf("%d messages published, want 3", len(f.pub.messages))
	}
}

func TestOversizedFrameClosesConnection(t *testing.T) {
	f := newFixture(t, Config{MaxFrameBytes: 1024}, nil)
	ws := f.dial(t, "tok-alice")
	send(t, ws, `{"type":"send","id":"1","room":"r","body":"`+strings.Repeat("x", 2048)+`"}`)
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err := ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
		t.Fatalf("read after oversized frame: %v, want close 1009", err)
	}
	f.pub.mu.Lock()
	defer f.pub.mu.Unlock()
	if len(f.pub.messages) != 0 {
		t.Fatal("oversized frame reached the bus")
	}
}

func TestSlowConsumerIsDroppedOthersKeepFlowing(t *testing.T) {
	f := newFixture(t, Config{SendQueue: 8, WriteTimeout: 2 * time.Second}, nil)
	slow := f.dial(t, "tok-carol") // never reads
	fast := f.dial(t, "tok-bob")
	waitConns(t, f.gw, 2)

	// The fast client reads each frame before the next is delivered, so it never falls
	// behind; the slow one never reads, so its socket buffers and then its queue fill.
	const n = 1000
	body := strings.Repeat("y", 16<<10)
	for i := range n {
		f.gw.Deliver([]string{"bob", "carol"}, protocol.ServerFrame{Type: protocol.FrameMessage, Room: "r", Seq: int64(i + 1), Body: body})
		if got := read(t, fast); got.Seq != int64(i+1) {
			t.Fatalf("fast client got seq %d, want %d", got.Seq, i+1)
		}
	}
	waitConns(t, f.gw, 1)
	if v := testutil.ToFloat64(f.gw.metrics.queueDrops); v != 1 {
		t.Fatalf("queue drops = %v, want 1", v)
	}
	if v := testutil.ToFloat64(f.gw.metrics.disconnects.WithLabelValues(string(protocol.CodeSlowConsumer))); v != 1 {
		t.Fatalf("slow_consumer disconnects = %v, want 1", v)
	}
	// The slow client finds its connection closed once it reads what was buffered: with
	// close code 4008 when the close frame still fit in its socket buffer, else as an
	// abnormal closure (1006): a client that does not read cannot always be told why.
	_ = slow.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		if _, _, err := slow.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code != CloseSlowConsumer && ce.Code != websocket.CloseAbnormalClosure {
				t.Fatalf("slow client closed with %d %q", ce.Code, ce.Text)
			}
			if !errors.As(err, &ce) {
				t.Fatalf("slow client read ended with %v, want a close", err)
			}
			break
		}
	}
}

func waitConns(t *testing.T, g *Gateway, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for g.Connections() != want {
		if time.Now().After(deadline) {
			t.Fatalf("connections = %d, want %d", g.Connections(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDrainAdvisesReconnectAndRefusesNewConnections(t *testing.T) {
	f := newFixture(t, Config{ReconnectAfter: 1500 * time.Millisecond}, nil)
	a, b := f.dial(t, "tok-alice"), f.dial(t, "tok-bob")
	waitConns(t, f.gw, 2)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- f.gw.Drain(ctx)
	}()
	for _, ws := range []*websocket.Conn{a, b} {
		adv := read(t, ws)
		if adv.Type != protocol.FrameReconnect || adv.Code != protocol.CodeShutdown || adv.RetryAfterMS != 1500 {
			t.Fatalf("advice = %+v", adv)
		}
		_, _, err := ws.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
			t.Fatalf("after advice: %v, want close 1001", err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("drain: %v", err)
	}
	_, resp, err := f.tryDial("tok-alice", nil)
	if err == nil || statusOf(resp) != http.StatusServiceUnavailable {
		t.Fatalf("upgrade while draining: %v, status %d", err, statusOf(resp))
	}
}

func TestResumeReplaysMissedMessagesInOrder(t *testing.T) {
	var msgs []protocol.MessageDelivered
	for i := 1; i <= 5; i++ {
		msgs = append(msgs, protocol.MessageDelivered{RoomID: "r1", SenderID: "bob", ClientID: fmt.Sprint(i), ServerID: fmt.Sprintf("m%d", i), Seq: int64(i), Body: fmt.Sprint("msg ", i), CreatedAt: time.Now()})
	}
	f := newFixture(t, Config{}, history{"r1": msgs})
	ws := f.dial(t, "tok-alice")
	send(t, ws, `{"type":"resume","rooms":{"r1":2,"secret":0}}`)
	for want := int64(3); want <= 5; want++ {
		got := read(t, ws)
		if got.Type != protocol.FrameMessage || got.Seq != want || got.Room != "r1" || got.MessageID != fmt.Sprintf("m%d", want) {
			t.Fatalf("replay frame = %+v, want seq %d", got, want)
		}
	}
	got := read(t, ws)
	if got.Type != protocol.FrameError || got.Code != protocol.ErrorCode(protocol.ReasonNotMember) || got.Room != "secret" {
		t.Fatalf("forbidden room → %+v", got)
	}
}

func TestResumeLongerThanTheSendQueue(t *testing.T) {
	var msgs []protocol.MessageDelivered
	for i := 1; i <= 120; i++ {
		msgs = append(msgs, protocol.MessageDelivered{RoomID: "r1", SenderID: "bob", ClientID: fmt.Sprint(i), ServerID: fmt.Sprintf("m%d", i), Seq: int64(i), Body: "x", CreatedAt: time.Now()})
	}
	f := newFixture(t, Config{SendQueue: 4, ResumeLimit: 100}, history{"r1": msgs})
	ws := f.dial(t, "tok-alice")
	send(t, ws, `{"type":"resume","rooms":{"r1":10}}`)
	for want := int64(11); want <= 110; want++ {
		if got := read(t, ws); got.Type != protocol.FrameMessage || got.Seq != want {
			t.Fatalf("replay frame = %+v, want seq %d", got, want)
		}
	}
	if v := testutil.ToFloat64(f.gw.metrics.queueDrops); v != 0 {
		t.Fatalf("a replay longer than the queue dropped the client (%v drops)", v)
	}
}

func TestPresenceTransitionsAndTypingThrottle(t *testing.T) {
	f := newFixture(t, Config{}, history{"r1": nil})
	phone := f.dial(t, "tok-alice")
	f.pub.waitFor(t, "alice online", func() bool { return len(f.pub.presence) == 1 })
	laptop := f.dial(t, "tok-alice")
	waitConns(t, f.gw, 2)

	send(t, phone, `{"type":"typing","room":"r1"}`)
	send(t, laptop, `{"type":"typing","room":"r1"}`)
	send(t, phone, `{"type":"mark","room":"r1","kind":"read","seq":7}`)
	f.pub.waitFor(t, "the receipt", func() bool { return len(f.pub.receipts) == 1 })
	f.pub.mu.Lock()
	if len(f.pub.typing) != 1 || f.pub.typing[0] != "r1/alice" {
		t.Fatalf("typing published %v, want one r1/alice", f.pub.typing)
	}
	if r := f.pub.receipts[0]; r.UserID != "alice" || r.Kind != protocol.ReceiptRead || r.Seq != 7 {
		t.Fatalf("receipt %+v", r)
	}
	f.pub.mu.Unlock()

	phone.Close()
	waitConns(t, f.gw, 1)
	laptop.Close()
	f.pub.waitFor(t, "alice offline", func() bool { return len(f.pub.presence) == 2 })
	f.pub.mu.Lock()
	defer f.pub.mu.Unlock()
	if want := []string{"alice:true", "alice:false"}; fmt.Sprint(f.pub.presence) != fmt.Sprint(want) {
		t.Fatalf("presence = %v, want %v", f.pub.presence, want)
	}
}

// Typing and receipts are room-scoped: a non-member (never one, or removed) is answered
// not_member and nothing reaches the bus or the room; a member's frames go on.
func TestRoomScopedFramesNeedMembership(t *testing.T) {
	f := newFixtureOver(t, Config{}, roster{"r1": {"alice"}}, presence.NewMemory(presence.Config{}))
	carol := f.dial(t, "tok-carol")
	for _, frame := range []string{
		`{"type":"typing","room":"r1"}`,
		`{"type":"mark","room":"r1","kind":"read","seq":3}`,
		`{"type":"resume","rooms":{"r1":0}}`,
	} {
		send(t, carol, frame)
		got := read(t, carol)
		if got.Type != protocol.FrameError || got.Code != protocol.ErrorCode(protocol.ReasonNotMember) || got.Room != "r1" || got.Ref == "" {
			t.Fatalf("%s → %+v, want error not_member for room r1 with its ref", frame, got)
		}
	}
	alice := f.dial(t, "tok-alice")
	send(t, alice, `{"type":"typing","room":"r1"}`)
	send(t, alice, `{"type":"mark","room":"r1","kind":"read","seq":3}`)
	f.pub.waitFor(t, "alice's typing and receipt", func() bool { return len(f.pub.typing) == 1 && len(f.pub.receipts) == 1 })
	f.pub.mu.Lock()
	defer f.pub.mu.Unlock()
	if f.pub.typing[0] != "r1/alice" || f.pub.receipts[0].UserID != "alice" {
		t.Fatalf("published typing %v, receipts %+v: carol's frames went on", f.pub.typing, f.pub.receipts)
	}
}

// Every frame counts against the rate, pings included.
func TestPingsAreRateLimited(t *testing.T) {
	f := newFixture(t, Config{FramesPerSecond: 0.001, Burst: 2}, nil)
	ws := f.dial(t, "tok-alice")
	for i := range 3 {
		send(t, ws, fmt.Sprintf(`{"type":"ping","id":"p%d"}`, i))
	}
	for i := range 2 {
		if got := read(t, ws); got.Type != protocol.FramePong || got.ID != fmt.Sprint("p", i) {
			t.Fatalf("ping %d → %+v, want its pong", i, got)
		}
	}
	if got := read(t, ws); got.Code != protocol.CodeRateLimited || got.Ref != protocol.FramePing || got.ID != "p2" {
		t.Fatalf("third ping → %+v, want rate_limited", got)
	}
}

// Without configured origins, an Origin must name the scheme, host and port the request
// reached: an https page is not accepted on plain http unless a TLS-terminating proxy
// says the client used https, and the other way round.
func TestSameOriginComparesSchemeHostAndPort(t *testing.T) {
	req := func(host, forwardedProto string, tls bool) *http.Request {
		r := httptest.NewRequest("GET", "http://"+host+"/ws", nil)
		r.Host = host
		if forwardedProto != "" {
			r.Header.Set("X-Forwarded-Proto", forwardedProto)
		}
		if !tls {
			r.TLS = nil
		}
		return r
	}
	tests := []struct {
		origin, host, proto string
		want                bool
	}{
		{"http://chat.example", "chat.example", "", true},
		{"http://chat.example:80", "chat.example", "", true},
		{"http://127.0.0.1:8080", "127.0.0.1:8080", "", true},
		{"https://chat.example", "chat.example", "", false},
		{"https://chat.example", "chat.example", "https", true},
		{"https://chat.example", "chat.example:443", "https", true},
		{"http://chat.example", "chat.example", "https", false},
		{"https://chat.example:8443", "chat.example", "https", false},
		{"http://chat.example:8080", "chat.example", "", false},
		{"http://evil.example", "chat.example", "", false},
		{"null", "chat.example", "", false},
		{"http://[::1]:8080", "[::1]:8080", "", true},
	}
	for _, tt := range tests {
		if got := sameOrigin(tt.origin, req(tt.host, tt.proto, false)); got != tt.want {
			t.Errorf("origin %s on host %s (X-Forwarded-Proto %q) = %v, want %v", tt.origin, tt.host, tt.proto, got, tt.want)
		}
	}
	// Over the live handshake too: the test server is plain http.
	f := newFixture(t, Config{}, nil)
	host := strings.TrimPrefix(f.srv.URL, "http://")
	if _, resp, err := f.tryDial("tok-alice", http.Header{"Origin": {"https://" + host}}); err == nil || statusOf(resp) != http.StatusForbidden {
		t.Fatalf("https origin on a plain-http request: status %d, err %v; want 403", statusOf(resp), err)
	}
	ws, _, err := f.tryDial("tok-alice", http.Header{"Origin": {"http://" + host}})
	if err != nil {
		t.Fatalf("same origin refused: %v", err)
	}
	ws.Close()
}

// Messages have their own per-user rate across devices, judged when they arrive: a send
// over it is answered rate_limited (same id) and never reaches the bus.
func TestMessageRatePerUserAcrossDevices(t *testing.T) {
	f := newFixture(t, Config{MessagesPerSecond: 0.001, MessageBurst: 2}, nil)
	phone, laptop := f.dial(t, "tok-alice"), f.dial(t, "tok-alice")
	send(t, phone, `{"type":"send","id":"1","room":"r","body":"a"}`)
	send(t, laptop, `{"type":"send","id":"2","room":"r","body":"b"}`)
	f.pub.waitFor(t, "two messages", func() bool { return len(f.pub.messages) == 2 })
	send(t, phone, `{"type":"send","id":"3","room":"r","body":"c"}`)
	if got := read(t, phone); got.Code != protocol.CodeRateLimited || got.ID != "3" || got.Ref != protocol.FrameSend {
		t.Fatalf("third message → %+v, want rate_limited for id 3", got)
	}
	send(t, phone, `{"type":"ping","id":"p"}`) // other frames still flow
	if got := read(t, phone); got.Type != protocol.FramePong {
		t.Fatalf("ping after the message limit → %+v", got)
	}
	f.pub.mu.Lock()
	defer f.pub.mu.Unlock()
	if len(f.pub.messages) != 2 {
		t.Fatalf("%d messages published, want 2", len(f.pub.messages))
	}
}

// Presence frames carry changes only, so a new connection is told who is online already,
// in one frame.
func TestNewConnectionGetsItsContactsPresence(t *testing.T) {
	f := newFixture(t, Config{}, nil)
	f.pub.mu.Lock()
	f.pub.online = map[string][]string{"alice": {"bob", "carol"}}
	f.pub.mu.Unlock()
	ws := f.dial(t, "tok-alice")
	fr := read(t, ws)
	if fr.Type != protocol.FramePresenceBatch {
		t.Fatalf("frame %+v, want presence_batch", fr)
	}
	if want := map[string]bool{"bob": true, "carol": true}; !reflect.DeepEqual(fr.Presence, want) {
		t.Fatalf("presence snapshot = %v, want %v", fr.Presence, want)
	}
}
