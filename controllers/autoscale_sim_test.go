package controllers_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
	"github.com/parleychat/parley/controllers/render"
	"github.com/parleychat/parley/internal/testenv/kube"
)

// userLoad plays the users of a simulated cluster: it spreads a total of connections
// over the gateway's ready pods, as clients reconnecting through a Service would,
// except that the heavy oldest pods keep most of them when it is told so.
type userLoad struct {
	fakeConnections
	mu    sync.Mutex
	total int64
	heavy int // with heavy > 0, the heavy oldest pods hold all but 2 per other pod
}

func (l *userLoad) setTotal(total int64, heavy int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total, l.heavy = total, heavy
}

// spread reassigns the connections over pods, oldest first.
func (l *userLoad) spread(pods []corev1.Pod) {
	l.mu.Lock()
	total, heavy := l.total, l.heavy
	l.mu.Unlock()
	counts := map[string]int64{}
	n := int64(len(pods))
	switch {
	case n == 0:
	case heavy > 0 && int64(heavy) < n:
		light := n - int64(heavy)
		for i, p := range pods {
			if i < heavy {
				counts[p.Name] = (total - 2*light) / int64(heavy)
			} else {
				counts[p.Name] = 2
			}
		}
	default:
		for i, p := range pods {
			counts[p.Name] = total / n
			if int64(i) < total%n {
				counts[p.Name]++
			}
		}
	}
	l.set(counts)
}

func readyGatewayPods(ctx context.Context, c client.Client, cc *chatv1alpha1.ChatCluster) ([]corev1.Pod, error) {
	var list corev1.PodList
	if err := c.List(ctx, &list, client.InNamespace(cc.Namespace), client.MatchingLabels(render.WorkloadLabels(cc, render.RoleGateway))); err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
			continue
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				out = append(out, p)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreationTimestamp.Equal(&out[j].CreationTimestamp) {
			return out[i].CreationTimestamp.Before(&out[j].CreationTimestamp)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// TestSimulatedConnectionAutoscaling runs the connection autoscaler on a simulated
// cluster (Deployment and ReplicaSet controllers, scheduler, kwok pods): the gateway
// grows step by step under a rising connection count and shrinks back to its minimum
// when the users leave, removing the pods with the fewest connections first (their
// clients reconnect to the others; a real gateway drains them on SIGTERM).
func TestSimulatedConnectionAutoscaling(t *testing.T) {
	need(t)
	sim := kube.New(t, kube.Options{CRDDirectoryPaths: []string{filepath.Join("..", "config", "crd", "bases")}, Scheme: scheme})
	kube.Simulate(t, sim)
	load := &userLoad{}
	const interval = 500 * time.Millisecond
	startOperator(t, sim.Config, load, interval)
	c := sim.Client
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "fake-1", Annotations: map[string]string{kube.FakeNodeAnnotation: "fake"}}}
	if err := c.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	ns := namespace(t, c)
	cc := connectionScaled(ns, "sim")
	cc.Spec.Gateway.Autoscaling.MaxReplicas = 8
	cc.Spec.Gateway.Autoscaling.ScaleDownWindowSeconds = ptr.To[int32](3)
	cc.Spec.Core.Replicas = ptr.To[int32](1)
	cc.Spec.Notification.Replicas = ptr.To[int32](1)
	if err := c.Create(ctx, cc); err != nil {
		t.Fatal(err)
	}
	go func() {
		for ctx.Err() == nil {
			if pods, err := readyGatewayPods(ctx, c, cc); err == nil {
				load.spread(pods)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()

	// readyAt waits until the gateway has want ready pods and its Deployment asks for
	// exactly want, and says how long that took.
	readyAt := func(want int32) time.Duration {
		t.Helper()
		start := time.Now()
		err := kube.Eventually(ctx, simWait, func(ctx context.Context) (bool, error) {
			var d appsv1.Deployment
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: render.WorkloadName(cc, render.RoleGateway)}, &d); err != nil {
				return false, err
			}
			pods, err := readyGatewayPods(ctx, c, cc)
			if err != nil {
				return false, err
			}
			ok := ptr.Deref(d.Spec.Replicas, 0) == want && d.Status.ReadyReplicas == want && len(pods) == int(want)
			return ok, fmt.Errorf("deployment wants %d, %d ready, %d ready pods listed", ptr.Deref(d.Spec.Replicas, 0), d.Status.ReadyReplicas, len(pods))
		})
		if err != nil {
			t.Fatalf("gateway at %d pods: %v", want, err)
		}
		return time.Since(start)
	}

	waitSim(t, c, ns, "sim", metav1.ConditionTrue, chatv1alpha1.ReasonAllReady)
	readyAt(2)
	// Rising: each count is held until the gateway has caught up. Target 100 per pod.
	for _, step := range []struct {
		total int64
		want  int32
	}{{150, 2}, {300, 3}, {450, 5}, {600, 6}, {780, 8}} {
		load.setTotal(step.total, 0)
		took := readyAt(step.want)
		t.Logf("scale-up figure: %d connections -> %d ready gateway pods after %s", step.total, step.want, took.Round(100*time.Millisecond))
	}
	got, err := getCluster(ctx, c, ns, "sim")
	if err != nil {
		t.Fatal(err)
	}
	if conns := ptr.Deref(got.Status.Gateway.Connections, 0); conns != 780 {
		t.Errorf("status.gateway.connections %d at 780 connections", conns)
	}

	// Falling: 150 connections, nearly all on the two oldest pods. After the 3 s window
	// the gateway loses one pod per decision down to the minimum, never a heavy one.
	pods, err := readyGatewayPods(ctx, c, cc)
	if err != nil {
		t.Fatal(err)
	}
	heavy := map[string]bool{pods[0].Name: true, pods[1].Name: true}
	load.setTotal(150, 2)
	took := readyAt(2)
	t.Logf("scale-down figure: 150 connections -> 2 ready gateway pods after %s (window 3s, one pod per %s decision)", took.Round(100*time.Millisecond), interval)
	left, err := readyGatewayPods(ctx, c, cc)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range left {
		if !heavy[p.Name] {
			t.Errorf("pod %s (2 connections) was kept and a pod holding most connections removed: kept %v, heavy %v", p.Name, names(left), heavy)
		}
	}
	got, err = getCluster(ctx, c, ns, "sim")
	if err != nil {
		t.Fatal(err)
	}
	if st := got.Status.Gateway.Autoscaler; st == nil || st.DesiredReplicas != 2 || st.LastScaleTime == nil {
		t.Errorf("autoscaler status after the scale-down: %+v", st)
	}
}

func names(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}
