package operator

import (
	"testing"

	"k8s.io/client-go/rest"
)

// limitRequests leaves the config alone without --kube-api-qps, and otherwise sets the
// bucket on a copy (burst twice qps unless given).
func TestLimitRequests(t *testing.T) {
	base := &rest.Config{Host: "https://example.invalid", QPS: -1}
	for _, tt := range []struct {
		qps        float64
		burst      int
		wantQPS    float32
		wantBurst  int
		wantSameAs bool
	}{
		{qps: 0, wantQPS: -1, wantSameAs: true},
		{qps: 50, wantQPS: 50, wantBurst: 100},
		{qps: 50, burst: 70, wantQPS: 50, wantBurst: 70},
		{qps: 0.2, wantQPS: 0.2, wantBurst: 1},
	} {
		got := Options{KubeAPIQPS: tt.qps, KubeAPIBurst: tt.burst}.limitRequests(base)
		if got.QPS != tt.wantQPS || got.Burst != tt.wantBurst || (got == base) != tt.wantSameAs {
			t.Errorf("qps %g burst %d: got qps %g burst %d (same config %v)", tt.qps, tt.burst, got.QPS, got.Burst, got == base)
		}
	}
	if base.QPS != -1 || base.Burst != 0 {
		t.Errorf("the caller's config changed: %+v", base)
	}
}
