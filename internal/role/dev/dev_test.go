package dev

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/chatclient"
	"github.com/parleychat/parley/internal/cli"
	"github.com/parleychat/parley/runtime/protocol"
)

// TestDevChatsEndToEnd drives `parley dev` (all roles, memory everything) through its
// REST API and WebSocket endpoint as real clients would.
func TestDevChatsEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dev := startDev(t, ctx, testConfig(t))
	base, api, out := dev.base, dev.api, dev.out
	if !strings.Contains(out.String(), base+"/") {
		t.Fatalf("dev did not print its URL: %q", out.String())
	}
	if resp, err := http.Get(base + "/"); err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %v, %v", resp, err)
	} else {
		resp.Body.Close()
	}
	register := func(name string) chatclient.User {
		u, err := api.Register(ctx, name, "correct horse battery staple")
		if err != nil {
			t.Fatalf("register %s: %v", name, err)
		}
		return u
	}
	alice, bob, carol := register("alice"), register("bob"), register("carol")
	dm, err := api.OpenDirect(ctx, alice, bob.ID)
	if err != nil {
		t.Fatal(err)
	}
	group, err := api.CreateGroup(ctx, alice, "team", []string{bob.ID, carol.ID})
	if err != nil {
		t.Fatal(err)
	}
	wsBase := "ws" + strings.TrimPrefix(base, "http")
	dial := func(u chatclient.User) *chatclient.Conn {
		c, err := chatclient.Dial(ctx, wsBase, u.Token)
		if err != nil {
			t.Fatalf("dial %s: %v", u.Username, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	aliceWS, bobPhone, bobLaptop, carolWS := dial(alice), dial(bob), dial(bob), dial(carol)

	// A DM reaches both of bob's devices; alice gets her ack.
	must(t, aliceWS.Send(protocol.ClientFrame{Type: protocol.FrameSend, ID: "a-1", Room: dm, Body: "hi bob"}))
	ack := next(t, ctx, aliceWS, chatclient.Is(protocol.FrameAck))
	if ack.ID != "a-1" || ack.Seq != 1 || ack.Room != dm {
		t.Fatalf("ack = %+v", ack)
	}
	for _, dev := range []*chatclient.Conn{bobPhone, bobLaptop} {
		m := next(t, ctx, dev, chatclient.Is(protocol.FrameMessage))
		if m.Body != "hi bob" || m.Sender != alice.ID || m.Seq != 1 || m.MessageID != ack.MessageID {
			t.Fatalf("bob's device got %+v", m)
		}
	}
	// A retried send with the same id is not a second message.
	must(t, aliceWS.Send(protocol.ClientFrame{Type: protocol.FrameSend, ID: "a-1", Room: dm, Body: "hi bob"}))
	if again := next(t, ctx, aliceWS, chatclient.Is(protocol.FrameAck)); again.Seq != 1 || again.MessageID != ack.MessageID {
		t.Fatalf("retried send acked as %+v", again)
	}

	// Read receipt and typing travel back to alice.
	must(t, bobPhone.Send(protocol.ClientFrame{Type: protocol.FrameMark, Room: dm, Kind: protocol.ReceiptRead, Seq: 1}))
	rc := next(t, ctx, aliceWS, chatclient.Is(protocol.FrameReceipt))
	if rc.User != bob.ID || rc.ReadSeq != 1 || rc.DeliveredSeq != 1 {
		t.Fatalf("receipt = %+v", rc)
	}
	must(t, bobLaptop.Send(protocol.ClientFrame{Type: protocol.FrameTyping, Room: dm}))
	if ty := next(t, ctx, aliceWS, chatclient.Is(protocol.FrameTypingOut)); ty.User != bob.ID || ty.Room != dm {
		t.Fatalf("typing = %+v", ty)
	}

	// Carol blocks alice: alice's group message reaches bob but never carol.
	if err := api.Block(ctx, carol, alice.ID); err != nil {
		t.Fatal(err)
	}
	must(t, aliceWS.Send(protocol.ClientFrame{Type: protocol.FrameSend, ID: "a-2", Room: group, Body: "secret"}))
	next(t, ctx, aliceWS, func(f protocol.ServerFrame) bool { return f.Type == protocol.FrameAck && f.ID == "a-2" })
	next(t, ctx, bobPhone, func(f protocol.ServerFrame) bool { return f.Type == protocol.FrameMessage && f.Body == "secret" })
	must(t, bobPhone.Send(protocol.ClientFrame{Type: protocol.FrameSend, ID: "b-1", Room: group, Body: "marker"}))
	got := next(t, ctx, carolWS, chatclient.Is(protocol.FrameMessage))
	if got.Body != "marker" {
		t.Fatalf("carol received %+v before bob's marker: a blocked sender's message arrived", got)
	}

	// Bob blocks alice: her DM is refused with the reason code.
	if err := api.Block(ctx, bob, alice.ID); err != nil {
		t.Fatal(err)
	}
	must(t, aliceWS.Send(protocol.ClientFrame{Type: protocol.FrameSend, ID: "a-3", Room: dm, Body: "still there?"}))
	refusal := next(t, ctx, aliceWS, func(f protocol.ServerFrame) bool { return f.Type == protocol.FrameError && f.ID == "a-3" })
	if refusal.Code != protocol.ErrorCode(protocol.ReasonBlocked) || refusal.Ref != protocol.FrameSend {
		t.Fatalf("refusal = %+v", refusal)
	}

	// A file shared in the DM: bob downloads the same bytes, carol (not in the DM) cannot,
	// and a message cannot attach a file its sender may not read.
	png := []byte("\x89PNG\r\n\x1a\n" + strings.Repeat("\x00", 64))
	fileID, err := api.Upload(ctx, alice, "../../etc/passwd", "text/plain", bytes.NewReader(png))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := api.Download(ctx, bob, fileID); err == nil {
		t.Fatal("bob read a file before it was shared with him")
	}
	must(t, bobLaptop.Send(protocol.ClientFrame{Type: protocol.FrameSend, ID: "b-steal", Room: dm, Attachments: []string{fileID}}))
	if f := next(t, ctx, bobLaptop, func(f protocol.ServerFrame) bool { return f.ID == "b-steal" }); f.Type != protocol.FrameError || f.Code != protocol.CodeInvalid {
		t.Fatalf("attaching someone else's unshared file → %+v", f)
	}
	if err := api.Do(ctx, "DELETE", "/api/v1/blocks/"+alice.ID, bob.Token, nil, nil); err != nil {
		t.Fatal(err)
	}
	must(t, aliceWS.Send(protocol.ClientFrame{Type: protocol.FrameSend, ID: "a-file", Room: dm, Body: "a picture", Attachments: []string{fileID}}))
	withFile := next(t, ctx, bobPhone, func(f protocol.ServerFrame) bool { return f.Type == protocol.FrameMessage && f.ID == "a-file" })
	if len(withFile.Attachments) != 1 || withFile.Attachments[0] != fileID {
		t.Fatalf("message attachments = %v", withFile.Attachments)
	}
	body, ctype, err := api.Download(ctx, bob, fileID)
	if err != nil || !bytes.Equal(body, png) || ctype != "image/png" {
		t.Fatalf("bob downloaded %d bytes of %q (%v); want the PNG, sniffed", len(body), ctype, err)
	}
	if _, _, err := api.Download(ctx, carol, fileID); err == nil {
		t.Fatal("carol, not in the DM, downloaded the file")
	}

	// A new device of carol resumes the group from the start: alice's message is there
	// (sequence numbers have no gaps) but hidden, since carol blocked her.
	tablet := dial(carol)
	must(t, tablet.Send(protocol.ClientFrame{Type: protocol.FrameResume, Rooms: map[string]int64{group: 0}}))
	first := next(t, ctx, tablet, chatclient.Is(protocol.FrameMessage))
	second := next(t, ctx, tablet, chatclient.Is(protocol.FrameMessage))
	if first.Seq != 1 || first.Body != "" || !first.Hidden || second.Seq != 2 || second.Body != "marker" {
		t.Fatalf("resume replayed %+v then %+v", first, second)
	}
}

// devServer is a parley dev running for a test.
type devServer struct {
	base string // http://127.0.0.1:port
	api  *chatclient.Client
	out  *bytes.Buffer // its standard output
}

// testConfig is DefaultConfig for a test: a blob directory of its own, a fixed signing
// key, warnings and errors only.
func testConfig(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.Files.Blob.Dir = t.TempDir()
	cfg.Core.JWTSigningKey = strings.Repeat("k", 32)
	cfg.Core.LogLevel = "warn"
	return cfg
}

// startDev runs parley dev with cfg on a loopback port until the test ends, and returns
// once it is ready; a failed test shows its logs.
func startDev(t *testing.T, ctx context.Context, cfg Config) devServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var out, logs bytes.Buffer
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(runCtx, cli.Env{Stdout: &out, Stderr: &logs}, cfg, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("dev stopped with %v", err)
		}
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	})
	s := devServer{base: "http://" + ln.Addr().String(), out: &out}
	s.api = chatclient.New(s.base)
	for {
		var body map[string]any
		err := s.api.Do(ctx, "GET", "/readyz", "", nil, &body)
		if err == nil {
			return s
		}
		select {
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("dev stopped before it was ready: %v", err)
		case <-ctx.Done():
			t.Fatalf("never ready: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func next(t *testing.T, ctx context.Context, c *chatclient.Conn, match func(protocol.ServerFrame) bool) protocol.ServerFrame {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	f, err := c.Next(ctx, match)
	if err != nil {
		t.Fatalf("waiting for a frame: %v", err)
	}
	return f
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
