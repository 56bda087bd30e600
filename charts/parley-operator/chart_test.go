// Package chart_test renders the Helm chart with the Helm SDK and the kustomize bases
// with kustomize's API, and creates the results against a real API server, so a broken
// chart or kustomization fails CI. It lives beside the chart (ignored by .helmignore) so
// Helm's and kustomize's dependencies link only into this test binary.
package chart_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/releaseutil"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/internal/testenv/kube"
)

var (
	env      *kube.Env
	startErr error
)

func TestMain(m *testing.M) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	// No CRD up front: the chart and the kustomization install their own.
	env, startErr = kube.Start(kube.Options{Scheme: scheme})
	code := m.Run()
	if startErr == nil {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop envtest:", err)
		}
	}
	os.Exit(code)
}

func need(t *testing.T) client.Client {
	t.Helper()
	if startErr != nil {
		testenv.Unavailable(t, "envtest control plane", startErr)
	}
	return env.Client
}

// renderChart renders the chart like `helm template --include-crds`.
func renderChart(t *testing.T, namespace string, values map[string]any) ([]*unstructured.Unstructured, error) {
	t.Helper()
	chrt, err := loader.Load(".")
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	for _, f := range chrt.Raw {
		if strings.HasSuffix(f.Name, ".go") {
			t.Fatalf("chart packages %s: .helmignore must exclude the Go test", f.Name)
		}
	}
	inst := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	inst.DryRun = true
	inst.ClientOnly = true
	inst.IncludeCRDs = true
	inst.ReleaseName = "parley-operator"
	inst.Namespace = namespace
	inst.KubeVersion = &chartutil.KubeVersion{Version: "v1.37.2", Major: "1", Minor: "37"}
	rel, err := inst.Run(chrt, values)
	if err != nil {
		return nil, err
	}
	var docs []string
	manifests := releaseutil.SplitManifests(rel.Manifest)
	keys := make([]string, 0, len(manifests))
	for k := range manifests {
		keys = append(keys, k)
	}
	sort.Sort(releaseutil.BySplitManifestsOrder(keys))
	for _, k := range keys {
		docs = append(docs, manifests[k])
	}
	return decode(t, strings.Join(docs, "\n---\n")), nil
}

func decode(t *testing.T, manifest string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatalf("decode rendered manifest: %v", err)
		}
		if len(obj) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: obj})
	}
}

