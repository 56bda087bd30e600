package render_test

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
	"github.com/parleychat/parley/controllers/render"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

const defaultImage = "parley:v0.9.0"

func loadCluster(t *testing.T, name string) *chatv1alpha1.ChatCluster {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "input", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cc chatv1alpha1.ChatCluster
	if err := yaml.UnmarshalStrict(data, &cc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return &cc
}

// rendered is every object the operator creates for cc: the plan on the target image,
// the generated Secrets with fixed values, and the migration Job.
func rendered(cc *chatv1alpha1.ChatCluster) []client.Object {
	image := render.TargetImage(cc, defaultImage)
	secrets := []*corev1.Secret{render.SigningKeySecret(cc, []byte("golden-signing-key"))}
	if cc.Spec.Postgres.Managed != nil {
		secrets = append(secrets, render.PostgresCredentials(cc, "golden-password"))
	}
	digests := map[string]string{}
	for _, s := range secrets {
		digests[s.Name] = render.SecretDigest(s)
	}
	objs := render.Desired(cc, image, digests).Apply
	objs = append(objs, render.MigrationJob(cc, image))
	for _, s := range secrets {
		objs = append(objs, s)
	}
	return objs
}

func goldenName(obj client.Object) string {
	kind := strings.ToLower(obj.GetObjectKind().GroupVersionKind().Kind)
	return kind + "-" + obj.GetName() + ".yaml"
}

func TestGolden(t *testing.T) {
	for _, name := range []string{"minimal", "production", "autoscaling", "cnpg"} {
		t.Run(name, func(t *testing.T) {
			cc := loadCluster(t, name)
			dir := filepath.Join("testdata", "golden", name)
			if *update {
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			want := map[string]bool{}
			for _, obj := range rendered(cc) {
				if obj.GetObjectKind().GroupVersionKind().Kind == "" {
					t.Fatalf("%T %s has no kind: server-side apply needs apiVersion and kind", obj, obj.GetName())
				}
				file := goldenName(obj)
				if want[file] {
					t.Fatalf("two objects render to %s", file)
				}
				want[file] = true
				got, err := yaml.Marshal(obj)
				if err != nil {
					t.Fatal(err)
				}
				path := filepath.Join(dir, file)
				if *update {
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				golden, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test ./controllers/render -update)", err)
				}
				if string(golden) != string(got) {
					t.Errorf("%s differs from its golden file (run with -update to accept):\n--- got\n%s", path, got)
				}
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var stale []string
			for _, e := range entries {
				if !want[e.Name()] {
					stale = append(stale, e.Name())
				}
			}
			sort.Strings(stale)
			if len(stale) > 0 {
				t.Errorf("golden files no longer rendered: %v", stale)
			}
		})
	}
}

func TestTargetImage(t *testing.T) {
	tests := []struct {
		name, version, image, defaultImage, want string
	}{
		{"operator default", "", "", "parley:v0.9.0", "parley:v0.9.0"},
		{"version keeps the operator's repository", "1.2.3", "", "mirror.local:5000/team/parley:v0.9.0", "mirror.local:5000/team/parley:1.2.3"},
		{"version on an untagged default", "1.2.3", "", "parley", "parley:1.2.3"},
		{"version on a digest default", "1.2.3", "", "parley@sha256:abc", "parley:1.2.3"},
		{"image wins", "", "other:7", "parley:v0.9.0", "other:7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := &chatv1alpha1.ChatCluster{Spec: chatv1alpha1.ChatClusterSpec{Version: tt.version, Image: tt.image}}
			if got := render.TargetImage(cc, tt.defaultImage); got != tt.want {
				t.Fatalf("TargetImage = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestVersionOf(t *testing.T) {
	tests := map[string]string{
		"parley:1.2.3":               "1.2.3",
		"mirror.local:5000/parley":   "",
		"mirror.local:5000/parley:7": "7",
		"parley@sha256:abc":          "",
	}
	for image, want := range tests {
		if got := render.VersionOf(image); got != want {
			t.Errorf("VersionOf(%q) = %q, want %q", image, got, want)
		}
	}
}

func TestSettingsChangeChangesChecksum(t *testing.T) {
	cc := loadCluster(t, "minimal")
	before := render.Checksum(render.Settings(cc))
	if again := render.Checksum(render.Settings(cc)); again != before {
		t.Fatalf("checksum not deterministic: %s then %s", before, again)
	}
	cc.Spec.Limits.MaxRoomMembers++
	if after := render.Checksum(render.Settings(cc)); after == before {
		t.Fatal("changing a limit left the settings checksum unchanged: pods would not roll")
	}
}

func TestUserEnvOverridesOperatorEnv(t *testing.T) {
	cc := loadCluster(t, "production")
	d := render.Deployment(cc, render.RoleCore, "parley:1", "sum", nil)
	env := d.Spec.Template.Spec.Containers[0].Env
	seen := map[string]int{}
	for _, e := range env {
		seen[e.Name]++
		if e.Name == "PARLEY_LOG_LEVEL" && e.Value != "debug" {
			t.Errorf("PARLEY_LOG_LEVEL = %q, want the user's debug", e.Value)
		}
	}
	for name, n := range seen {
		if n > 1 {
			t.Errorf("%s appears %d times", name, n)
		}
	}
	if seen["GOMAXPROCS"] != 1 {
		t.Error("user variable GOMAXPROCS missing")
	}
}

func TestSigningKeyOnlyWhereTokensAreHandled(t *testing.T) {
	cc := loadCluster(t, "minimal")
	for _, role := range render.Workloads {
		has := false
		for _, e := range render.Deployment(cc, role, "parley:1", "sum", nil).Spec.Template.Spec.Containers[0].Env {
			if e.Name == "PARLEY_JWT_SIGNING_KEY" {
				has = true
				if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					t.Errorf("%s: signing key must come from a Secret reference", role)
				}
			}
		}
		if want := role != render.RoleNotification; has != want {
			t.Errorf("%s has the signing key = %v, want %v", role, has, want)
		}
	}
}

func TestPlanDropsWorkloadsUntilMigrated(t *testing.T) {
	cc := loadCluster(t, "autoscaling")
	for _, obj := range render.Desired(cc, "", nil).Apply {
		switch obj.GetObjectKind().GroupVersionKind().Kind {
		case "Deployment", "HorizontalPodAutoscaler":
			t.Errorf("%s %s planned before any migration succeeded", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName())
		}
	}
	absent := map[string]bool{}
	for _, obj := range render.Desired(cc, "parley:1", nil).Absent {
		absent[obj.GetName()] = true
	}
	if !absent["scaled-notification"] || absent["scaled-gateway"] {
		t.Errorf("absent HPAs = %v, want only the notification's", absent)
	}
}

func TestLabelValueIsAlwaysAValidLabel(t *testing.T) {
	valid := regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)
	for _, in := range []string{"1.2.3", "_private", "v1.0.0-rc.1", strings.Repeat("a", 62) + ".b", "sha256:abc", "-x-", strings.Repeat("9", 200)} {
		got := render.LabelValue(in)
		if len(got) > 63 || !valid.MatchString(got) {
			t.Errorf("LabelValue(%q) = %q: not a valid label value", in, got)
		}
	}
	if got := render.LabelValue("1.2.3"); got != "1.2.3" {
		t.Errorf("LabelValue(1.2.3) = %q", got)
	}
}

// TestSecretChecksumRollsTheReaders: a new signing key changes the pod templates of the
// workloads that read it (so they roll) and leaves the others alone.
func TestSecretChecksumRollsTheReaders(t *testing.T) {
	cc := loadCluster(t, "minimal")
	digests := func(key string) map[string]string {
		return map[string]string{
			render.SigningKeyName(cc):          render.SecretDigest(render.SigningKeySecret(cc, []byte(key))),
			render.PostgresCredentialsName(cc): render.SecretDigest(render.PostgresCredentials(cc, "pw")),
		}
	}
	sum := func(role string, d map[string]string) string {
		return render.Deployment(cc, role, "parley:1", "sum", d).Spec.Template.Annotations[render.AnnotationSecretChecksum]
	}
	before, after := digests("key-one"), digests("key-two")
	for _, role := range render.Workloads {
		if sum(role, before) == "" {
			t.Errorf("%s: no secret checksum although it reads the managed database's credentials", role)
		}
		if again := sum(role, digests("key-one")); again != sum(role, before) {
			t.Errorf("%s: secret checksum not deterministic", role)
		}
		changed := sum(role, before) != sum(role, after)
		if want := role != render.RoleNotification; changed != want {
			t.Errorf("%s: checksum changed with the signing key = %v, want %v", role, changed, want)
		}
	}
	rotated := render.RotatedSigningKeySecret(cc, []byte("key-two"), []byte("key-one"), time.Unix(0, 0))
	if render.SecretDigest(rotated) == render.SecretDigest(render.SigningKeySecret(cc, []byte("key-two"))) {
		t.Error("the previous key does not change the digest: dropping it would not roll the pods")
	}
}

// The gateway policy opens 8080 of gateway and core to the ingress controller only (the
// default selector or the spec's), and without an Ingress only the gateway's, to anyone:
// core is then reachable from this ChatCluster's own pods alone (the internal policy).
func TestGatewayPolicyAdmitsOnlyTheIngressController(t *testing.T) {
	cc := loadCluster(t, "production")
	p := render.GatewayPolicy(cc)
	if len(p.Spec.Ingress) != 1 {
		t.Fatalf("%d ingress rules, want 1", len(p.Spec.Ingress))
	}
	from := p.Spec.Ingress[0].From
	if len(from) != 1 || from[0].NamespaceSelector == nil ||
		from[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "ingress-nginx" || from[0].PodSelector != nil {
		t.Fatalf("default peers %+v, want the namespace ingress-nginx", from)
	}
	if sel := p.Spec.PodSelector.MatchExpressions; len(sel) != 1 || strings.Join(sel[0].Values, ",") != "gateway,core" {
		t.Fatalf("pods %+v, want gateway and core", p.Spec.PodSelector)
	}

	cc.Spec.Ingress.ControllerSelector = &chatv1alpha1.PeerSelector{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "edge"}},
		PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": "traefik"}},
	}
	from = render.GatewayPolicy(cc).Spec.Ingress[0].From
	if len(from) != 1 || from[0].NamespaceSelector.MatchLabels["team"] != "edge" || from[0].PodSelector.MatchLabels["app"] != "traefik" {
		t.Fatalf("configured peers %+v", from)
	}

	cc.Spec.Ingress = nil
	p = render.GatewayPolicy(cc)
	if len(p.Spec.Ingress) != 1 || len(p.Spec.Ingress[0].From) != 0 {
		t.Fatalf("without an Ingress the gateway admits anyone: %+v", p.Spec.Ingress)
	}
	if sel := p.Spec.PodSelector.MatchExpressions; len(sel) != 1 || strings.Join(sel[0].Values, ",") != "gateway" {
		t.Fatalf("without an Ingress only the gateway is open, got pods %+v", p.Spec.PodSelector)
	}
}

func TestReferencedSecrets(t *testing.T) {
	var got []string
	for _, u := range render.ReferencedSecrets(loadCluster(t, "production")) {
		got = append(got, u.Secret+"/"+u.Key+" "+strings.Join(u.Roles, ","))
	}
	want := []string{
		"pg-app/uri migrate,core,notification,gateway",
		"redis/url core,notification,gateway",
		"kafka-user/username core,notification,gateway",
		"kafka-user/password core,notification,gateway",
		"s3/accessKey core",
		"s3/secretKey core",
		"vapid/publicKey core,notification",
		"vapid/privateKey notification",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("referenced secrets:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Generated Secrets are the operator's own: never reported missing.
	for _, u := range render.ReferencedSecrets(loadCluster(t, "minimal")) {
		t.Errorf("minimal (managed dependencies) references %s/%s", u.Secret, u.Key)
	}
}

// Without resources in the spec every Parley container requests the documented defaults
// (never BestEffort); resources in the spec replace them wholesale.
func TestDefaultResourceRequests(t *testing.T) {
	cc := loadCluster(t, "minimal")
	want := map[string]string{"gateway": "100m/128Mi", "core": "100m/128Mi", "notification": "50m/64Mi"}
	for role, w := range want {
		res := render.Deployment(cc, role, "parley:1", "", nil).Spec.Template.Spec.Containers[0].Resources
		if got := res.Requests.Cpu().String() + "/" + res.Requests.Memory().String(); got != w || len(res.Limits) != 0 {
			t.Errorf("%s requests %s limits %v, want %s and no limits", role, got, res.Limits, w)
		}
	}
	res := render.MigrationJob(cc, "parley:1").Spec.Template.Spec.Containers[0].Resources
	if got := res.Requests.Cpu().String() + "/" + res.Requests.Memory().String(); got != "50m/64Mi" {
		t.Errorf("migrate requests %s", got)
	}
	prod := loadCluster(t, "production")
	res = render.Deployment(prod, "gateway", "parley:1", "", nil).Spec.Template.Spec.Containers[0].Resources
	if got := res.Requests.Cpu().String() + "/" + res.Requests.Memory().String() + "/" + res.Limits.Memory().String(); got != "500m/256Mi/512Mi" {
		t.Errorf("the spec's resources are not used as they are: %s", got)
	}
}
