package webpush

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	webpushgo "github.com/SherClockHolmes/webpush-go"
)

// Sentinels a *DeliveryError unwraps to, so callers can tell "retry later" from "give up".
var (
	// ErrRateLimited: the push service answered 429; retry after DeliveryError.RetryAfter.
	ErrRateLimited = errors.New("webpush: rate limited by the push service")
	// ErrPushServiceFailed: the push service answered 5xx; the subscription is kept.
	ErrPushServiceFailed = errors.New("webpush: push service failed")
	// ErrRejected: the push service refused this notification (4xx other than 404/410/429)
	// or answered something unexpected; retrying the same request will not help.
	ErrRejected = errors.New("webpush: notification rejected by the push service")
	// ErrUnreachable: no answer (network error or request timeout).
	ErrUnreachable = errors.New("webpush: push service unreachable")
)

// DeliveryError is one subscription that did not receive the notification.
type DeliveryError struct {
	// Host is the push service's host. The full endpoint is never shown: it is a bearer
	// capability that lets anyone push to the browser.
	Host       string
	Reason     string        // one of the Fail* constants
	StatusCode int           // 0 when there was no answer
	RetryAfter time.Duration // from a 429 or 503 Retry-After header, 0 if absent
	Body       string        // the start of the push service's answer, for diagnosis
	Err        error         // the underlying error, if any
	kind       error         // the sentinel, nil for a store failure
}

func (e *DeliveryError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "webpush: push to %s: %s", e.Host, e.Reason)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.StatusCode)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, ", retry after %s", e.RetryAfter)
	}
	if e.Body != "" {
		fmt.Fprintf(&b, ": %q", e.Body)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

// Unwrap exposes both the sentinel and the cause.
func (e *DeliveryError) Unwrap() []error {
	var errs []error
	if e.kind != nil {
		errs = append(errs, e.kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// subscriptions is what the Sender needs of a Store.
type subscriptions interface {
	ListByUser(ctx context.Context, userID string) ([]Subscription, error)
	Delete(ctx context.Context, endpoint string) error
}

// Sender delivers notifications to every push subscription of a user.
type Sender struct {
	cfg        Config
	subs       subscriptions
	client     *http.Client
	metrics    *Metrics
	subscriber string
}

// Option changes a Sender.
type Option func(*Sender)

// WithHTTPClient sends through c (a test's TLS client, a proxy-aware client, ...).
// Redirects are still never followed.
func WithHTTPClient(c *http.Client) Option {
	return func(s *Sender) {
		cc := *c
		s.client = &cc
	}
}

// WithMetrics counts into m (by default the metrics are created but not registered).
func WithMetrics(m *Metrics) Option {
	return func(s *Sender) { s.metrics = m }
}

// NewSender validates cfg and returns a Sender that reads subscriptions from subs and
// deletes the expired ones there.
func NewSender(cfg Config, subs subscriptions, opts ...Option) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	// Normalise to unpadded base64url, one of the forms the library decodes.
	pub, _ := decodeKey(cfg.VAPIDPublicKey)
	priv, _ := decodeKey(cfg.VAPIDPrivateKey)
	cfg.VAPIDPublicKey = base64.RawURLEncoding.EncodeToString(pub)
	cfg.VAPIDPrivateKey = base64.RawURLEncoding.EncodeToString(priv)
	s := &Sender{
		cfg:  cfg,
		subs: subs,
		// The library prefixes "mailto:" to every subject that does not start with
		// "https:", so a configured "mailto:x@y" would become "mailto:mailto:x@y".
		subscriber: strings.TrimPrefix(cfg.Subject, "mailto:"),
		client:     defaultClient(cfg.AllowInsecureEndpoints),
	}
	for _, o := range opts {
		o(s)
	}
	if s.metrics == nil {
		s.metrics = NewMetrics(nil)
	}
	// Endpoints come from browsers, i.e. from users: following a redirect would let one
	// aim our requests anywhere. Push services answer directly.
	s.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return s, nil
}

// Notify sends p to every subscription of userID, at most Config.Concurrency at a time,
// each request bounded by Config.RequestTimeout. It returns how many push services
// accepted the notification. Subscriptions whose push service answers 404 or 410 have
// expired: they are deleted and are not an error. Every other failure keeps the
// subscription and is reported in the returned error as a *DeliveryError (joined).
//
// The caller must have filtered userID already: Notify sends to whoever it is given.
// A preview that makes the payload exceed MaxPlaintext is cut on a UTF-8 boundary.
func (s *Sender) Notify(ctx context.Context, userID string, p Payload) (sent int, err error) {
	subs, err := s.subs.ListByUser(ctx, userID)
	if err != nil {
		return 0, fmt.Errorf("webpush: notify %s: %w", userID, err)
	}
	if len(subs) == 0 {
		return 0, nil
	}
	body, err := p.Encode(MaxPlaintext)
	if err != nil {
		return 0, fmt.Errorf("webpush: notify %s: %w", userID, err)
	}

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, s.cfg.Concurrency)
	)
	record := func(ok bool, err error) {
		mu.Lock()
		defer mu.Unlock()
		if ok {
			sent++
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, sub := range subs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			record(false, fmt.Errorf("webpush: notify %s: %w", userID, ctx.Err()))
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			record(s.send(ctx, sub, body))
		})
	}
	wg.Wait()
	return sent, errors.Join(errs...)
}

