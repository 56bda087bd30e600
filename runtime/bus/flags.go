package bus

import (
	"context"
	"flag"
	"strings"
)

// DefaultPartitions is how many partitions EnsureTopics gives a new topic when the role
// is not told otherwise: enough for several core replicas to share the load.
const DefaultPartitions = 6

// RegisterFlags registers the Kafka settings on fs (the role's flag set, so every flag also
// reads PARLEY_KAFKA_*), with the defaults of KafkaConfig.
func (c *KafkaConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.Var((*brokerList)(&c.Brokers), "kafka-brokers", "comma-separated Kafka bootstrap addresses (host:port)")
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	fs.IntVar(&c.Partitions, "kafka-partitions", c.Partitions, "partitions of topics created at start (existing topics are left alone)")
	fs.DurationVar(&c.BatchTimeout, "kafka-batch-timeout", DefaultBatchTimeout, "longest the producer holds a batch open: an upper bound, not a wait (a batch goes as soon as the previous write completes)")
	fs.DurationVar(&c.MaxWait, "kafka-max-wait", DefaultMaxWait, "longest broker wait of an idle fetch")
	fs.DurationVar(&c.SessionTimeout, "kafka-session-timeout", DefaultSessionTimeout, "how long the consumer group waits for a silent member (a killed process) before moving its partitions; the brokers' group.min.session.timeout.ms must allow it")
	fs.DurationVar(&c.HeartbeatInterval, "kafka-heartbeat-interval", DefaultHeartbeatInterval, "how often a group member heartbeats; well under --kafka-session-timeout")
	fs.DurationVar(&c.RebalanceTimeout, "kafka-rebalance-timeout", DefaultRebalanceTimeout, "how long a rebalance waits for live members to rejoin")
	fs.BoolVar(&c.TLS, "kafka-tls", c.TLS, "connect to the brokers over TLS (system roots unless --kafka-tls-ca-file)")
	fs.StringVar(&c.TLSCAFile, "kafka-tls-ca-file", c.TLSCAFile, "PEM file of the CA that signed the brokers' certificates")
	fs.StringVar(&c.SASLMechanism, "kafka-sasl-mechanism", c.SASLMechanism, "SASL mechanism: plain, scram-sha-256 or scram-sha-512 (empty: none)")
	fs.StringVar(&c.SASLUsername, "kafka-sasl-username", c.SASLUsername, "SASL username")
	fs.StringVar(&c.SASLPassword, "kafka-sasl-password", c.SASLPassword, "SASL password; a secret")
}

// EnsureTopics creates the missing topics with the configured partitions (see the
// package function EnsureTopics).
func (k *Kafka) EnsureTopics(ctx context.Context, topics ...string) error {
	parts := k.cfg.Partitions
	if parts == 0 {
		parts = DefaultPartitions
	}
	return ensureTopics(ctx, k.transport, k.cfg.Brokers, parts, topics...)
}

type brokerList []string

func (b *brokerList) String() string {
	if b == nil {
		return ""
	}
	return strings.Join(*b, ",")
}

func (b *brokerList) Set(v string) error {
	*b = nil
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*b = append(*b, s)
		}
	}
	return nil
}
