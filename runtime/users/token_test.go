package users

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestVerifyAccessToken(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	auth, err := NewAuth(key, 15*time.Minute, clock)
	if err != nil {
		t.Fatal(err)
	}
	good, _, err := auth.IssueAccessToken("u1")
	if err != nil {
		t.Fatal(err)
	}
	claims := func(exp time.Time) jwt.RegisteredClaims {
		return jwt.RegisteredClaims{Issuer: "parley", Subject: "u1", ExpiresAt: jwt.NewNumericDate(exp)}
	}
	sign := func(m jwt.SigningMethod, k any, c jwt.Claims) string {
		s, err := jwt.NewWithClaims(m, c).SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + strings.TrimRight(parts[1], "=") + "x." + parts[2]
	tests := []struct {
		name   string
		token  string
		wantOK bool
	}{
		{"valid", good, true},
		{"tampered payload", tampered, false},
		{"tampered signature", parts[0] + "." + parts[1] + "." + strings.ToUpper(parts[2]), false},
		{"other key", sign(jwt.SigningMethodHS256, []byte("another key another key another!!"), claims(now.Add(time.Minute))), false},
		{"alg none", sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(now.Add(time.Minute))), false},
		{"alg HS512 with our key", sign(jwt.SigningMethodHS512, key, claims(now.Add(time.Minute))), false},
		{"expired", sign(jwt.SigningMethodHS256, key, claims(now.Add(-time.Second))), false},
		{"no expiry", sign(jwt.SigningMethodHS256, key, jwt.RegisteredClaims{Issuer: "parley", Subject: "u1"}), false},
		{"other issuer", sign(jwt.SigningMethodHS256, key, jwt.RegisteredClaims{Issuer: "evil", Subject: "u1", ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute))}), false},
		{"no subject", sign(jwt.SigningMethodHS256, key, jwt.RegisteredClaims{Issuer: "parley", ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute))}), false},
		{"empty", "", false},
		{"garbage", "not.a.jwt", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := auth.VerifyAccessToken(tc.token)
			if tc.wantOK {
				if err != nil || c.UserID != "u1" || !c.ExpiresAt.Equal(now.Add(15*time.Minute)) {
					t.Fatalf("VerifyAccessToken = %+v, %v", c, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("VerifyAccessToken = %+v, %v; want ErrInvalidToken", c, err)
			}
		})
	}
	later, _ := NewAuth(key, 15*time.Minute, func() time.Time { return now.Add(16 * time.Minute) })
	if _, err := later.VerifyAccessToken(good); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("token after its ttl: %v", err)
	}
	if _, err := NewAuth([]byte("short"), time.Minute, nil); err == nil {
		t.Fatal("NewAuth accepted a 5-byte key")
	}
}

func TestPasswordHash(t *testing.T) {
	p := PasswordParams{Time: 1, Memory: 64, Threads: 1}
	h, err := HashPassword("correct horse", p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash format: %s", h)
	}
	h2, _ := HashPassword("correct horse", p)
	if h == h2 {
		t.Fatal("two hashes of one password are equal: salt missing")
	}
	for pw, want := range map[string]bool{"correct horse": true, "correct horsf": false, "": false} {
		if ok, err := VerifyPassword(pw, h); err != nil || ok != want {
			t.Errorf("VerifyPassword(%q) = %v, %v; want %v", pw, ok, err, want)
		}
	}
	if _, err := VerifyPassword("x", "$2a$10$bcrypt"); err == nil {
		t.Error("VerifyPassword accepted a non-argon2id hash")
	}
}

func TestAcceptPreviousKeyAfterRotation(t *testing.T) {
	oldKey := []byte("old-key-old-key-old-key-old-key!")
	newKey := []byte("new-key-new-key-new-key-new-key!")
	otherKey := []byte("other-key-other-key-other-key-ot")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	issue := func(key []byte) string {
		a, err := NewAuth(key, 15*time.Minute, clock)
		if err != nil {
			t.Fatal(err)
		}
		tok, _, err := a.IssueAccessToken("u1")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	rotated, err := NewAuth(newKey, 15*time.Minute, clock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rotated.VerifyAccessToken(issue(oldKey)); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("old token before AcceptPreviousKey: err = %v, want ErrInvalidToken", err)
	}
	if err := rotated.AcceptPreviousKey([]byte("short")); err == nil {
		t.Fatal("a short previous key was accepted")
	}
	if err := rotated.AcceptPreviousKey(oldKey); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		token  string
		wantOK bool
	}{
		{"signed with the current key", issue(newKey), true},
		{"signed with the previous key", issue(oldKey), true},
		{"signed with another key", issue(otherKey), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := rotated.VerifyAccessToken(tc.token)
			if (err == nil) != tc.wantOK || (tc.wantOK && c.UserID != "u1") {
				t.Fatalf("verify: claims %+v, err %v, want ok=%v", c, err, tc.wantOK)
			}
		})
	}
	// New tokens are signed with the current key only.
	current, err := NewAuth(newKey, 15*time.Minute, clock)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := rotated.IssueAccessToken("u2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := current.VerifyAccessToken(tok); err != nil {
		t.Fatalf("a token issued after rotation does not verify with the new key alone: %v", err)
	}
	if err := rotated.AcceptPreviousKey(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := rotated.VerifyAccessToken(issue(oldKey)); err == nil {
		t.Fatal("the previous key is still accepted after it was dropped")
	}
}
