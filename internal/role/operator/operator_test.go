package operator_test

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
	"github.com/parleychat/parley/controllers/render"
	"github.com/parleychat/parley/internal/cli"
	"github.com/parleychat/parley/internal/role/operator"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/internal/testenv/kube"
)

func TestUsageListsFlagsWithEnv(t *testing.T) {
	var out bytes.Buffer
	code := cli.Main(context.Background(), cli.Env{Stdout: &out, Stderr: io.Discard, Getenv: func(string) string { return "" }},
		[]cli.Role{operator.Role()}, []string{"operator", "--help"})
	if code != cli.ExitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"--metrics-bind-address", "PARLEY_METRICS_BIND_ADDRESS",
		"--health-probe-bind-address", "--leader-elect", "--watch-namespace", "PARLEY_WATCH_NAMESPACE",
		"--default-image", "PARLEY_DEFAULT_IMAGE",
		"--max-concurrent-reconciles", "PARLEY_MAX_CONCURRENT_RECONCILES",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %s:\n%s", want, out.String())
		}
	}
}

// TestMaxConcurrentReconcilesFlag: the flag fills Options (the envtest below checks that
// Options reach the controller), with a default sized for hundreds of ChatClusters.
func TestMaxConcurrentReconcilesFlag(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want int
	}{
		{nil, operator.DefaultMaxConcurrentReconciles},
		{[]string{"--max-concurrent-reconciles", "7"}, 7},
	} {
		var o operator.Options
		fs := flag.NewFlagSet("operator", flag.ContinueOnError)
		o.RegisterFlags(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		if o.MaxConcurrentReconciles != tt.want {
			t.Errorf("%v: MaxConcurrentReconciles %d, want %d", tt.args, o.MaxConcurrentReconciles, tt.want)
		}
	}
	if operator.DefaultMaxConcurrentReconciles < 8 {
		t.Errorf("default %d workers: too few for hundreds of ChatClusters", operator.DefaultMaxConcurrentReconciles)
	}
}

