package controllers

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
)

// sample is one reading in a decision table: seconds after t0, the Deployment's count,
// the pods that answered and their connections.
type sample struct {
	at       int
	current  int32
	measured int32
	total    int64
}

func TestDecideScale(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	policy := scalePolicy{target: 100, minReplicas: 2, maxReplicas: 20, upWindow: 30 * time.Second, downWindow: 300 * time.Second, upPods: 4, downPods: 1}
	for _, tc := range []struct {
		name    string
		policy  scalePolicy
		samples []sample // every sample is fed through decideScale in order
		want    []int32  // desired after each sample
		reason  string   // in the last decision's reason
	}{
		{
			name:    "noise within 10% of the target moves nothing",
			samples: []sample{{0, 4, 4, 400}, {15, 4, 4, 439}, {30, 4, 4, 362}, {45, 4, 4, 440}, {60, 4, 4, 361}},
			want:    []int32{4, 4, 4, 4, 4},
			reason:  "within tolerance",
		},
		{
			name:    "a spike shorter than the scale-up window adds no pods",
			samples: []sample{{0, 4, 4, 400}, {15, 4, 4, 1600}, {30, 4, 4, 400}, {45, 4, 4, 400}},
			want:    []int32{4, 4, 4, 4},
		},
		{
			name:    "a rise held for the scale-up window scales up, step bounded to doubling",
			samples: []sample{{0, 4, 4, 400}, {15, 4, 4, 1600}, {30, 4, 4, 1600}, {45, 4, 4, 1600}, {60, 8, 8, 1600}},
			want:    []int32{4, 4, 4, 8, 16},
			reason:  "above the target",
		},
		{
			name:    "a step up adds at most max(upPods, current)",
			policy:  scalePolicy{target: 100, minReplicas: 2, maxReplicas: 100, upWindow: 0, downWindow: 300 * time.Second, upPods: 4, downPods: 1},
			samples: []sample{{0, 2, 2, 5000}, {15, 6, 6, 5000}, {30, 12, 12, 5000}},
			want:    []int32{6, 12, 24},
			reason:  "step bounded",
		},
		{
			name:    "a dip shorter than the scale-down window removes no pods",
			samples: []sample{{0, 10, 10, 1000}, {15, 10, 10, 200}, {60, 10, 10, 200}, {120, 10, 10, 1000}, {299, 10, 10, 1000}},
			want:    []int32{10, 10, 10, 10, 10},
		},
		{
			name:    "a fall held for the scale-down window shrinks one pod per decision",
			samples: []sample{{0, 10, 10, 1000}, {15, 10, 10, 200}, {314, 10, 10, 200}, {316, 10, 10, 200}, {331, 9, 9, 200}},
			want:    []int32{10, 10, 10, 9, 8},
			reason:  "step bounded",
		},
		{
			name:    "a large gateway shrinks by 10% per decision",
			policy:  scalePolicy{target: 100, minReplicas: 2, maxReplicas: 200, upWindow: 0, downWindow: 0, upPods: 4, downPods: 1},
			samples: []sample{{0, 100, 100, 1000}, {15, 90, 90, 1000}},
			want:    []int32{90, 81},
		},
		{
			name:    "never above maxReplicas",
			policy:  scalePolicy{target: 100, minReplicas: 2, maxReplicas: 5, upWindow: 0, downWindow: 0, upPods: 10, downPods: 1},
			samples: []sample{{0, 2, 2, 100000}},
			want:    []int32{5},
		},
		{
			name:    "never below minReplicas, even with no connections",
			policy:  scalePolicy{target: 100, minReplicas: 3, maxReplicas: 10, upWindow: 0, downWindow: 0, upPods: 4, downPods: 10},
			samples: []sample{{0, 8, 8, 0}},
			want:    []int32{3},
		},
		{
			name:    "no answer holds the count",
			samples: []sample{{0, 6, 6, 600}, {15, 6, 0, 0}},
			want:    []int32{6, 6},
			reason:  "holding 6: 0 of 6",
		},
		{
			name:    "pods that do not answer count at the average of those that do",
			policy:  scalePolicy{target: 100, minReplicas: 2, maxReplicas: 20, upWindow: 0, downWindow: 300 * time.Second, upPods: 4, downPods: 1},
			samples: []sample{{0, 4, 3, 600}}, // 200 each, so 800 on 4 pods
			want:    []int32{8},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := policy
			if tc.policy.target != 0 {
				p = tc.policy
			}
			var prev *chatv1alpha1.ConnectionAutoscalerStatus
			var d scaleDecision
			for i, s := range tc.samples {
				ready := s.current
				d = decideScale(p, prev, scaleSample{now: t0.Add(time.Duration(s.at) * time.Second), current: s.current, ready: ready, measured: s.measured, total: s.total})
				if d.desired != tc.want[i] {
					t.Fatalf("sample %d (%+v): desired %d, want %d (%s)", i, s, d.desired, tc.want[i], d.reason)
				}
				if len(d.recommendations) > maxRecommendations {
					t.Fatalf("%d recommendations kept", len(d.recommendations))
				}
				prev = &chatv1alpha1.ConnectionAutoscalerStatus{DesiredReplicas: d.desired, Recommendations: d.recommendations}
			}
			if !strings.Contains(d.reason, tc.reason) {
				t.Errorf("reason %q, want it to contain %q", d.reason, tc.reason)
			}
		})
	}
}

// The history keeps one entry per change and forgets those older than the longest window.
func TestRecordForgetsOldRecommendations(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	var h []chatv1alpha1.Recommendation
	for i := range 200 {
		h = record(h, t0.Add(time.Duration(i)*time.Second), int32(2+i%3), 30*time.Second)
	}
	if len(h) > 32 {
		t.Fatalf("%d recommendations kept for a 30s window of 1s samples", len(h))
	}
	h = record(nil, t0, 5, time.Minute)
	h = record(h, t0.Add(time.Second), 5, time.Minute)
	if len(h) != 1 {
		t.Fatalf("an unchanged recommendation added an entry: %v", h)
	}
	if got := windowExtreme([]chatv1alpha1.Recommendation{{Time: metav1.NewTime(t0), Replicas: 9}, {Time: metav1.NewTime(t0.Add(time.Minute)), Replicas: 3}}, t0.Add(2*time.Minute), 30*time.Second, true); got != 3 {
		t.Errorf("a recommendation that ended before the window counted: %d", got)
	}
}

func TestParseConnections(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{in: "# HELP parley_gateway_connections Open WebSocket connections.\n# TYPE parley_gateway_connections gauge\nparley_gateway_connections 1234\n", want: 1234},
		{in: "parley_gateway_connections_total 9\nparley_gateway_connections{pod=\"a\"} 7\n", want: 7},
		{in: "parley_gateway_connections 1.5e+03\n", want: 1500},
		{in: "go_goroutines 12\n", err: true},
		{in: "parley_gateway_connections -1\n", err: true},
	} {
		got, err := parseConnections(strings.NewReader(tc.in))
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%q: %d, %v; want %d (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}
