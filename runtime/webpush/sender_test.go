package webpush_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/runtime/webpush"
	"github.com/parleychat/parley/runtime/webpush/webpushtest"
)

const subject = "mailto:ops@parley.test"

func testConfig(t testing.TB) webpush.Config {
	t.Helper()
	pub, priv, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	return webpush.Config{
		VAPIDPublicKey:  pub,
		VAPIDPrivateKey: priv,
		Subject:         subject,
		TTL:             90 * time.Minute,
		Urgency:         webpush.UrgencyHigh,
	}
}

type fixture struct {
	cfg     webpush.Config
	store   *webpush.MemoryStore
	push    *webpushtest.PushService
	sender  *webpush.Sender
	metrics *webpush.Metrics
	reg     *prometheus.Registry
}

// newFixture wires a sender to a local push service over TLS, as production would be.
func newFixture(t testing.TB, adjust func(*webpush.Config)) *fixture {
	t.Helper()
	f := &fixture{cfg: testConfig(t), store: webpush.NewMemoryStore(), reg: prometheus.NewRegistry()}
	if adjust != nil {
		adjust(&f.cfg)
	}
	f.push = webpushtest.StartPushService(t, f.cfg.VAPIDPublicKey, f.cfg.Subject, true)
	f.metrics = webpush.NewMetrics(f.reg)
	var err error
	f.sender, err = webpush.NewSender(f.cfg, f.store, webpush.WithHTTPClient(f.push.Client()), webpush.WithMetrics(f.metrics))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) subscribe(t testing.TB, user string) webpush.Subscription {
	t.Helper()
	sub, _ := f.push.Subscribe(t)
	if err := f.store.Add(context.Background(), user, sub); err != nil {
		t.Fatal(err)
	}
	return sub
}

