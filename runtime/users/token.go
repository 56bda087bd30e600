package users

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const tokenIssuer = "parley"

// Claims is what a verified access token says.
type Claims struct {
	UserID    string
	ExpiresAt time.Time
}

// Auth issues and verifies access tokens (HS256 JWTs). The gateway uses the same key to
// authenticate WebSocket connections without a database round trip.
type Auth struct {
	key      []byte
	previous []byte // still accepted after a rotation, never used to sign
	ttl      time.Duration
	now      func() time.Time
}

// MinSigningKeyLen is the shortest HS256 key accepted: 256 bits, the hash's size.
const MinSigningKeyLen = 32

// NewAuth returns an Auth signing with key; tokens live ttl. now may be nil (time.Now).
func NewAuth(key []byte, ttl time.Duration, now func() time.Time) (*Auth, error) {
	if len(key) < MinSigningKeyLen {
		return nil, fmt.Errorf("jwt signing key: %d bytes, need at least %d", len(key), MinSigningKeyLen)
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("token ttl must be positive, got %s", ttl)
	}
	if now == nil {
		now = time.Now
	}
	return &Auth{key: append([]byte(nil), key...), ttl: ttl, now: now}, nil
}

// AcceptPreviousKey makes verification also accept tokens signed with key, the signing
// key before a rotation, so a rotation logs nobody out: tokens signed with it expire
// within one TTL anyway, after which the operator drops it. An empty key accepts nothing
// more.
func (a *Auth) AcceptPreviousKey(key []byte) error {
	if len(key) == 0 {
		a.previous = nil
		return nil
	}
	if len(key) < MinSigningKeyLen {
		return fmt.Errorf("previous jwt signing key: %d bytes, need at least %d", len(key), MinSigningKeyLen)
	}
	a.previous = append([]byte(nil), key...)
	return nil
}

// TTL is how long issued access tokens live.
func (a *Auth) TTL() time.Duration { return a.ttl }

// IssueAccessToken signs a token for userID.
func (a *Auth) IssueAccessToken(userID string) (string, time.Time, error) {
	now := a.now()
	exp := now.Add(a.ttl)
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Issuer:    tokenIssuer,
		Subject:   userID,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
	})
	s, err := tok.SignedString(a.key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign access token: %w", err)
	}
	return s, exp, nil
}

// VerifyAccessToken checks signature (HS256 with our key only: alg none and every other
// algorithm are refused), issuer and expiry.
func (a *Auth) VerifyAccessToken(token string) (Claims, error) {
	var rc jwt.RegisteredClaims
	keys := func(*jwt.Token) (any, error) {
		if a.previous == nil {
			return a.key, nil
		}
		return jwt.VerificationKeySet{Keys: []jwt.VerificationKey{a.key, a.previous}}, nil
	}
	_, err := jwt.ParseWithClaims(token, &rc, keys,
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(tokenIssuer),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(a.now),
	)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if rc.Subject == "" {
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalidToken, errors.New("no subject"))
	}
	return Claims{UserID: rc.Subject, ExpiresAt: rc.ExpiresAt.Time}, nil
}
