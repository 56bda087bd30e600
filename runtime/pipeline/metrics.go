package pipeline

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	batches       *prometheus.CounterVec
	batchSize     *prometheus.HistogramVec
	batchDuration *prometheus.HistogramVec
	accepted      prometheus.Counter
	rejected      *prometheus.CounterVec
	receipts      *prometheus.CounterVec
	undecodable   *prometheus.CounterVec
	applyErrors   *prometheus.CounterVec
	publishErrors *prometheus.CounterVec
	commitErrors  *prometheus.CounterVec
	lag           *prometheus.GaugeVec
	announced     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	consumer := []string{"consumer"}
	m := &metrics{
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_pipeline_batches_total", Help: "Batches fetched from the bus.",
		}, consumer),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "parley_pipeline_batch_size", Help: "Events per batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11), // 1 .. 1024
		}, consumer),
		batchDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "parley_pipeline_batch_duration_seconds", Help: "Time from fetch to offset commit of a batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5 ms .. 4 s
		}, consumer),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_pipeline_messages_accepted_total", Help: "Messages persisted (or found persisted) and delivered.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_pipeline_messages_rejected_total", Help: "Messages refused, by reason code.",
		}, []string{"reason"}),
		receipts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_pipeline_receipts_total", Help: "Receipts applied, by whether a cursor moved.",
		}, []string{"result"}),
		undecodable: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_pipeline_undecodable_total", Help: "Events that could not be decoded and named no sender to answer; dropped.",
		}, consumer),
		applyErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_pipeline_apply_errors_total", Help: "Failed database calls; the batch is retried.",
		}, consumer),
		publishErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_pipeline_publish_errors_total", Help: "Failed publications of answers; retried.",
		}, consumer),
		commitErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_pipeline_commit_errors_total", Help: "Failed offset commits; the batch will be replayed.",
		}, consumer),
		announced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_pipeline_messages_announced_total", Help: "Stored messages announced on chat.message_delivered by the outbox relay.",
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "parley_pipeline_consumer_lag", Help: "Events behind the end of the partitions this consumer last read, as of its last batch.",
		}, consumer),
	}
	for _, c := range []prometheus.Collector{m.batches, m.batchSize, m.batchDuration, m.accepted, m.rejected,
		m.receipts, m.undecodable, m.applyErrors, m.publishErrors, m.commitErrors, m.lag, m.announced} {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if errors.As(err, &already) {
				return nil, fmt.Errorf("%w: pipeline metrics registered twice on one registry", ErrInvalidConfig)
			}
			return nil, fmt.Errorf("register pipeline metrics: %w", err)
		}
	}
	return m, nil
}
