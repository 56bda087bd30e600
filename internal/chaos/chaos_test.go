package chaos

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/testenv"
)

// Bounds of the waits: generous, because the machine may be loaded; never asserted as
// timing, only as "it happened at all".
const (
	recoveryLimit = 60 * time.Second
	quiesceLimit  = 60 * time.Second
	stallLimit    = 75 * time.Second
	warmUp        = 2 * time.Second
)

// scenario injects one fault into the running deployment, heals it (restarts what it
// killed, brings back what it cut) and returns when it healed.
type scenario struct {
	name  string
	fault func(t *testing.T, w *world) time.Time
	// check, when set, asserts what the scenario in particular must show (st: what the
	// clients did during it), once everything sent is through and the checker ran.
	check func(t *testing.T, w *world, st stats)
}

type result struct {
	name              string
	outage, recovered time.Duration // fault → healed; fault → the last message it disturbed was whole
	disturbed         int
	worst             time.Duration // the longest a message issued since the fault took to be whole
	note              string
	failed            bool
}

func restart(p func(*deployment) *testenv.Process) func(t *testing.T, w *world) time.Time {
	return func(t *testing.T, w *world) time.Time {
		p(w.d).Restart(t)
		return time.Now()
	}
}

func scenarios() []scenario {
	big := &bigRoomRun{}
	return []scenario{
		{name: "steady", fault: func(t *testing.T, w *world) time.Time { time.Sleep(2 * time.Second); return time.Now() }},
		{name: "kill-core", fault: restart(func(d *deployment) *testenv.Process { return d.core })},
		{name: "kill-gateway", fault: killGatewayFault},
		{name: "kill-notification", fault: restart(func(d *deployment) *testenv.Process { return d.notif })},
		{name: "kill-broker", fault: restart(func(d *deployment) *testenv.Process { return d.broker })},
		{name: "db-connections-killed", fault: func(t *testing.T, w *world) time.Time {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			n := terminateBackends(ctx, t, w.d.appName)
			t.Logf("terminated %d backend connections of the roles", n)
			if n == 0 {
				t.Errorf("no backend connection of the roles found to terminate (application_name %s)", w.d.appName)
			}
			return time.Now()
		}},
		{name: "db-outage-10s", fault: func(t *testing.T, w *world) time.Time {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			w.d.proxy.cut()
			n := terminateBackends(ctx, t, w.d.appName)
			t.Logf("database cut off (%d backends terminated, new connections refused) for 10 s", n)
			time.Sleep(10 * time.Second)
			w.d.proxy.restore()
			return time.Now()
		}},
		{name: "stalled-and-slow-clients", fault: stallFault},
		{name: "redis-restart-empty", fault: restart(func(d *deployment) *testenv.Process { return d.redis }), check: func(t *testing.T, _ *world, st stats) {
			// Pub/sub is at most once: whatever Redis held for a gateway when it died is
			// gone, so the gateways must tell their clients to resume (docs/design.md).
			if st.resyncs == 0 {
				t.Errorf("no client was told to resync after the gateways' routed subscriptions came back")
			}
		}},
		{name: "big-room-offline", fault: big.fault, check: big.check},
	}
}

// stallFault makes one member of a busy room stop reading and another read slowly, while
// four members send 2 KB messages into it: the stalled one must be dropped as
// slow_consumer, the slow one and everybody else must carry on.
func stallFault(t *testing.T, w *world) time.Time {
	var gw *testenv.Process
	for wait := time.Now().Add(30 * time.Second); gw == nil; time.Sleep(100 * time.Millisecond) {
		gw = w.d.byWS(w.stalled.currentGateway())
		if gw == nil && time.Now().After(wait) {
			t.Fatalf("the client to stall has not been connected for 30 s: %s", w.stalled.describe(w.stallRoom))
		}
	}
	before := disconnects(gw)
	connectsBefore := map[*client]int{}
	for _, c := range w.clients {
		c.mu.Lock()
		connectsBefore[c] = c.connects
		c.mu.Unlock()
	}
	start := time.Now()
	w.stalled.setStalled(true)
	w.slow.readDelay.Store(int64(10 * time.Millisecond))
	for _, c := range w.burst {
		c.bodyPad.Store(2000)
		c.setRate(8)
	}
	var dropped time.Time
	deadline := start.Add(stallLimit)
	for time.Now().Before(deadline) {
		if disconnects(gw)["slow_consumer"] > before["slow_consumer"] {
			dropped = time.Now()
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, c := range w.burst {
		c.setRate(0)
		c.bodyPad.Store(0)
	}
	after := disconnects(gw)
	delta := []string{}
	for _, k := range sortedKeys(after) {
		if d := after[k] - before[k]; d > 0 {
			delta = append(delta, fmt.Sprintf("%s=%v", k, d))
		}
	}
	end := time.Now()
	if dropped.IsZero() {
		t.Errorf("the stalled client was not dropped as slow_consumer within %v (server-side disconnects meanwhile on %s: %v)", stallLimit, gw.Name, delta)
	} else {
		t.Logf("stalled client dropped as slow_consumer %v after it stopped reading (disconnects on %s: %v)", dropped.Sub(start).Round(time.Millisecond), gw.Name, delta)
	}
	t.Logf("regular load during the stall: longest send→ack %v", w.ackLatency(start, end).Round(time.Millisecond))
	// It reads again: it finds the connection closed, reconnects (with ordinary buffers)
	// and resumes like any client.
	w.stalled.smallRcv.Store(false)
	w.stalled.setStalled(false)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("stalled %s", w.stalled.describe(w.stallRoom))
			t.Logf("slow %s", w.slow.describe(w.stallRoom))
		}
	})
	w.slow.readDelay.Store(0)
	for _, c := range w.clients {
		if c == w.stalled {
			continue
		}
		c.mu.Lock()
		n, closes := c.connects-connectsBefore[c], c.closes
		c.mu.Unlock()
		if n != 0 {
			last := ""
			if len(closes) > 0 {
				last = closes[len(closes)-1]
			}
			t.Errorf("%s reconnected %d times while another client stalled (last close: %s)", c.user.Username, n, last)
		}
	}
	if dropped.IsZero() {
		return end
	}
	return dropped
}

