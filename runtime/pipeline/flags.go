package pipeline

import "flag"

// RegisterFlags registers the batching settings on fs (the role's flag set, so every flag
// also reads PARLEY_PIPELINE_*), with the defaults of Config.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.MaxBatch, "pipeline-batch-size", DefaultMaxBatch, "most events in one batch (one transaction)")
	fs.DurationVar(&c.Linger, "pipeline-batch-linger", DefaultLinger, "longest a batch keeps gathering events after its first: an upper bound, not a wait (a batch is what arrived while the previous one was being stored)")
	fs.IntVar(&c.Consumers, "pipeline-consumers", DefaultConsumers(), "members of the message consumer group in this process: partitions of chat.message_sent worked at once (default: the usable cores, 2 to 8)")
	fs.DurationVar(&c.StaleAfter, "pipeline-stale-after", DefaultStaleAfter, "report not ready when the consumer has not polled for this long")
	fs.DurationVar(&c.RelayPoll, "pipeline-relay-poll", DefaultRelayPoll, "how often the outbox relay looks for messages stored by other processes (local commits wake it at once)")
	fs.IntVar(&c.RelayBatch, "pipeline-relay-batch", DefaultRelayBatch, "most announcements the outbox relay publishes in one round")
}
