package deps

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Health serves /healthz (the process answers), /readyz (every check passes) and
// /metrics for roles that have no REST API of their own.
type Health struct {
	Registry *prometheus.Registry

	mu     sync.RWMutex
	checks map[string]func(context.Context) error
}

// NewHealth returns a health endpoint with Go and process collectors registered.
func NewHealth() *Health {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Health{Registry: reg, checks: map[string]func(context.Context) error{}}
}

// AddReadiness adds a named condition to /readyz.
func (h *Health) AddReadiness(name string, check func(context.Context) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks[name] = check
}

// Register mounts the endpoints on mux.
func (h *Health) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", h.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(h.Registry, promhttp.HandlerOpts{}))
}

func (h *Health) readyz(w http.ResponseWriter, r *http.Request) {
	h.mu.RLock()
	names := make([]string, 0, len(h.checks))
	for n := range h.checks {
		names = append(names, n)
	}
	h.mu.RUnlock()
	sort.Strings(names)
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	status := http.StatusOK
	result := map[string]string{}
	for _, n := range names {
		h.mu.RLock()
		check := h.checks[n]
		h.mu.RUnlock()
		if err := check(ctx); err != nil {
			// The error names hosts and users: it goes to the log, not to whoever asks.
			status = http.StatusServiceUnavailable
			result[n] = "failing"
			slog.Warn("not ready", "check", n, "err", err)
			continue
		}
		result[n] = "ok"
	}
	writeJSON(w, status, map[string]any{"ready": status == http.StatusOK, "checks": result})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
