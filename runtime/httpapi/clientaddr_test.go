package httpapi

import (
	"net"
	"net/http/httptest"
	"testing"
)

func TestClientAddr(t *testing.T) {
	_, ingress, _ := net.ParseCIDR("10.0.0.0/8")
	s := &Server{cfg: Config{TrustedProxies: []*net.IPNet{ingress}}}
	tests := []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"direct client, header ignored", "203.0.113.7:5000", []string{"1.2.3.4"}, "203.0.113.7"},
		{"through the ingress", "10.1.2.3:5000", []string{"198.51.100.9"}, "198.51.100.9"},
		{"client-forged entries left of the real one", "10.1.2.3:5000", []string{"6.6.6.6, 198.51.100.9"}, "198.51.100.9"},
		{"two trusted hops", "10.1.2.3:5000", []string{"198.51.100.9, 10.9.9.9"}, "198.51.100.9"},
		{"several headers", "10.1.2.3:5000", []string{"6.6.6.6", "198.51.100.9"}, "198.51.100.9"},
		{"ingress without header", "10.1.2.3:5000", nil, "10.1.2.3"},
		{"garbage in the header", "10.1.2.3:5000", []string{"not-an-ip"}, "not-an-ip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/api/v1/auth/login", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := s.clientAddr(r); got != tt.want {
				t.Fatalf("clientAddr = %q, want %q", got, tt.want)
			}
		})
	}
	untrusting := &Server{}
	r := httptest.NewRequest("POST", "/", nil)
	r.RemoteAddr = "10.1.2.3:5000"
	r.Header.Set("X-Forwarded-For", "198.51.100.9")
	if got := untrusting.clientAddr(r); got != "10.1.2.3" {
		t.Fatalf("without trusted proxies the header was believed: %q", got)
	}
}
