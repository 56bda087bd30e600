package webpushtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/runtime/webpush"
)

// Received is one request the push service got, after verification and decryption.
type Received struct {
	Endpoint string
	// Plaintext is the decrypted payload; nil when Err is set.
	Plaintext []byte
	Claims    VAPIDClaims
	TTL       string // the TTL header
	Urgency   string // the Urgency header
	BodyLen   int
	// Err says why the request was not a valid Web Push request (VAPID or encryption);
	// the push service answered 400 (bad encryption) or 401 (bad VAPID).
	Err error
}

// Response is what the push service answers for an endpoint.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

// PushService is a local push service: every request is checked the way a real one
// checks it (VAPID token and key, aes128gcm encoding, size) and decrypted with the
// keys of the browser that owns the endpoint.
type PushService struct {
	server    *httptest.Server
	vapidKey  string
	subject   string
	mu        sync.Mutex
	browsers  map[string]*Browser // by endpoint
	responses map[string]Response // by endpoint; default 201 Created
	received  []Received
}

// StartPushService starts a push service that accepts tokens signed by vapidPublicKey
// with the given subject, over TLS when secure (use Client then), closed when t ends.
func StartPushService(t testing.TB, vapidPublicKey, subject string, secure bool) *PushService {
	t.Helper()
	ps := &PushService{
		vapidKey:  vapidPublicKey,
		subject:   subject,
		browsers:  make(map[string]*Browser),
		responses: make(map[string]Response),
	}
	ps.server = httptest.NewUnstartedServer(http.HandlerFunc(ps.serve))
	// Clients dropping idle TLS connections at the end of a test are not news.
	ps.server.Config.ErrorLog = log.New(io.Discard, "", 0)
	if secure {
		ps.server.StartTLS()
	} else {
		ps.server.Start()
	}
	t.Cleanup(ps.server.Close)
	return ps
}

// URL is the origin of the push service, the aud of the tokens it accepts.
func (ps *PushService) URL() string { return ps.server.URL }

// Client trusts the service's TLS certificate.
func (ps *PushService) Client() *http.Client { return ps.server.Client() }

// Subscribe creates a browser and its endpoint on this service.
func (ps *PushService) Subscribe(t testing.TB) (webpush.Subscription, *Browser) {
	t.Helper()
	b, err := NewBrowser()
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	sub := b.Subscription(ps.server.URL + "/push/" + hex.EncodeToString(id))
	ps.mu.Lock()
	ps.browsers[sub.Endpoint] = b
	ps.mu.Unlock()
	return sub, b
}

// Respond makes the service answer r for endpoint (after verifying and decrypting).
func (ps *PushService) Respond(endpoint string, r Response) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.responses[endpoint] = r
}

// Received returns the requests so far, in arrival order.
func (ps *PushService) Received() []Received {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return append([]Received(nil), ps.received...)
}

func (ps *PushService) serve(w http.ResponseWriter, r *http.Request) {
	endpoint := ps.server.URL + r.URL.Path
	ps.mu.Lock()
	browser := ps.browsers[endpoint]
	resp, custom := ps.responses[endpoint]
	ps.mu.Unlock()
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if browser == nil {
		http.Error(w, "no such subscription", http.StatusNotFound)
		return
	}
	rec := Received{Endpoint: endpoint, TTL: r.Header.Get("TTL"), Urgency: r.Header.Get("Urgency")}
	status := http.StatusCreated
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	rec.BodyLen = len(body)
	switch {
	case err != nil:
		rec.Err, status = fmt.Errorf("read body: %w", err), http.StatusBadRequest
	default:
		rec.Claims, rec.Err = VerifyVAPID(r.Header.Get("Authorization"), ps.vapidKey, ps.server.URL, time.Now())
		if rec.Err == nil && rec.Claims.Sub != ps.subject {
			rec.Err = fmt.Errorf("JWT sub %q, want %q", rec.Claims.Sub, ps.subject)
		}
		if rec.Err != nil {
			status = http.StatusUnauthorized
			break
		}
		if ce := r.Header.Get("Content-Encoding"); ce != "aes128gcm" {
			rec.Err, status = fmt.Errorf("Content-Encoding %q, want aes128gcm", ce), http.StatusBadRequest
			break
		}
		if rec.TTL == "" {
			rec.Err, status = fmt.Errorf("no TTL header (RFC 8030 §5.2 requires it)"), http.StatusBadRequest
			break
		}
		if len(body) > MaxBody {
			rec.Err, status = fmt.Errorf("body over %d bytes", MaxBody), http.StatusRequestEntityTooLarge
			break
		}
		rec.Plaintext, rec.Err = browser.Decrypt(body)
		if rec.Err != nil {
			status = http.StatusBadRequest
		}
	}
	ps.mu.Lock()
	ps.received = append(ps.received, rec)
	ps.mu.Unlock()
	if rec.Err == nil && custom {
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.Status)
		_, _ = io.WriteString(w, resp.Body)
		return
	}
	if rec.Err != nil {
		http.Error(w, rec.Err.Error(), status)
		return
	}
	w.Header().Set("Location", endpoint+"/messages/1")
	w.WriteHeader(status)
}
