package controllers_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
	"github.com/parleychat/parley/controllers/render"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/internal/testenv/kube"
)

// simWait is the deadline for pods to be scheduled, started by kwok and reported.
const simWait = 3 * time.Minute

// TestSimulatedClusterReadiness runs the operator on a simulated cluster: the Job
// controller runs the migration (kwok completes its pod), the Deployment controller and
// the scheduler put the workloads' pods on a fake node, and Ready follows them, down when the pods are evicted.
func TestSimulatedClusterReadiness(t *testing.T) {
	ctx := context.Background()
	c := startSimulated(t, 0)
	node := fakeNode(t, c)
	ns := namespace(t, c)
	cc := externalCluster(ns, "sim")
	cc.Spec.Core.Replicas = ptr.To[int32](1)
	cc.Spec.Notification.Replicas = ptr.To[int32](1)
	if err := c.Create(ctx, cc); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	ready := waitSim(t, c, ns, "sim", metav1.ConditionTrue, chatv1alpha1.ReasonAllReady)
	t.Logf("Ready=True %s after create", time.Since(start).Round(time.Second))
	if ready.Status.Gateway.Ready != "2/2" || ready.Status.Core.Ready != "1/1" || ready.Status.Notification.Ready != "1/1" {
		t.Errorf("Ready but counts gateway %s core %s notification %s", ready.Status.Gateway.Ready, ready.Status.Core.Ready, ready.Status.Notification.Ready)
	}
	if ready.Status.Version != "1.0.0" {
		t.Errorf("status version %q after the migration Job completed", ready.Status.Version)
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"app.kubernetes.io/instance": "sim", "app.kubernetes.io/component": "gateway"}); err != nil {
		t.Fatal(err)
	}
	running := 0
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.Spec.NodeName == "fake-1" {
			running++
		}
	}
	if running != 2 {
		t.Errorf("%d gateway pods Running on fake-1, want 2", running)
	}

	// An upgrade on real controllers: kwok completes the migration pod, then the
	// workloads roll one after the other until all run the new version.
	if err := c.Get(ctx, client.ObjectKeyFromObject(cc), cc); err != nil {
		t.Fatal(err)
	}
	updateCluster(t, c, cc, func(cc *chatv1alpha1.ChatCluster) {
		cc.Spec.Version = "1.1.0"
	})
	start = time.Now()
	if err := kube.Eventually(ctx, simWait, func(ctx context.Context) (bool, error) {
		got, err := getCluster(ctx, c, ns, "sim")
		if err != nil {
			return false, err
		}
		cond := meta.FindStatusCondition(got.Status.Conditions, chatv1alpha1.ConditionReady)
		progressing := meta.FindStatusCondition(got.Status.Conditions, chatv1alpha1.ConditionProgressing)
		done := got.Status.Version == "1.1.0" && cond != nil && cond.Status == metav1.ConditionTrue &&
			progressing != nil && progressing.Reason == chatv1alpha1.ReasonStable && got.Status.ObservedGeneration == got.Generation
		return done, fmt.Errorf("version %q, Ready %+v, Progressing %+v", got.Status.Version, cond, progressing)
	}); err != nil {
		t.Fatalf("upgrade to 1.1.0 never settled: %v", err)
	}
	t.Logf("upgraded and Ready %s after the version bump", time.Since(start).Round(time.Second))
	for _, role := range render.Workloads {
		var d appsv1.Deployment
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: render.WorkloadName(cc, role)}, &d); err != nil {
			t.Fatal(err)
		}
		if err := imageIs("parley:1.1.0")(&d); err != nil {
			t.Errorf("%s: %v", role, err)
		}
	}

	// A NoExecute taint evicts every pod from the only node; replacements have nowhere
	// to run.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(node), node); err != nil {
			return err
		}
		node.Spec.Taints = append(node.Spec.Taints, corev1.Taint{Key: "parley.dev/drain", Value: "true", Effect: corev1.TaintEffectNoExecute})
		return c.Update(ctx, node) // kwok's heartbeats may win the race
	}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	notReady := waitSim(t, c, ns, "sim", metav1.ConditionFalse, chatv1alpha1.ReasonWorkloadsNotReady)
	t.Logf("Ready=False %s after the node was tainted", time.Since(start).Round(time.Second))
	if cond := meta.FindStatusCondition(notReady.Status.Conditions, chatv1alpha1.ConditionReady); cond.Message == "" {
		t.Error("Ready=False without a message naming the workloads")
	}
}

// startSimulated starts a control plane of the test's own with a simulated cluster on
// it and the operator running with maxConcurrent workers (the reconciler's default when
// 0): controller-manager must not act on the other tests' objects, and they must not see
// it.
func startSimulated(t testing.TB, maxConcurrent int) client.Client {
	t.Helper()
	if startErr != nil {
		testenv.Unavailable(t, "envtest control plane", startErr)
	}
	sim := kube.New(t, kube.Options{CRDDirectoryPaths: []string{filepath.Join("..", "config", "crd", "bases")}, Scheme: scheme})
	kube.Simulate(t, sim)
	mgr, _, err := newManager(sim.Config, &writeLog{}, maxConcurrent)
	if err != nil {
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
	return sim.Client
}

// fakeNode creates the node kwok runs pods on.
func fakeNode(t testing.TB, c client.Client) *corev1.Node {
	t.Helper()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:        "fake-1",
		Annotations: map[string]string{kube.FakeNodeAnnotation: "fake"},
		Labels:      map[string]string{"type": "kwok"},
	}}
	if err := c.Create(context.Background(), node); err != nil {
		t.Fatal(err)
	}
	return node
}

func waitSim(t *testing.T, c client.Client, ns, name string, status metav1.ConditionStatus, reason string) *chatv1alpha1.ChatCluster {
	t.Helper()
	var last *chatv1alpha1.ChatCluster
	err := kube.Eventually(context.Background(), simWait, func(ctx context.Context) (bool, error) {
		cc, err := getCluster(ctx, c, ns, name)
		if err != nil {
			return false, err
		}
		last = cc
		cond := meta.FindStatusCondition(cc.Status.Conditions, chatv1alpha1.ConditionReady)
		if cond == nil || cond.Status != status || cond.Reason != reason {
			return false, fmt.Errorf("Ready %+v, gateway %s core %s notification %s", cond, cc.Status.Gateway.Ready, cc.Status.Core.Ready, cc.Status.Notification.Ready)
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("Ready=%s (%s): %v", status, reason, err)
	}
	return last
}
