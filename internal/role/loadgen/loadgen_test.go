package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/cli"
	"github.com/parleychat/parley/internal/role/dev"
	"github.com/parleychat/parley/runtime/protocol"
)

func TestValidateRefusesRemoteTargetsAndUnboundedRuns(t *testing.T) {
	for _, target := range []string{"http://10.0.0.1:8080", "http://example.com", "http://192.168.1.2", "ftp://127.0.0.1", "127.0.0.1:8080"} {
		c := DefaultConfig()
		c.Target = target
		if err := c.Validate(); err == nil {
			t.Errorf("target %q accepted", target)
		}
	}
	for _, target := range []string{"http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9", "http://127.1.2.3:80"} {
		c := DefaultConfig()
		c.Target = target
		if err := c.Validate(); err != nil {
			t.Errorf("target %q refused: %v", target, err)
		}
	}
	c := DefaultConfig()
	c.Duration = MaxDuration + time.Second
	if err := c.Validate(); err == nil {
		t.Error("a run longer than MaxDuration was accepted")
	}
}

// TestRunAgainstDev: every message sent is acked or refused (none lost), and every acked
// message reaches every other member of its room.
func TestRunAgainstDev(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := dev.DefaultConfig()
	cfg.Core.JWTSigningKey = strings.Repeat("k", 32)
	cfg.Core.LogLevel = "error"
	cfg.Files.Blob.Dir = t.TempDir()
	var out bytes.Buffer
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- dev.Run(runCtx, cli.Env{Stdout: &out, Stderr: &out}, cfg, ln) }()
	defer func() { stop(); <-done }()

	rep, err := Run(ctx, Config{Target: "http://" + ln.Addr().String(), Users: 5, Rooms: 2, Duration: time.Second, Rate: 40, MessageBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent < 10 {
		t.Fatalf("sent only %d messages", rep.Sent)
	}
	if rep.Acked+rep.Refused != rep.Sent {
		t.Fatalf("sent %d, acked %d, refused %d: messages lost", rep.Sent, rep.Acked, rep.Refused)
	}
	if rep.Delivered != rep.ExpectedDeliveries || rep.ExpectedDeliveries != rep.Acked*4 {
		t.Fatalf("delivered %d of %d expected", rep.Delivered, rep.ExpectedDeliveries)
	}
	if len(rep.AckLatencies) != int(rep.Acked) {
		t.Fatalf("%d latencies for %d acks", len(rep.AckLatencies), rep.Acked)
	}
	var printed bytes.Buffer
	rep.Print(&printed)
	if !strings.Contains(printed.String(), "send→ack latency: p50") {
		t.Fatalf("report: %s", printed.String())
	}
}

// messageStamp reads what encoding/json makes of a message frame (as the gateway sends
// it), and refuses every other frame, which is then decoded in full.
func TestMessageStampReadsGatewayFrames(t *testing.T) {
	at := time.Unix(0, 1764500000123456789)
	for _, clientID := range []string{"ab12-7", ""} {
		frame := protocol.ServerFrame{Type: protocol.FrameMessage, ID: clientID, Room: "r1", MessageID: "m1", Seq: 7, Sender: "u-42",
			Body: stamp(at) + "mmmm", Mentions: []string{"u-1"}, CreatedAt: at}
		raw, err := json.Marshal(frame)
		if err != nil {
			t.Fatal(err)
		}
		m, ok := messageStamp(raw)
		if !ok || m.sender != "u-42" || m.room != "r1" || m.seq != 7 || !m.sent.Equal(at) {
			t.Fatalf("messageStamp(%s) = %+v, %v; want room r1, seq 7, sender u-42, sent %v", raw, m, ok, at)
		}
	}
	for _, other := range []protocol.ServerFrame{
		{Type: protocol.FrameAck, ID: "c-1", MessageID: "m1", Seq: 7},
		{Type: protocol.FrameMessage, Sender: "u-42", Body: "short"},
	} {
		raw, err := json.Marshal(other)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := messageStamp(raw); ok {
			t.Errorf("messageStamp accepted %s", raw)
		}
	}
}

// A connection counts each message once whatever a resume replays, and a gap stays open
// (so that the resume asks for it) until it is filled.
func TestRoomSeenCountsEachSeqOnceAndTracksGaps(t *testing.T) {
	rs := &roomSeen{upTo: 4}
	steps := []struct {
		seq  int64
		new  bool
		upTo int64
	}{
		{5, true, 5}, {5, false, 5}, {3, false, 5}, // repeats and older
		{7, true, 5}, {8, true, 5}, {7, false, 5}, // 6 is missing
		{6, true, 8}, // the gap filled: everything up to 8 held
		{9, true, 9},
	}
	for _, s := range steps {
		if got := rs.add(s.seq); got != s.new || rs.upTo != s.upTo {
			t.Fatalf("add(%d) = %v with upTo %d; want %v with upTo %d", s.seq, got, rs.upTo, s.new, s.upTo)
		}
	}
	if len(rs.above) != 0 {
		t.Fatalf("early seqs left after the gap filled: %v", rs.above)
	}
}
