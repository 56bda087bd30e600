// Package loadgen is `parley loadgen`: it registers users, puts them in group rooms,
// connects each over WebSocket and sends messages at a fixed rate for a bounded time,
// then reports throughput, send→ack latency and fan-out deliveries. It only ever targets
// this machine (loopback) and always stops by itself.
package loadgen

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleychat/parley/internal/chatclient"
	"github.com/parleychat/parley/internal/cli"
	"github.com/parleychat/parley/runtime/protocol"
)

// MaxDuration bounds one run, whatever the flags say.
const MaxDuration = 5 * time.Minute

// Config of one run.
type Config struct {
	Target       string
	Users        int
	Rooms        int
	Duration     time.Duration
	Rate         float64
	MessageBytes int
	// Seed creates the users and rooms in one call to `parley dev --dev-seeding`
	// (seed.go) instead of registering each user (an argon2id hash apiece) and
	// naming at most 256 initial members per room.
	Seed bool
	// ServerPID, when set, is a local server process whose CPU time over the sending
	// window (and the drain after it) the report divides by the deliveries.
	ServerPID int
	// WSTarget is the WebSocket base when it differs from Target (a separate `parley
	// gateway`); empty means Target.
	WSTarget string
	// Fixtures is a file of seeded users and rooms: written by a --seed run, read
	// (instead of registering or seeding) when it exists. It lets fixtures seeded through
	// `parley dev --dev-seeding` on PostgreSQL drive a multi-process deployment later.
	Fixtures string
	// SeedOnly stops after creating the fixtures, without connecting or sending.
	SeedOnly bool
	// CPUProfile, when set, is a file for the load generator's own CPU profile of the run.
	CPUProfile string
}

// DefaultConfig is a small run against `make run`.
func DefaultConfig() Config {
	return Config{Target: "http://127.0.0.1:8080", Users: 20, Rooms: 4, Duration: 10 * time.Second, Rate: 200, MessageBytes: 100}
}

// RegisterFlags binds the settings.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Target, "target", c.Target, "base URL of a parley dev or gateway+core on this machine (loopback only)")
	fs.IntVar(&c.Users, "users", c.Users, "users to register and connect")
	fs.IntVar(&c.Rooms, "rooms", c.Rooms, "group rooms; every user joins every room")
	fs.DurationVar(&c.Duration, "duration", c.Duration, fmt.Sprintf("how long to send (at most %s)", MaxDuration))
	fs.Float64Var(&c.Rate, "rate", c.Rate, "messages per second, all users together")
	fs.IntVar(&c.MessageBytes, "message-bytes", c.MessageBytes, "body size of each message")
	fs.StringVar(&c.WSTarget, "ws-target", c.WSTarget, "WebSocket base URL when it is not --target (a separate parley gateway; loopback only)")
	fs.StringVar(&c.Fixtures, "fixtures", c.Fixtures, "file of seeded users and rooms: written by --seed, used instead of creating them when it exists")
	fs.BoolVar(&c.SeedOnly, "seed-only", c.SeedOnly, "with --seed: create the fixtures (and write --fixtures) and exit")
	fs.IntVar(&c.ServerPID, "server-pid", c.ServerPID, "report this local process's CPU µs per delivery over the sending window (Linux /proc)")
	fs.BoolVar(&c.Seed, "seed", c.Seed, "create users and rooms in bulk through `parley dev --dev-seeding` (benchmark fixtures)")
	fs.StringVar(&c.CPUProfile, "cpuprofile", c.CPUProfile, "write the load generator's own CPU profile of the sending window to this file")
}

// Validate refuses anything but a bounded run against loopback.
func (c Config) Validate() error {
	if err := checkLoopback("--target", c.Target); err != nil {
		return err
	}
	if c.WSTarget != "" {
		if err := checkLoopback("--ws-target", c.WSTarget); err != nil {
			return err
		}
	}
	switch {
	case c.SeedOnly && (!c.Seed || c.Fixtures == ""):
		return errors.New("--seed-only needs --seed and --fixtures")
	case c.Users < 2 || c.Users > 5000:
		return errors.New("--users must be between 2 and 5000")
	case c.Rooms < 1 || c.Rooms > 1000:
		return errors.New("--rooms must be between 1 and 1000")
	case c.Duration <= 0 || c.Duration > MaxDuration:
		return fmt.Errorf("--duration must be positive and at most %s", MaxDuration)
	case c.Rate <= 0 || c.Rate > 100000:
		return errors.New("--rate must be between 0 and 100000")
	case c.MessageBytes < stampBytes || c.MessageBytes > 1<<20:
		return fmt.Errorf("--message-bytes must be between %d and 1 MiB", stampBytes)
	}
	return nil
}

