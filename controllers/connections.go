package controllers

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/parleychat/parley/controllers/render"
)

// MetricsScraper reads a gateway pod's open connections from the gauge
// parley_gateway_connections on its /metrics, over the pod network: no custom-metrics
// adapter, no Prometheus. The gateway answers /metrics only to requests no proxy
// forwarded, which a direct request is.
type MetricsScraper struct {
	// Client makes the requests; one with a 2 s timeout when nil.
	Client *http.Client
	// Port of /metrics; the workloads' HTTP port when 0.
	Port int
}

// errNoGauge: the pod answered without the gauge (not a Parley gateway, or too old).
var errNoGauge = errors.New("no parley_gateway_connections gauge")

// maxMetricsBytes bounds what is read of one /metrics answer.
const maxMetricsBytes = 4 << 20

// Connections returns the pod's open WebSocket connections.
func (s *MetricsScraper) Connections(ctx context.Context, pod *corev1.Pod) (int64, error) {
	if pod.Status.PodIP == "" {
		return 0, fmt.Errorf("pod %s has no IP yet", pod.Name)
	}
	port := s.Port
	if port == 0 {
		port = render.HTTPPort
	}
	client := s.Client
	if client == nil {
		client = &http.Client{Timeout: 2 * time.Second}
	}
	url := "http://" + net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(port)) + "/metrics"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, fmt.Errorf("metrics of %s: %w", pod.Name, err)
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("metrics of %s: %w", pod.Name, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("metrics of %s: HTTP %d", pod.Name, resp.StatusCode)
	}
	n, err := parseConnections(io.LimitReader(resp.Body, maxMetricsBytes))
	if err != nil {
		return 0, fmt.Errorf("metrics of %s: %w", pod.Name, err)
	}
	return n, nil
}

// parseConnections finds the gauge in the Prometheus text format.
func parseConnections(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, render.GatewayConnectionsMetric)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		if i := strings.LastIndexByte(rest, '}'); i >= 0 {
			rest = rest[i+1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("gauge value %q: %w", fields[0], errNoGauge)
		}
		return int64(v), nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errNoGauge
}
