package controllers_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
	"github.com/parleychat/parley/controllers"
	"github.com/parleychat/parley/controllers/render"
	"github.com/parleychat/parley/internal/testenv/kube"
)

// fakeConnections is the connection autoscaler's metrics source in tests: the count of
// each pod by name, as the test sets it (0 for pods it never named).
type fakeConnections struct {
	mu     sync.Mutex
	counts map[string]int64
	asked  map[string]int
}

func (f *fakeConnections) Connections(_ context.Context, pod *corev1.Pod) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.asked == nil {
		f.asked = map[string]int{}
	}
	f.asked[pod.Name]++
	return f.counts[pod.Name], nil
}

func (f *fakeConnections) set(counts map[string]int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counts = counts
}

// startOperator runs an operator of the test's own against cfg, with src as its metrics
// source and a short sampling interval.
func startOperator(t *testing.T, cfg *rest.Config, src controllers.ConnectionSource, interval time.Duration) {
	t.Helper()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  controllers.CacheOptions(nil),
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &controllers.ChatClusterReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Scheme: mgr.GetScheme(),
		Recorder: mgr.GetEventRecorder("parley-operator"), DefaultImage: operatorImage,
		Connections: src, ConnectionSampleInterval: interval,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
}

// connectionScaled is an external-dependency ChatCluster whose gateway follows its
// connections: 100 per pod, 2 to 10 pods, short windows for the test.
func connectionScaled(ns, name string) *chatv1alpha1.ChatCluster {
	cc := externalCluster(ns, name)
	cc.Spec.Gateway.Autoscaling = &chatv1alpha1.AutoscalingSpec{
		MinReplicas: 2, MaxReplicas: 10, TargetConnectionsPerPod: ptr.To[int32](100),
		ScaleUpWindowSeconds: ptr.To[int32](0), ScaleDownWindowSeconds: ptr.To[int32](2),
		ScaleUpPods: ptr.To[int32](4), ScaleDownPods: ptr.To[int32](1),
	}
	return cc
}

// runningGatewayPod plays the Deployment controller and the kubelet: a Ready gateway pod.
func runningGatewayPod(t *testing.T, c client.Client, cc *chatv1alpha1.ChatCluster, name, ip string) {
	t.Helper()
	ctx := context.Background()
	labels := render.WorkloadLabels(cc, render.RoleGateway)
	labels[render.LabelManagedBy] = render.ManagedBy
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: cc.Namespace, Name: name, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "parley", Image: "parley:1.0.0"}}},
	}
	if err := c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	if err := c.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
}

func gatewayReplicas(ctx context.Context, c client.Client, cc *chatv1alpha1.ChatCluster) (int32, error) {
	var d appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: cc.Namespace, Name: render.WorkloadName(cc, render.RoleGateway)}, &d); err != nil {
		return 0, err
	}
	return ptr.Deref(d.Spec.Replicas, 1), nil
}

func waitReplicas(t *testing.T, c client.Client, cc *chatv1alpha1.ChatCluster, want int32) {
	t.Helper()
	eventually(t, fmt.Sprintf("gateway replicas %d", want), func(ctx context.Context) (bool, error) {
		got, err := gatewayReplicas(ctx, c, cc)
		return err == nil && got == want, fmt.Errorf("replicas %d: %v", got, err)
	})
}

func waitEvent(t *testing.T, c client.Client, ns, reason, contains string) {
	t.Helper()
	eventually(t, "event "+reason, func(ctx context.Context) (bool, error) {
		var list eventsv1.EventList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, err
		}
		var seen []string
		for _, e := range list.Items {
			if e.Reason == reason && strings.Contains(e.Note, contains) {
				return true, nil
			}
			seen = append(seen, e.Reason+": "+e.Note)
		}
		return false, fmt.Errorf("events %q", seen)
	})
}

