// Package webpushtest plays the other side of Web Push for tests: a browser (its key pair,
// its auth secret, RFC 8291 decryption written with the standard library alone) and a
// local push service that checks VAPID and decrypts what it receives. It also holds the
// contract every webpush.Store implementation must meet.
package webpushtest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/parleychat/parley/runtime/webpush"
)

// Browser is the user agent's half of a push subscription: an ECDH key pair and an
// authentication secret, both of which never leave the browser.
type Browser struct {
	Key  *ecdh.PrivateKey
	Auth []byte
}

// NewBrowser generates a P-256 key pair and a 16-byte auth secret, as pushManager.subscribe does.
func NewBrowser() (*Browser, error) {
	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("browser key: %w", err)
	}
	auth := make([]byte, 16)
	if _, err := rand.Read(auth); err != nil {
		return nil, fmt.Errorf("browser auth secret: %w", err)
	}
	return &Browser{Key: key, Auth: auth}, nil
}

// Subscription is what PushSubscription.toJSON() would give for endpoint.
func (b *Browser) Subscription(endpoint string) webpush.Subscription {
	return webpush.Subscription{
		Endpoint: endpoint,
		Keys: webpush.Keys{
			P256dh: base64.RawURLEncoding.EncodeToString(b.Key.PublicKey().Bytes()),
			Auth:   base64.RawURLEncoding.EncodeToString(b.Auth),
		},
	}
}

// MaxBody is the body size push services must accept (RFC 8291 §4), and the most this
// test push service accepts.
const MaxBody = 4096

// Decrypt reverses RFC 8291 (Message Encryption for Web Push) over RFC 8188 (aes128gcm),
// enforcing what RFC 8291 §4 requires of an application server: one record, the sender's
// ephemeral public key as key id.
func (b *Browser) Decrypt(body []byte) ([]byte, error) {
	const headerLen = 16 + 4 + 1
	if len(body) > MaxBody {
		return nil, fmt.Errorf("body of %d bytes exceeds %d", len(body), MaxBody)
	}
	if len(body) < headerLen {
		return nil, fmt.Errorf("body of %d bytes is shorter than the aes128gcm header", len(body))
	}
	salt := body[:16]
	rs := binary.BigEndian.Uint32(body[16:20])
	idLen := int(body[20])
	if idLen != 65 {
		return nil, fmt.Errorf("key id of %d bytes, want the 65-byte ephemeral public key", idLen)
	}
	if len(body) < headerLen+idLen {
		return nil, errors.New("body ends inside the key id")
	}
	serverPublic, err := ecdh.P256().NewPublicKey(body[headerLen : headerLen+idLen])
	if err != nil {
		return nil, fmt.Errorf("key id is not a P-256 point: %w", err)
	}
	ciphertext := body[headerLen+idLen:]
	if rs < 18 {
		return nil, fmt.Errorf("record size %d below the minimum of 18", rs)
	}
	if uint64(len(ciphertext)) > uint64(rs) {
		return nil, fmt.Errorf("%d bytes of records with record size %d: Web Push allows one record", len(ciphertext), rs)
	}
	if len(ciphertext) < 17 {
		return nil, errors.New("record shorter than tag and delimiter")
	}

	ecdhSecret, err := b.Key.ECDH(serverPublic)
	if err != nil {
		return nil, fmt.Errorf("ecdh: %w", err)
	}
	// RFC 8291 §3.4: the auth secret and both public keys go into the input keying material.
	prkKey, err := hkdf.Extract(sha256.New, ecdhSecret, b.Auth)
	if err != nil {
		return nil, err
	}
	keyInfo := "WebPush: info\x00" + string(b.Key.PublicKey().Bytes()) + string(serverPublic.Bytes())
	ikm, err := hkdf.Expand(sha256.New, prkKey, keyInfo, 32)
	if err != nil {
		return nil, err
	}
	// RFC 8188 §2.2 and §2.3: content encryption key and nonce from the salt.
	prk, err := hkdf.Extract(sha256.New, ikm, salt)
	if err != nil {
		return nil, err
	}
	cek, err := hkdf.Expand(sha256.New, prk, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Expand(sha256.New, prk, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	// The only record has sequence number 0, so the nonce is used as derived.
	padded, err := gcm.Open(nil, nonce, ciphertext, nil)
	if err != nil {
		return nil, fmt.Errorf("aes-gcm open: %w", err)
	}
	// RFC 8188 §2: data, then a delimiter (2 for the last record), then zero padding.
	end := len(padded) - 1
	for end >= 0 && padded[end] == 0 {
		end--
	}
	if end < 0 {
		return nil, errors.New("record has no padding delimiter")
	}
	if padded[end] != 2 {
		return nil, fmt.Errorf("padding delimiter 0x%02x, want 0x02 (last record)", padded[end])
	}
	return padded[:end], nil
}
