// Package kube hands tests a real kube-apiserver and etcd (envtest) and, on request, a
// simulated cluster on top of it: kube-controller-manager, kube-scheduler and kwok, so
// that Deployments get pods that become Running on fake nodes without any container.
//
// The binaries come from hack/envtest-assets.sh, which builds them from Go modules when
// nothing else can provide them.
package kube

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/parleychat/parley/internal/testenv"
)

// Options shape the control plane.
type Options struct {
	// CRDDirectoryPaths are installed before Start returns.
	CRDDirectoryPaths []string
	// Scheme for the returned client; client-go's scheme when nil.
	Scheme *runtime.Scheme
}

// ServiceIPRange is the API server's --service-cluster-ip-range.
const ServiceIPRange = "10.0.0.0/16"

// Env is a running control plane.
type Env struct {
	Environment *envtest.Environment
	Config      *rest.Config
	Client      client.Client
}

var assetsMu sync.Mutex

// Assets returns a directory holding kube-apiserver and etcd (and the simulated-cluster
// binaries when withSim). It asks hack/envtest-assets.sh, which honours
// KUBEBUILDER_ASSETS, then its cache, and builds from Go modules as a last resort.
func Assets(withSim bool) (string, error) {
	assetsMu.Lock()
	defer assetsMu.Unlock()
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	args := []string{filepath.Join(root, "hack", "envtest-assets.sh")}
	if withSim {
		args = append(args, "--with-sim")
	}
	cmd := exec.Command("bash", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/envtest-assets.sh: %w: %s", err, lastLines(stderr.String(), 20))
	}
	return strings.TrimSpace(string(out)), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// repoRoot walks up from the working directory (a package directory under go test) to
// the directory holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Start runs a control plane until Stop; for TestMain, where one plane serves a package.
func Start(opts Options) (*Env, error) {
	dir, err := Assets(false)
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    dir,
		CRDDirectoryPaths:        opts.CRDDirectoryPaths,
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	// envtest's default Service range, a /24, holds 254 Services: a hundred ChatClusters
	// have 300, and every apply past the 254th failed with "range is full" (each failed
	// reconcile then waited out the work queue's backoff). A /16 holds 65 534.
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", ServiceIPRange)
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start envtest: %w", err)
	}
	scheme := opts.Scheme
	if scheme == nil {
		scheme = clientgoscheme.Scheme
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("client: %w", err)
	}
	return &Env{Environment: env, Config: cfg, Client: c}, nil
}

// Stop stops the control plane.
func (e *Env) Stop() error { return e.Environment.Stop() }

// New starts a control plane for one test and stops it when the test ends. Missing
// binaries skip locally and fail under CI=true, like every other service.
func New(t testing.TB, opts Options) *Env {
	t.Helper()
	env, err := Start(opts)
	if err != nil {
		testenv.Unavailable(t, "envtest control plane", err)
		return nil
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop envtest: %v", err)
		}
	})
	return env
}

// Kubeconfig writes an admin kubeconfig for env into dir and returns its path.
func (e *Env) Kubeconfig(dir string) (string, error) {
	user, err := e.Environment.ControlPlane.AddUser(envtest.User{Name: "sim-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", fmt.Errorf("add user: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", fmt.Errorf("kubeconfig: %w", err)
	}
	path := filepath.Join(dir, "kubeconfig")
	return path, os.WriteFile(path, data, 0o600)
}

// stopGrace is how long a simulated-cluster process may take to exit on SIGINT.
const stopGrace = 5 * time.Second

// simProcess is one binary of the simulated cluster.
type simProcess struct {
	name string
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan error
}

func (p *simProcess) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// syncBuffer lets the process write while the test reads the log on failure.
type syncBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

// FakeNodeAnnotation marks the nodes kwok manages.
const FakeNodeAnnotation = "kwok.x-k8s.io/node"

// Simulate starts kube-controller-manager, kube-scheduler and kwok against env and stops
// them when the test ends (before the control plane, which otherwise takes ~20 s to
// stop). Create nodes annotated FakeNodeAnnotation=fake for pods to land on.
func Simulate(t testing.TB, env *Env) {
	t.Helper()
	dir, err := Assets(true)
	if err != nil {
		testenv.Unavailable(t, "simulated-cluster binaries", err)
		return
	}
	work := t.TempDir()
	kubeconfig, err := env.Kubeconfig(work)
	if err != nil {
		t.Fatal(err)
	}
	stages, err := filepath.Glob(filepath.Join(dir, "kwok-stages", "*.yaml"))
	if err != nil || len(stages) == 0 {
		t.Fatalf("kwok stages missing under %s", dir)
	}
	// The simulated cluster must not be what a test measures: kube-controller-manager's
	// controllers would each send at most 20 requests a second (its --kube-api-qps
	// default) and the scheduler 50, so a hundred ChatClusters' Deployments and Jobs
	// would queue behind client-side token buckets. Lifted as kwokctl does for its
	// clusters; kwok's own client has no limit.
	// Likewise its Deployment, ReplicaSet and Job controllers sync 5 objects at a time by
	// default; a burst of hundreds would wait in their queues, not in the operator's.
	unlimited := []string{"--kube-api-qps=5000", "--kube-api-burst=10000"}
	specs := [][]string{
		append([]string{"kube-controller-manager", "--kubeconfig=" + kubeconfig, "--leader-elect=false", "--secure-port=0",
			"--use-service-account-credentials=false", "--controllers=*,-serviceaccount-token-controller",
			"--concurrent-deployment-syncs=25", "--concurrent-replicaset-syncs=25", "--concurrent-job-syncs=25"}, unlimited...),
		append([]string{"kube-scheduler", "--kubeconfig=" + kubeconfig, "--leader-elect=false", "--secure-port=0"}, unlimited...),
		append([]string{"kwok", "--kubeconfig=" + kubeconfig, "--manage-all-nodes=false",
			"--manage-nodes-with-annotation-selector=" + FakeNodeAnnotation + "=fake",
			"--node-ip=10.0.0.1", "--cidr=10.0.0.1/24", "--server-address="},
			stageFlags(stages)...),
	}
	var procs []*simProcess
	for _, spec := range specs {
		out := &syncBuffer{}
		cmd := exec.Command(filepath.Join(dir, spec[0]), spec[1:]...)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", spec[0], err)
		}
		p := &simProcess{name: spec[0], cmd: cmd, out: &out.Buffer, done: make(chan error, 1)}
		go func() { p.done <- cmd.Wait() }()
		procs = append(procs, p)
	}
	t.Cleanup(func() {
		for _, p := range procs {
			p.stop()
			if t.Failed() {
				t.Logf("--- %s log (tail) ---\n%s", p.name, lastLines(p.out.String(), 30))
			}
		}
	})
}

func stageFlags(paths []string) []string {
	var out []string
	for _, p := range paths {
		out = append(out, "-c", p)
	}
	return out
}

// Eventually polls cond every interval until it returns true or timeout passes.
func Eventually(ctx context.Context, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
			}
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
