package gateway

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of one gateway.
type Metrics struct {
	connections prometheus.Gauge
	framesIn    *prometheus.CounterVec
	framesOut   *prometheus.CounterVec
	queueDrops  prometheus.Counter
	refused     *prometheus.CounterVec
	disconnects *prometheus.CounterVec
	sendToAck   prometheus.Histogram

	pendingMu sync.Mutex
	pending   map[string]time.Time
}

// maxPendingAcks bounds the send→ack latency bookkeeping; sends beyond it are not timed.
const maxPendingAcks = 100_000

// NewMetrics creates the gateway's metrics and registers them with reg when not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "parley_gateway_connections", Help: "Open WebSocket connections."}),
		framesIn:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_gateway_frames_in_total", Help: "Client frames received, by type."}, []string{"type"}),
		framesOut:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_gateway_frames_out_total", Help: "Server frames written, by type."}, []string{"type"}),
		queueDrops:  prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_gateway_queue_drops_total", Help: "Connections dropped because their send queue was full."}),
		refused:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_gateway_upgrades_refused_total", Help: "Upgrades refused, by reason."}, []string{"reason"}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_gateway_disconnects_total", Help: "Connections closed by the server, by reason."}, []string{"reason"}),
		sendToAck: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "parley_gateway_send_ack_seconds",
			Help: "Time from a send frame to its ack leaving this gateway.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		pending: map[string]time.Time{},
	}
	if reg != nil {
		reg.MustRegister(m.connections, m.framesIn, m.framesOut, m.queueDrops, m.refused, m.disconnects, m.sendToAck)
	}
	return m
}

func (g *Gateway) trackSend(user, clientID string) {
	m := g.metrics
	m.pendingMu.Lock()
	defer m.pendingMu.Unlock()
	if len(m.pending) < maxPendingAcks {
		m.pending[user+"|"+clientID] = time.Now()
	}
}

func (g *Gateway) observeAck(user, clientID string) {
	m := g.metrics
	m.pendingMu.Lock()
	start, ok := m.pending[user+"|"+clientID]
	delete(m.pending, user+"|"+clientID)
	m.pendingMu.Unlock()
	if ok {
		m.sendToAck.Observe(time.Since(start).Seconds())
	}
}

func writeHTTPError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": code, "message": message})
}
