package files

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts file traffic. A nil *Metrics counts nothing, so tests and tools can
// leave it out.
type Metrics struct {
	bytesIn  prometheus.Counter
	bytesOut prometheus.Counter
	rejected *prometheus.CounterVec
	uploads  prometheus.Counter
}

// NewMetrics registers the file metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_files_bytes_in_total",
			Help: "Bytes received in upload bodies, accepted or not.",
		}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_files_bytes_out_total",
			Help: "Bytes of files and thumbnails sent to clients.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_files_uploads_rejected_total",
			Help: "Uploads refused, by reason.",
		}, []string{"reason"}),
		uploads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_files_uploads_total",
			Help: "Uploads stored.",
		}),
	}
	for _, c := range []prometheus.Collector{m.bytesIn, m.bytesOut, m.rejected, m.uploads} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Every reason shows up as 0 from the start, so rate() works before the first refusal.
	for _, r := range []RejectReason{RejectTooLarge, RejectQuota, RejectUnauthorized, RejectBadRequest, RejectAborted, RejectInternal} {
		m.rejected.WithLabelValues(string(r))
	}
	return m, nil
}

// AddBytesIn counts received upload bytes.
func (m *Metrics) AddBytesIn(n int64) {
	if m != nil && n > 0 {
		m.bytesIn.Add(float64(n))
	}
}

// AddBytesOut counts bytes sent to clients.
func (m *Metrics) AddBytesOut(n int64) {
	if m != nil && n > 0 {
		m.bytesOut.Add(float64(n))
	}
}

// Rejected counts one refused upload.
func (m *Metrics) Rejected(reason RejectReason) {
	if m != nil {
		m.rejected.WithLabelValues(string(reason)).Inc()
	}
}

func (m *Metrics) uploaded() {
	if m != nil {
		m.uploads.Inc()
	}
}