func checkLoopback(flag, target string) error {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s %q: want http://127.0.0.1:port", flag, target)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%s %q: load tests only target this machine (127.0.0.0/8, ::1, localhost)", flag, target)
	}
	return nil
}

// Report is what a run measured.
type Report struct {
	Sent, Acked, Refused, Delivered int64
	Elapsed                         time.Duration
	AckLatencies                    []time.Duration // sorted
	// DeliverLatencies is send→deliver per delivery (sorted), from the send time each
	// message body carries.
	DeliverLatencies []time.Duration
	ServerCPU        time.Duration // of Config.ServerPID over the window; 0 when unset
	// ClientCPU is this process's own CPU time over the same window: when it nears the
	// window's length, the load generator, not the server, sets the latencies.
	ClientCPU          time.Duration
	ExpectedDeliveries int64 // acked × (members − 1)
	// Resyncs counts the gateway's resync frames (its routed subscription was down):
	// each connection answers with resume and sends its unacknowledged messages again,
	// as a real client does, and Duplicates counts the deliveries that replay repeated.
	Resyncs, Duplicates int64
}

// Percentile returns the p-th percentile (0–100) of the ack latencies.
func (r Report) Percentile(p float64) time.Duration { return percentile(r.AckLatencies, p) }

// DeliverPercentile returns the p-th percentile (0–100) of the send→deliver latencies.
func (r Report) DeliverPercentile(p float64) time.Duration { return percentile(r.DeliverLatencies, p) }

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(float64(len(sorted)-1)*p/100)]
}

// Print writes the report.
func (r Report) Print(w io.Writer) {
	secs := r.Elapsed.Seconds()
	fmt.Fprintf(w, "sent %d, acked %d, refused %d in %.1fs: %.0f msgs/s acked\n", r.Sent, r.Acked, r.Refused, secs, float64(r.Acked)/secs)
	fmt.Fprintf(w, "send→ack latency: p50 %s, p95 %s, p99 %s, max %s\n",
		r.Percentile(50), r.Percentile(95), r.Percentile(99), r.Percentile(100))
	fmt.Fprintf(w, "send→deliver latency: p50 %s, p99 %s, max %s\n", r.DeliverPercentile(50), r.DeliverPercentile(99), r.DeliverPercentile(100))
	fmt.Fprintf(w, "deliveries %d of %d expected (%.0f/s)\n", r.Delivered, r.ExpectedDeliveries, float64(r.Delivered)/secs)
	if r.Resyncs > 0 {
		fmt.Fprintf(w, "resyncs %d (answered with resume; %d repeated deliveries not counted)\n", r.Resyncs, r.Duplicates)
	}
	if r.ServerCPU > 0 && r.Delivered > 0 {
		fmt.Fprintf(w, "server cpu %s: %.2f µs per delivery\n", r.ServerCPU, float64(r.ServerCPU.Microseconds())/float64(r.Delivered))
	}
	if r.ClientCPU > 0 && r.Delivered > 0 {
		fmt.Fprintf(w, "loadgen cpu %s of %.1fs: %.2f µs per delivery\n", r.ClientCPU, secs, float64(r.ClientCPU.Microseconds())/float64(r.Delivered))
	}
}

