package bus

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/parleychat/parley/internal/testenv"
)

// roundTrip publishes one record and reads it back through a group.
func roundTrip(t *testing.T, cfg KafkaConfig) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	k, err := NewKafka(cfg)
	if err != nil {
		return err
	}
	defer k.Close()
	if err := k.EnsureTopics(ctx, "secure"); err != nil {
		return err
	}
	if err := k.Publish(ctx, "secure", Record{Key: []byte("k"), Value: []byte("v")}); err != nil {
		return err
	}
	sub, err := k.Subscribe(ctx, "g", "secure")
	if err != nil {
		return err
	}
	defer sub.Close()
	msgs, err := sub.Fetch(ctx, 1, time.Millisecond)
	if err != nil {
		return err
	}
	if len(msgs) != 1 || string(msgs[0].Value) != "v" {
		t.Fatalf("fetched %+v", msgs)
	}
	return nil
}

func TestKafkaSASL(t *testing.T) {
	for _, mech := range []string{SASLPlain, SASLScramSHA256, SASLScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			method := map[string]string{SASLPlain: "PLAIN", SASLScramSHA256: "SCRAM-SHA-256", SASLScramSHA512: "SCRAM-SHA-512"}[mech]
			brokers := testenv.Kafka(t, kfake.EnableSASL(), kfake.Superuser(method, "parley", "s3cret"))
			cfg := KafkaConfig{Brokers: brokers, Partitions: 1, SASLMechanism: mech, SASLUsername: "parley", SASLPassword: "s3cret"}
			if err := roundTrip(t, cfg); err != nil {
				t.Fatalf("with the right password: %v", err)
			}
			cfg.SASLPassword = "wrong"
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			k, err := NewKafka(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			if err := k.Ping(ctx, "secure"); err == nil {
				t.Fatal("a wrong SASL password was accepted")
			}
		})
	}
}

func TestKafkaTLSWithCAFile(t *testing.T) {
	caFile, serverCfg := selfSignedTLS(t)
	brokers := testenv.Kafka(t, kfake.TLS(serverCfg))
	if err := roundTrip(t, KafkaConfig{Brokers: brokers, Partitions: 1, TLS: true, TLSCAFile: caFile}); err != nil {
		t.Fatalf("TLS with the CA: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	k, err := NewKafka(KafkaConfig{Brokers: brokers, Partitions: 1, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if err := k.Ping(ctx, "secure"); err == nil {
		t.Fatal("an unknown CA was trusted")
	}
}

func TestKafkaSecurityConfigErrors(t *testing.T) {
	for name, cfg := range map[string]KafkaConfig{
		"unknown mechanism":      {Brokers: []string{"127.0.0.1:1"}, SASLMechanism: "kerberos", SASLUsername: "u"},
		"mechanism without user": {Brokers: []string{"127.0.0.1:1"}, SASLMechanism: SASLPlain},
		"user without mechanism": {Brokers: []string{"127.0.0.1:1"}, SASLUsername: "u"},
		"missing CA file":        {Brokers: []string{"127.0.0.1:1"}, TLSCAFile: "/nonexistent/ca.pem"},
	} {
		if _, err := NewKafka(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: err = %v, want ErrInvalidConfig", name, err)
		}
	}
}

// selfSignedTLS makes a CA-signed-by-itself certificate for 127.0.0.1 and writes the CA
// (the same certificate) to a PEM file.
func selfSignedTLS(t *testing.T) (string, *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kfake test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return file, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}
