package gateway

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleychat/parley/runtime/presence"
	"github.com/parleychat/parley/runtime/protocol"
)

// rssServerEnv makes the test binary a WebSocket server process (see TestMain): the idle
// memory benchmark measures a server's resident memory from /proc, as an operator sees
// it, not the heap of the process that also holds the clients.
const rssServerEnv = "PARLEY_GATEWAY_RSS_SERVER"

func TestMain(m *testing.M) {
	if kind := os.Getenv(rssServerEnv); kind != "" {
		if err := serveForRSS(kind); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serveForRSS serves kind ("gateway" or "bare") on a loopback port it prints, with
// /count (connections held) and /free (return freed memory to the OS), until stdin closes.
func serveForRSS(kind string) error {
	mux := http.NewServeMux()
	var count func() int
	switch kind {
	case "gateway":
		gw, err := New(Config{ID: "rss", PingInterval: time.Hour}, anyToken{}, nopPublisher{}, presence.NewMemory(presence.Config{}), nil, nil, nil)
		if err != nil {
			return err
		}
		mux.Handle("/ws", gw)
		count = gw.Connections
	case "bare":
		srv := &bareServer{}
		mux.Handle("/ws", srv)
		count = func() int { srv.mu.Lock(); defer srv.mu.Unlock(); return len(srv.conns) }
	default:
		return fmt.Errorf("unknown server %q", kind)
	}
	mux.HandleFunc("/count", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, count()) })
	mux.HandleFunc("/free", func(w http.ResponseWriter, _ *http.Request) { debug.FreeOSMemory() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	go func() { _ = http.Serve(ln, mux) }()
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the benchmark closes stdin
	return nil
}

// rssServer is a server process started by the benchmark.
type rssServer struct {
	cmd  *exec.Cmd
	addr string
	stop func()
}

func startRSSServer(tb testing.TB, kind string) *rssServer {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), rssServerEnv+"="+kind)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		tb.Fatalf("server did not start: %v", err)
	}
	return &rssServer{cmd: cmd, addr: strings.TrimSpace(line), stop: func() { stdin.Close(); _ = cmd.Wait() }}
}

func (s *rssServer) get(tb testing.TB, path string) string {
	tb.Helper()
	resp, err := http.Get("http://" + s.addr + path)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
	return b.String()
}

// rss is the server's resident memory in bytes, after it returned what it freed.
func (s *rssServer) rss(tb testing.TB) int64 {
	tb.Helper()
	s.get(tb, "/free")
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb << 10
		}
	}
	tb.Fatal("no VmRSS")
	return 0
}

// BenchmarkIdleConnectionRSS reports the server process's resident memory per idle
// connection, the gateway against a bare gorilla/websocket server measured in the same
// run, each in its own process. Set PARLEY_RSS_CONNS to change the count (default 2000).
func BenchmarkIdleConnectionRSS(b *testing.B) {
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("PARLEY_RSS_CONNS")); err == nil && v > 0 {
		n = v
	}
	for _, kind := range []string{"bare-gorilla", "gateway"} {
		b.Run(kind, func(b *testing.B) {
			for range b.N {
				srv := startRSSServer(b, strings.TrimSuffix(kind, "-gorilla"))
				before := srv.rss(b)
				conns := make([]*websocket.Conn, 0, n)
				for i := range n {
					d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol, protocol.AuthSubprotocolPrefix + "idle" + strconv.Itoa(i)}}
					ws, _, err := d.DialContext(context.Background(), "ws://"+srv.addr+"/ws", nil)
					if err != nil {
						b.Fatalf("dial %d: %v", i, err)
					}
					conns = append(conns, ws)
				}
				for srv.get(b, "/count") != strconv.Itoa(n) {
					time.Sleep(10 * time.Millisecond)
				}
				time.Sleep(500 * time.Millisecond) // connection setup settles
				after := srv.rss(b)
				b.ReportMetric(float64(after-before)/float64(n), "rss-bytes/conn")
				closeAll(conns)
				srv.stop()
			}
		})
	}
}
