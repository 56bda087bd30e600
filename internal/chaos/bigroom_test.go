package chaos

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/runtime/chat"
	"github.com/parleychat/parley/runtime/store/postgres"
	"github.com/parleychat/parley/runtime/users"
	"github.com/parleychat/parley/runtime/webpush/webpushpg"
	"github.com/parleychat/parley/runtime/webpush/webpushtest"
)

// The big room (issue 15): bigRoomMembers members, of whom only the four burst users are
// ever connected; pushSubscribers of the others have a Web Push subscription at a push
// service that answers each request after pushDelay.
const (
	bigRoomMembers  = 2000
	pushSubscribers = 1900
	pushDelay       = time.Second
	// bigRoomBurst is how long the burst users send into the big room, at bigRoomRate
	// messages per second each (under the per-user limit of 10/s).
	bigRoomBurst = 10 * time.Second
	bigRoomRate  = 2
)

// slowPushService stands for push services that are slow: it takes every request and
// answers 201 Created only after delay (or when the test ends). It checks nothing:
// what notification sends is proven elsewhere (internal/e2e decrypts pushes), here
// only its pace matters.
type slowPushService struct {
	srv      *httptest.Server
	delay    time.Duration
	stop     chan struct{}
	received atomic.Int64
	answered atomic.Int64
}

func startSlowPushService(t *testing.T, delay time.Duration) *slowPushService {
	t.Helper()
	ps := &slowPushService{delay: delay, stop: make(chan struct{})}
	ps.srv = httptest.NewServer(http.HandlerFunc(ps.serve))
	t.Cleanup(ps.srv.Close)
	// Cleanups run last first: the held requests are let go, then the server closes.
	t.Cleanup(func() { close(ps.stop) })
	return ps
}

func (ps *slowPushService) serve(w http.ResponseWriter, r *http.Request) {
	ps.received.Add(1)
	_, _ = io.Copy(io.Discard, r.Body)
	select {
	case <-time.After(ps.delay):
	case <-ps.stop:
	case <-r.Context().Done():
		return
	}
	w.WriteHeader(http.StatusCreated)
	ps.answered.Add(1)
}

