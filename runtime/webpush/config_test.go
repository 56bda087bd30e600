package webpush_test

import (
	"crypto/ecdh"
	"encoding/base64"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/runtime/webpush"
)

func TestGenerateVAPIDKeys(t *testing.T) {
	pub, priv, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	rawPub, err := base64.RawURLEncoding.DecodeString(pub)
	if err != nil || len(rawPub) != 65 || rawPub[0] != 4 {
		t.Fatalf("public key %q: %d bytes, err %v; want a 65-byte uncompressed point in unpadded base64url", pub, len(rawPub), err)
	}
	rawPriv, err := base64.RawURLEncoding.DecodeString(priv)
	if err != nil || len(rawPriv) != 32 {
		t.Fatalf("private key: %d bytes, err %v; want 32", len(rawPriv), err)
	}
	key, err := ecdh.P256().NewPrivateKey(rawPriv)
	if err != nil {
		t.Fatal(err)
	}
	if string(key.PublicKey().Bytes()) != string(rawPub) {
		t.Fatal("public key does not belong to the private key")
	}
	pub2, _, err := webpush.GenerateVAPIDKeys()
	if err != nil || pub2 == pub {
		t.Fatalf("second pair equals the first (err %v)", err)
	}
}

func TestConfigValidate(t *testing.T) {
	base := testConfig(t)
	otherPub, _, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	rawPub, _ := base64.RawURLEncoding.DecodeString(base.VAPIDPublicKey)
	rawPriv, _ := base64.RawURLEncoding.DecodeString(base.VAPIDPrivateKey)
	tests := []struct {
		name    string
		change  func(*webpush.Config)
		wantErr string // "" = valid
	}{
		{"generated keys", func(*webpush.Config) {}, ""},
		{"padded keys", func(c *webpush.Config) {
			c.VAPIDPublicKey = base64.URLEncoding.EncodeToString(rawPub)
			c.VAPIDPrivateKey = base64.URLEncoding.EncodeToString(rawPriv)
		}, ""},
		{"https subject", func(c *webpush.Config) { c.Subject = "https://chat.example.com/" }, ""},
		{"zero TTL and urgency take defaults", func(c *webpush.Config) { c.TTL, c.Urgency = 0, "" }, ""},
		{"no public key", func(c *webpush.Config) { c.VAPIDPublicKey = "" }, "VAPID public key: missing"},
		{"no private key", func(c *webpush.Config) { c.VAPIDPrivateKey = "" }, "VAPID private key: missing"},
		{"public key of another pair", func(c *webpush.Config) { c.VAPIDPublicKey = otherPub }, "does not belong to the private key"},
		{"public key truncated", func(c *webpush.Config) { c.VAPIDPublicKey = base64.RawURLEncoding.EncodeToString(rawPub[:33]) }, "65-byte uncompressed"},
		{"private key not base64", func(c *webpush.Config) { c.VAPIDPrivateKey = "%%%" }, "VAPID private key: not base64url"},
		{"private key wrong length", func(c *webpush.Config) { c.VAPIDPrivateKey = base64.RawURLEncoding.EncodeToString(rawPriv[:31]) }, "want 32 bytes, got 31"},
		{"private key zero", func(c *webpush.Config) { c.VAPIDPrivateKey = base64.RawURLEncoding.EncodeToString(make([]byte, 32)) }, "not a P-256 scalar"},
		{"no subject", func(c *webpush.Config) { c.Subject = "" }, "VAPID subject: missing"},
		{"bare e-mail subject", func(c *webpush.Config) { c.Subject = "ops@example.com" }, "must start with mailto: or https://"},
		{"http subject", func(c *webpush.Config) { c.Subject = "http://example.com" }, "must start with mailto: or https://"},
		{"mailto without address", func(c *webpush.Config) { c.Subject = "mailto:ops" }, "has no e-mail address"},
		{"negative TTL", func(c *webpush.Config) { c.TTL = -time.Second }, "TTL"},
		{"TTL over four weeks", func(c *webpush.Config) { c.TTL = 29 * 24 * time.Hour }, "TTL"},
		{"unknown urgency", func(c *webpush.Config) { c.Urgency = "urgent" }, `urgency: "urgent"`},
		{"negative concurrency", func(c *webpush.Config) { c.Concurrency = -1 }, "concurrency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.change(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, webpush.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want ErrInvalidConfig mentioning %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), c.VAPIDPrivateKey) && c.VAPIDPrivateKey != "" {
				t.Fatalf("error %q reveals the private key", err)
			}
		})
	}
}

func TestConfigFlags(t *testing.T) {
	var c webpush.Config
	fs := flag.NewFlagSet("notification", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs)
	err := fs.Parse([]string{
		"--vapid-public-key", "pub", "--vapid-private-key", "priv", "--vapid-subject", "mailto:a@b.c",
		"--webpush-ttl", "1h", "--webpush-urgency", "low", "--webpush-allow-insecure-endpoints",
		"--webpush-concurrency", "4", "--webpush-request-timeout", "3s",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := webpush.Config{VAPIDPublicKey: "pub", VAPIDPrivateKey: "priv", Subject: "mailto:a@b.c", TTL: time.Hour,
		Urgency: webpush.UrgencyLow, AllowInsecureEndpoints: true, Concurrency: 4, RequestTimeout: 3 * time.Second}
	if c != want {
		t.Fatalf("parsed %+v\nwant   %+v", c, want)
	}
	if !c.Enabled() || (webpush.Config{}).Enabled() {
		t.Fatal("Enabled must follow the presence of keys")
	}
	if err := fs.Parse([]string{"--webpush-urgency", "asap"}); err == nil {
		t.Fatal("an unknown urgency must be refused at parse time")
	}
}
