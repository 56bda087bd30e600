package controllers_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/internal/testenv/kube"
)

// benchClusters is how many ChatClusters the operator benchmark creates.
const benchClusters = 100

// BenchmarkOperatorHundredClusters is the operator benchmark (make bench-operator):
// `parley operator` as a process, with the generated kubeconfig of a simulated cluster of
// its own, gets 100 ChatClusters at once; it reports the time to the first and to the
// last Ready=True and the operator's CPU time, first with --max-concurrent-reconciles=1
// (the baseline) and then at its default, each on a fresh simulated cluster in the same
// run. One iteration is the whole comparison (run it with -benchtime 1x).
func BenchmarkOperatorHundredClusters(b *testing.B) {
	need(b)
	bin := parleyBinary(b)
	runs := []struct {
		name  string
		flags []string
	}{
		{"max-concurrent-reconciles=1", []string{"--max-concurrent-reconciles=1"}},
		{"default", nil},
	}
	results := make([]benchResult, len(runs))
	for i, run := range runs {
		// A sub-benchmark each, so one run's cluster and operator are gone before the next.
		b.Run(run.name, func(b *testing.B) {
			for b.Loop() {
				results[i] = hundredClusters(b, bin, run.flags)
			}
			b.Logf("%s: %s", run.name, results[i])
			b.ReportMetric(results[i].all.Seconds(), "s-all-ready")
			b.ReportMetric(results[i].first.Seconds(), "s-first-ready")
			b.ReportMetric(100*results[i].cpu.Seconds()/results[i].wall.Seconds(), "%cpu")
		})
	}
	base, def := results[0], results[1]
	if base.all == 0 || def.all == 0 {
		b.Fatal("a run did not finish")
	}
	load, _ := os.ReadFile("/proc/loadavg")
	b.Logf("100 ChatClusters Ready: default %s vs one worker %s: %.1fx faster to all Ready; load average %s",
		def.all.Round(100*time.Millisecond), base.all.Round(100*time.Millisecond), base.all.Seconds()/def.all.Seconds(), load)
}

type benchResult struct {
	first, all time.Duration
	cpu        time.Duration // operator user+system time, start to stop
	wall       time.Duration
}

func (r benchResult) String() string {
	return fmt.Sprintf("first Ready %s, all %d Ready %s, operator CPU %s over %s (%.0f%% of a core)",
		r.first.Round(100*time.Millisecond), benchClusters, r.all.Round(100*time.Millisecond),
		r.cpu.Round(10*time.Millisecond), r.wall.Round(100*time.Millisecond), 100*r.cpu.Seconds()/r.wall.Seconds())
}

func hundredClusters(t testing.TB, bin string, flags []string) benchResult {
	sim := kube.New(t, kube.Options{CRDDirectoryPaths: []string{filepath.Join("..", "config", "crd", "bases")}, Scheme: scheme})
	kube.Simulate(t, sim)
	c := sim.Client
	ctx := context.Background()
	// 400 pods (three workloads and a migration per cluster): more than one kwok node's
	// 110-pod default holds.
	for i := range 5 {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name:        "fake-" + strconv.Itoa(i),
			Annotations: map[string]string{kube.FakeNodeAnnotation: "fake"},
		}}
		if err := c.Create(ctx, node); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	kubeconfig, err := sim.Kubeconfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	ns := namespace(t, c)

	out := &syncLog{}
	args := append([]string{"operator", "--metrics-bind-address=0", "--health-probe-bind-address=0", "--log-level=error"}, flags...)
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"KUBECONFIG=" + kubeconfig}
	cmd.Stdout, cmd.Stderr = out, out
	started := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stopped := false
	stop := func() time.Duration {
		if !stopped {
			stopped = true
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(time.Minute):
				_ = cmd.Process.Kill()
				<-exited
			}
		}
		return time.Since(started)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("--- operator log (tail) ---\n%s", out.tail(30))
		}
	})

	start := time.Now()
	for i := range benchClusters {
		cc := externalCluster(ns, fmt.Sprintf("c%03d", i))
		cc.Spec.Gateway.Replicas = ptr.To[int32](1)
		cc.Spec.Core.Replicas = ptr.To[int32](1)
		cc.Spec.Notification.Replicas = ptr.To[int32](1)
		if err := c.Create(ctx, cc); err != nil {
			t.Fatal(err)
		}
	}
	var res benchResult
	err = kube.Eventually(ctx, 15*time.Minute, func(ctx context.Context) (bool, error) {
		select {
		case <-exited:
			return false, fmt.Errorf("operator exited: %s", out.tail(10))
		default:
		}
		var list chatv1alpha1.ChatClusterList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, err
		}
		ready := 0
		for _, cc := range list.Items {
			if meta.IsStatusConditionTrue(cc.Status.Conditions, chatv1alpha1.ConditionReady) {
				ready++
			}
		}
		if ready > 0 && res.first == 0 {
			res.first = time.Since(start)
		}
		if ready == benchClusters {
			res.all = time.Since(start)
			return true, nil
		}
		return false, fmt.Errorf("%d of %d Ready", ready, benchClusters)
	})
	if err != nil {
		t.Fatalf("100 ChatClusters Ready: %v", err)
	}
	res.wall = stop()
	if cmd.ProcessState == nil {
		t.Fatal("operator has no exit state")
	}
	res.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if testenv.InCI() && res.cpu == 0 {
		t.Fatal("no CPU time measured")
	}
	return res
}