// createBigRoom makes the big room as a fixture, straight through the product's stores
// (the way `parley dev --dev-seeding` does, never through a weakened registration):
// bigRoomMembers-len(online) accounts sharing one password hash, the room with online
// (its owner first) and them as members, and pushSubscribers subscriptions at the slow
// push service (one browser key pair for all: nobody decrypts them).
func createBigRoom(ctx context.Context, t *testing.T, d *deployment, online []string) string {
	t.Helper()
	started := time.Now()
	pool, err := pgxpool.New(ctx, d.pgURL)
	if err != nil {
		t.Fatalf("big room: %v", err)
	}
	defer pool.Close()
	hash, err := users.HashPassword(password, users.DefaultPasswordParams)
	if err != nil {
		t.Fatal(err)
	}
	browser, err := webpushtest.NewBrowser()
	if err != nil {
		t.Fatal(err)
	}
	accounts, subs := postgres.NewUsers(pool), webpushpg.New(pool)
	now := time.Now().UTC().Truncate(time.Microsecond)
	prefix := "big" + randomHex(3)
	ids := make([]string, bigRoomMembers-len(online))
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < len(ids); i += 4 {
				name := fmt.Sprintf("%s_%d", prefix, i)
				a := users.Account{User: users.User{ID: users.NewID(), Username: name, DisplayName: name, CreatedAt: now}, PasswordHash: hash}
				if err := accounts.CreateAccount(ctx, a); err != nil {
					errs <- fmt.Errorf("account %s: %w", name, err)
					return
				}
				ids[i] = a.ID
				if i < pushSubscribers {
					sub := browser.Subscription(fmt.Sprintf("%s/push/%s", d.push.srv.URL, a.ID))
					if err := subs.Add(ctx, a.ID, sub); err != nil {
						errs <- fmt.Errorf("subscription of %s: %w", name, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("big room: %v", err)
	}
	room := chat.Room{ID: users.NewID(), Kind: chat.KindGroup, Name: "big", OwnerID: online[0], CreatedAt: now}
	if err := postgres.NewChat(pool).CreateGroupRoom(ctx, room, append(append([]string(nil), online...), ids...)); err != nil {
		t.Fatalf("big room: %v", err)
	}
	t.Logf("big room %s: %d members (%d offline fixture accounts, %d with a push subscription) created in %v",
		room.ID, bigRoomMembers, len(ids), pushSubscribers, time.Since(started).Round(time.Millisecond))
	return room.ID
}

// bigRoomMetrics are notification's counters the big room scenario reads.
type bigRoomMetrics struct {
	handed, sent, dropped, queue, failed float64
}

func readBigRoomMetrics(d *deployment) bigRoomMetrics {
	m := scrape(d.notif)
	var failed float64
	for name, v := range m {
		if strings.HasPrefix(name, "parley_webpush_failed_total{") {
			failed += v
		}
	}
	return bigRoomMetrics{handed: m["parley_notification_pushes_total"], sent: m["parley_webpush_sent_total"],
		dropped: m["parley_webpush_dropped_total"], queue: m["parley_webpush_queue_depth"], failed: failed}
}

// bigRoomRun carries what the fault saw to the scenario's check.
type bigRoomRun struct {
	before   bigRoomMetrics
	received int64
}

// bigRoomFault: the four burst users send into the big room for bigRoomBurst, while
// the regular load goes on in the other rooms. Every message is a fan-out to 2 000
// members and a Web Push job for the ~2 000 offline ones, at a push service that takes a
// second per request: pushes pile up in notification's queue and drain long after.
func (br *bigRoomRun) fault(t *testing.T, w *world) time.Time {
	br.before = readBigRoomMetrics(w.d)
	br.received = w.d.push.received.Load()
	start := time.Now()
	for _, c := range w.burst {
		c.sendTo(w.bigRoom)
		c.setRate(bigRoomRate)
	}
	time.Sleep(bigRoomBurst)
	for _, c := range w.burst {
		c.setRate(0)
	}
	end := time.Now()
	// A send already being typed may still go out: into the big room, as the others.
	time.Sleep(time.Second)
	for _, c := range w.burst {
		c.sendTo(w.stallRoom)
	}
	during := readBigRoomMetrics(w.d)
	base, burst := w.ackLatency(start.Add(-warmUp), start), w.ackLatency(start, end)
	t.Logf("regular load: longest send→ack %v in the %v before the burst, %v during it (%.1f×); push queue at the end of the burst: %v jobs, %v pushes handed to the pusher so far, %d requests at the push service",
		base.Round(time.Millisecond), warmUp, burst.Round(time.Millisecond), ratio(burst, base), during.queue, during.handed-br.before.handed,
		w.d.push.received.Load()-br.received)
	return end
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// checkBigRoom: every big-room message was handed to the pusher for every offline
// member (pushes queued, none dropped for a full queue), and pushes reached the push
// service; the checker has already proven that nothing was lost in any room.
func (br *bigRoomRun) check(t *testing.T, w *world, _ stats) {
	w.l.mu.Lock()
	messages := 0
	for _, s := range w.l.order {
		if s.room == w.bigRoom && !s.acked.IsZero() {
			messages++
		}
	}
	w.l.mu.Unlock()
	if messages == 0 {
		t.Fatalf("no message was sent into the big room")
	}
	offline := bigRoomMembers - len(w.burst)
	want := float64(messages * offline)
	var now bigRoomMetrics
	deadline := time.Now().Add(quiesceLimit)
	for {
		now = readBigRoomMetrics(w.d)
		if now.handed-br.before.handed >= want && now.sent > br.before.sent {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after %v: %v pushes handed to the pusher for %d big-room messages × %d offline members (want at least %v), %v accepted by the push service",
				quiesceLimit, now.handed-br.before.handed, messages, offline, want, now.sent-br.before.sent)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if d := now.dropped - br.before.dropped; d > 0 {
		t.Errorf("%v pushes dropped for a full queue (%d messages are far below --webpush-queue-size)", d, messages)
	}
	t.Logf("big room: %d messages to %d members; %v pushes handed to the pusher, %v accepted by the push service so far (%d requests received), %v failed, %v jobs still queued",
		messages, bigRoomMembers, now.handed-br.before.handed, now.sent-br.before.sent, w.d.push.received.Load()-br.received,
		now.failed-br.before.failed, now.queue)
}
