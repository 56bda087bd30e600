package webpushtest_test

import (
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/runtime/webpush"
	"github.com/parleychat/parley/runtime/webpush/webpushtest"
)

// signES256 builds a VAPID header the way RFC 8292 describes it, independently of the
// library the sender uses, to check that the verifier accepts exactly what it should.
func signES256(t *testing.T, key *ecdsa.PrivateKey, alg string, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	head, _ := json.Marshal(map[string]string{"typ": "JWT", "alg": alg})
	body, _ := json.Marshal(claims)
	input := enc(head) + "." + enc(body)
	digest := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + enc(sig)
}

func TestVerifyVAPID(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	point, _ := key.PublicKey.Bytes()
	k := base64.RawURLEncoding.EncodeToString(point)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherPoint, _ := other.PublicKey.Bytes()
	now := time.Now()
	const aud = "https://push.example"
	good := map[string]any{"aud": aud, "exp": now.Add(time.Hour).Unix(), "sub": "mailto:a@b.c"}
	with := func(name string, v any) map[string]any {
		c := map[string]any{}
		for k, v := range good {
			c[k] = v
		}
		c[name] = v
		return c
	}
	tests := []struct {
		name    string
		header  string
		wantErr string
	}{
		{"valid", "vapid t=" + signES256(t, key, "ES256", good) + ", k=" + k, ""},
		{"valid with padded k", "vapid t=" + signES256(t, key, "ES256", good) + ", k=" + base64.URLEncoding.EncodeToString(point), ""},
		{"bearer scheme", "Bearer " + signES256(t, key, "ES256", good), "want vapid"},
		{"no k", "vapid t=" + signES256(t, key, "ES256", good), "lacks t= or k="},
		{"k of another key", "vapid t=" + signES256(t, key, "ES256", good) + ", k=" + base64.RawURLEncoding.EncodeToString(otherPoint), "configured public key"},
		{"signed by another key", "vapid t=" + signES256(t, other, "ES256", good) + ", k=" + k, "does not verify"},
		{"alg none", "vapid t=" + signES256(t, key, "none", good) + ", k=" + k, "want ES256"},
		{"wrong audience", "vapid t=" + signES256(t, key, "ES256", with("aud", "https://evil.example")) + ", k=" + k, "aud"},
		{"expired", "vapid t=" + signES256(t, key, "ES256", with("exp", now.Add(-time.Minute).Unix())) + ", k=" + k, "expired"},
		{"exp over 24h", "vapid t=" + signES256(t, key, "ES256", with("exp", now.Add(25*time.Hour).Unix())) + ", k=" + k, "more than 24h"},
		{"claims changed after signing", "vapid t=" + tamper(signES256(t, key, "ES256", good)) + ", k=" + k, "does not verify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			claims, err := webpushtest.VerifyVAPID(tt.header, k, aud, now)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("VerifyVAPID = %v", err)
				}
				if claims.Sub != "mailto:a@b.c" || claims.Aud != aud {
					t.Fatalf("claims %+v", claims)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("VerifyVAPID = %v, want an error mentioning %q", err, tt.wantErr)
			}
		})
	}
}

// tamper swaps the claims for other claims, keeping the signature.
func tamper(token string) string {
	parts := strings.Split(token, ".")
	body, _ := json.Marshal(map[string]any{"aud": "https://push.example", "exp": time.Now().Add(2 * time.Hour).Unix(), "sub": "mailto:x@y.z"})
	parts[1] = base64.RawURLEncoding.EncodeToString(body)
	return strings.Join(parts, ".")
}

// TestPushServiceRefusesWhatItCannotDecrypt shows the decryption check can fail: a
// notification encrypted for one browser does not decrypt with another's keys, and a
// flipped ciphertext bit fails authentication.
func TestPushServiceRefusesWhatItCannotDecrypt(t *testing.T) {
	pub, priv, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	cfg := webpush.Config{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subject: "mailto:ops@parley.test"}
	ps := webpushtest.StartPushService(t, pub, cfg.Subject, true)
	sub, _ := ps.Subscribe(t)
	stranger, err := webpushtest.NewBrowser()
	if err != nil {
		t.Fatal(err)
	}
	// The store holds the endpoint with the stranger's keys: what arrives is encrypted
	// for the stranger, so the owner of the endpoint cannot read it.
	store := webpush.NewMemoryStore()
	wrong := stranger.Subscription(sub.Endpoint)
	if err := store.Add(context.Background(), "alice", wrong); err != nil {
		t.Fatal(err)
	}
	sender, err := webpush.NewSender(cfg, store, webpush.WithHTTPClient(ps.Client()))
	if err != nil {
		t.Fatal(err)
	}
	if sent, err := sender.Notify(context.Background(), "alice", webpush.Payload{Type: "message", Room: "r", Sender: "s", Seq: 1}); sent != 0 || err == nil {
		t.Fatalf("sent %d, err %v: the push service must refuse", sent, err)
	}
	got := ps.Received()
	if len(got) != 1 || got[0].Err == nil || !strings.Contains(got[0].Err.Error(), "aes-gcm open") {
		t.Fatalf("received %+v, want a decryption failure", got)
	}
}

func TestDecryptRejectsMalformedBodies(t *testing.T) {
	b, err := webpushtest.NewBrowser()
	if err != nil {
		t.Fatal(err)
	}
	server, _ := ecdh.P256().GenerateKey(rand.Reader)
	header := func(rs uint32, keyID []byte) []byte {
		h := make([]byte, 16, 16+4+1+len(keyID))
		h = append(h, byte(rs>>24), byte(rs>>16), byte(rs>>8), byte(rs))
		h = append(h, byte(len(keyID)))
		return append(h, keyID...)
	}
	tests := []struct {
		name    string
		body    []byte
		wantErr string
	}{
		{"empty", nil, "shorter than the aes128gcm header"},
		{"key id not a public key", append(header(4096, []byte("kid")), make([]byte, 40)...), "key id of 3 bytes"},
		{"two records", append(header(18, server.PublicKey().Bytes()), make([]byte, 40)...), "allows one record"},
		{"too big", make([]byte, webpushtest.MaxBody+1), "exceeds"},
		{"garbage ciphertext", append(header(4096, server.PublicKey().Bytes()), make([]byte, 40)...), "aes-gcm open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := b.Decrypt(tt.body); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Decrypt = %v, want an error mentioning %q", err, tt.wantErr)
			}
		})
	}
}
