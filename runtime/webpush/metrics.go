package webpush

import "github.com/prometheus/client_golang/prometheus"

// Failure reasons, the values of the reason label of parley_webpush_failed_total.
const (
	FailRateLimited     = "rate_limited"     // 429
	FailServerError     = "server_error"     // 5xx
	FailRejected        = "rejected"         // other 4xx: bad VAPID, payload too large, ...
	FailUnexpected      = "unexpected"       // 1xx/3xx: the push service did something odd
	FailTimeout         = "timeout"          // no answer within the request timeout
	FailNetwork         = "network"          // connection refused, DNS, TLS, ...
	FailBadSubscription = "bad_subscription" // stored keys the encryption cannot use
	FailStore           = "store"            // the expired subscription could not be deleted
)

// Metrics counts what the Sender does.
type Metrics struct {
	sent    prometheus.Counter
	failed  *prometheus.CounterVec
	expired prometheus.Counter
	queue   prometheus.Gauge
	dropped prometheus.Counter
}

// NewMetrics registers the Web Push metrics on reg (nil: not registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_webpush_sent_total",
			Help: "Web Push notifications accepted by a push service.",
		}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_webpush_failed_total",
			Help: "Web Push notifications not delivered, by reason; expired subscriptions are counted apart.",
		}, []string{"reason"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_webpush_subscriptions_expired_total",
			Help: "Subscriptions removed because their push service answered 404 or 410.",
		}),
		queue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_webpush_queue_depth",
			Help: "Messages waiting for a push worker.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_webpush_dropped_total",
			Help: "Notifications (one per user) dropped because the push queue was full.",
		}),
	}
	// Every reason exists from the start so that rate() over it works before the first failure.
	for _, r := range []string{FailRateLimited, FailServerError, FailRejected, FailUnexpected, FailTimeout, FailNetwork, FailBadSubscription, FailStore} {
		m.failed.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.sent, m.failed, m.expired, m.queue, m.dropped)
	}
	return m
}
