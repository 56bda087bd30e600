// Package loadgen is `parley loadgen`: it registers users, puts them in group rooms,
// connects each over WebSocket and sends messages at a fixed rate for a bounded time,
// then reports throughput, send→ack latency and fan-out deliveries. It only ever targets
// this machine (loopback) and always stops by itself.
package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
}

// Validate refuses anything but a bounded run against loopback.
func (c Config) Validate() error {
	u, err := url.Parse(c.Target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--target %q: want http://127.0.0.1:port", c.Target)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--target %q: load tests only target this machine (127.0.0.0/8, ::1, localhost)", c.Target)
	}
	switch {
	case c.Users < 2 || c.Users > 5000:
		return errors.New("--users must be between 2 and 5000")
	case c.Rooms < 1 || c.Rooms > 1000:
		return errors.New("--rooms must be between 1 and 1000")
	case c.Duration <= 0 || c.Duration > MaxDuration:
		return fmt.Errorf("--duration must be positive and at most %s", MaxDuration)
	case c.Rate <= 0 || c.Rate > 100000:
		return errors.New("--rate must be between 0 and 100000")
	case c.MessageBytes < 1 || c.MessageBytes > 1<<20:
		return errors.New("--message-bytes must be between 1 and 1 MiB")
	}
	return nil
}

// Report is what a run measured.
type Report struct {
	Sent, Acked, Refused, Delivered int64
	Elapsed                         time.Duration
	AckLatencies                    []time.Duration // sorted
	ExpectedDeliveries              int64           // acked × (members − 1)
}

// Percentile returns the p-th percentile (0–100) of the ack latencies.
func (r Report) Percentile(p float64) time.Duration {
	if len(r.AckLatencies) == 0 {
		return 0
	}
	i := int(float64(len(r.AckLatencies)-1) * p / 100)
	return r.AckLatencies[i]
}

// Print writes the report.
func (r Report) Print(w io.Writer) {
	secs := r.Elapsed.Seconds()
	fmt.Fprintf(w, "sent %d, acked %d, refused %d in %.1fs: %.0f msgs/s acked\n", r.Sent, r.Acked, r.Refused, secs, float64(r.Acked)/secs)
	fmt.Fprintf(w, "send→ack latency: p50 %s, p95 %s, p99 %s, max %s\n",
		r.Percentile(50), r.Percentile(95), r.Percentile(99), r.Percentile(100))
	fmt.Fprintf(w, "deliveries %d of %d expected (%.0f/s)\n", r.Delivered, r.ExpectedDeliveries, float64(r.Delivered)/secs)
}

// Run performs one load run.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	api := chatclient.New(cfg.Target)
	wsBase := "ws" + strings.TrimPrefix(strings.TrimSuffix(cfg.Target, "/"), "http")
	run := randomHex(4)
	users := make([]chatclient.User, cfg.Users)
	for i := range users {
		u, err := api.Register(ctx, fmt.Sprintf("load_%s_%d", run, i), "load-test-password-"+run)
		if err != nil {
			return Report{}, fmt.Errorf("register user %d: %w", i, err)
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
			return Report{}, fmt.Errorf("create room %d: %w", i, err)
		}
		rooms[i] = id
	}

	var rep Report
	var mu sync.Mutex
	pending := map[string]time.Time{} // client id → sent at
	var delivered atomic.Int64
	conns := make([]*chatclient.Conn, len(users))
	var readers sync.WaitGroup
	for i, u := range users {
		c, err := chatclient.Dial(ctx, wsBase, u.Token)
		if err != nil {
			closeAll(conns)
			return Report{}, fmt.Errorf("connect user %d: %w", i, err)
		}
		conns[i] = c
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				f, err := c.Next(ctx, nil)
				if err != nil {
					return
				}
				switch {
				case f.Type == protocol.FrameMessage && f.Sender != u.ID:
					delivered.Add(1)
				case f.Type == protocol.FrameAck:
					mu.Lock()
					if at, ok := pending[f.ID]; ok {
						delete(pending, f.ID)
						rep.Acked++
						rep.AckLatencies = append(rep.AckLatencies, time.Since(at))
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

	body := strings.Repeat("m", cfg.MessageBytes)
	interval := time.Duration(float64(time.Second) / cfg.Rate)
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
		mu.Lock()
		pending[id] = time.Now()
		rep.Sent++
		mu.Unlock()
		if err := conns[sender].Send(protocol.ClientFrame{Type: protocol.FrameSend, ID: id, Room: rooms[n%len(rooms)], Body: body}); err != nil {
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
	closeAll(conns)
	readers.Wait()
	mu.Lock()
	defer mu.Unlock()
	rep.Delivered = delivered.Load()
	rep.ExpectedDeliveries = rep.Acked * int64(len(users)-1)
	slices.Sort(rep.AckLatencies)
	return rep, nil
}

func closeAll(conns []*chatclient.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
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
