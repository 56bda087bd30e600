package controllers_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
	"github.com/parleychat/parley/controllers/render"
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
			b.Logf("%s: where the time went (per ChatCluster, median / max, 1 s timestamps):\n%s", run.name, results[i].phases)
			b.Logf("%s: operator requests and queue:\n%s", run.name, results[i].requests)
			b.ReportMetric(results[i].all.Seconds(), "s-all-ready")
			b.ReportMetric(results[i].first.Seconds(), "s-first-ready")
			b.ReportMetric(results[i].late.Seconds(), "s-late-status")
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
	// late is how long a ChatCluster created once the first of the 100 is Ready waits
	// for its first status.
	late     time.Duration
	cpu      time.Duration // operator user+system time, start to stop
	wall     time.Duration
	phases   string // where each ChatCluster's time went (phaseReport)
	requests string // the operator's own request and queue metrics (operatorMetrics)
}

func (r benchResult) String() string {
	return fmt.Sprintf("first Ready %s, all %d Ready %s, a late ChatCluster's first status %s, operator CPU %s over %s (%.0f%% of a core)",
		r.first.Round(100*time.Millisecond), benchClusters, r.all.Round(100*time.Millisecond), r.late.Round(100*time.Millisecond),
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

	out := &testenv.LogTail{}
	metricsAddr := testenv.FreeAddr(t)
	args := append([]string{"operator", "--metrics-bind-address=" + metricsAddr, "--health-probe-bind-address=0", "--log-level=error"}, flags...)
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
			t.Logf("--- operator log (tail) ---\n%s", out.Tail(30))
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
	// One more once the first of the 100 is Ready, while the rest still reconcile: how
	// long someone applying a ChatCluster into a busy operator waits for its first status.
	late := externalCluster(ns, "late")
	late.Spec.Gateway.Replicas = ptr.To[int32](1)
	late.Spec.Core.Replicas = ptr.To[int32](1)
	late.Spec.Notification.Replicas = ptr.To[int32](1)
	var lateStart time.Time
	var res benchResult
	// Polled every 250 ms rather than watched: a list of 100 ChatClusters four times a
	// second costs the shared machine little next to what is measured.
	deadline := time.Now().Add(15 * time.Minute)
	for {
		select {
		case <-exited:
			t.Fatalf("operator exited: %s", out.Tail(10))
		default:
		}
		var list chatv1alpha1.ChatClusterList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		ready := 0
		for _, cc := range list.Items {
			if cc.Name == late.Name {
				if res.late == 0 && len(cc.Status.Conditions) > 0 {
					res.late = time.Since(lateStart)
				}
				continue
			}
			if meta.IsStatusConditionTrue(cc.Status.Conditions, chatv1alpha1.ConditionReady) {
				ready++
			}
		}
		if ready > 0 && res.first == 0 {
			res.first = time.Since(start)
			lateStart = time.Now()
			if err := c.Create(ctx, late); err != nil {
				t.Fatal(err)
			}
			lateStart = lateStart.Add(time.Since(lateStart) / 2) // the create's midpoint
		}
		if ready == benchClusters && res.all == 0 {
			res.all = time.Since(start)
		}
		if res.all > 0 && res.late > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("100 ChatClusters Ready: %d of %d Ready after 15 minutes (late ChatCluster's status: %v)", ready, benchClusters, res.late > 0)
		}
		time.Sleep(250 * time.Millisecond)
	}
	res.requests = operatorMetrics(ctx, metricsAddr)
	res.phases = phaseReport(ctx, c, ns)
	// When the late ChatCluster's first reconcile got to its migration Job tells waiting
	// in the queue apart from a slow reconcile.
	var lateCC chatv1alpha1.ChatCluster
	var jobs batchv1.JobList
	if c.Get(ctx, client.ObjectKeyFromObject(late), &lateCC) == nil && c.List(ctx, &jobs, client.InNamespace(ns)) == nil {
		for _, j := range jobs.Items {
			if metav1.IsControlledBy(&j, &lateCC) {
				res.phases += fmt.Sprintf("\n  late ChatCluster: migration Job created %s after it (1 s timestamps), first status %s after its create",
					j.CreationTimestamp.Sub(lateCC.CreationTimestamp.Time), res.late.Round(100*time.Millisecond))
			}
		}
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

// operatorMetrics sums the operator's own Prometheus series that tell where its time
// went: requests by verb, reconciles by result, and how long a reconcile took and waited
// in the work queue.
func operatorMetrics(ctx context.Context, addr string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "metrics: " + err.Error()
	}
	defer resp.Body.Close()
	sums := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, _ := strings.Cut(line, "{")
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			name, value, _ = strings.Cut(line, " ")
			labels = ""
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		switch name {
		case "rest_client_requests_total":
			sums["requests "+labelValue(labels, "method")] += v
		case "controller_runtime_reconcile_total":
			sums["reconciles "+labelValue(labels, "result")] += v
		case "workqueue_queue_duration_seconds_sum", "workqueue_queue_duration_seconds_count",
			"controller_runtime_reconcile_time_seconds_sum", "controller_runtime_reconcile_time_seconds_count":
			if labelValue(labels, "name") == "chatcluster" || labelValue(labels, "controller") == "chatcluster" {
				sums[name] += v
			}
		}
	}
	var b strings.Builder
	keys := make([]string, 0, len(sums))
	for k := range sums {
		if strings.HasPrefix(k, "requests ") || strings.HasPrefix(k, "reconciles ") {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s: %.0f\n", k, sums[k])
	}
	avg := func(prefix string) string {
		n := sums[prefix+"_count"]
		if n == 0 {
			return "-"
		}
		return (time.Duration(sums[prefix+"_sum"] / n * float64(time.Second))).Round(100 * time.Microsecond).String()
	}
	fmt.Fprintf(&b, "  mean reconcile %s, mean wait in the work queue %s", avg("controller_runtime_reconcile_time_seconds"), avg("workqueue_queue_duration_seconds"))
	return b.String()
}

func labelValue(labels, key string) string {
	for _, kv := range strings.Split(labels, ",") {
		k, v, _ := strings.Cut(kv, "=")
		if k == key {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// phaseReport splits each ChatCluster's way to Ready by the API server's own timestamps
// (1 s resolution): the operator's first reconcile (ChatCluster created → migration Job
// created), the simulated cluster running the Job (→ Job complete), the operator reacting
// (→ Deployments created), the simulated cluster starting pods (→ every Deployment
// Available) and the operator reporting (→ Ready).
func phaseReport(ctx context.Context, c client.Client, ns string) string {
	var ccs chatv1alpha1.ChatClusterList
	var jobs batchv1.JobList
	var deps appsv1.DeploymentList
	for _, l := range []client.ObjectList{&ccs, &jobs, &deps} {
		if err := c.List(ctx, l, client.InNamespace(ns)); err != nil {
			return err.Error()
		}
	}
	names := []string{"created → migration Job created (operator)", "→ Job complete (simulated cluster)",
		"→ Deployments created (operator)", "→ Deployments Available (simulated cluster)", "→ Ready (operator)"}
	phases := make([][]time.Duration, len(names))
	for _, cc := range ccs.Items {
		ready := meta.FindStatusCondition(cc.Status.Conditions, chatv1alpha1.ConditionReady)
		if cc.Name == "late" || ready == nil || ready.Status != metav1.ConditionTrue {
			continue
		}
		var jobCreated, jobDone, depsCreated, depsAvailable time.Time
		for _, j := range jobs.Items {
			if metav1.IsControlledBy(&j, &cc) && j.Status.CompletionTime != nil {
				jobCreated, jobDone = j.CreationTimestamp.Time, j.Status.CompletionTime.Time
			}
		}
		n := 0
		for _, d := range deps.Items {
			if !metav1.IsControlledBy(&d, &cc) || d.Labels[render.LabelComponent] == "" {
				continue
			}
			n++
			if d.CreationTimestamp.After(depsCreated) {
				depsCreated = d.CreationTimestamp.Time
			}
			for _, cond := range d.Status.Conditions {
				if cond.Type == appsv1.DeploymentAvailable && cond.Status == corev1.ConditionTrue && cond.LastTransitionTime.After(depsAvailable) {
					depsAvailable = cond.LastTransitionTime.Time
				}
			}
		}
		if jobCreated.IsZero() || n != len(render.Workloads) || depsAvailable.IsZero() {
			continue
		}
		steps := []time.Time{cc.CreationTimestamp.Time, jobCreated, jobDone, depsCreated, depsAvailable, ready.LastTransitionTime.Time}
		for i := range names {
			phases[i] = append(phases[i], max(0, steps[i+1].Sub(steps[i])))
		}
	}
	var b strings.Builder
	for i, name := range names {
		p := phases[i]
		if len(p) == 0 {
			fmt.Fprintf(&b, "  %-45s no data\n", name)
			continue
		}
		slices.Sort(p)
		fmt.Fprintf(&b, "  %-45s %4.0f s / %4.0f s\n", name, p[len(p)/2].Seconds(), p[len(p)-1].Seconds())
	}
	fmt.Fprintf(&b, "  (%d ChatClusters measured)", len(phases[0]))
	return b.String()
}
