package controllers_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

const cnpgCRDDir = "testdata/crds/cnpg"

// The CloudNativePG CRDs the envtest suites install are the project's published ones, as
// hack/cnpg-crds.sh copies them from the Go module at the recorded version: byte for
// byte, not hand-written stand-ins.
func TestCNPGCRDsMatchTheModule(t *testing.T) {
	version, err := os.ReadFile(filepath.Join(cnpgCRDDir, "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	mod := "github.com/cloudnative-pg/cloudnative-pg@" + strings.TrimSpace(string(version))
	// Outside this module, so that go.mod and go.sum stay as they are.
	cmd := exec.Command("go", "mod", "download", "-json", mod)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v", mod, err) // the Go module proxy is reachable here and in CI
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
		t.Fatalf("go mod download %s: %s %v", mod, out, err)
	}
	for _, kind := range []string{"clusters", "scheduledbackups", "backups"} {
		name := "postgresql.cnpg.io_" + kind + ".yaml"
		want, err := os.ReadFile(filepath.Join(info.Dir, "config", "crd", "bases", name))
		if err != nil {
			t.Fatalf("%s publishes no %s: %v", mod, name, err)
		}
		got, err := os.ReadFile(filepath.Join(cnpgCRDDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s's: run hack/cnpg-crds.sh", name, mod)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(got, &crd); err != nil || crd.Spec.Group != "postgresql.cnpg.io" {
			t.Errorf("%s is not a postgresql.cnpg.io CRD: %v", name, err)
		}
	}
}