// Run performs one load run.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	api := chatclient.New(cfg.Target)
	wsBase := "ws" + strings.TrimPrefix(strings.TrimSuffix(cmp.Or(cfg.WSTarget, cfg.Target), "/"), "http")
	run := randomHex(4)
	users, rooms, err := fixtures(ctx, cfg, api, run)
	if err != nil || cfg.SeedOnly {
		return Report{}, err
	}

	var rep Report
	var mu sync.Mutex
	pending := map[string]pendingSend{} // client id → what was sent, when, by whom
	var delivered, resyncs, duplicates atomic.Int64
	conns := make([]*conn, len(users))
	lat := make([][]time.Duration, len(users)) // send→deliver, each reader its own (no lock per frame)
	var readers sync.WaitGroup
	for i, u := range users {
		c, err := chatclient.DialSocket(ctx, wsBase, u.Token)
		if err != nil {
			closeAll(conns)
			return Report{}, fmt.Errorf("connect user %d: %w", i, err)
		}
		conns[i] = &conn{ws: c}
		readers.Add(1)
		go func() {
			defer readers.Done()
			cs := conns[i]
			seen := map[string]*roomSeen{}
			// fresh tells a first delivery from a replayed repeat, per room.
			fresh := func(room string, seq int64) bool {
				rs := seen[room]
				if rs == nil {
					// The first message seen in a room: the run's messages start here.
					rs = &roomSeen{upTo: seq - 1}
					seen[room] = rs
				}
				if !rs.add(seq) {
					duplicates.Add(1)
					return false
				}
				return true
			}
			// One goroutine per connection, the arrival time taken as the frame is read and
			// before it is decoded: the figures are the server's, not this client's JSON.
			var (
				buf bytes.Buffer
				f   frame
			)
			for {
				_, r, err := c.NextReader()
				if err != nil {
					return
				}
				at := time.Now()
				buf.Reset()
				if _, err := buf.ReadFrom(r); err != nil {
					return
				}
				if m, ok := messageStamp(buf.Bytes()); ok {
					// The common frame, read without decoding all of it.
					if fresh(m.room, m.seq) && m.sender != u.ID {
						delivered.Add(1)
						lat[i] = append(lat[i], at.Sub(m.sent))
					}
					continue
				}
				f = frame{}
				if json.Unmarshal(buf.Bytes(), &f) != nil {
					continue
				}
				switch {
				case f.Type == protocol.FrameMessage:
					if fresh(f.Room, f.Seq) && f.Sender != u.ID {
						delivered.Add(1)
						if sent, ok := parseStamp(f.Body); ok {
							lat[i] = append(lat[i], at.Sub(sent))
						}
					}
				case f.Type == protocol.FrameResync:
					// Deliveries to this connection may have been lost: ask for what came
					// after the last message held in order in each room, and send again
					// what has no ack yet (the server acks a repeat with the original).
					resyncs.Add(1)
					rooms := make(map[string]int64, len(seen))
					for room, rs := range seen {
						rooms[room] = rs.upTo
					}
					mu.Lock()
					var again []protocol.ClientFrame
					for _, p := range pending {
						if p.sender == i {
							again = append(again, p.frame)
						}
					}
					mu.Unlock()
					if cs.send(protocol.ClientFrame{Type: protocol.FrameResume, Rooms: rooms}) != nil {
						return
					}
					for _, f := range again {
						if cs.send(f) != nil {
							return
						}
					}
				case f.Type == protocol.FrameAck:
					mu.Lock()
					if p, ok := pending[f.ID]; ok {
						delete(pending, f.ID)
						rep.Acked++
						rep.AckLatencies = append(rep.AckLatencies, at.Sub(p.at))
					}
					mu.Unlock()
				case f.Type == protocol.FrameError && f.Ref == protocol.FrameSend:
					mu.Lock()
					if _, ok := pending[f.ID]; ok {
						delete(pending, f.ID)
						rep.Refused++
					}
					mu.Unlock()
				}
			}
		}()
	}

	pad := strings.Repeat("m", cfg.MessageBytes-stampBytes)
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	var cpu0 time.Duration
	if cfg.ServerPID > 0 {
		if cpu0, err = processCPU(cfg.ServerPID); err != nil {
			closeAll(conns)
			return Report{}, err
		}
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			closeAll(conns)
			return Report{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			closeAll(conns)
			return Report{}, err
		}
		defer pprof.StopCPUProfile()
	}
	self0 := selfCPU()
	tick := time.NewTicker(interval)
	start := time.Now()
	deadline := time.NewTimer(cfg.Duration)
	var n int