// TestKubeAPIRateFlags: no client-side limit unless asked for (the flags and their
// PARLEY_ variables fill Options).
func TestKubeAPIRateFlags(t *testing.T) {
	for _, tt := range []struct {
		args  []string
		qps   float64
		burst int
	}{
		{nil, 0, 0},
		{[]string{"--kube-api-qps", "150", "--kube-api-burst", "300"}, 150, 300},
	} {
		var o operator.Options
		fs := flag.NewFlagSet("operator", flag.ContinueOnError)
		o.RegisterFlags(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		if o.KubeAPIQPS != tt.qps || o.KubeAPIBurst != tt.burst {
			t.Errorf("%v: qps %g burst %d, want %g and %d", tt.args, o.KubeAPIQPS, o.KubeAPIBurst, tt.qps, tt.burst)
		}
	}
}

func TestBadOptionsAreUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"log level", []string{"operator", "--log-level", "loud"}, nil, "--log-level"},
		{"empty image from env", []string{"operator", "--default-image", " "}, nil, "--default-image"},
		{"stray argument", []string{"operator", "extra"}, nil, "unexpected arguments"},
		{"bad bool in env", []string{"operator"}, map[string]string{"PARLEY_LEADER_ELECT": "maybe"}, "PARLEY_LEADER_ELECT"},
		{"negative workers", []string{"operator", "--max-concurrent-reconciles", "-1"}, nil, "--max-concurrent-reconciles"},
		{"too many workers from env", []string{"operator"}, map[string]string{"PARLEY_MAX_CONCURRENT_RECONCILES": "5000"}, "--max-concurrent-reconciles"},
		{"negative qps", []string{"operator", "--kube-api-qps", "-1"}, nil, "--kube-api-qps"},
		{"negative burst from env", []string{"operator"}, map[string]string{"PARLEY_KUBE_API_BURST": "-5"}, "--kube-api-burst"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var errb bytes.Buffer
			code := cli.Main(context.Background(), cli.Env{Stdout: io.Discard, Stderr: &errb, Getenv: func(k string) string { return tt.env[k] }},
				[]cli.Role{operator.Role()}, tt.args)
			if code != cli.ExitUsage || !strings.Contains(errb.String(), tt.want) {
				t.Fatalf("exit %d, stderr %q; want %d mentioning %q", code, errb.String(), cli.ExitUsage, tt.want)
			}
		})
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func httpGet(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// TestOperatorReconcilesWatchedNamespace runs the role as the binary would, against a
// real API server: leader election, probes, metrics, and the namespace filter.
func TestOperatorReconcilesWatchedNamespace(t *testing.T) {
	scheme, err := operator.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	env := kube.New(t, kube.Options{CRDDirectoryPaths: []string{filepath.Join("..", "..", "..", "config", "crd", "bases")}, Scheme: scheme})
	c := env.Client
	ctx := context.Background()
	for _, ns := range []string{"watched", "ignored", "operator-system"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}

	operatorConfig := restrictedUser(t, env, "operator-system")
	metricsAddr, probeAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	logs := &lockedBuffer{}
	go func() {
		done <- operator.Run(runCtx, cli.Env{Stdout: io.Discard, Stderr: logs, Getenv: func(string) string { return "" }}, operator.Options{
			MetricsAddr: metricsAddr, ProbeAddr: probeAddr,
			LeaderElect: true, LeaderElectNS: "operator-system",
			WatchNamespace: "watched", DefaultImage: "parley:v7.0.0", LogLevel: "info",
			MaxConcurrentReconciles: 3,
			RestConfig:              operatorConfig,
		})
	}()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			stop()
			<-done
		}
	})

	clusters := map[string]*chatv1alpha1.ChatCluster{}
	for _, ns := range []string{"watched", "ignored"} {
		// Every kind of child: managed dependencies, files claim, Ingress, autoscaler.
		cc := &chatv1alpha1.ChatCluster{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat"},
			Spec: chatv1alpha1.ChatClusterSpec{
				// Connections and CPU: the connection autoscaler reads gateway pods, and CPU
				// brings the HPA, so every permission is exercised.
				Gateway: chatv1alpha1.WorkloadSpec{
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}},
					Autoscaling: &chatv1alpha1.AutoscalingSpec{
						MinReplicas: 2, MaxReplicas: 4, TargetConnectionsPerPod: ptr.To[int32](1000), TargetCPUUtilization: ptr.To[int32](70),
					},
				},
				Postgres: chatv1alpha1.PostgresSpec{Managed: &chatv1alpha1.ManagedDependency{}},
				Redis:    chatv1alpha1.RedisSpec{Managed: &chatv1alpha1.ManagedDependency{}},
				Kafka:    chatv1alpha1.KafkaSpec{Managed: &chatv1alpha1.ManagedDependency{}},
				Files:    chatv1alpha1.FilesSpec{Volume: &chatv1alpha1.FilesVolume{AccessMode: corev1.ReadWriteMany}},
				Ingress:  &chatv1alpha1.IngressSpec{Host: "chat.example.com"},
			},
		}
		if err := c.Create(ctx, cc); err != nil {
			t.Fatal(err)
		}
		clusters[ns] = cc
	}

	watched := clusters["watched"]
	var job batchv1.Job
	jobKey := client.ObjectKey{Namespace: "watched", Name: render.MigrationJobName(watched, "parley:v7.0.0")}
	var exited error
	if err := kube.Eventually(ctx, time.Minute, func(ctx context.Context) (bool, error) {
		select {
		case exited = <-done:
			stopped = true
			return true, nil
		default:
		}
		// Play the StatefulSet controller: the migration Job waits for PostgreSQL's pod.
		var sts appsv1.StatefulSet
		if err := c.Get(ctx, client.ObjectKey{Namespace: "watched", Name: "chat-postgres"}, &sts); err == nil && sts.Status.ReadyReplicas == 0 {
			sts.Status.Replicas, sts.Status.ReadyReplicas = 1, 1
			if err := c.Status().Update(ctx, &sts); err != nil && !apierrors.IsConflict(err) {
				return false, err
			}
		}
		return c.Get(ctx, jobKey, &job) == nil, nil
	}); err != nil || stopped {
		t.Fatalf("no migration Job on the operator's default image in the watched namespace: %v (operator exited: %t, %v)\n%s", err, stopped, exited, logs.String())
	}
	completeJob(t, c, &job)

	children := []client.Object{
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "chat-gateway"}},
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "chat-kafka"}},
		&autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "chat-gateway"}},
		&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "chat"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "chat-signing-key"}},
		&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "chat-files"}},
	}
	for _, obj := range children {
		if err := kube.Eventually(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
			return c.Get(ctx, client.ObjectKey{Namespace: "watched", Name: obj.GetName()}, obj) == nil, nil
		}); err != nil {
			t.Fatalf("%T %s never created by the operator under its RBAC: %v\n%s", obj, obj.GetName(), err, logs.String())
		}
	}
	// Removing the Ingress and the autoscaler needs the delete permission.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(watched), watched); err != nil {
			return err
		}
		watched.Spec.Ingress = nil
		watched.Spec.Gateway.Autoscaling = nil
		return c.Update(ctx, watched)
	}); err != nil {
		t.Fatal(err)
	}
	for _, obj := range []client.Object{
		&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "watched", Name: "chat"}},
		&autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Namespace: "watched", Name: "chat-gateway"}},
	} {
		if err := kube.Eventually(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
			err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj)
			return apierrors.IsNotFound(err), err
		}); err != nil {
			t.Fatalf("%T %s not removed: %v\n%s", obj, obj.GetName(), err, logs.String())
		}
	}
	if err := kube.Eventually(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		var events eventsv1.EventList
		if err := c.List(ctx, &events, client.InNamespace("watched")); err != nil {
			return false, err
		}
		for _, e := range events.Items {
			if e.Reason == "MigrationSucceeded" {
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Fatalf("no MigrationSucceeded event: %v", err)
	}

	if err := kube.Eventually(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		code, _, err := httpGet(ctx, "http://"+probeAddr+"/readyz")
		return code == http.StatusOK, err
	}); err != nil {
		t.Fatalf("readyz: %v", err)
	}
	if code, _, err := httpGet(ctx, "http://"+probeAddr+"/healthz"); err != nil || code != http.StatusOK {
		t.Fatalf("healthz: %d %v", code, err)
	}
	if err := kube.Eventually(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		_, body, err := httpGet(ctx, "http://"+metricsAddr+"/metrics")
		want := `parley_operator_reconcile_total{name="chat",namespace="watched",outcome="success"}`
		// controller-runtime reports the workers the controller was built with.
		workers := `controller_runtime_max_concurrent_reconciles{controller="chatcluster"} 3`
		return strings.Contains(body, want) && strings.Contains(body, "controller_runtime_reconcile_total") && strings.Contains(body, workers), err
	}); err != nil {
		t.Fatalf("metrics: %v", err)
	}

	var lease coordinationv1.Lease
	if err := kube.Eventually(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		err := c.Get(ctx, client.ObjectKey{Namespace: "operator-system", Name: operator.LeaderElectionID}, &lease)
		return err == nil && lease.Spec.HolderIdentity != nil, err
	}); err != nil {
		t.Fatalf("leader election Lease: %v", err)
	}

	var jobs batchv1.JobList
	if err := c.List(ctx, &jobs, client.InNamespace("ignored")); err != nil {
		t.Fatal(err)
	}
	if len(jobs.Items) != 0 {
		t.Fatalf("the operator reconciled a namespace it does not watch: %d Jobs", len(jobs.Items))
	}

	stop()
	stopped = true
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("operator returned %v on cancel", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("operator did not stop within 30 s of cancel")
	}
	if strings.Contains(logs.String(), "forbidden") {
		t.Errorf("the operator hit RBAC denials:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "starting parley operator") {
		t.Errorf("no start log line:\n%s", logs.String())
	}
	// A clean run and shutdown, leader included, logs no error.
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) {
			t.Errorf("error logged: %s", line)
		}
	}
}

