package httpapi

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the core's Prometheus series. It also observes the chat service's batches.
type Metrics struct {
	requests  *prometheus.HistogramVec
	persisted prometheus.Counter
	duplicate prometheus.Counter
	rejected  prometheus.Counter
	batchSize prometheus.Histogram
}

// NewMetrics registers the series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "parley_http_request_duration_seconds",
			Help:    "REST request latency by route pattern, method and status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "method", "code"}),
		persisted: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_messages_persisted_total", Help: "Messages stored (first time)."}),
		duplicate: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_messages_duplicate_total", Help: "Sends answered with an already stored message."}),
		rejected:  prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_messages_rejected_total", Help: "Sends rejected by validation."}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parley_message_batch_size",
			Help:    "Requests per SendBatch call (group commit size).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
	}
	reg.MustRegister(m.requests, m.persisted, m.duplicate, m.rejected, m.batchSize)
	return m
}

// BatchCommitted implements chat.Observer.
func (m *Metrics) BatchCommitted(size, persisted, duplicates, rejected int) {
	m.batchSize.Observe(float64(size))
	m.persisted.Add(float64(persisted))
	m.duplicate.Add(float64(duplicates))
	m.rejected.Add(float64(rejected))
}
