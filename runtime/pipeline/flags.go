package pipeline

import "flag"

// RegisterFlags registers the batching settings on fs (the role's flag set, so every flag
// also reads PARLEY_PIPELINE_*), with the defaults of Config.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.MaxBatch, "pipeline-batch-size", DefaultMaxBatch, "flush a batch of events at this many")
	fs.DurationVar(&c.Linger, "pipeline-batch-linger", DefaultLinger, "flush a batch this long after its first event")
	fs.DurationVar(&c.StaleAfter, "pipeline-stale-after", DefaultStaleAfter, "report not ready when the consumer has not polled for this long")
}
