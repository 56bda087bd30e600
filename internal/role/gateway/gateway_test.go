package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestClusterOnlyHidesForwardedRequests(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	tests := []struct {
		name   string
		header string
		value  string
		want   int
	}{
		{"direct (kubelet, Prometheus)", "", "", http.StatusOK},
		{"through an ingress", "X-Forwarded-For", "203.0.113.9", http.StatusNotFound},
		{"RFC 7239 proxy", "Forwarded", "for=203.0.113.9", http.StatusNotFound},
		{"nginx real ip", "X-Real-IP", "203.0.113.9", http.StatusNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/metrics", nil)
			if tc.header != "" {
				req.Header.Set(tc.header, tc.value)
			}
			rec := httptest.NewRecorder()
			clusterOnly(ok).ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Errorf("status %d, want %d", rec.Code, tc.want)
			}
		})
	}
}