// create installs CRDs and Namespaces for real (later objects need them) and creates
// everything else with a server-side dry run: strict field validation, defaulting and
// admission all run, nothing is stored.
func create(t *testing.T, c client.Client, objs []*unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	sort.SliceStable(objs, func(i, j int) bool { return rank(objs[i]) < rank(objs[j]) })
	for _, obj := range objs {
		var err error
		switch obj.GetKind() {
		case "CustomResourceDefinition", "Namespace":
			err = c.Create(ctx, obj.DeepCopy(), client.FieldValidation("Strict"))
			if apierrors.IsAlreadyExists(err) {
				err = nil
			}
			if err == nil && obj.GetKind() == "CustomResourceDefinition" {
				waitEstablished(t, c, obj.GetName())
			}
		default:
			err = c.Create(ctx, obj.DeepCopy(), client.DryRunAll, client.FieldValidation("Strict"))
		}
		if err != nil {
			t.Errorf("create %s %s/%s: %v", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
	}
}

func rank(obj *unstructured.Unstructured) int {
	switch obj.GetKind() {
	case "CustomResourceDefinition":
		return 0
	case "Namespace":
		return 1
	default:
		return 2
	}
}

func waitEstablished(t *testing.T, c client.Client, name string) {
	t.Helper()
	err := kube.Eventually(context.Background(), 30*time.Second, func(ctx context.Context) (bool, error) {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &crd); err != nil {
			return false, err
		}
		for _, cond := range crd.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("CRD %s not established: %v", name, err)
	}
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && (name == "" || o.GetName() == name) {
			return o
		}
	}
	return nil
}

func managerContainer(t *testing.T, dep *unstructured.Unstructured) map[string]any {
	t.Helper()
	containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	for _, c := range containers {
		if m, ok := c.(map[string]any); ok && m["name"] == "manager" {
			return m
		}
	}
	t.Fatalf("deployment %s has no manager container", dep.GetName())
	return nil
}

func envValue(container map[string]any, name string) (string, bool) {
	list, _ := container["env"].([]any)
	for _, e := range list {
		if m, ok := e.(map[string]any); ok && m["name"] == name {
			v, _ := m["value"].(string)
			return v, true
		}
	}
	return "", false
}

func TestChartInstallsAgainstAPIServer(t *testing.T) {
	c := need(t)
	tests := []struct {
		name   string
		values map[string]any
		check  func(t *testing.T, objs []*unstructured.Unstructured)
	}{
		{"defaults", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			dep := find(objs, "Deployment", "parley-operator")
			if dep == nil {
				t.Fatal("no operator Deployment")
			}
			ctr := managerContainer(t, dep)
			if ctr["image"] != "parley:0.1.0" {
				t.Errorf("image %v, want parley:<appVersion>", ctr["image"])
			}
			if v, _ := envValue(ctr, "PARLEY_DEFAULT_IMAGE"); v != ctr["image"] {
				t.Errorf("PARLEY_DEFAULT_IMAGE %q differs from the operator image %v", v, ctr["image"])
			}
			if v, _ := envValue(ctr, "PARLEY_LEADER_ELECT"); v != "true" {
				t.Errorf("PARLEY_LEADER_ELECT %q with 2 replicas", v)
			}
			for _, kind := range []string{"CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service"} {
				if find(objs, kind, "") == nil {
					t.Errorf("no %s rendered", kind)
				}
			}
		}},
		{"single replica in one namespace", map[string]any{
			"replicaCount":            1,
			"leaderElection":          map[string]any{"enabled": false},
			"watchNamespaces":         []any{"team-a", "team-b"},
			"image":                   map[string]any{"repository": "mirror.local/parley", "tag": "v9.9.9"},
			"defaultImage":            "mirror.local/parley:v9.9.8",
			"metrics":                 map[string]any{"service": map[string]any{"enabled": false}},
			"rbac":                    map[string]any{"aggregateToDefaultRoles": false},
			"maxConcurrentReconciles": 32,
			"kubeAPI":                 map[string]any{"qps": 150, "burst": 300},
		}, func(t *testing.T, objs []*unstructured.Unstructured) {
			ctr := managerContainer(t, find(objs, "Deployment", "parley-operator"))
			if v, _ := envValue(ctr, "PARLEY_MAX_CONCURRENT_RECONCILES"); v != "32" {
				t.Errorf("PARLEY_MAX_CONCURRENT_RECONCILES %q", v)
			}
			if v, _ := envValue(ctr, "PARLEY_KUBE_API_QPS"); v != "150" {
				t.Errorf("PARLEY_KUBE_API_QPS %q", v)
			}
			if v, _ := envValue(ctr, "PARLEY_KUBE_API_BURST"); v != "300" {
				t.Errorf("PARLEY_KUBE_API_BURST %q", v)
			}
			if ctr["image"] != "mirror.local/parley:v9.9.9" {
				t.Errorf("image %v", ctr["image"])
			}
			if v, _ := envValue(ctr, "PARLEY_DEFAULT_IMAGE"); v != "mirror.local/parley:v9.9.8" {
				t.Errorf("PARLEY_DEFAULT_IMAGE %q", v)
			}
			if v, _ := envValue(ctr, "PARLEY_WATCH_NAMESPACE"); v != "team-a,team-b" {
				t.Errorf("PARLEY_WATCH_NAMESPACE %q", v)
			}
			if find(objs, "Service", "") != nil {
				t.Error("metrics Service rendered although disabled")
			}
			if find(objs, "ClusterRole", "parley-operator-chatcluster-viewer") != nil {
				t.Error("aggregated roles rendered although disabled")
			}
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := fmt.Sprintf("parley-chart-%d", i)
			objs, err := renderChart(t, ns, tt.values)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			tt.check(t, objs)
			objs = append(objs, &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns},
			}})
			create(t, c, objs)
		})
	}
}

