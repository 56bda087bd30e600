package bus

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// SASL mechanisms.
const (
	SASLPlain       = "plain"
	SASLScramSHA256 = "scram-sha-256"
	SASLScramSHA512 = "scram-sha-512"
)

// security returns the TLS configuration and SASL mechanism of c (nil, nil: plaintext).
func (c KafkaConfig) security() (*tls.Config, sasl.Mechanism, error) {
	var tlsCfg *tls.Config
	if c.TLS || c.TLSCAFile != "" {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
		if c.TLSCAFile != "" {
			pem, err := os.ReadFile(c.TLSCAFile)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: kafka CA file: %w", ErrInvalidConfig, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, nil, fmt.Errorf("%w: kafka CA file %s holds no PEM certificate", ErrInvalidConfig, c.TLSCAFile)
			}
			tlsCfg.RootCAs = pool
		}
	}
	var mech sasl.Mechanism
	switch strings.ToLower(c.SASLMechanism) {
	case "":
		if c.SASLUsername != "" {
			return nil, nil, fmt.Errorf("%w: a SASL username needs --kafka-sasl-mechanism", ErrInvalidConfig)
		}
	case SASLPlain:
		mech = plain.Mechanism{Username: c.SASLUsername, Password: c.SASLPassword}
	case SASLScramSHA256, SASLScramSHA512:
		algo := scram.SHA256
		if strings.ToLower(c.SASLMechanism) == SASLScramSHA512 {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, c.SASLUsername, c.SASLPassword)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: scram: %w", ErrInvalidConfig, err)
		}
		mech = m
	default:
		return nil, nil, fmt.Errorf("%w: SASL mechanism %q: want plain, scram-sha-256 or scram-sha-512", ErrInvalidConfig, c.SASLMechanism)
	}
	if mech != nil && c.SASLUsername == "" {
		return nil, nil, fmt.Errorf("%w: SASL %s needs a username", ErrInvalidConfig, c.SASLMechanism)
	}
	return tlsCfg, mech, nil
}

func (c KafkaConfig) transport() (*kafka.Transport, *kafka.Dialer, error) {
	tlsCfg, mech, err := c.security()
	if err != nil {
		return nil, nil, err
	}
	t := &kafka.Transport{TLS: tlsCfg, SASL: mech, DialTimeout: 10 * time.Second}
	d := &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, TLS: tlsCfg, SASLMechanism: mech}
	return t, d, nil
}
