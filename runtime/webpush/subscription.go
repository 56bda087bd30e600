package webpush

import (
	"crypto/ecdh"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Subscription is the browser's PushSubscription, as PushSubscription.toJSON() gives it.
type Subscription struct {
	Endpoint string `json:"endpoint"`
	Keys     Keys   `json:"keys"`
}

// Keys are the subscription's keys, base64url (padding optional).
type Keys struct {
	// P256dh is the browser's ECDH public key: a 65-byte uncompressed P-256 point.
	P256dh string `json:"p256dh"`
	// Auth is the 16-byte authentication secret.
	Auth string `json:"auth"`
}

// InvalidReason is a stable, machine-readable code for what is wrong with a subscription;
// the HTTP edge turns it into its error code.
type InvalidReason string

// Reasons a subscription is refused.
const (
	ReasonEndpointMissing  InvalidReason = "endpoint_missing"
	ReasonEndpointInvalid  InvalidReason = "endpoint_invalid"
	ReasonEndpointInsecure InvalidReason = "endpoint_not_https"
	ReasonEndpointTooLong  InvalidReason = "endpoint_too_long"
	ReasonP256dhMissing    InvalidReason = "p256dh_missing"
	ReasonP256dhEncoding   InvalidReason = "p256dh_not_base64url"
	ReasonP256dhLength     InvalidReason = "p256dh_wrong_length"
	ReasonP256dhNotOnCurve InvalidReason = "p256dh_not_on_curve"
	ReasonAuthMissing      InvalidReason = "auth_missing"
	ReasonAuthEncoding     InvalidReason = "auth_not_base64url"
	ReasonAuthLength       InvalidReason = "auth_wrong_length"
	maxEndpointLen                       = 2048 // real endpoints are ~200-500 bytes
	authSecretLen                        = 16
)

// ErrInvalidSubscription matches every *InvalidSubscriptionError with errors.Is.
var ErrInvalidSubscription = errors.New("webpush: invalid subscription")

// InvalidSubscriptionError says which field of a subscription is wrong and why.
type InvalidSubscriptionError struct {
	Field  string // "endpoint", "keys.p256dh" or "keys.auth"
	Reason InvalidReason
	Detail string
}

func (e *InvalidSubscriptionError) Error() string {
	return fmt.Sprintf("webpush: invalid subscription: %s: %s (%s)", e.Field, e.Detail, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidSubscription) true.
func (e *InvalidSubscriptionError) Is(target error) bool { return target == ErrInvalidSubscription }

func invalid(field string, reason InvalidReason, format string, args ...any) error {
	return &InvalidSubscriptionError{Field: field, Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Validate checks s the way a push service and RFC 8291 need it: an absolute https
// endpoint (http only when allowInsecure), a p256dh that is a point on P-256 and a
// 16-byte auth secret. It reports the first problem found, endpoint first.
func (s Subscription) Validate(allowInsecure bool) error {
	if err := validateEndpoint(s.Endpoint, allowInsecure); err != nil {
		return err
	}
	if s.Keys.P256dh == "" {
		return invalid("keys.p256dh", ReasonP256dhMissing, "missing")
	}
	p256dh, err := decodeKey(s.Keys.P256dh)
	if err != nil {
		return invalid("keys.p256dh", ReasonP256dhEncoding, "not base64url: %v", err)
	}
	if len(p256dh) != p256PointLen || p256dh[0] != 0x04 {
		return invalid("keys.p256dh", ReasonP256dhLength, "want a 65-byte uncompressed P-256 point, got %d bytes", len(p256dh))
	}
	if _, err := ecdh.P256().NewPublicKey(p256dh); err != nil {
		return invalid("keys.p256dh", ReasonP256dhNotOnCurve, "not a point on P-256")
	}
	if s.Keys.Auth == "" {
		return invalid("keys.auth", ReasonAuthMissing, "missing")
	}
	auth, err := decodeKey(s.Keys.Auth)
	if err != nil {
		return invalid("keys.auth", ReasonAuthEncoding, "not base64url: %v", err)
	}
	if len(auth) != authSecretLen {
		return invalid("keys.auth", ReasonAuthLength, "want %d bytes, got %d", authSecretLen, len(auth))
	}
	return nil
}

func validateEndpoint(endpoint string, allowInsecure bool) error {
	if endpoint == "" {
		return invalid("endpoint", ReasonEndpointMissing, "missing")
	}
	if len(endpoint) > maxEndpointLen {
		return invalid("endpoint", ReasonEndpointTooLong, "%d bytes, at most %d", len(endpoint), maxEndpointLen)
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return invalid("endpoint", ReasonEndpointInvalid, "not a URL")
	}
	if u.Host == "" || u.User != nil || u.Fragment != "" || !u.IsAbs() {
		return invalid("endpoint", ReasonEndpointInvalid, "want an absolute URL with a host, no credentials and no fragment")
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return nil
	case "http":
		if allowInsecure {
			return nil
		}
		return invalid("endpoint", ReasonEndpointInsecure, "http is refused; push endpoints are https")
	}
	return invalid("endpoint", ReasonEndpointInsecure, "scheme %q: push endpoints are https", u.Scheme)
}