func (f *fixture) endpoints(t *testing.T, user string) map[string]bool {
	t.Helper()
	subs, err := f.store.ListByUser(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	for _, s := range subs {
		set[s.Endpoint] = true
	}
	return set
}

func samplePayload() webpush.Payload {
	return webpush.PayloadFromMessage(webpush.Message{
		ID: "m-1", Room: "r-42", Sender: "u-bob", SenderName: "Bob", Body: "Lunch at <noon> & then \"coffee\"? 🍜", Seq: 17,
	}, webpush.PreviewOptions{})
}

func decodePayload(t *testing.T, plaintext []byte) webpush.Payload {
	t.Helper()
	var got webpush.Payload
	dec := json.NewDecoder(strings.NewReader(string(plaintext)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("payload %q is not the Payload JSON: %v", plaintext, err)
	}
	return got
}

func TestNotifyDeliversEncryptedPayloadWithVAPID(t *testing.T) {
	f := newFixture(t, nil)
	a := f.subscribe(t, "alice")
	b := f.subscribe(t, "alice")
	f.subscribe(t, "carol") // must not be notified

	want := samplePayload()
	sent, err := f.sender.Notify(context.Background(), "alice", want)
	if err != nil {
		t.Fatalf("notify: %v", err)
	}
	if sent != 2 {
		t.Fatalf("sent = %d, want 2", sent)
	}
	got := f.push.Received()
	if len(got) != 2 {
		t.Fatalf("push service received %d requests, want 2", len(got))
	}
	seen := map[string]bool{}
	for _, r := range got {
		if r.Err != nil {
			t.Fatalf("push to %s refused by the push service: %v", r.Endpoint, r.Err)
		}
		seen[r.Endpoint] = true
		if p := decodePayload(t, r.Plaintext); p != want {
			t.Errorf("decrypted payload = %+v\nwant                %+v", p, want)
		}
		if r.Claims.Sub != subject || r.Claims.Aud != f.push.URL() {
			t.Errorf("claims = %+v, want sub %s aud %s", r.Claims, subject, f.push.URL())
		}
		if r.TTL != "5400" || r.Urgency != "high" {
			t.Errorf("TTL %q Urgency %q, want 5400 and high", r.TTL, r.Urgency)
		}
		if r.BodyLen > webpushtest.MaxBody {
			t.Errorf("body of %d bytes", r.BodyLen)
		}
	}
	if !seen[a.Endpoint] || !seen[b.Endpoint] {
		t.Fatalf("endpoints reached %v, want %s and %s", seen, a.Endpoint, b.Endpoint)
	}
	if v := metricValue(t, f.reg, "parley_webpush_sent_total", nil); v != 2 {
		t.Errorf("parley_webpush_sent_total = %v, want 2", v)
	}
}

func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		if fam.GetName() != name {
			continue
		}
	next:
		for _, m := range fam.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s%v not found", name, labels)
	return 0
}

func TestNotifyOverPlainHTTPNeedsAllowInsecure(t *testing.T) {
	cfg := testConfig(t)
	push := webpushtest.StartPushService(t, cfg.VAPIDPublicKey, cfg.Subject, false)
	sub, _ := push.Subscribe(t)
	store := webpush.NewMemoryStore()
	if err := store.Add(context.Background(), "alice", sub); err != nil {
		t.Fatal(err)
	}

	strict, err := webpush.NewSender(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	sent, err := strict.Notify(context.Background(), "alice", samplePayload())
	if sent != 0 || !errors.Is(err, webpush.ErrInvalidSubscription) {
		t.Fatalf("http endpoint without AllowInsecureEndpoints: sent %d, err %v; want 0 and ErrInvalidSubscription", sent, err)
	}
	if n := len(push.Received()); n != 0 {
		t.Fatalf("push service got %d requests, want none", n)
	}

	cfg.AllowInsecureEndpoints = true
	lax, err := webpush.NewSender(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	if sent, err := lax.Notify(context.Background(), "alice", samplePayload()); sent != 1 || err != nil {
		t.Fatalf("with AllowInsecureEndpoints: sent %d, err %v", sent, err)
	}
	got := push.Received()
	if len(got) != 1 || got[0].Err != nil {
		t.Fatalf("received %+v", got)
	}
	if p := decodePayload(t, got[0].Plaintext); p != samplePayload() {
		t.Fatalf("payload %+v", p)
	}
}

func TestNotifyWithHTTPSSubject(t *testing.T) {
	f := newFixture(t, func(c *webpush.Config) { c.Subject = "https://parley.test/contact" })
	f.subscribe(t, "alice")
	if sent, err := f.sender.Notify(context.Background(), "alice", samplePayload()); sent != 1 || err != nil {
		t.Fatalf("sent %d, err %v", sent, err)
	}
	if got := f.push.Received(); len(got) != 1 || got[0].Err != nil || got[0].Claims.Sub != "https://parley.test/contact" {
		t.Fatalf("received %+v", got)
	}
}

func TestNotifyExpiredSubscriptionsAreRemoved(t *testing.T) {
	for _, status := range []int{http.StatusGone, http.StatusNotFound} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			f := newFixture(t, nil)
			expired := f.subscribe(t, "alice")
			alive := f.subscribe(t, "alice")
			f.push.Respond(expired.Endpoint, webpushtest.Response{Status: status, Body: "subscription expired"})

			sent, err := f.sender.Notify(context.Background(), "alice", samplePayload())
			if err != nil {
				t.Fatalf("an expired subscription is not an error: %v", err)
			}
			if sent != 1 {
				t.Fatalf("sent = %d, want 1", sent)
			}
			left := f.endpoints(t, "alice")
			if left[expired.Endpoint] || !left[alive.Endpoint] || len(left) != 1 {
				t.Fatalf("left %v: want only %s", left, alive.Endpoint)
			}
			if v := metricValue(t, f.reg, "parley_webpush_subscriptions_expired_total", nil); v != 1 {
				t.Fatalf("expired counter = %v, want 1", v)
			}
			// The next notification does not try the removed endpoint again.
			if _, err := f.sender.Notify(context.Background(), "alice", samplePayload()); err != nil {
				t.Fatal(err)
			}
			tries := 0
			for _, r := range f.push.Received() {
				if r.Endpoint == expired.Endpoint {
					tries++
				}
			}
			if tries != 1 {
				t.Fatalf("expired endpoint tried %d times, want 1", tries)
			}
		})
	}
}

