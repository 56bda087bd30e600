// Package webpush sends Web Push notifications (RFC 8030) to the push services of
// browsers whose user has no live connection: VAPID authentication (RFC 8292), payloads
// encrypted per RFC 8291 (aes128gcm), expired subscriptions removed on 404/410.
//
// The package does not decide who is notified. Callers pass only recipients they have
// already filtered: room members with no live connection, minus everyone who blocked the
// sender. A blocked sender's message must never reach Notify.
package webpush

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Urgency is the RFC 8030 §5.3 Urgency header; push services use it to save battery.
type Urgency string

// Urgencies defined by RFC 8030.
const (
	UrgencyVeryLow Urgency = "very-low"
	UrgencyLow     Urgency = "low"
	UrgencyNormal  Urgency = "normal"
	UrgencyHigh    Urgency = "high"
)

func (u Urgency) valid() bool {
	switch u {
	case UrgencyVeryLow, UrgencyLow, UrgencyNormal, UrgencyHigh:
		return true
	}
	return false
}

// Defaults applied by Config.withDefaults.
const (
	DefaultTTL            = 24 * time.Hour
	DefaultUrgency        = UrgencyHigh // a chat message is what a user wants to see now
	DefaultConcurrency    = 8
	DefaultRequestTimeout = 10 * time.Second
	DefaultWorkers        = 4
	DefaultQueueSize      = 1000
	// MaxTTL is what push services keep at most (about four weeks); longer is refused
	// rather than silently capped by the service.
	MaxTTL = 28 * 24 * time.Hour
)

// ErrInvalidConfig marks a configuration that cannot work; the message says which field.
var ErrInvalidConfig = errors.New("webpush: invalid configuration")

// Config is the Web Push configuration of the notification role.
type Config struct {
	// VAPIDPublicKey is the uncompressed P-256 point (65 bytes), base64url: the
	// applicationServerKey the web client passes to pushManager.subscribe.
	VAPIDPublicKey string
	// VAPIDPrivateKey is the P-256 scalar (32 bytes), base64url. A secret.
	VAPIDPrivateKey string
	// Subject is the contact the push service may use: "mailto:..." or "https://...".
	Subject string
	// TTL is how long the push service keeps an undelivered message (0 = DefaultTTL).
	TTL time.Duration
	// Urgency is sent with every message ("" = DefaultUrgency).
	Urgency Urgency
	// AllowInsecureEndpoints accepts http:// endpoints: for tests and local push
	// services only, never in production.
	AllowInsecureEndpoints bool
	// Concurrency bounds the requests in flight per Notify call (0 = DefaultConcurrency).
	Concurrency int
	// RequestTimeout bounds each request to a push service (0 = DefaultRequestTimeout).
	RequestTimeout time.Duration
	// Workers is how many messages Pool sends at once (0 = DefaultWorkers).
	Workers int
	// QueueSize is how many messages wait for a Pool worker before new ones are dropped
	// (0 = DefaultQueueSize).
	QueueSize int
}

// RegisterFlags registers the configuration on fs; with the cli package every flag also
// reads PARLEY_<NAME> (PARLEY_VAPID_PUBLIC_KEY, PARLEY_VAPID_PRIVATE_KEY,
// PARLEY_VAPID_SUBJECT, ...).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.VAPIDPublicKey, "vapid-public-key", c.VAPIDPublicKey, "Web Push VAPID public key, base64url (uncompressed P-256 point)")
	fs.StringVar(&c.VAPIDPrivateKey, "vapid-private-key", c.VAPIDPrivateKey, "Web Push VAPID private key, base64url (P-256 scalar); a secret")
	fs.StringVar(&c.Subject, "vapid-subject", c.Subject, "Web Push VAPID contact, mailto: or https: URL")
	fs.DurationVar(&c.TTL, "webpush-ttl", c.TTL, "how long push services keep an undelivered notification (0 = 24h)")
	fs.Func("webpush-urgency", "Urgency header: very-low, low, normal or high (default high)", func(v string) error {
		u := Urgency(v)
		if !u.valid() {
			return fmt.Errorf("urgency %q: want very-low, low, normal or high", v)
		}
		c.Urgency = u
		return nil
	})
	fs.BoolVar(&c.AllowInsecureEndpoints, "webpush-allow-insecure-endpoints", c.AllowInsecureEndpoints, "accept http:// push endpoints (tests and local push services only)")
	fs.IntVar(&c.Concurrency, "webpush-concurrency", c.Concurrency, "push requests in flight per notified user (0 = 8)")
	fs.DurationVar(&c.RequestTimeout, "webpush-request-timeout", c.RequestTimeout, "timeout of one request to a push service (0 = 10s)")
	fs.IntVar(&c.Workers, "webpush-workers", c.Workers, "messages pushed at once, off the fan-out path (0 = 4)")
	fs.IntVar(&c.QueueSize, "webpush-queue-size", c.QueueSize, "messages waiting for a push worker before new ones are dropped (0 = 1000)")
}

