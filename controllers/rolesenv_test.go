package controllers_test

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
	"github.com/parleychat/parley/controllers/render"
)

// parleyBinary is the parley binary of this tree, built once per test process.
func parleyBinary(t testing.TB) string {
	t.Helper()
	parleyOnce.Do(buildParleyOnce)
	if parleyErr != nil {
		t.Fatal(parleyErr)
	}
	return parleyBin
}

// TestRenderedEnvIsReadByTheRoles checks every ChatCluster of the samples and of the
// renderer's golden inputs without a cluster: a PARLEY_* variable a pod's env sets must
// be a flag of that pod's role, and each key of the shared settings ConfigMap a flag of
// some role. A role ignores variables it has no flag for, so a misnamed or misplaced
// one would otherwise pass unnoticed (TestOperatorEndToEnd runs one cluster for real).
func TestRenderedEnvIsReadByTheRoles(t *testing.T) {
	bin := parleyBinary(t)
	roles := append([]string{render.RoleMigrate}, render.Workloads...)
	flags := map[string]map[string]bool{}
	anyRole := map[string]bool{}
	for _, role := range roles {
		flags[role] = roleEnv(t, bin, role)
		for name := range flags[role] {
			anyRole[name] = true
		}
	}
	samples, err := filepath.Glob(filepath.Join("..", "config", "samples", "chat_*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	inputs, err := filepath.Glob(filepath.Join("render", "testdata", "input", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files := append(samples, inputs...)
	if len(files) < 2 {
		t.Fatalf("found only %v", files)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var cc chatv1alpha1.ChatCluster
			if err := yaml.Unmarshal(data, &cc); err != nil {
				t.Fatal(err)
			}
			if cc.Namespace == "" {
				cc.Namespace = "default"
			}
			image := render.TargetImage(&cc, operatorImage)
			pods := map[string]corev1.PodTemplateSpec{render.RoleMigrate: render.MigrationJob(&cc, image).Spec.Template}
			for _, role := range render.Workloads {
				pods[role] = render.Deployment(&cc, role, image, "", nil).Spec.Template
			}
			var problems []string
			for _, role := range roles {
				for _, c := range pods[role].Spec.Containers {
					for _, e := range c.Env {
						if strings.HasPrefix(e.Name, "PARLEY_") && !flags[role][e.Name] {
							problems = append(problems, role+": "+e.Name+" is set, but parley "+role+" has no flag reading it")
						}
					}
				}
			}
			for key := range render.Settings(&cc).Data {
				if !anyRole[key] {
					problems = append(problems, "settings: "+key+" is read by no role")
				}
			}
			sort.Strings(problems)
			if len(problems) > 0 {
				t.Errorf("rendered environment and the roles' flags disagree:\n  %s", strings.Join(problems, "\n  "))
			}
		})
	}
}