// The connection autoscaler on a real API server with a fake metrics source: it scales
// the gateway up and down on the connections, reports them in the status and as events,
// admits itself through a NetworkPolicy, prefers the emptiest pods for removal, sets a
// hand-scaled Deployment back, and with CPU autoscaling too sets the HPA's minimum.
func TestConnectionAutoscalerOnAPIServer(t *testing.T) {
	need(t)
	e := kube.New(t, kube.Options{CRDDirectoryPaths: []string{filepath.Join("..", "config", "crd", "bases")}, Scheme: scheme})
	src := &fakeConnections{}
	startOperator(t, e.Config, src, 300*time.Millisecond)
	c := e.Client
	ctx := context.Background()
	ns := namespace(t, c)
	cc := installed(t, c, connectionScaled(ns, "conn"))
	waitReplicas(t, c, cc, 2) // minReplicas before the first sample

	var policy networkingv1.NetworkPolicy
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: render.GatewayMetricsPolicyName(cc)}, &policy); err != nil {
		t.Fatalf("NetworkPolicy admitting the operator: %v", err)
	}
	if peer := policy.Spec.Ingress[0].From[0]; peer.PodSelector == nil || peer.PodSelector.MatchLabels[render.LabelName] != "parley-operator" ||
		peer.NamespaceSelector == nil || peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "parley-system" {
		t.Errorf("operator peer %+v, want the default parley-operator pods of parley-system", peer)
	}
	var hpas autoscalingv2.HorizontalPodAutoscalerList
	if err := c.List(ctx, &hpas, client.InNamespace(ns)); err != nil || len(hpas.Items) != 0 {
		t.Errorf("connection autoscaling alone made HorizontalPodAutoscalers %v (%v): it needs no adapter", hpas.Items, err)
	}

	runningGatewayPod(t, c, cc, "gw-a", "10.0.0.1")
	runningGatewayPod(t, c, cc, "gw-b", "10.0.0.2")
	src.set(map[string]int64{"gw-a": 300, "gw-b": 300}) // 600 on 2 pods: 6 wanted
	waitReplicas(t, c, cc, 6)
	eventually(t, "status.gateway.connections", func(ctx context.Context) (bool, error) {
		got, err := getCluster(ctx, c, ns, "conn")
		if err != nil {
			return false, err
		}
		st := got.Status.Gateway
		ok := st.Connections != nil && *st.Connections == 600 && st.Autoscaler != nil && st.Autoscaler.DesiredReplicas == 6 &&
			st.Autoscaler.LastScaleTime != nil && strings.Contains(st.Autoscaler.LastScaleReason, "2 to 6") && st.Autoscaler.MeasuredPods == 2
		return ok, fmt.Errorf("gateway status %+v autoscaler %+v", st, st.Autoscaler)
	})
	waitEvent(t, c, ns, controllers.EventScaled, "2 to 6")

	// Fewer connections: after the 2 s window the gateway shrinks one pod per decision
	// back to the minimum, and the pods carry their connections as deletion cost.
	src.set(map[string]int64{"gw-a": 10, "gw-b": 40})
	eventually(t, "deletion costs", func(ctx context.Context) (bool, error) {
		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.InNamespace(ns)); err != nil {
			return false, err
		}
		costs := map[string]string{}
		for _, p := range pods.Items {
			costs[p.Name] = p.Annotations[controllers.AnnotationPodDeletionCost]
		}
		return costs["gw-a"] == "10" && costs["gw-b"] == "40", fmt.Errorf("costs %v", costs)
	})
	waitReplicas(t, c, cc, 2)
	waitEvent(t, c, ns, controllers.EventScaled, "6 to 5") // one pod per decision

	// kubectl scale deployment: set back, and said so.
	var d appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: render.WorkloadName(cc, render.RoleGateway)}, &d); err != nil {
		t.Fatal(err)
	}
	if err := kubectlScale(ctx, c, &d, 7); err != nil {
		t.Fatalf("scale deployment: %v", err)
	}
	waitEvent(t, c, ns, controllers.EventScaleOverridden, "scaled to 7")
	waitReplicas(t, c, cc, 2)
	// kubectl scale chat: refused by the API server, naming the autoscaler.
	err := kubectlScale(ctx, c, cc, 9)
	if err == nil || !strings.Contains(err.Error(), "connection autoscaler") {
		t.Errorf("kubectl scale chat with connection autoscaling: %v, want a refusal naming the connection autoscaler", err)
	}

	// CPU too: the HPA scales on CPU only, and its minimum is the connection autoscaler's
	// count, which rises with the connections.
	updateCluster(t, c, cc, func(cc *chatv1alpha1.ChatCluster) {
		cc.Spec.Gateway.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}
		cc.Spec.Gateway.Autoscaling.TargetCPUUtilization = ptr.To[int32](70)
	})
	src.set(map[string]int64{"gw-a": 300, "gw-b": 300})
	eventually(t, "HPA minReplicas from connections", func(ctx context.Context) (bool, error) {
		var hpa autoscalingv2.HorizontalPodAutoscaler
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: render.WorkloadName(cc, render.RoleGateway)}, &hpa); err != nil {
			return false, err
		}
		for _, m := range hpa.Spec.Metrics {
			if m.Type != autoscalingv2.ResourceMetricSourceType {
				return false, fmt.Errorf("HPA metric %s: connections are the operator's, not the HPA's", m.Type)
			}
		}
		return ptr.Deref(hpa.Spec.MinReplicas, 0) == 6, fmt.Errorf("HPA minReplicas %d, want 6", ptr.Deref(hpa.Spec.MinReplicas, 0))
	})
	eventually(t, "replicas handed to the HPA", func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: render.WorkloadName(cc, render.RoleGateway)}, &d); err != nil {
			return false, err
		}
		return !controllers.OwnsReplicas(&d, controllers.FieldOwner), fmt.Errorf("the operator still applies the replicas")
	})
}