// Enabled reports whether any VAPID key is configured; a role may run without Web Push.
func (c Config) Enabled() bool {
	return c.VAPIDPublicKey != "" || c.VAPIDPrivateKey != ""
}

// Validate checks every field, including that the public key belongs to the private key
// (a mismatch would make every push service answer 401/403).
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...)))
	}
	pub, pubErr := decodeKey(c.VAPIDPublicKey)
	switch {
	case c.VAPIDPublicKey == "":
		bad("VAPID public key", "missing")
	case pubErr != nil:
		bad("VAPID public key", "not base64url: %v", pubErr)
	case len(pub) != p256PointLen || pub[0] != 0x04:
		bad("VAPID public key", "want a 65-byte uncompressed P-256 point, got %d bytes", len(pub))
	}
	priv, privErr := decodeKey(c.VAPIDPrivateKey)
	var key *ecdh.PrivateKey
	switch {
	case c.VAPIDPrivateKey == "":
		bad("VAPID private key", "missing")
	case privErr != nil:
		bad("VAPID private key", "not base64url (the value is not shown)")
	case len(priv) != 32:
		bad("VAPID private key", "want 32 bytes, got %d", len(priv))
	default:
		var err error
		if key, err = ecdh.P256().NewPrivateKey(priv); err != nil {
			bad("VAPID private key", "not a P-256 scalar")
		}
	}
	if key != nil && pubErr == nil && len(pub) == p256PointLen && string(key.PublicKey().Bytes()) != string(pub) {
		bad("VAPID public key", "does not belong to the private key")
	}
	if err := validateSubject(c.Subject); err != nil {
		bad("VAPID subject", "%v", err)
	}
	if c.TTL < 0 || c.TTL > MaxTTL {
		bad("TTL", "%s is outside 0..%s", c.TTL, MaxTTL)
	}
	if c.Urgency != "" && !c.Urgency.valid() {
		bad("urgency", "%q: want very-low, low, normal or high", c.Urgency)
	}
	if c.Concurrency < 0 {
		bad("concurrency", "%d is negative", c.Concurrency)
	}
	if c.RequestTimeout < 0 {
		bad("request timeout", "%s is negative", c.RequestTimeout)
	}
	if c.Workers < 0 {
		bad("workers", "%d is negative", c.Workers)
	}
	if c.QueueSize < 0 {
		bad("queue size", "%d is negative", c.QueueSize)
	}
	return errors.Join(errs...)
}

func validateSubject(s string) error {
	switch {
	case s == "":
		return errors.New("missing (mailto:you@example.com or https://example.com)")
	case strings.HasPrefix(s, "mailto:"):
		if !strings.Contains(s[len("mailto:"):], "@") {
			return fmt.Errorf("%q has no e-mail address", s)
		}
		return nil
	case strings.HasPrefix(s, "https://"):
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return fmt.Errorf("%q is not an https URL", s)
		}
		return nil
	}
	return fmt.Errorf("%q must start with mailto: or https://", s)
}

func (c Config) withDefaults() Config {
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.Urgency == "" {
		c.Urgency = DefaultUrgency
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	return c
}

// GenerateVAPIDKeys returns a fresh VAPID key pair, base64url without padding: public is
// the 65-byte uncompressed point browsers take as applicationServerKey, private the
// 32-byte scalar.
func GenerateVAPIDKeys() (public, private string, err error) {
	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("webpush: generate VAPID keys: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(key.PublicKey().Bytes()),
		base64.RawURLEncoding.EncodeToString(key.Bytes()), nil
}

const p256PointLen = 65

// decodeKey accepts base64url with or without padding, as browsers and tools emit both.
func decodeKey(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