func TestNotifyFailuresKeepSubscriptionAndReport(t *testing.T) {
	tests := []struct {
		name       string
		resp       webpushtest.Response
		wantKind   error
		wantReason string
		wantRetry  time.Duration
	}{
		{"429 with Retry-After", webpushtest.Response{Status: 429, Header: http.Header{"Retry-After": {"120"}}, Body: "slow down"}, webpush.ErrRateLimited, webpush.FailRateLimited, 2 * time.Minute},
		{"500", webpushtest.Response{Status: 500, Body: "oops"}, webpush.ErrPushServiceFailed, webpush.FailServerError, 0},
		{"503 with Retry-After date", webpushtest.Response{Status: 503, Header: http.Header{"Retry-After": {time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}}}, webpush.ErrPushServiceFailed, webpush.FailServerError, time.Hour},
		{"413", webpushtest.Response{Status: 413}, webpush.ErrRejected, webpush.FailRejected, 0},
		{"302 is not followed", webpushtest.Response{Status: 302, Header: http.Header{"Location": {"http://169.254.169.254/"}}}, webpush.ErrRejected, webpush.FailUnexpected, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			failing := f.subscribe(t, "alice")
			ok := f.subscribe(t, "alice")
			f.push.Respond(failing.Endpoint, tt.resp)

			sent, err := f.sender.Notify(context.Background(), "alice", samplePayload())
			if sent != 1 {
				t.Errorf("sent = %d, want 1 (the healthy subscription)", sent)
			}
			if !errors.Is(err, tt.wantKind) {
				t.Fatalf("err = %v, want %v", err, tt.wantKind)
			}
			var de *webpush.DeliveryError
			if !errors.As(err, &de) {
				t.Fatalf("err %v is not a *DeliveryError", err)
			}
			if de.StatusCode != tt.resp.Status || de.Reason != tt.wantReason {
				t.Errorf("DeliveryError %+v, want status %d reason %s", de, tt.resp.Status, tt.wantReason)
			}
			// The date form is rounded to the second, and a second may pass while the test runs.
			if d := de.RetryAfter - tt.wantRetry; d < -2*time.Second || d > 0 {
				t.Errorf("RetryAfter = %s, want %s", de.RetryAfter, tt.wantRetry)
			}
			if tt.resp.Body != "" && de.Body != tt.resp.Body {
				t.Errorf("Body = %q, want %q", de.Body, tt.resp.Body)
			}
			if strings.Contains(err.Error(), failing.Endpoint) {
				t.Errorf("error %q reveals the endpoint, a bearer capability", err)
			}
			left := f.endpoints(t, "alice")
			if !left[failing.Endpoint] || !left[ok.Endpoint] {
				t.Fatalf("subscriptions left %v: both must be kept", left)
			}
			if v := metricValue(t, f.reg, "parley_webpush_failed_total", map[string]string{"reason": tt.wantReason}); v != 1 {
				t.Errorf("failed{reason=%s} = %v, want 1", tt.wantReason, v)
			}
			if v := metricValue(t, f.reg, "parley_webpush_subscriptions_expired_total", nil); v != 0 {
				t.Errorf("expired = %v, want 0", v)
			}
		})
	}
}

func TestNotifyWithWrongVAPIDKeyIsRejected(t *testing.T) {
	f := newFixture(t, nil)
	f.subscribe(t, "alice")
	other := testConfig(t) // keys the push service does not expect
	sender, err := webpush.NewSender(other, f.store, webpush.WithHTTPClient(f.push.Client()))
	if err != nil {
		t.Fatal(err)
	}
	sent, err := sender.Notify(context.Background(), "alice", samplePayload())
	var de *webpush.DeliveryError
	if sent != 0 || !errors.As(err, &de) || de.StatusCode != http.StatusUnauthorized || !errors.Is(err, webpush.ErrRejected) {
		t.Fatalf("sent %d, err %v; want 0 and a 401 rejection", sent, err)
	}
	if got := f.push.Received(); len(got) != 1 || got[0].Err == nil {
		t.Fatalf("the push service must have refused the token: %+v", got)
	}
}