func TestChartRefusesReplicasWithoutLeaderElection(t *testing.T) {
	_, err := renderChart(t, "parley-system", map[string]any{"replicaCount": 3, "leaderElection": map[string]any{"enabled": false}})
	if err == nil || !strings.Contains(err.Error(), "leaderElection.enabled") {
		t.Fatalf("render error %v, want the leader election message", err)
	}
}

// TestChartMatchesGeneratedManifests keeps the chart's CRD and ClusterRole rules equal to
// what `make manifests` generates from the code.
func TestChartMatchesGeneratedManifests(t *testing.T) {
	generated, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "chat.parley.dev_chatclusters.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := os.ReadFile(filepath.Join("crds", "chat.parley.dev_chatclusters.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(generated, shipped) {
		t.Error("crds/ differs from config/crd/bases: run make manifests")
	}

	roleYAML, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role struct {
		Rules []any `json:"rules"`
	}
	if err := yaml.Unmarshal(roleYAML, &role); err != nil {
		t.Fatal(err)
	}
	objs, err := renderChart(t, "parley-system", nil)
	if err != nil {
		t.Fatal(err)
	}
	cr := find(objs, "ClusterRole", "parley-operator")
	if cr == nil {
		t.Fatal("no operator ClusterRole")
	}
	if len(role.Rules) == 0 || !reflect.DeepEqual(cr.Object["rules"], role.Rules) {
		t.Errorf("chart ClusterRole rules differ from config/rbac/role.yaml: run make manifests\nchart: %v\nrole:  %v", cr.Object["rules"], role.Rules)
	}
}

// TestKustomizeDefaultInstallsAgainstAPIServer builds config/default (what `make deploy`
// applies) and creates it.
func TestKustomizeDefaultInstallsAgainstAPIServer(t *testing.T) {
	c := need(t)
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join("..", "..", "config", "default"))
	if err != nil {
		t.Fatalf("kustomize build config/default: %v", err)
	}
	manifest, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	objs := decode(t, string(manifest))
	dep := find(objs, "Deployment", "parley-operator")
	if dep == nil {
		t.Fatal("no operator Deployment")
	}
	ctr := managerContainer(t, dep)
	if v, _ := envValue(ctr, "PARLEY_DEFAULT_IMAGE"); v != ctr["image"] || v == "" {
		t.Errorf("PARLEY_DEFAULT_IMAGE %q differs from the operator image %v", v, ctr["image"])
	}
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" && o.GetKind() != "Namespace" && o.GetKind() != "ClusterRole" &&
			o.GetKind() != "ClusterRoleBinding" && o.GetNamespace() != "parley-system" {
			t.Errorf("%s %s is in namespace %q, want parley-system", o.GetKind(), o.GetName(), o.GetNamespace())
		}
	}
	create(t, c, objs)
}

// `helm template` without --kube-version renders against Helm's built-in default (v1.20):
// the chart must not refuse it, since nothing is installed. The API server itself refuses
// the CRD's validation rules on a cluster too old for them.
func TestTemplateWithoutKubeVersion(t *testing.T) {
	chrt, err := loader.Load(".")
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	inst := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	inst.DryRun, inst.ClientOnly, inst.IncludeCRDs = true, true, true
	inst.ReleaseName, inst.Namespace = "parley-operator", "parley-system"
	if _, err := inst.Run(chrt, nil); err != nil {
		t.Fatalf("helm template without --kube-version: %v", err)
	}
}
