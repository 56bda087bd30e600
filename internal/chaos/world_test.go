package chaos

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/internal/chatclient"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/runtime/webpush"
)

const signingKey = "chaos-signing-key-chaos-signing-key-0123"

// presenceTTL is every role's --presence-ttl: short, so a dead gateway's connections
// expire within seconds (heartbeats every TTL/3).
const presenceTTL = 6 * time.Second

// deployment is every process of one Parley installation, each killable on its own.
type deployment struct {
	pgURL   string // direct, for migrations and the checker
	appName string // application_name of the roles' database connections
	proxy   *pgProxy
	// redisAddr is the test's own redis-server, for the presence checks.
	redisAddr string
	// push is the slow push service every Web Push of notification goes to.
	push   *slowPushService
	redis  *testenv.Process
	broker *testenv.Process
	core   *testenv.Process
	notif  *testenv.Process
	gw1    *testenv.Process
	gw2    *testenv.Process
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func deploy(t *testing.T) *deployment {
	t.Helper()
	pgURL := testenv.Postgres(t)
	redisPath := redisServer(t)
	dir := t.TempDir()
	started := time.Now()
	parley := testenv.ParleyBinary(t)
	brokerBin := testenv.Binary(t, "github.com/parleychat/parley/internal/chaos/broker")
	t.Logf("built parley and the broker in %v", time.Since(started).Round(time.Millisecond))

	d := &deployment{pgURL: pgURL, appName: "parley_chaos_" + randomHex(4)}
	pu, err := url.Parse(pgURL)
	if err != nil {
		t.Fatal(err)
	}
	d.proxy = startProxy(t, pu.Host)

	redisPort, brokerPort := testenv.FreePort(t), testenv.FreePort(t)
	redisDir := filepath.Join(dir, "redis")
	if err := os.MkdirAll(redisDir, 0o755); err != nil {
		t.Fatal(err)
	}
	redisAddr := fmt.Sprintf("127.0.0.1:%d", redisPort)
	d.redisAddr = redisAddr
	vapidPublic, vapidPrivate, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	d.push = startSlowPushService(t, pushDelay)
	d.redis = &testenv.Process{Name: "redis", Path: redisPath, Ready: testenv.RedisReady(redisAddr),
		Args: []string{"--port", strconv.Itoa(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", redisDir}}
	brokerAddr := fmt.Sprintf("127.0.0.1:%d", brokerPort)
	d.broker = &testenv.Process{Name: "broker", Path: brokerBin, Ready: testenv.TCPReady(brokerAddr),
		Args: []string{"--port", strconv.Itoa(brokerPort), "--data-dir", filepath.Join(dir, "kafka")}}

	env := []string{
		"PARLEY_POSTGRES_URL=" + throughProxy(t, pgURL, d.proxy.addr(), d.appName),
		"PARLEY_REDIS_URL=redis://" + redisAddr + "/0",
		"PARLEY_KAFKA_BROKERS=" + brokerAddr,
		"PARLEY_KAFKA_PARTITIONS=4",
		"PARLEY_BUS=kafka",
		"PARLEY_JWT_SIGNING_KEY=" + signingKey,
		"PARLEY_LOG_LEVEL=info",
		"PARLEY_PRESENCE_TTL=" + presenceTTL.String(),
		"PARLEY_REGISTRATIONS_PER_ADDRESS=100000",
		fmt.Sprintf("PARLEY_MAX_ROOM_MEMBERS=%d", bigRoomMembers),
		// Web Push for the offline members of the big room, to a push service of the test.
		"PARLEY_VAPID_PUBLIC_KEY=" + vapidPublic,
		"PARLEY_VAPID_PRIVATE_KEY=" + vapidPrivate,
		"PARLEY_VAPID_SUBJECT=mailto:chaos@parley.test",
		"PARLEY_WEBPUSH_ALLOW_INSECURE_ENDPOINTS=true",
	}
	role := func(name string, args ...string) *testenv.Process {
		addr := testenv.FreeAddr(t)
		return &testenv.Process{Name: name, Path: parley, Args: args, Addr: addr,
			Env: append(append([]string(nil), env...), "PARLEY_LISTEN="+addr)}
	}
	d.core = role("core", "core")
	d.notif = role("notification", "notification", "--sweep-interval=500ms")
	d.gw1 = role("gw1", "gateway", "--gateway-id=gw1")
	d.gw2 = role("gw2", "gateway", "--gateway-id=gw2")

	// Each process is stopped when the test ends, in the reverse order of its start.
	d.redis.Start(t)
	d.broker.Start(t)
	migrate := &testenv.Process{Name: "migrate", Path: parley, Args: []string{"migrate"}, Env: env}
	mctx, mcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer mcancel()
	out, err := migrate.Output(mctx)
	if err != nil {
		t.Fatalf("parley migrate: %v\n%s", err, out)
	}
	for _, p := range []*testenv.Process{d.core, d.notif, d.gw1, d.gw2} {
		p.Start(t)
	}
	t.Logf("deployment up in %v", time.Since(started).Round(time.Millisecond))
	return d
}

func (d *deployment) byWS(ws string) *testenv.Process {
	for _, p := range []*testenv.Process{d.gw1, d.gw2} {
		if "ws://"+p.Addr == ws {
			return p
		}
	}
	return nil
}

// scrape reads a process's /metrics: each sample by its name and labels as written
// (`name{label="value"}`), empty when it does not answer.
func scrape(p *testenv.Process) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get("http://" + p.Addr + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// disconnects sums a gateway's server-side disconnects by reason.
func disconnects(p *testenv.Process) map[string]float64 {
	out := map[string]float64{}
	const prefix = `parley_gateway_disconnects_total{reason="`
	for name, v := range scrape(p) {
		if reason, ok := strings.CutPrefix(name, prefix); ok {
			out[strings.TrimSuffix(reason, `"}`)] = v
		}
	}
	return out
}

// world is the deployment with its users, rooms and running clients.
type world struct {
	d         *deployment
	l         *ledger
	clients   []*client
	regular   []*client // the steady load
	burst     []*client // send into the stall room during the stall scenario only
	stalled   *client
	slow      *client
	members   map[string][]*client // room → its members' clients
	rooms     []string
	stallRoom string
	bigRoom   string // bigRoomMembers members, all offline but the burst users
	cancel    context.CancelFunc
}

const password = "correct horse battery staple"

func newWorld(t *testing.T, d *deployment) *world {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	api := chatclient.New("http://" + d.core.Addr)
	names := []string{}
	for i := range 12 {
		names = append(names, fmt.Sprintf("u%d", i))
	}
	names = append(names, "b0", "b1", "b2", "b3", "stalled", "slow")
	users := make(map[string]chatclient.User, len(names))
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, len(names))
	sem := make(chan struct{}, 3) // registration hashes passwords: a few at a time
	for _, n := range names {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			u, err := api.Register(ctx, n+"_"+randomHex(3), password)
			if err != nil {
				errs <- fmt.Errorf("register %s: %w", n, err)
				return
			}
			mu.Lock()
			users[n] = u
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	u := func(n string) chatclient.User { return users[n] }
	ids := func(ns ...string) []string {
		var out []string
		for _, n := range ns {
			out = append(out, users[n].ID)
		}
		return out
	}
	roomsOf := map[string][]string{}
	group := func(name, owner string, others ...string) string {
		id, err := api.CreateGroup(ctx, u(owner), name, ids(others...))
		if err != nil {
			t.Fatalf("create group %s: %v", name, err)
		}
		for _, n := range append([]string{owner}, others...) {
			roomsOf[n] = append(roomsOf[n], id)
		}
		return id
	}
	direct := func(a, b string) string {
		id, err := api.OpenDirect(ctx, u(a), u(b).ID)
		if err != nil {
			t.Fatalf("open direct %s-%s: %v", a, b, err)
		}
		roomsOf[a], roomsOf[b] = append(roomsOf[a], id), append(roomsOf[b], id)
		return id
	}
	w := &world{d: d, l: newLedger(), members: map[string][]*client{}}
	w.stallRoom = group("stall", "b0", "b1", "b2", "b3", "stalled", "slow")
	// The big room: the burst users online, everyone else an offline fixture account.
	w.bigRoom = createBigRoom(ctx, t, d, ids("b0", "b1", "b2", "b3"))
	for _, n := range []string{"b0", "b1", "b2", "b3"} {
		roomsOf[n] = append(roomsOf[n], w.bigRoom)
	}
	w.rooms = []string{w.stallRoom, w.bigRoom,
		group("g0", "u0", "u1", "u2", "u3", "u4", "u5"),
		group("g1", "u4", "u5", "u6", "u7", "u8", "u9"),
		group("g2", "u8", "u9", "u10", "u11", "u0", "u1"),
		direct("u2", "u7"), direct("u3", "u10"), direct("u5", "u11"), direct("u6", "u1"),
	}
	gw1, gw2 := "ws://"+d.gw1.Addr, "ws://"+d.gw2.Addr
	for i, n := range names {
		gws := []string{gw1, gw2}
		if i%2 == 1 {
			gws = []string{gw2, gw1}
		}
		if n == "stalled" || n == "slow" {
			gws = []string{gw1, gw2}
		}
		c := newClient(w.l, u(n), gws, roomsOf[n])
		switch {
		case strings.HasPrefix(n, "u"):
			c.setRate(1.5)
			w.regular = append(w.regular, c)
		case strings.HasPrefix(n, "b"):
			c.sendTo(w.stallRoom) // the big room only in its own scenario
			w.burst = append(w.burst, c)
		case n == "stalled":
			c.smallRcv.Store(true)
			w.stalled = c
		case n == "slow":
			c.smallRcv.Store(true)
			w.slow = c
		}
		w.clients = append(w.clients, c)
		for _, r := range roomsOf[n] {
			w.members[r] = append(w.members[r], c)
		}
	}
	runCtx, runCancel := context.WithCancel(context.Background())
	w.cancel = runCancel
	t.Cleanup(func() {
		runCancel()
		for _, c := range w.clients {
			c.reconnect()
		}
	})
	for _, c := range w.clients {
		c.paused.Store(true)
		c.run(runCtx)
	}
	return w
}

func (w *world) setPaused(on bool) {
	for _, c := range w.clients {
		c.paused.Store(on)
	}
}

// lagging says what keeps the system from being caught up on everything sent up to cut:
// a send still unanswered, or a member without an acknowledged message. Empty: caught up.
func (w *world) lagging(cut time.Time) string {
	w.l.mu.Lock()
	var acked []sent
	unanswered := 0
	var example string
	for _, s := range w.l.order {
		if s.issued.After(cut) {
			continue
		}
		if s.acked.IsZero() {
			if unanswered == 0 {
				example = fmt.Sprintf("%s (issued %v ago, sent %d times)", s.clientID, time.Since(s.issued).Round(time.Millisecond), s.transmissions)
			}
			unanswered++
			continue
		}
		acked = append(acked, *s)
	}
	w.l.mu.Unlock()
	if unanswered > 0 {
		return fmt.Sprintf("%d sends unanswered, e.g. %s", unanswered, example)
	}
	missing := 0
	for _, s := range acked {
		for _, m := range w.members[s.room] {
			if m.stalled.Load() {
				continue
			}
			if !m.has(s.room, s.seq, s.msgID) {
				if missing == 0 {
					example = fmt.Sprintf("%s lacks %s (seq %d of room %s)", m.user.Username, s.clientID, s.seq, s.room)
				}
				missing++
			}
		}
	}
	if missing > 0 {
		return fmt.Sprintf("%d deliveries missing, e.g. %s", missing, example)
	}
	return ""
}

// waitCaughtUp polls until everything sent up to cut is acknowledged and delivered.
func (w *world) waitCaughtUp(cut time.Time, limit time.Duration) (time.Time, string) {
	deadline := time.Now().Add(limit)
	for {
		why := w.lagging(cut)
		if why == "" {
			return time.Now(), ""
		}
		if time.Now().After(deadline) {
			return time.Time{}, why
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// check proves, against the database, what the clients were told: every acknowledged
// message stored exactly once with the acknowledged id and seq, sequences gap-free per
// room, nothing stored that nobody sent, and every member holding every message.
func (w *world) check(t *testing.T) {
	t.Helper()
	for _, p := range w.l.takeProblems() {
		t.Errorf("client saw: %s", p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, w.d.pgURL)
	if err != nil {
		t.Fatalf("checker: connect: %v", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx,
		`SELECT id, room_id, seq, sender_id, client_id, body FROM messages WHERE room_id = ANY($1) ORDER BY room_id, seq`, w.rooms)
	if err != nil {
		t.Fatalf("checker: query: %v", err)
	}
	type row struct {
		id, room, sender, clientID, body string
		seq                              int64
	}
	var stored []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.room, &r.seq, &r.sender, &r.clientID, &r.body); err != nil {
			t.Fatalf("checker: scan: %v", err)
		}
		stored = append(stored, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("checker: rows: %v", err)
	}
	errs := 0
	fail := func(format string, args ...any) {
		errs++
		if errs <= 15 {
			t.Errorf(format, args...)
		}
	}
	byKey := map[string][]row{}
	byBody := map[string]int{}
	last := map[string]int64{}
	for _, r := range stored {
		byKey[r.sender+"/"+r.clientID] = append(byKey[r.sender+"/"+r.clientID], r)
		byBody[r.room+"/"+r.body]++
		if r.seq != last[r.room]+1 {
			fail("room %s: seq %d follows %d (sequences must be gap-free from 1)", r.room, r.seq, last[r.room])
		}
		last[r.room] = r.seq
	}
	w.l.mu.Lock()
	sentList := make([]sent, 0, len(w.l.order))
	for _, s := range w.l.order {
		sentList = append(sentList, *s)
	}
	w.l.mu.Unlock()
	ours := map[string]bool{}
	for _, s := range sentList {
		key := s.user + "/" + s.clientID
		ours[key] = true
		got := byKey[key]
		switch {
		case s.acked.IsZero():
			fail("%s was never acknowledged (sent %d times)", s.clientID, s.transmissions)
		case len(got) != 1:
			fail("%s acknowledged as %s/%d but stored %d times", s.clientID, s.msgID, s.seq, len(got))
		case got[0].id != s.msgID || got[0].seq != s.seq || got[0].room != s.room:
			fail("%s acknowledged as %s seq %d in %s, stored as %s seq %d in %s", s.clientID, s.msgID, s.seq, s.room, got[0].id, got[0].seq, got[0].room)
		case byBody[s.room+"/"+s.body] != 1:
			fail("%s: its body is stored %d times in room %s", s.clientID, byBody[s.room+"/"+s.body], s.room)
		}
	}
	for key, rs := range byKey {
		if !ours[key] {
			fail("stored message nobody sent: %s seq %d in %s", key, rs[0].seq, rs[0].room)
		}
	}
	for _, r := range stored {
		for _, m := range w.members[r.room] {
			if !m.has(r.room, r.seq, r.id) {
				fail("%s never got seq %d (%s) of room %s, live or by resume", m.user.Username, r.seq, r.id, r.room)
			}
		}
	}
	if errs > 15 {
		t.Errorf("... and %d more checker failures", errs-15)
	}
	t.Logf("checker: %d messages stored in %d rooms, %d sent, all checked", len(stored), len(last), len(sentList))
}

// stats sums what the clients did, for the scenario's summary line.
type stats struct {
	sent, retransmissions, connects, gapResumes, resyncs int
	duplicates, rateLimited                              int64
	closes                                               map[string]int // why connections ended, by reason
}

func (w *world) stats() stats {
	var s stats
	w.l.mu.Lock()
	for _, m := range w.l.order {
		s.sent++
		s.retransmissions += max(m.transmissions-1, 0)
	}
	w.l.mu.Unlock()
	for _, c := range w.clients {
		c.mu.Lock()
		s.connects += c.connects
		s.gapResumes += c.gapResumes
		s.resyncs += c.resyncs
		for _, why := range c.closes {
			if s.closes == nil {
				s.closes = map[string]int{}
			}
			s.closes[closeReason(why)]++
		}
		c.mu.Unlock()
	}
	s.duplicates = w.l.duplicates.Load()
	s.rateLimited = w.l.rateLimited.Load()
	return s
}

// closeReason drops the addresses from a connection error, so equal causes count together.
func closeReason(err string) string {
	if strings.HasPrefix(err, "read tcp") || strings.HasPrefix(err, "write tcp") {
		if i := strings.LastIndex(err, ": "); i >= 0 {
			return err[:4] + ": " + err[i+2:]
		}
	}
	return err
}

func (s stats) minus(o stats) stats {
	closes := map[string]int{}
	for why, n := range s.closes {
		if d := n - o.closes[why]; d > 0 {
			closes[why] = d
		}
	}
	return stats{sent: s.sent - o.sent, retransmissions: s.retransmissions - o.retransmissions,
		connects: s.connects - o.connects, gapResumes: s.gapResumes - o.gapResumes, resyncs: s.resyncs - o.resyncs, duplicates: s.duplicates - o.duplicates,
		rateLimited: s.rateLimited - o.rateLimited, closes: closes}
}

// ackLatency is the longest send→ack time of the regular load's messages issued in [from, to].
func (w *world) ackLatency(from, to time.Time) time.Duration {
	regular := map[string]bool{}
	for _, c := range w.regular {
		regular[c.user.ID] = true
	}
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	var worst time.Duration
	for _, s := range w.l.order {
		if !regular[s.user] || s.issued.Before(from) || s.issued.After(to) || s.acked.IsZero() {
			continue
		}
		worst = max(worst, s.acked.Sub(s.issued))
	}
	return worst
}

// disturbedAfter is how late a message may be whole (acknowledged and at every member)
// and still count as undisturbed by a fault.
const disturbedAfter = 2 * time.Second

// recovery says how long after the fault the last message it disturbed was whole again:
// for each message issued since the fault, the time its ack and its copy at every member
// had arrived; the latest of those among messages that took longer than disturbedAfter,
// minus the fault's time (0 when no message was disturbed). It also says how many were
// disturbed and the longest any message took to be whole.
func (w *world) recovery(fault time.Time) (recovered time.Duration, disturbed int, worst time.Duration) {
	w.l.mu.Lock()
	var list []sent
	for _, s := range w.l.order {
		if !s.issued.Before(fault) && !s.acked.IsZero() {
			list = append(list, *s)
		}
	}
	w.l.mu.Unlock()
	var last time.Time
	for _, s := range list {
		whole := s.acked
		for _, m := range w.members[s.room] {
			if at := m.receivedAt(s.room, s.seq); at.After(whole) {
				whole = at
			}
		}
		worst = max(worst, whole.Sub(s.issued))
		if whole.Sub(s.issued) > disturbedAfter {
			disturbed++
			if whole.After(last) {
				last = whole
			}
		}
	}
	if disturbed == 0 {
		return 0, 0, worst
	}
	return last.Sub(fault), disturbed, worst
}

// describeGaps says which live deliveries went missing on settled connections since
// the fault: who missed which message, when it was sent and when the gap was found.
func (w *world) describeGaps(fault time.Time) string {
	var gaps []gap
	for _, c := range w.clients {
		c.mu.Lock()
		for _, g := range c.gaps {
			if !g.found.Before(fault) {
				gaps = append(gaps, g)
			}
		}
		c.mu.Unlock()
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i].found.Before(gaps[j].found) })
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	var b strings.Builder
	for i, g := range gaps {
		if i == 6 {
			fmt.Fprintf(&b, "; ...")
			break
		}
		what := "an unknown message"
		for _, s := range w.l.order {
			if s.room == g.room && s.seq == g.seq && !s.acked.IsZero() {
				what = fmt.Sprintf("%s (sent %+.2fs after the fault, acked %+.2fs)", s.clientID, s.issued.Sub(fault).Seconds(), s.acked.Sub(fault).Seconds())
				break
			}
		}
		fmt.Fprintf(&b, "; %s missed seq %d of room %s: %s, gap found %+.2fs", g.user, g.seq, g.room, what, g.found.Sub(fault).Seconds())
	}
	return b.String()
}

func sortedKeys(m map[string]float64) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
