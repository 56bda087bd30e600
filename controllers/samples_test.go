package controllers_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
)

// TestSamplesAreAccepted creates every config/samples ChatCluster (dry run, strict field
// validation) so the documented examples cannot rot.
func TestSamplesAreAccepted(t *testing.T) {
	c := need(t)
	ns := namespace(t, c)
	paths, err := filepath.Glob(filepath.Join("..", "config", "samples", "chat_*.yaml"))
	if err != nil || len(paths) < 3 {
		t.Fatalf("want at least three samples, found %v (%v)", paths, err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var cc chatv1alpha1.ChatCluster
			if err := yaml.UnmarshalStrict(data, &cc); err != nil {
				t.Fatalf("%s does not match the API types: %v", path, err)
			}
			cc.Namespace = ns
			if err := c.Create(context.Background(), &cc, client.DryRunAll, client.FieldValidation("Strict")); err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if cc.Spec.Files.MaxUploadBytes == 0 || cc.Spec.Auth.Registration == "" {
				t.Fatalf("defaults not applied by the API server: %+v", cc.Spec.Files)
			}
		})
	}
}
