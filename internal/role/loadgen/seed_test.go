package loadgen

import (
	"bytes"
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/chatclient"
	"github.com/parleychat/parley/internal/cli"
	"github.com/parleychat/parley/internal/role/dev"
)

// startDev runs `parley dev` (memory everything) on a loopback port until the test ends.
func startDev(t *testing.T, seeding bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := dev.DefaultConfig()
	cfg.Core.JWTSigningKey = strings.Repeat("k", 32)
	cfg.Core.LogLevel = "error"
	cfg.Files.Blob.Dir = t.TempDir()
	cfg.DevSeeding = seeding
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out bytes.Buffer
	go func() { done <- dev.Run(ctx, cli.Env{Stdout: &out, Stderr: &out}, cfg, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("dev stopped with %v", err)
		}
	})
	base := "http://" + ln.Addr().String()
	api := chatclient.New(base)
	deadline := time.Now().Add(30 * time.Second)
	for api.Do(context.Background(), "GET", "/readyz", "", nil, &map[string]any{}) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("dev never ready: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return base
}

func TestSeedRefusedWithoutDevSeeding(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := startDev(t, false)
	if _, err := Seed(ctx, base, "noseed", "load-test-password-x", 3, 1); err == nil {
		t.Fatal("seeding succeeded against parley dev without --dev-seeding")
	}
	if _, err := chatclient.New(base).Login(ctx, "noseed_0", "load-test-password-x"); err == nil {
		t.Fatal("a refused seeding call created an account")
	}
	c := DefaultConfig()
	c.Target, c.Users, c.Seed, c.Duration = base, 3, true, time.Second
	if _, err := Run(ctx, c); err == nil {
		t.Fatal("loadgen --seed ran against parley dev without --dev-seeding")
	}
}

// TestSeedThousandUsersAndRoom: one call makes 1 000 users and a room with all of them
// (four times POST /rooms' 256 initial members), the tokens it hands out are accepted,
// and a seeded user logs in normally with the shared password.
func TestSeedThousandUsersAndRoom(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	base := startDev(t, true)
	s, err := Seed(ctx, base, "bulk", "load-test-password-bulk", 1000, 1)
	if err != nil {
		t.Fatal(err)
	}
	api := chatclient.New(base)
	var members struct {
		Members []struct {
			UserID string `json:"user_id"`
		} `json:"members"`
	}
	if err := api.Do(ctx, "GET", "/api/v1/rooms/"+s.Rooms[0]+"/members", s.Users[999].Token, nil, &members); err != nil {
		t.Fatal(err)
	}
	if len(members.Members) != 1000 {
		t.Fatalf("room has %d members, want 1000", len(members.Members))
	}
	u, err := api.Login(ctx, "bulk_500", "load-test-password-bulk")
	if err != nil {
		t.Fatalf("login of a seeded user: %v", err)
	}
	if u.ID != s.Users[500].ID {
		t.Fatalf("login gave user %s, seeded %s", u.ID, s.Users[500].ID)
	}
	if _, err := api.Login(ctx, "bulk_501", "wrong-password-entirely"); err == nil {
		t.Fatal("a seeded user logged in with a wrong password")
	}
	if _, err := Seed(ctx, base, "bulk", "load-test-password-bulk", 2, 0); err == nil {
		t.Fatal("seeding taken usernames again succeeded")
	}
}

// TestRunWithSeed: a load run on seeded fixtures loses nothing and measures every
// delivery's latency.
func TestRunWithSeed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := startDev(t, true)
	rep, err := Run(ctx, Config{Target: base, Users: 20, Rooms: 1, Duration: time.Second, Rate: 20, MessageBytes: 64, Seed: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent < 5 || rep.Acked+rep.Refused != rep.Sent {
		t.Fatalf("sent %d, acked %d, refused %d", rep.Sent, rep.Acked, rep.Refused)
	}
	if rep.Delivered != rep.ExpectedDeliveries || int64(len(rep.DeliverLatencies)) != rep.Delivered {
		t.Fatalf("delivered %d of %d expected, %d latencies", rep.Delivered, rep.ExpectedDeliveries, len(rep.DeliverLatencies))
	}
}

// TestProcessCPUMoves: the server CPU figure reads /proc and grows with work done.
func TestProcessCPUMoves(t *testing.T) {
	c0, err := processCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	x := 0
	for {
		for i := range 1_000_000 {
			x += i
		}
		c1, err := processCPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if c1 > c0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU time stayed at %s after busy work (%d)", c0, x)
		}
	}
	if _, err := processCPU(1 << 30); err == nil {
		t.Fatal("CPU of a process that does not exist")
	}
}

// TestFixturesFile: --seed-only writes the fixtures, a later run reads them instead of
// seeding (the multi-process bench's path) and connects through --ws-target.
func TestFixturesFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := startDev(t, true)
	path := t.TempDir() + "/fixtures.json"
	seedOnly := Config{Target: base, Users: 10, Rooms: 1, Duration: time.Second, Rate: 10, MessageBytes: 64, Seed: true, SeedOnly: true, Fixtures: path}
	if _, err := Run(ctx, seedOnly); err != nil {
		t.Fatal(err)
	}
	s, err := ReadFixtures(path)
	if err != nil || len(s.Users) != 10 || len(s.Rooms) != 1 {
		t.Fatalf("fixtures: %d users, %d rooms, %v", len(s.Users), len(s.Rooms), err)
	}
	// No seeding endpoint behind this target: the run must use the file.
	rep, err := Run(ctx, Config{Target: "http://127.0.0.1:1", WSTarget: base, Users: 10, Rooms: 1, Duration: time.Second, Rate: 10, MessageBytes: 64, Fixtures: path})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Acked == 0 || rep.Delivered != rep.Acked*9 {
		t.Fatalf("acked %d, delivered %d", rep.Acked, rep.Delivered)
	}
	if err := (Config{Target: base, Users: 2, Rooms: 1, Duration: time.Second, Rate: 1, MessageBytes: 64, SeedOnly: true}).Validate(); err == nil {
		t.Fatal("--seed-only without --seed and --fixtures accepted")
	}
}
