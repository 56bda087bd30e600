package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/rand"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
	"github.com/parleychat/parley/controllers"
	"github.com/parleychat/parley/controllers/render"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/internal/testenv/kube"
)

// operatorImage is the image the test operator runs as; workloads default to it.
const operatorImage = "parley:v1.0.0"

// wait is the deadline for anything the controller does asynchronously.
const wait = 30 * time.Second

var (
	env        *kube.Env
	startErr   error
	scheme     = runtime.NewScheme()
	writes     = &writeLog{}
	reconciler *controllers.ChatClusterReconciler
)

func TestMain(m *testing.M) {
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := chatv1alpha1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	ctrl.SetLogger(logr.Discard())
	env, startErr = kube.Start(kube.Options{
		CRDDirectoryPaths: []string{filepath.Join("..", "config", "crd", "bases")},
		Scheme:            scheme,
	})
	if startErr != nil {
		// Each test reports it, skipping locally and failing under CI=true.
		os.Exit(m.Run())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	if err := startManager(ctx, done); err != nil {
		fmt.Fprintln(os.Stderr, "start manager:", err)
		_ = env.Stop()
		os.Exit(1)
	}
	code := m.Run()
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
	}
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop envtest:", err)
	}
	os.Exit(code)
}

func startManager(ctx context.Context, done chan<- error) error {
	mgr, r, err := newManager(env.Config, writes, 0)
	if err != nil {
		return err
	}
	reconciler = r
	go func() { done <- mgr.Start(ctx) }()
	return nil
}

// newManager builds the operator's manager as the role does, with a client that logs
// every write into log and maxConcurrent reconcile workers (0: the reconciler's default).
func newManager(cfg *rest.Config, log *writeLog, maxConcurrent int) (ctrl.Manager, *controllers.ChatClusterReconciler, error) {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  controllers.CacheOptions(nil),
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
		NewClient: func(cfg *rest.Config, opts client.Options) (client.Client, error) {
			c, err := client.New(cfg, opts)
			if err != nil {
				return nil, err
			}
			return &countingClient{Client: c, log: log}, nil
		},
	})
	if err != nil {
		return nil, nil, err
	}
	r := &controllers.ChatClusterReconciler{
		Client:       mgr.GetClient(),
		APIReader:    mgr.GetAPIReader(),
		Scheme:       mgr.GetScheme(),
		Recorder:     mgr.GetEventRecorder("parley-operator"),
		DefaultImage: operatorImage,

		MaxConcurrentReconciles: maxConcurrent,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return nil, nil, err
	}
	return mgr, r, nil
}

// need hands the test the control plane, or skips/fails it when there is none.
func need(t testing.TB) client.Client {
	t.Helper()
	if startErr != nil {
		testenv.Unavailable(t, "envtest control plane", startErr)
	}
	return env.Client
}

// namespace creates a namespace of the test's own.
func namespace(t testing.TB, c client.Client) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "t-" + rand.String(8)}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	// The Secrets externalCluster names: the operator holds pods back without them.
	for _, name := range []string{"pg", "redis"} {
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: name}, StringData: map[string]string{"url": name + "://" + name}}
		if err := c.Create(context.Background(), secret); err != nil {
			t.Fatal(err)
		}
	}
	return ns.Name
}

// writeLog records every write the operator's client makes, by namespace, and can hold
// back the writes other than status in a namespace (hold).
type writeLog struct {
	mu   sync.Mutex
	byNS map[string][]string
	held map[string]chan struct{}
}

func (w *writeLog) add(namespace, what string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.byNS == nil {
		w.byNS = map[string][]string{}
	}
	w.byNS[namespace] = append(w.byNS[namespace], what)
}

// hold makes every write but a status update in namespace wait until release is called
// (or the write's context ends): a reconcile that writes a child stalls there.
func (w *writeLog) hold(namespace string) (release func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.held == nil {
		w.held = map[string]chan struct{}{}
	}
	ch := make(chan struct{})
	w.held[namespace] = ch
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			delete(w.held, namespace)
			w.mu.Unlock()
			close(ch)
		})
	}
}

func (w *writeLog) waitHeld(ctx context.Context, namespace string) {
	w.mu.Lock()
	ch := w.held[namespace]
	w.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

func (w *writeLog) in(namespace string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.byNS[namespace]...)
}

// countingClient wraps the operator's real client and logs every write it makes.
type countingClient struct {
	client.Client
	log *writeLog
}

func kindOf(c client.Client, obj runtime.Object) string {
	gvk, err := c.GroupVersionKindFor(obj)
	if err != nil {
		return fmt.Sprintf("%T", obj)
	}
	return gvk.Kind
}

func (c *countingClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	c.log.waitHeld(ctx, obj.GetNamespace())
	c.log.add(obj.GetNamespace(), "create "+kindOf(c.Client, obj)+" "+obj.GetName())
	return c.Client.Create(ctx, obj, opts...)
}

func (c *countingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	c.log.waitHeld(ctx, obj.GetNamespace())
	c.log.add(obj.GetNamespace(), "update "+kindOf(c.Client, obj)+" "+obj.GetName())
	return c.Client.Update(ctx, obj, opts...)
}

func (c *countingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	c.log.waitHeld(ctx, obj.GetNamespace())
	c.log.add(obj.GetNamespace(), "patch "+kindOf(c.Client, obj)+" "+obj.GetName())
	return c.Client.Patch(ctx, obj, patch, opts...)
}