func TestNotifyUnreachableAndTimeout(t *testing.T) {
	testDone := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Reading the body lets the server notice the client hanging up.
		_, _ = io.Copy(io.Discard, r.Body)
		select { // never answers; the sender's timeout must end the request
		case <-r.Context().Done():
		case <-testDone:
		}
	}))
	defer hang.Close()
	defer close(testDone)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	cfg := testConfig(t)
	cfg.AllowInsecureEndpoints = true
	cfg.RequestTimeout = 300 * time.Millisecond
	store := webpush.NewMemoryStore()
	b, err := webpushtest.NewBrowser()
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range []string{hang.URL + "/push/1", closedURL + "/push/2"} {
		if err := store.Add(context.Background(), "alice", b.Subscription(ep)); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	sender, err := webpush.NewSender(cfg, store, webpush.WithMetrics(webpush.NewMetrics(reg)))
	if err != nil {
		t.Fatal(err)
	}
	sent, err := sender.Notify(context.Background(), "alice", samplePayload())
	if sent != 0 || !errors.Is(err, webpush.ErrUnreachable) {
		t.Fatalf("sent %d err %v, want 0 and ErrUnreachable", sent, err)
	}
	for _, reason := range []string{webpush.FailTimeout, webpush.FailNetwork} {
		if v := metricValue(t, reg, "parley_webpush_failed_total", map[string]string{"reason": reason}); v != 1 {
			t.Errorf("failed{reason=%s} = %v, want 1", reason, v)
		}
	}
	subs, _ := store.ListByUser(context.Background(), "alice")
	if len(subs) != 2 {
		t.Fatalf("unreachable subscriptions must be kept, %d left", len(subs))
	}
}