// TestFaults runs one deployment through every fault in turn under a steady load of
// clients, and after each proves nothing acknowledged was lost, duplicated or left with a
// gap, and that every member has every message.
func TestFaults(t *testing.T) {
	d := deploy(t)
	w := newWorld(t, d)
	var results []result
	for _, s := range scenarios() {
		ok := t.Run(s.name, func(t *testing.T) {
			r := result{name: s.name}
			defer func() {
				r.failed = t.Failed()
				results = append(results, r)
			}()
			before := w.stats()
			w.setPaused(false)
			time.Sleep(warmUp)
			start := time.Now()
			healed := s.fault(t, w)
			r.outage = healed.Sub(start)
			if _, why := w.waitCaughtUp(healed, recoveryLimit); why != "" {
				t.Errorf("%v after healing, what was sent before it is still not through: %s", recoveryLimit, why)
				r.note = "not recovered: " + why
			}
			time.Sleep(3 * time.Second) // load after the healing too: what it disturbs counts
			w.setPaused(true)
			if _, why := w.waitCaughtUp(time.Now(), quiesceLimit); why != "" {
				t.Errorf("load paused, still not caught up after %v: %s", quiesceLimit, why)
			}
			w.check(t)
			r.recovered, r.disturbed, r.worst = w.recovery(start)
			t.Logf("recovered %v after the fault (%d messages took over %v to be acknowledged and at every member; the slowest %v)",
				r.recovered.Round(time.Millisecond), r.disturbed, disturbedAfter, r.worst.Round(time.Millisecond))
			st := w.stats().minus(before)
			if st.gapResumes > 0 {
				// The client filled the gaps by resume, so nothing is missing in the end; but a
				// connection that stayed up lost live deliveries without any sign (issue 11
				// fault 1, issue 15 item 3: a fan-out that failed was committed and dropped).
				t.Errorf("%d gaps on connections up for over %v: live deliveries were lost without the connection dropping (the client found each gap only when a later message arrived, and fetched it by resume)%s",
					st.gapResumes, settleTime, w.describeGaps(start))
			}
			if s.check != nil {
				s.check(t, w, st)
			}
			t.Logf("%s: %d sent, %d retransmissions, %d answered rate_limited, %d connects, %d resync frames answered, %d gap resumes on settled connections, %d message frames already held; connections ended: %v",
				s.name, st.sent, st.retransmissions, st.rateLimited, st.connects, st.resyncs, st.gapResumes, st.duplicates, st.closes)
		})
		if !ok {
			// Leave the next scenario a working system: every client reconnects and resumes.
			for _, c := range w.clients {
				c.reconnect()
			}
			_, _ = w.waitCaughtUp(time.Now(), quiesceLimit)
			w.l.takeProblems()
		}
	}
	var b strings.Builder
	for _, r := range results {
		status := "ok"
		if r.failed {
			status = "FAILED"
		}
		fmt.Fprintf(&b, "\n  %-26s %-6s outage %-8v recovered %-8v disturbed %-4d slowest %-8v %s", r.name, status,
			r.outage.Round(10*time.Millisecond), r.recovered.Round(10*time.Millisecond), r.disturbed, r.worst.Round(10*time.Millisecond), r.note)
	}
	t.Logf("fault suite summary (recovered: from the fault until the last message it disturbed, one that took over %v, was acknowledged and at every member; slowest: the longest a message sent since the fault took):%s",
		disturbedAfter, b.String())
}
