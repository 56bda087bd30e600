package gateway

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/runtime/protocol"
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

	// framesOutBy caches framesOut's counter of each server frame type: looking a label
	// up costs more than the rest of a delivery's accounting.
	framesOutBy map[protocol.FrameType]prometheus.Counter

	pendingMu sync.Mutex
	pending   map[string]time.Time
	// order lists pending's keys oldest first (acked ones included until they reach the
	// front), so that sends whose ack never came are evicted in order.
	order []pendingSend
}

type pendingSend struct {
	key string
	at  time.Time
}

// maxPendingAcks bounds the send→ack latency bookkeeping: past it the oldest send is
// forgotten (its ack, if it ever comes, is not timed).
const maxPendingAcks = 100_000

// pendingAckTTL is how long a send waits for its ack in the bookkeeping; an ack that
// never came (the client went away, the pipeline refused it silently) is evicted after it.
const pendingAckTTL = 2 * time.Minute

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
	m.framesOutBy = map[protocol.FrameType]prometheus.Counter{}
	for _, t := range protocol.ServerFrameTypes() {
		m.framesOutBy[t] = m.framesOut.WithLabelValues(string(t))
	}
	if reg != nil {
		reg.MustRegister(m.connections, m.framesIn, m.framesOut, m.queueDrops, m.refused, m.disconnects, m.sendToAck)
	}
	return m
}

// frameOut counts a written frame.
func (m *Metrics) frameOut(t protocol.FrameType) {
	if c, ok := m.framesOutBy[t]; ok {
		c.Inc()
		return
	}
	m.framesOut.WithLabelValues(string(t)).Inc()
}

func (g *Gateway) trackSend(user, clientID string) {
	g.metrics.trackSendAt(user+"|"+clientID, time.Now())
}

// trackSendAt records a send, first evicting what expired (or what the bound pushes out).
func (m *Metrics) trackSendAt(key string, now time.Time) {
	m.pendingMu.Lock()
	defer m.pendingMu.Unlock()
	for len(m.order) > 0 {
		old := m.order[0]
		at, ok := m.pending[old.key]
		switch {
		case !ok || !at.Equal(old.at):
			// acked, or re-sent with the same id (a newer entry follows): not pending here
		case now.Sub(old.at) > pendingAckTTL || len(m.pending) >= maxPendingAcks:
			delete(m.pending, old.key)
		default:
			m.order = m.compactOrder()
			m.pending[key] = now
			m.order = append(m.order, pendingSend{key: key, at: now})
			return
		}
		m.order[0] = pendingSend{}
		m.order = m.order[1:]
	}
	m.pending[key] = now
	m.order = append(m.order, pendingSend{key: key, at: now})
}

// compactOrder moves order to a fresh array when most of its backing array is behind it,
// so the queue's memory stays proportional to what is pending.
func (m *Metrics) compactOrder() []pendingSend {
	if cap(m.order) > 1024 && len(m.order) < cap(m.order)/4 {
		return append([]pendingSend(nil), m.order...)
	}
	return m.order
}

// pendingAcks is the number of sends waiting for their ack in the bookkeeping.
func (m *Metrics) pendingAcks() int {
	m.pendingMu.Lock()
	defer m.pendingMu.Unlock()
	return len(m.pending)
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