// restrictedUser is a user holding exactly the shipped RBAC: config/rbac's ClusterRole
// (generated from the controller's markers) and the leader-election Role in leaseNS.
func restrictedUser(t *testing.T, env *kube.Env, leaseNS string) *rest.Config {
	t.Helper()
	ctx := context.Background()
	const name = "parley-operator-under-test"
	user, err := env.Environment.ControlPlane.AddUser(envtest.User{Name: name}, nil)
	if err != nil {
		t.Fatal(err)
	}
	subject := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}}
	var role rbacv1.ClusterRole
	readYAML(t, filepath.Join("..", "..", "..", "config", "rbac", "role.yaml"), &role)
	var lease rbacv1.Role
	readYAML(t, filepath.Join("..", "..", "..", "config", "rbac", "leader_election_role.yaml"), &lease)
	lease.Namespace = leaseNS
	objs := []client.Object{
		&role,
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
			Subjects:   subject,
		},
		&lease,
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: leaseNS},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: lease.Name},
			Subjects:   subject,
		},
	}
	for _, obj := range objs {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatalf("create %s: %v", obj.GetName(), err)
		}
	}
	return user.Config()
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// completeJob plays the Job controller, which envtest does not run.
func completeJob(t *testing.T, c client.Client, job *batchv1.Job) {
	t.Helper()
	now := metav1.Now()
	job.Status.StartTime = &now
	job.Status.CompletionTime = &now
	job.Status.Succeeded = 1
	job.Status.Conditions = []batchv1.JobCondition{
		{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: "CompletionsReached", LastTransitionTime: now, LastProbeTime: now},
		{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: "CompletionsReached", LastTransitionTime: now, LastProbeTime: now},
	}
	if err := c.Status().Update(context.Background(), job); err != nil {
		t.Fatalf("complete job: %v", err)
	}
}