send:
	for {
		select {
		case <-ctx.Done():
			break send
		case <-deadline.C:
			break send
		case <-tick.C:
		}
		id := fmt.Sprintf("%s-%d", run, n)
		sender := n % len(users)
		f := protocol.ClientFrame{Type: protocol.FrameSend, ID: id, Room: rooms[n%len(rooms)], Body: stamp(time.Now()) + pad}
		mu.Lock()
		pending[id] = pendingSend{frame: f, sender: sender, at: time.Now()}
		rep.Sent++
		mu.Unlock()
		if err := conns[sender].send(f); err != nil {
			tick.Stop()
			closeAll(conns)
			return Report{}, fmt.Errorf("send: %w", err)
		}
		n++
	}
	tick.Stop()
	// Let the last acks and deliveries arrive, within a bound.
	drain := time.Now().Add(10 * time.Second)
	for time.Now().Before(drain) {
		mu.Lock()
		left := len(pending)
		mu.Unlock()
		want := (rep.Sent - rep.Refused) * int64(len(users)-1)
		if left == 0 && delivered.Load() >= want {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	rep.Elapsed = time.Since(start)
	rep.ClientCPU = selfCPU() - self0
	if cfg.ServerPID > 0 {
		cpu1, err := processCPU(cfg.ServerPID)
		if err != nil {
			closeAll(conns)
			return Report{}, err
		}
		rep.ServerCPU = cpu1 - cpu0
	}
	closeAll(conns)
	readers.Wait()
	mu.Lock()
	defer mu.Unlock()
	for _, l := range lat {
		rep.DeliverLatencies = append(rep.DeliverLatencies, l...)
	}
	rep.Delivered = delivered.Load()
	rep.Resyncs, rep.Duplicates = resyncs.Load(), duplicates.Load()
	rep.ExpectedDeliveries = rep.Acked * int64(len(users)-1)
	slices.Sort(rep.AckLatencies)
	slices.Sort(rep.DeliverLatencies)
	return rep, nil
}

// fixtures registers the users and creates the rooms, or seeds both at once.
func fixtures(ctx context.Context, cfg Config, api *chatclient.Client, run string) ([]chatclient.User, []string, error) {
	if cfg.Fixtures != "" && !cfg.SeedOnly {
		s, err := ReadFixtures(cfg.Fixtures)
		if err == nil {
			if len(s.Users) < cfg.Users || len(s.Rooms) < cfg.Rooms {
				return nil, nil, fmt.Errorf("fixtures %s hold %d users and %d rooms, the run wants %d and %d", cfg.Fixtures, len(s.Users), len(s.Rooms), cfg.Users, cfg.Rooms)
			}
			return s.Users[:cfg.Users], s.Rooms[:cfg.Rooms], nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, err
		}
	}
	if cfg.Seed {
		s, err := Seed(ctx, cfg.Target, "load_"+run, "load-test-password-"+run, cfg.Users, cfg.Rooms)
		if err == nil && cfg.Fixtures != "" {
			err = WriteFixtures(cfg.Fixtures, s)
		}
		return s.Users, s.Rooms, err
	}
	users := make([]chatclient.User, cfg.Users)
	for i := range users {
		u, err := api.Register(ctx, fmt.Sprintf("load_%s_%d", run, i), "load-test-password-"+run)
		if err != nil {
			return nil, nil, fmt.Errorf("register user %d: %w", i, err)
		}
		users[i] = u
	}
	memberIDs := make([]string, 0, len(users)-1)
	for _, u := range users[1:] {
		memberIDs = append(memberIDs, u.ID)
	}
	rooms := make([]string, cfg.Rooms)
	for i := range rooms {
		id, err := api.CreateGroup(ctx, users[0], fmt.Sprintf("load %s %d", run, i), memberIDs)
		if err != nil {
			return nil, nil, fmt.Errorf("create room %d: %w", i, err)
		}
		rooms[i] = id
	}
	return users, rooms, nil
}

// stampBytes is the send time (Unix ns, zero-padded) each message body starts with, so
// every delivery's latency is measured, not only the sender's ack.
const stampBytes = 20

func stamp(t time.Time) string { return fmt.Sprintf("%019d ", t.UnixNano()) }

func parseStamp(body string) (time.Time, bool) {
	if len(body) < stampBytes {
		return time.Time{}, false
	}
	ns, err := strconv.ParseInt(body[:stampBytes-1], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}

// stamped is what messageStamp reads of a message frame.
type stamped struct {
	room, sender string
	seq          int64
	sent         time.Time
}

// messageStamp reads a message frame's room, seq, sender and send time without decoding
// the rest: the gateway encodes a ServerFrame with encoding/json, so its fields come in
// declaration order (type, id, room, message_id, seq, sender, body) and ids and the stamp
// need no unescaping. ok is false for anything else, which is then decoded in full.
func messageStamp(raw []byte) (m stamped, ok bool) {
	rest, found := bytes.CutPrefix(raw, []byte(`{"type":"message",`))
	if !found {
		return m, false
	}
	if after, hasID := bytes.CutPrefix(rest, []byte(`"id":"`)); hasID {
		if _, rest, found = bytes.Cut(after, []byte(`",`)); !found {
			return m, false
		}
	}
	if rest, found = bytes.CutPrefix(rest, []byte(`"room":"`)); !found {
		return m, false
	}
	room, rest, found := bytes.Cut(rest, []byte(`"`))
	if !found {
		return m, false
	}
	_, rest, found = bytes.Cut(rest, []byte(`"seq":`))
	if !found {
		return m, false
	}
	digits, rest, found := bytes.Cut(rest, []byte(`,`))
	if !found {
		return m, false
	}
	seq, err := strconv.ParseInt(string(digits), 10, 64)
	if err != nil {
		return m, false
	}
	rest, found = bytes.CutPrefix(rest, []byte(`"sender":"`))
	if !found {
		return m, false
	}
	id, rest, found := bytes.Cut(rest, []byte(`"`))
	if !found || !bytes.HasPrefix(rest, []byte(`,"body":"`)) {
		return m, false
	}
	body := rest[len(`,"body":"`):]
	if len(body) < stampBytes {
		return m, false
	}
	sent, ok := parseStamp(string(body[:stampBytes]))
	return stamped{room: string(room), sender: string(id), seq: seq, sent: sent}, ok
}

// roomSeen is what one connection received of one room: every seq up to upTo, and the
// few above it that came early (a gap a resume will fill).
type roomSeen struct {
	upTo  int64
	above map[int64]bool
}

// add records seq and reports whether it is new.
func (r *roomSeen) add(seq int64) bool {
	if seq <= r.upTo || r.above[seq] {
		return false
	}
	if seq != r.upTo+1 {
		if r.above == nil {
			r.above = map[int64]bool{}
		}
		if len(r.above) >= maxAbove {
			// A gap no resume filled: stop tracking it rather than grow without bound.
			for s := range r.above {
				r.upTo = max(r.upTo, s)
			}
			clear(r.above)
		}
		r.above[seq] = true
		return true
	}
	r.upTo = seq
	for r.above[r.upTo+1] {
		delete(r.above, r.upTo+1)
		r.upTo++
	}
	return true
}

// maxAbove bounds the early seqs a connection remembers per room.
const maxAbove = 4096

// pendingSend is a send waiting for its ack.
type pendingSend struct {
	frame  protocol.ClientFrame
	sender int // index of the user (and connection) that sent it
	at     time.Time
}

// conn is one user's socket: the sending loop and the connection's reader (answering a
// resync) both write to it, one at a time.
type conn struct {
	mu sync.Mutex
	ws *websocket.Conn
}

func (c *conn) send(f protocol.ClientFrame) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// frame is the part of a server frame the load generator reads.
type frame struct {
	Type   protocol.FrameType `json:"type"`
	ID     string             `json:"id"`
	Ref    protocol.FrameType `json:"ref"`
	Room   string             `json:"room"`
	Seq    int64              `json:"seq"`
	Sender string             `json:"sender"`
	Body   string             `json:"body"`
}

func closeAll(conns []*conn) {
	for _, c := range conns {
		if c != nil {
			c.ws.Close()
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Role returns the loadgen role.
func Role() cli.Role {
	return cli.Role{
		Name:    "loadgen",
		Summary: "load generator: users in group rooms sending over WebSocket at a fixed rate (loopback targets only)",
		Setup: func(fs *flag.FlagSet) cli.RunFunc {
			cfg := DefaultConfig()
			cfg.RegisterFlags(fs)
			return func(ctx context.Context, env cli.Env, _ []string) error {
				if err := cfg.Validate(); err != nil {
					return fmt.Errorf("%w: %w", cli.ErrUsage, err)
				}
				if cfg.SeedOnly {
					if _, err := Run(ctx, cfg); err != nil {
						return err
					}
					fmt.Fprintf(env.Stdout, "loadgen: seeded %d users and %d rooms into %s\n", cfg.Users, cfg.Rooms, cfg.Fixtures)
					return nil
				}
				ctx, cancel := context.WithTimeout(ctx, cfg.Duration+2*time.Minute)
				defer cancel()
				fmt.Fprintf(env.Stdout, "loadgen: %d users, %d rooms, %.0f msgs/s for %s against %s\n", cfg.Users, cfg.Rooms, cfg.Rate, cfg.Duration, cfg.Target)
				rep, err := Run(ctx, cfg)
				if err != nil {
					return err
				}
				rep.Print(env.Stdout)
				return nil
			}
		},
	}
}