func TestNotifyBoundsConcurrency(t *testing.T) {
	const limit, subs = 3, 10
	var (
		mu       sync.Mutex
		cond     = sync.NewCond(&mu)
		inFlight int
		maxSeen  int
		total    int
		gaveUp   bool
	)
	// A deadline for waiting only: if requests never overlap, the test fails below
	// instead of hanging.
	timer := time.AfterFunc(10*time.Second, func() {
		mu.Lock()
		gaveUp = true
		mu.Unlock()
		cond.Broadcast()
	})
	defer timer.Stop()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		total++
		maxSeen = max(maxSeen, inFlight)
		cond.Broadcast()
		// Hold each request until the limit is reached (or the last few are running),
		// so the test sees the real parallelism rather than a lucky sequence.
		for inFlight < limit && total < subs && !gaveUp {
			cond.Wait()
		}
		inFlight--
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()

	cfg := testConfig(t)
	cfg.AllowInsecureEndpoints = true
	cfg.Concurrency = limit
	store := webpush.NewMemoryStore()
	b, err := webpushtest.NewBrowser()
	if err != nil {
		t.Fatal(err)
	}
	for i := range subs {
		if err := store.Add(context.Background(), "alice", b.Subscription(srv.URL+"/push/"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	sender, err := webpush.NewSender(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	sent, err := sender.Notify(context.Background(), "alice", samplePayload())
	if sent != subs || err != nil {
		t.Fatalf("sent %d err %v, want %d and nil", sent, err, subs)
	}
	if maxSeen != limit {
		t.Fatalf("at most %d requests were in flight, want exactly the limit %d", maxSeen, limit)
	}
}

func TestNotifyTruncatesOversizedPreview(t *testing.T) {
	f := newFixture(t, nil)
	f.subscribe(t, "alice")
	// 4-byte runes and characters JSON escapes (quote, backslash, control) in a body far
	// over the limit: the cut must land on a rune boundary and the JSON must stay valid.
	body := strings.Repeat("😀é\"\\\x01漢", 2000)
	p := webpush.Payload{Type: "message", Room: "r", Sender: "u", SenderName: "Ünïcødé", Preview: body, Seq: 1}

	sent, err := f.sender.Notify(context.Background(), "alice", p)
	if sent != 1 || err != nil {
		t.Fatalf("sent %d err %v", sent, err)
	}
	got := f.push.Received()
	if len(got) != 1 || got[0].Err != nil {
		t.Fatalf("received %+v", got)
	}
	if len(got[0].Plaintext) > webpush.MaxPlaintext {
		t.Fatalf("plaintext of %d bytes, over %d", len(got[0].Plaintext), webpush.MaxPlaintext)
	}
	dec := decodePayload(t, got[0].Plaintext)
	if !utf8.ValidString(dec.Preview) || !strings.HasSuffix(dec.Preview, "…") {
		t.Fatalf("preview not valid UTF-8 ending in an ellipsis: %q", dec.Preview[max(0, len(dec.Preview)-20):])
	}
	if cut := strings.TrimSuffix(dec.Preview, "…"); !strings.HasPrefix(body, cut) || len(cut) < 1000 {
		t.Fatalf("preview is not a prefix of the body of a useful length (%d bytes)", len(cut))
	}
	dec.Preview = p.Preview
	if dec != p {
		t.Fatalf("other fields changed: %+v", dec)
	}
}

func TestNotifyUserWithoutSubscriptions(t *testing.T) {
	f := newFixture(t, nil)
	sent, err := f.sender.Notify(context.Background(), "nobody", samplePayload())
	if sent != 0 || err != nil {
		t.Fatalf("sent %d err %v, want 0 and nil", sent, err)
	}
	if n := len(f.push.Received()); n != 0 {
		t.Fatalf("%d requests sent", n)
	}
}

func TestNewSenderRefusesInvalidConfig(t *testing.T) {
	cfg := testConfig(t)
	cfg.Subject = "ops@parley.test"
	if _, err := webpush.NewSender(cfg, webpush.NewMemoryStore()); !errors.Is(err, webpush.ErrInvalidConfig) {
		t.Fatalf("err = %v, want ErrInvalidConfig", err)
	}
}

func TestNotifyCancelledContextSendsNothing(t *testing.T) {
	f := newFixture(t, nil)
	f.subscribe(t, "alice")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sent, err := f.sender.Notify(ctx, "alice", samplePayload())
	if sent != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("sent %d err %v, want 0 and context.Canceled", sent, err)
	}
	if n := len(f.push.Received()); n != 0 {
		t.Fatalf("%d requests reached the push service", n)
	}
	if v := metricValue(t, f.reg, "parley_webpush_failed_total", map[string]string{"reason": webpush.FailNetwork}); v != 0 {
		t.Fatalf("a caller's cancellation was counted as a network failure")
	}
}

// TestNotifyRefusesPrivateAddresses: endpoints come from users, so the default client
// never dials an address inside the network (SSRF); the local push service on loopback
// receives nothing.
func TestNotifyRefusesPrivateAddresses(t *testing.T) {
	pub, priv, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	const subject = "mailto:ops@example.com"
	ps := webpushtest.StartPushService(t, pub, subject, true)
	store := webpush.NewMemoryStore()
	sub, _ := ps.Subscribe(t)
	if err := store.Add(context.Background(), "u", sub); err != nil {
		t.Fatal(err)
	}
	sender, err := webpush.NewSender(webpush.Config{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subject: subject}, store)
	if err != nil {
		t.Fatal(err)
	}
	sent, err := sender.Notify(context.Background(), "u", webpush.Payload{Type: "message", Room: "r", Sender: "s", Seq: 1})
	if sent != 0 || err == nil || !strings.Contains(err.Error(), "not a public address") {
		t.Fatalf("push to a loopback endpoint: sent %d, err %v", sent, err)
	}
	if got := ps.Received(); len(got) != 0 {
		t.Fatalf("the loopback push service received %d requests", len(got))
	}
}
