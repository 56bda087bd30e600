package controllers

import (
	"fmt"
	"math"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
)

// scaleTolerance is the relative distance from the target within which the connection
// autoscaler recommends the current count: measurement noise moves no pods.
const scaleTolerance = 0.1

// maxRecommendations bounds the history kept in the status (the API's MaxItems).
const maxRecommendations = 64

// scalePolicy is the connection autoscaler's configuration of one gateway.
type scalePolicy struct {
	target               int64 // connections per pod
	minReplicas          int32
	maxReplicas          int32
	upWindow, downWindow time.Duration
	upPods, downPods     int32
}

// scaleSample is one reading of the gateway's pods.
type scaleSample struct {
	now time.Time
	// current is the Deployment's replica count.
	current int32
	// ready pods could be asked; measured answered, with total connections between them.
	ready, measured int32
	total           int64
}

// scaleDecision is what the autoscaler does with a sample.
type scaleDecision struct {
	desired int32
	// raw is the sample's own recommendation, before stabilization and step bounds.
	raw             int32
	reason          string
	recommendations []chatv1alpha1.Recommendation
}

// decideScale is the connection autoscaler's decision, a pure function of its policy,
// the previous decision and history (prev, nil before the first) and a sample:
//
//   - raw recommendation: ceil(connections / target), the connections of the pods that
//     did not answer estimated at the answering pods' average; the current count while
//     within 10% of the target (noise);
//   - stabilization: the count grows only to the lowest recommendation of the last
//     upWindow (a spike shorter than it adds nothing) and shrinks only to the highest of
//     the last downWindow;
//   - step bounds: at most max(upPods, count) added and max(downPods, count/10) removed
//     per decision;
//   - bounds: within minReplicas and maxReplicas.
//
// With no pod answering (or fewer than half the ready ones) it keeps the previous count.
func decideScale(p scalePolicy, prev *chatv1alpha1.ConnectionAutoscalerStatus, s scaleSample) scaleDecision {
	base := s.current
	var history []chatv1alpha1.Recommendation
	if prev != nil {
		if prev.DesiredReplicas > 0 {
			base = prev.DesiredReplicas
		}
		history = append(history, prev.Recommendations...)
	}
	base = clamp(base, p.minReplicas, p.maxReplicas)
	if s.measured == 0 || s.measured*2 < s.ready {
		return scaleDecision{desired: base, raw: base, recommendations: history,
			reason: fmt.Sprintf("holding %d: %d of %d ready gateway pods reported their connections", base, s.measured, s.ready)}
	}

	total := float64(s.total)
	if s.ready > s.measured {
		total = total * float64(s.ready) / float64(s.measured)
	}
	raw := int32(math.Ceil(total / float64(p.target)))
	if s.current > 0 && math.Abs(total/(float64(s.current)*float64(p.target))-1) <= scaleTolerance {
		raw = s.current
	}
	raw = clamp(raw, p.minReplicas, p.maxReplicas)
	history = record(history, s.now, raw, max(p.upWindow, p.downWindow))

	up := windowExtreme(history, s.now, p.upWindow, false)
	down := windowExtreme(history, s.now, p.downWindow, true)
	desired := base
	why := "within tolerance of the target"
	if desired < up {
		desired, why = up, "above the target"
	}
	if desired > down {
		desired, why = down, "below the target"
	}
	switch {
	case desired > base && desired-base > max(p.upPods, base):
		desired, why = base+max(p.upPods, base), "above the target; step bounded"
	case desired < base && base-desired > max(p.downPods, base/10):
		desired, why = base-max(p.downPods, base/10), "below the target; step bounded"
	}
	desired = clamp(desired, p.minReplicas, p.maxReplicas)

	avg := float64(s.total) / float64(s.measured)
	reason := fmt.Sprintf("%d connections on %d pods (average %.0f, target %d): %s", s.total, s.measured, avg, p.target, why)
	switch {
	case desired == base && raw > base:
		reason = fmt.Sprintf("%d connections on %d pods (average %.0f, target %d): holding %d until %d is asked for %s", s.total, s.measured, avg, p.target, base, raw, p.upWindow)
	case desired == base && raw < base:
		reason = fmt.Sprintf("%d connections on %d pods (average %.0f, target %d): holding %d until %d is asked for %s", s.total, s.measured, avg, p.target, base, raw, p.downWindow)
	}
	return scaleDecision{desired: desired, raw: raw, reason: reason, recommendations: history}
}

func clamp(v, lo, hi int32) int32 {
	if hi < lo {
		hi = lo
	}
	return min(max(v, lo), hi)
}

// record appends raw to the history when it differs from the last recommendation (each
// one holds until the next), and forgets those that ended before the longest window.
func record(history []chatv1alpha1.Recommendation, now time.Time, raw int32, keep time.Duration) []chatv1alpha1.Recommendation {
	if n := len(history); n == 0 || history[n-1].Replicas != raw {
		history = append(history, chatv1alpha1.Recommendation{Time: metav1.NewTime(now), Replicas: raw})
	}
	first := 0
	for i := 0; i+1 < len(history); i++ {
		if !history[i+1].Time.After(now.Add(-keep)) {
			first = i + 1
		}
	}
	first = max(first, len(history)-maxRecommendations)
	return append([]chatv1alpha1.Recommendation(nil), history[first:]...)
}

// windowExtreme is the highest (or lowest) recommendation that held at some moment of
// the window ending now. The last one always holds now.
func windowExtreme(history []chatv1alpha1.Recommendation, now time.Time, window time.Duration, highest bool) int32 {
	from := now.Add(-window)
	out := history[len(history)-1].Replicas
	for i := 0; i+1 < len(history); i++ {
		if !history[i+1].Time.After(from) {
			continue // ended before the window
		}
		r := history[i].Replicas
		if (highest && r > out) || (!highest && r < out) {
			out = r
		}
	}
	return out
}