func (c *countingClient) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	c.log.waitHeld(ctx, obj.GetNamespace())
	c.log.add(obj.GetNamespace(), "delete "+kindOf(c.Client, obj)+" "+obj.GetName())
	return c.Client.Delete(ctx, obj, opts...)
}

func (c *countingClient) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
	var head struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	data, _ := json.Marshal(obj)
	_ = json.Unmarshal(data, &head)
	c.log.waitHeld(ctx, head.Metadata.Namespace)
	c.log.add(head.Metadata.Namespace, "apply "+head.Kind+" "+head.Metadata.Name)
	return c.Client.Apply(ctx, obj, opts...)
}

func (c *countingClient) Status() client.SubResourceWriter {
	return &countingStatus{SubResourceWriter: c.Client.Status(), log: c.log}
}

type countingStatus struct {
	client.SubResourceWriter
	log *writeLog
}

func (s *countingStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	s.log.add(obj.GetNamespace(), "update status "+obj.GetName())
	return s.SubResourceWriter.Update(ctx, obj, opts...)
}

func (s *countingStatus) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	s.log.add(obj.GetNamespace(), "patch status "+obj.GetName())
	return s.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}

// eventually waits for cond, failing the test with what it last saw.
func eventually(t *testing.T, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	if err := kube.Eventually(context.Background(), wait, cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// getCluster reads the ChatCluster.
func getCluster(ctx context.Context, c client.Client, ns, name string) (*chatv1alpha1.ChatCluster, error) {
	var cc chatv1alpha1.ChatCluster
	return &cc, c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &cc)
}

// waitCondition waits until the ChatCluster's status describes its current generation
// and condition typ has status and reason.
func waitCondition(t *testing.T, c client.Client, ns, name, typ string, status metav1.ConditionStatus, reason string) *chatv1alpha1.ChatCluster {
	t.Helper()
	var last *chatv1alpha1.ChatCluster
	eventually(t, fmt.Sprintf("condition %s=%s (%s)", typ, status, reason), func(ctx context.Context) (bool, error) {
		cc, err := getCluster(ctx, c, ns, name)
		if err != nil {
			return false, err
		}
		last = cc
		cond := meta.FindStatusCondition(cc.Status.Conditions, typ)
		if cc.Status.ObservedGeneration != cc.Generation || cond == nil {
			return false, fmt.Errorf("observed generation %d of %d, conditions %v", cc.Status.ObservedGeneration, cc.Generation, cc.Status.Conditions)
		}
		if cond.Status != status || (reason != "" && cond.Reason != reason) {
			return false, fmt.Errorf("%s is %s (%s: %s)", typ, cond.Status, cond.Reason, cond.Message)
		}
		return true, nil
	})
	return last
}

// finishMigration plays the Job controller: it marks the migration Job for image as
// succeeded or failed.
func finishMigration(t *testing.T, c client.Client, cc *chatv1alpha1.ChatCluster, image string, succeed bool) {
	t.Helper()
	ctx := context.Background()
	var job batchv1.Job
	key := client.ObjectKey{Namespace: cc.Namespace, Name: render.MigrationJobName(cc, image)}
	eventually(t, "migration job "+key.Name, func(ctx context.Context) (bool, error) {
		return c.Get(ctx, key, &job) == nil, nil
	})
	now := metav1.Now()
	job.Status.StartTime = &now
	if succeed {
		job.Status.Succeeded = 1
		job.Status.CompletionTime = &now
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: "CompletionsReached", Message: "Reached expected number of succeeded pods", LastTransitionTime: now, LastProbeTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: "CompletionsReached", Message: "Reached expected number of succeeded pods", LastTransitionTime: now, LastProbeTime: now},
		}
	} else {
		job.Status.Failed = 4
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit", LastTransitionTime: now, LastProbeTime: now},
			{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit", LastTransitionTime: now, LastProbeTime: now},
		}
	}
	if err := c.Status().Update(ctx, &job); err != nil {
		t.Fatalf("set job status: %v", err)
	}
}

// updateCluster applies mutate to the latest cc and updates it, retrying when the
// operator's status writes win the race; cc receives the result.
func updateCluster(t *testing.T, c client.Client, cc *chatv1alpha1.ChatCluster, mutate func(*chatv1alpha1.ChatCluster)) {
	t.Helper()
	if err := tryUpdateCluster(c, cc, mutate); err != nil {
		t.Fatalf("update chatcluster: %v", err)
	}
}

func tryUpdateCluster(c client.Client, cc *chatv1alpha1.ChatCluster, mutate func(*chatv1alpha1.ChatCluster)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(cc), cc); err != nil {
			return err
		}
		mutate(cc)
		return c.Update(context.Background(), cc)
	})
}

// kubectlScale sets obj's scale subresource to replicas. The operator writes the object
// or its status meanwhile, so a stale resourceVersion is read again and retried, as
// kubectl would; any other answer (a refusal) is returned.
func kubectlScale(ctx context.Context, c client.Client, obj client.Object, replicas int32) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		scale := &autoscalingv1.Scale{}
		if err := c.SubResource("scale").Get(ctx, obj, scale); err != nil {
			return err
		}
		scale.Spec.Replicas = replicas
		return c.SubResource("scale").Update(ctx, obj, client.WithSubResourceBody(scale))
	})
}
