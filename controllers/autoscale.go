package controllers

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
	"github.com/parleychat/parley/controllers/render"
)

// ConnectionSource tells how many WebSocket connections one gateway pod holds.
// MetricsScraper reads them from the pod; tests count them themselves.
type ConnectionSource interface {
	Connections(ctx context.Context, pod *corev1.Pod) (int64, error)
}

// DefaultConnectionSampleInterval is how often the connection autoscaler reads the
// gateway pods of each ChatCluster.
const DefaultConnectionSampleInterval = 15 * time.Second

// AnnotationPodDeletionCost makes the ReplicaSet controller remove the pods with the
// lowest cost first when the gateway shrinks: the connection autoscaler sets it to each
// pod's connections, so the fewest clients have to reconnect.
const AnnotationPodDeletionCost = "controller.kubernetes.io/pod-deletion-cost"

// Events of the connection autoscaler.
const (
	EventScaled          = "ConnectionScaled"
	EventScaleOverridden = "ScaleOverridden"
	EventMetricsMissing  = "ConnectionMetricsMissing"
)

// sampleConcurrency bounds the pods read at once for one ChatCluster.
const sampleConcurrency = 8

func (r *ChatClusterReconciler) sampleInterval() time.Duration {
	if r.ConnectionSampleInterval > 0 {
		return r.ConnectionSampleInterval
	}
	return DefaultConnectionSampleInterval
}

func (r *ChatClusterReconciler) connectionSource() ConnectionSource {
	if r.Connections != nil {
		return r.Connections
	}
	return &MetricsScraper{}
}

func policyOf(a *chatv1alpha1.AutoscalingSpec) scalePolicy {
	seconds := func(v *int32, def int32) time.Duration { return time.Duration(ptr.Deref(v, def)) * time.Second }
	return scalePolicy{
		target:      int64(*a.TargetConnectionsPerPod),
		minReplicas: max(a.MinReplicas, 1),
		maxReplicas: max(a.MaxReplicas, 1),
		upWindow:    seconds(a.ScaleUpWindowSeconds, render.DefaultScaleUpWindowSeconds),
		downWindow:  seconds(a.ScaleDownWindowSeconds, render.DefaultScaleDownWindowSeconds),
		upPods:      ptr.Deref(a.ScaleUpPods, render.DefaultScaleUpPods),
		downPods:    ptr.Deref(a.ScaleDownPods, render.DefaultScaleDownPods),
	}
}