// send delivers body to one subscription; ok means the push service accepted it.
func (s *Sender) send(ctx context.Context, sub Subscription, body []byte) (ok bool, err error) {
	host := hostOf(sub.Endpoint)
	fail := func(reason string, kind error, status int, cause error) error {
		s.metrics.failed.WithLabelValues(reason).Inc()
		return &DeliveryError{Host: host, Reason: reason, StatusCode: status, Err: cause, kind: kind}
	}
	if err := sub.Validate(s.cfg.AllowInsecureEndpoints); err != nil {
		return false, fail(FailBadSubscription, ErrRejected, 0, err)
	}

	reqCtx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	// The library appends its padding to the slice it is given; capping the capacity
	// makes it copy, so concurrent sends never write into the shared payload.
	resp, err := webpushgo.SendNotificationWithContext(reqCtx, body[:len(body):len(body)],
		&webpushgo.Subscription{Endpoint: sub.Endpoint, Keys: webpushgo.Keys{P256dh: sub.Keys.P256dh, Auth: sub.Keys.Auth}},
		&webpushgo.Options{
			HTTPClient:      s.client,
			Subscriber:      s.subscriber,
			TTL:             int(s.cfg.TTL / time.Second),
			Urgency:         webpushgo.Urgency(s.cfg.Urgency),
			VAPIDPublicKey:  s.cfg.VAPIDPublicKey,
			VAPIDPrivateKey: s.cfg.VAPIDPrivateKey,
		})
	if err != nil {
		var urlErr *url.Error
		switch {
		case ctx.Err() != nil:
			// The caller gave up; that is not the push service's failure.
			return false, fmt.Errorf("webpush: push to %s: %w", host, ctx.Err())
		case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &urlErr) && urlErr.Timeout()):
			return false, fail(FailTimeout, ErrUnreachable, 0, fmt.Errorf("no answer within %s", s.cfg.RequestTimeout))
		case errors.As(err, &urlErr):
			// url.Error quotes the whole endpoint, a capability: keep only its cause.
			return false, fail(FailNetwork, ErrUnreachable, 0, urlErr.Err)
		default: // encryption or JWT: the stored keys cannot be used
			return false, fail(FailBadSubscription, ErrRejected, 0, err)
		}
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused

	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		s.metrics.sent.Inc()
		return true, nil
	case code == http.StatusNotFound || code == http.StatusGone:
		// RFC 8030 §7.3: the subscription is gone for good.
		if err := s.subs.Delete(ctx, sub.Endpoint); err != nil && !errors.Is(err, ErrSubscriptionNotFound) {
			return false, fail(FailStore, nil, code, fmt.Errorf("delete expired subscription: %w", err))
		}
		s.metrics.expired.Inc()
		return false, nil
	}
	var reason string
	var kind error
	switch {
	case code == http.StatusTooManyRequests:
		reason, kind = FailRateLimited, ErrRateLimited
	case code >= 500:
		reason, kind = FailServerError, ErrPushServiceFailed
	case code >= 400:
		reason, kind = FailRejected, ErrRejected
	default:
		reason, kind = FailUnexpected, ErrRejected
	}
	s.metrics.failed.WithLabelValues(reason).Inc()
	return false, &DeliveryError{
		Host:       host,
		Reason:     reason,
		StatusCode: code,
		RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now()),
		Body:       strings.TrimSpace(strings.ToValidUTF8(string(snippet), "")),
		kind:       kind,
	}
}

// retryAfter parses Retry-After: delay seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now).Round(time.Second)
	}
	return 0
}

func hostOf(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return "(invalid endpoint)"
	}
	return u.Host
}

// defaultClient dials only public addresses: endpoints come from users, and a push must
// never become a request into the cluster's own network (SSRF). AllowInsecureEndpoints,
// for tests and local push services, lifts that too.
func defaultClient(allowAny bool) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	if !allowAny {
		d := &net.Dialer{Timeout: 10 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			if ip := net.ParseIP(host); ip == nil || !publicIP(ip) {
				return fmt.Errorf("push endpoint resolves to %s, which is not a public address", host)
			}
			return nil
		}}
		t.DialContext = d.DialContext
	}
	return &http.Client{Transport: t}
}

// cgnat is the shared address space of RFC 6598, private in practice.
var cgnat = &net.IPNet{IP: net.IPv4(100, 64, 0, 0), Mask: net.CIDRMask(10, 32)}

func publicIP(ip net.IP) bool {
	return ip.IsGlobalUnicast() && !ip.IsPrivate() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() &&
		!ip.IsUnspecified() && !cgnat.Contains(ip)
}
