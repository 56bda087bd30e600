package webpushtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// VAPIDClaims are the claims of a VAPID token (RFC 8292 §2).
type VAPIDClaims struct {
	Aud string
	Exp time.Time
	Sub string
}

// VerifyVAPID checks an Authorization header of the form "vapid t=<JWT>, k=<public key>"
// (RFC 8292 §3): k must be wantKey, the JWT must be ES256 and verify under k, aud must be
// wantAud (the push resource's origin), exp in the future and at most 24 hours away.
func VerifyVAPID(header, wantKey, wantAud string, now time.Time) (VAPIDClaims, error) {
	scheme, params, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "vapid") {
		return VAPIDClaims{}, fmt.Errorf("authorization scheme %q, want vapid", scheme)
	}
	var token, key string
	for _, part := range strings.Split(params, ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch name {
		case "t":
			token = value
		case "k":
			key = value
		}
	}
	if token == "" || key == "" {
		return VAPIDClaims{}, fmt.Errorf("authorization %q lacks t= or k=", params)
	}
	if strings.TrimRight(key, "=") != strings.TrimRight(wantKey, "=") {
		return VAPIDClaims{}, fmt.Errorf("k=%s, want the configured public key %s", key, wantKey)
	}
	point, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(key, "="))
	if err != nil {
		return VAPIDClaims{}, fmt.Errorf("k: %w", err)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		return VAPIDClaims{}, fmt.Errorf("k is not a P-256 point: %w", err)
	}

	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return VAPIDClaims{}, fmt.Errorf("JWT has %d parts, want 3", len(parts))
	}
	var head struct {
		Alg string `json:"alg"`
	}
	if err := decodeSegment(parts[0], &head); err != nil {
		return VAPIDClaims{}, fmt.Errorf("JWT header: %w", err)
	}
	if head.Alg != "ES256" {
		return VAPIDClaims{}, fmt.Errorf("JWT alg %q, want ES256", head.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return VAPIDClaims{}, fmt.Errorf("JWT signature: %w", err)
	}
	if len(sig) != 64 { // JWS ES256 is r||s, 32 bytes each (RFC 7518 §3.4)
		return VAPIDClaims{}, fmt.Errorf("JWT signature of %d bytes, want 64", len(sig))
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(pub, digest[:], r, s) {
		return VAPIDClaims{}, errors.New("JWT signature does not verify under k")
	}

	var claims struct {
		Aud string      `json:"aud"`
		Exp json.Number `json:"exp"`
		Sub string      `json:"sub"`
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return VAPIDClaims{}, fmt.Errorf("JWT claims: %w", err)
	}
	exp, err := claims.Exp.Int64()
	if err != nil {
		return VAPIDClaims{}, fmt.Errorf("JWT exp %q: %w", claims.Exp, err)
	}
	got := VAPIDClaims{Aud: claims.Aud, Exp: time.Unix(exp, 0), Sub: claims.Sub}
	switch {
	case got.Aud != wantAud:
		return got, fmt.Errorf("JWT aud %q, want %q", got.Aud, wantAud)
	case !got.Exp.After(now):
		return got, fmt.Errorf("JWT expired at %s", got.Exp)
	case got.Exp.After(now.Add(24 * time.Hour)):
		return got, fmt.Errorf("JWT exp %s is more than 24h away", got.Exp)
	}
	return got, nil
}

func decodeSegment(seg string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	return dec.Decode(v)
}
