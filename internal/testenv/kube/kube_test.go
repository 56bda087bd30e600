package kube

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func widget(name string, size int64) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(schema.GroupVersionKind{Group: "smoke.parley.dev", Version: "v1", Kind: "Widget"})
	u.SetNamespace("default")
	u.SetName(name)
	_ = unstructured.SetNestedField(u.Object, size, "spec", "size")
	return u
}

func TestEnvtestServesInstalledCRD(t *testing.T) {
	env := New(t, Options{CRDDirectoryPaths: []string{"testdata"}})
	ctx := context.Background()

	if err := env.Client.Create(ctx, widget("ok", 3)); err != nil {
		t.Fatalf("create valid widget: %v", err)
	}
	got := widget("ok", 0)
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(got), got); err != nil {
		t.Fatalf("get: %v", err)
	}
	if size, _, _ := unstructured.NestedInt64(got.Object, "spec", "size"); size != 3 {
		t.Fatalf("size = %d, want 3", size)
	}
	err := env.Client.Create(ctx, widget("too-big", 11))
	if err == nil || !strings.Contains(err.Error(), "spec.size") {
		t.Fatalf("schema validation did not reject size 11: %v", err)
	}

	info, err := discoveryVersion(env)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(info, "v1.") || strings.Contains(info, "master") {
		t.Fatalf("apiserver reports version %q; the build lost its version ldflags", info)
	}
}

func TestSimulatedClusterRunsPods(t *testing.T) {
	env := New(t, Options{})
	Simulate(t, env)
	ctx := context.Background()

	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:        "fake-1",
		Annotations: map[string]string{FakeNodeAnnotation: "fake"},
		Labels:      map[string]string{"type": "kwok"},
	}}
	if err := env.Client.Create(ctx, node); err != nil {
		t.Fatalf("create node: %v", err)
	}
	labels := map[string]string{"app": "smoke"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "app", Image: "parley:smoke"}},
				},
			},
		},
	}
	if err := env.Client.Create(ctx, dep); err != nil {
		t.Fatalf("create deployment: %v", err)
	}
	err := Eventually(ctx, 90*time.Second, func(ctx context.Context) (bool, error) {
		var d appsv1.Deployment
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(dep), &d); err != nil {
			return false, err
		}
		return d.Status.ReadyReplicas == 2, nil
	})
	if err != nil {
		t.Fatalf("deployment never had 2 ready replicas: %v", err)
	}
	var pods corev1.PodList
	if err := env.Client.List(ctx, &pods, client.InNamespace("default"), client.MatchingLabels(labels)); err != nil {
		t.Fatal(err)
	}
	running := 0
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.Spec.NodeName == "fake-1" {
			running++
		}
	}
	if running != 2 {
		t.Fatalf("%d pods Running on fake-1, want 2", running)
	}
}

func discoveryVersion(e *Env) (string, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(e.Config)
	if err != nil {
		return "", err
	}
	v, err := dc.ServerVersion()
	if err != nil {
		return "", err
	}
	return v.GitVersion, nil
}