// scaleOnConnections samples the gateway pods when a sample is due and records the
// connection autoscaler's decision in the status, which the rendered Deployment (or the
// HorizontalPodAutoscaler's minReplicas) then follows. It returns when the next sample
// is due, or 0 without connection autoscaling.
func (r *ChatClusterReconciler) scaleOnConnections(ctx context.Context, cc *chatv1alpha1.ChatCluster) (time.Duration, error) {
	if !render.ConnectionScaled(cc) {
		cc.Status.Gateway.Autoscaler = nil
		cc.Status.Gateway.Connections = nil
		return 0, nil
	}
	interval := r.sampleInterval()
	now := time.Now()
	prev := cc.Status.Gateway.Autoscaler
	var live appsv1.Deployment
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: cc.Namespace, Name: render.WorkloadName(cc, render.RoleGateway)}, &live)
	if apierrors.IsNotFound(err) {
		return interval, nil // created by this reconcile's apply; sampled next time
	}
	if err != nil {
		return 0, fmt.Errorf("get gateway deployment: %w", err)
	}
	a := cc.Spec.Gateway.Autoscaling
	alone := a.TargetCPUUtilization == nil
	current := ptr.Deref(live.Spec.Replicas, 1)
	if alone && prev != nil && prev.DesiredReplicas > 0 && current != prev.DesiredReplicas && !OwnsReplicas(&live, FieldOwner) {
		// kubectl scale deployment (or another controller) changed what the autoscaler
		// owns: it is set back by this reconcile's apply, and said so.
		r.event(cc, &live, corev1.EventTypeWarning, EventScaleOverridden, "Scale",
			"Deployment %s was scaled to %d by someone else; the connection autoscaler owns its replicas and sets %d (change spec.gateway.autoscaling, or remove targetConnectionsPerPod to scale by hand)",
			live.Name, current, prev.DesiredReplicas)
		current = prev.DesiredReplicas
	}
	// Other events (a pod becoming ready) reconcile too; sampling stays periodic. The
	// status keeps whole seconds, so this operator's own last sample time counts first.
	last := time.Time{}
	if prev != nil && prev.LastSampleTime != nil {
		last = prev.LastSampleTime.Time
	}
	key := client.ObjectKeyFromObject(cc)
	if t, ok := r.lastSample.Load(key); ok && t.(time.Time).After(last) {
		last = t.(time.Time)
	}
	if due := last.Add(interval).Sub(now); due > interval/10 {
		return due, nil
	}
	r.lastSample.Store(key, now)

	pods, counts, err := r.samplePods(ctx, cc)
	if err != nil {
		return 0, err
	}
	s := scaleSample{now: now, current: current}
	for i := range pods {
		s.ready++
		if n, ok := counts[pods[i].Name]; ok {
			s.measured++
			s.total += n
		}
	}
	d := decideScale(policyOf(a), prev, s)

	st := &chatv1alpha1.ConnectionAutoscalerStatus{
		CurrentReplicas: current, DesiredReplicas: d.desired, MeasuredPods: s.measured,
		LastSampleTime: ptr.To(metav1.NewTime(now)), Recommendations: d.recommendations,
	}
	if prev != nil {
		st.LastScaleTime, st.LastScaleReason = prev.LastScaleTime, prev.LastScaleReason
	}
	if s.measured < s.ready && (prev == nil || prev.MeasuredPods != s.measured) {
		r.event(cc, &live, corev1.EventTypeWarning, EventMetricsMissing, "Sample",
			"%d of %d ready gateway pods did not report parley_gateway_connections on port %d /metrics (does a NetworkPolicy keep the operator out?)", s.ready-s.measured, s.ready, render.HTTPPort)
	}
	from := current
	if prev != nil && prev.DesiredReplicas > 0 {
		from = prev.DesiredReplicas
	}
	if d.desired != from {
		st.LastScaleTime = ptr.To(metav1.NewTime(now))
		st.LastScaleReason = fmt.Sprintf("%d to %d: %s", from, d.desired, d.reason)
		r.event(cc, &live, corev1.EventTypeNormal, EventScaled, "Scale", "gateway %s", st.LastScaleReason)
	}
	if s.measured > 0 {
		cc.Status.Gateway.Connections = ptr.To(s.total)
	}
	cc.Status.Gateway.Autoscaler = st
	// The pods with the fewest connections go first when the gateway shrinks, whether the
	// connection autoscaler or the CPU autoscaler shrinks it: the costs are set as soon as
	// a shrink is recommended, before the stabilization window lets it happen.
	if d.raw < current || d.desired < live.Status.Replicas || !alone {
		if err := r.setDeletionCosts(ctx, pods, counts); err != nil {
			return 0, err
		}
	}
	return interval, nil
}

// samplePods reads the connections of the gateway's ready pods. A pod that does not
// answer is left out of counts (and reported by the caller); a terminating pod is not
// asked, since its clients are already moving.
func (r *ChatClusterReconciler) samplePods(ctx context.Context, cc *chatv1alpha1.ChatCluster) ([]corev1.Pod, map[string]int64, error) {
	var list corev1.PodList
	if err := r.Client.List(ctx, &list, client.InNamespace(cc.Namespace), client.MatchingLabels(render.WorkloadLabels(cc, render.RoleGateway))); err != nil {
		return nil, nil, fmt.Errorf("list gateway pods: %w", err)
	}
	var pods []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && podReady(&p) {
			pods = append(pods, p)
		}
	}
	src := r.connectionSource()
	counts := map[string]int64{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, sampleConcurrency)
	for i := range pods {
		wg.Add(1)
		sem <- struct{}{}
		go func(p *corev1.Pod) {
			defer func() { <-sem; wg.Done() }()
			n, err := src.Connections(ctx, p)
			if err != nil {
				return
			}
			mu.Lock()
			counts[p.Name] = n
			mu.Unlock()
		}(&pods[i])
	}
	wg.Wait()
	return pods, counts, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// setDeletionCosts annotates each measured pod with its connections, writing only the
// pods whose annotation is off (by more than the tolerance from 100 connections on).
func (r *ChatClusterReconciler) setDeletionCosts(ctx context.Context, pods []corev1.Pod, counts map[string]int64) error {
	for i := range pods {
		p := &pods[i]
		n, ok := counts[p.Name]
		if !ok {
			continue
		}
		if have, err := strconv.ParseInt(p.Annotations[AnnotationPodDeletionCost], 10, 64); err == nil {
			diff := have - n
			if diff < 0 {
				diff = -diff
			}
			if diff == 0 || (n >= 100 && float64(diff) <= scaleTolerance*float64(n)) {
				continue
			}
		}
		cost := min(n, int64(1<<31-1)) // the annotation is an int32
		patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, AnnotationPodDeletionCost, strconv.FormatInt(cost, 10)))
		if err := r.Client.Patch(ctx, p, client.RawPatch("application/merge-patch+json", patch)); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("set deletion cost of pod %s: %w", p.Name, err)
		}
	}
	return nil
}
