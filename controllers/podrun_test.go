package controllers_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/parleychat/parley/internal/testenv"
)

// This file runs Kubernetes pods as local processes: the container's command and args,
// and the environment kubelet would give it, resolved from the API server (env, envFrom,
// Secret/ConfigMap/field references, $(VAR) expansion, service links). Only three things
// are translated, because a process on the test's machine has no pod network or mounts:
//   - a Service address (name, name.ns, name.ns.svc, name.ns.svc.cluster.local, with its
//     port) becomes the loopback address of whatever backs it in the test;
//   - a listen address ":<containerPort>" becomes the pod's own loopback address;
//   - a value under a volume's mount path moves under a temporary directory.

var (
	parleyOnce sync.Once
	parleyBin  string
	parleyErr  error
)

// buildParleyOnce builds the parley binary (testenv.BuildBinary: once per test binary);
// run it through parleyOnce.
func buildParleyOnce() { parleyBin, parleyErr = testenv.BuildBinary(testenv.ParleyPackage) }

// roleEnv lists the PARLEY_* variables a role reads: one per flag, as its --help says.
func roleEnv(t *testing.T, bin, role string) map[string]bool {
	t.Helper()
	out, err := exec.Command(bin, role, "--help").Output()
	if err != nil {
		t.Fatalf("parley %s --help: %v", role, err)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`\(env (PARLEY_[A-Z0-9_]+)`).FindAllStringSubmatch(string(out), -1) {
		names[m[1]] = true
	}
	if len(names) == 0 {
		t.Fatalf("parley %s --help names no variable:\n%s", role, out)
	}
	return names
}

// loopback maps in-cluster addresses to the test's: Services by name to a backend
// address, and each volume's mount path to a directory.
type loopback struct {
	// services maps a Service name (in the pod's namespace) to the "host:port" serving it.
	services map[string]string
	// dir receives the pods' volumes, one subdirectory per pod and volume.
	dir string
}

// resolvedEnv is a container's environment in kubelet's order of precedence, with where
// each variable came from (for the mismatch checks).
type resolvedEnv struct {
	vars map[string]string
	// fromSpec are the names the container's env and envFrom set; the rest are service links.
	fromSpec map[string]string // name -> "env" or "configmap NAME" / "secret NAME"
	links    map[string]bool
}

func (e resolvedEnv) list() []string {
	out := make([]string, 0, len(e.vars))
	for k, v := range e.vars {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// resolveEnv builds the environment kubelet gives container c of pod: service links of
// the namespace's Services first, then envFrom in order, then env (each overriding what
// came before), with $(VAR) references expanded as kubelet does.
func resolveEnv(ctx context.Context, r client.Reader, pod *corev1.Pod, c corev1.Container) (resolvedEnv, error) {
	out := resolvedEnv{vars: map[string]string{}, fromSpec: map[string]string{}, links: map[string]bool{}}
	if pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks {
		var svcs corev1.ServiceList
		if err := r.List(ctx, &svcs, client.InNamespace(pod.Namespace)); err != nil {
			return out, fmt.Errorf("list services: %w", err)
		}
		for _, s := range svcs.Items {
			for k, v := range serviceLinkEnv(&s) {
				out.vars[k], out.links[k] = v, true
			}
		}
	}
	for _, from := range c.EnvFrom {
		var data map[string]string
		var source string
		optional := false
		switch {
		case from.ConfigMapRef != nil:
			source, optional = "configmap "+from.ConfigMapRef.Name, from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional
			var cm corev1.ConfigMap
			err := r.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: from.ConfigMapRef.Name}, &cm)
			if err != nil && !(optional && apierrors.IsNotFound(err)) {
				return out, fmt.Errorf("envFrom %s: %w", source, err)
			}
			data = cm.Data
		case from.SecretRef != nil:
			source, optional = "secret "+from.SecretRef.Name, from.SecretRef.Optional != nil && *from.SecretRef.Optional
			var s corev1.Secret
			err := r.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: from.SecretRef.Name}, &s)
			if err != nil && !(optional && apierrors.IsNotFound(err)) {
				return out, fmt.Errorf("envFrom %s: %w", source, err)
			}
			data = map[string]string{}
			for k, v := range s.Data {
				data[k] = string(v)
			}
		}
		for k, v := range data {
			k = from.Prefix + k
			out.vars[k], out.fromSpec[k] = v, source
			delete(out.links, k)
		}
	}
	for _, e := range c.Env {
		v, set, err := envValue(ctx, r, pod, c, e, out.vars)
		if err != nil {
			return out, err
		}
		if !set {
			continue
		}
		out.vars[e.Name], out.fromSpec[e.Name] = v, "env"
		delete(out.links, e.Name)
	}
	return out, nil
}

// envValue is one env entry's value; set is false for an optional reference that is
// missing, which kubelet leaves out.
func envValue(ctx context.Context, r client.Reader, pod *corev1.Pod, c corev1.Container, e corev1.EnvVar, sofar map[string]string) (string, bool, error) {
	if e.ValueFrom == nil {
		return expand(e.Value, sofar), true, nil
	}
	src := e.ValueFrom
	switch {
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		optional := ref.Optional != nil && *ref.Optional
		var s corev1.Secret
		if err := r.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: ref.Name}, &s); err != nil {
			if optional && apierrors.IsNotFound(err) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("%s: secret %s: %w", e.Name, ref.Name, err)
		}
		v, ok := s.Data[ref.Key]
		if !ok {
			if optional {
				return "", false, nil
			}
			return "", false, fmt.Errorf("%s: secret %s has no key %s (CreateContainerConfigError)", e.Name, ref.Name, ref.Key)
		}
		return string(v), true, nil
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		optional := ref.Optional != nil && *ref.Optional
		var cm corev1.ConfigMap
		if err := r.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: ref.Name}, &cm); err != nil {
			if optional && apierrors.IsNotFound(err) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("%s: configmap %s: %w", e.Name, ref.Name, err)
		}
		v, ok := cm.Data[ref.Key]
		if !ok {
			if optional {
				return "", false, nil
			}
			return "", false, fmt.Errorf("%s: configmap %s has no key %s (CreateContainerConfigError)", e.Name, ref.Name, ref.Key)
		}
		return v, true, nil
	case src.FieldRef != nil:
		switch path := src.FieldRef.FieldPath; path {
		case "metadata.name":
			return pod.Name, true, nil
		case "metadata.namespace":
			return pod.Namespace, true, nil
		case "metadata.uid":
			return string(pod.UID), true, nil
		case "spec.nodeName":
			return pod.Spec.NodeName, true, nil
		case "spec.serviceAccountName":
			return pod.Spec.ServiceAccountName, true, nil
		case "status.podIP":
			return "127.0.0.1", true, nil
		default:
			return "", false, fmt.Errorf("%s: fieldRef %s is not emulated", e.Name, path)
		}
	case src.ResourceFieldRef != nil:
		res := src.ResourceFieldRef.Resource
		name := corev1.ResourceName(strings.TrimPrefix(strings.TrimPrefix(res, "limits."), "requests."))
		list := c.Resources.Requests
		if strings.HasPrefix(res, "limits.") {
			list = c.Resources.Limits
		}
		q, ok := list[name]
		if !ok {
			return "0", true, nil
		}
		divisor := src.ResourceFieldRef.Divisor
		if divisor.IsZero() {
			return strconv.FormatInt(q.Value(), 10), true, nil
		}
		return strconv.FormatInt((q.MilliValue()+divisor.MilliValue()-1)/divisor.MilliValue(), 10), true, nil
	}
	return "", false, fmt.Errorf("%s: unsupported valueFrom", e.Name)
}

// expand replaces $(NAME) with the value of a variable defined before, as kubelet does:
// an undefined reference stays as written and $$ escapes a dollar.
func expand(s string, vars map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// serviceLinkEnv is what kubelet adds for a Service when service links are enabled
// (the default): NAME_SERVICE_HOST, NAME_PORT and friends, NAME upper-cased with - as _.
func serviceLinkEnv(s *corev1.Service) map[string]string {
	if s.Spec.ClusterIP == "" || s.Spec.ClusterIP == corev1.ClusterIPNone {
		return nil
	}
	name := strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
	out := map[string]string{name + "_SERVICE_HOST": s.Spec.ClusterIP}
	for i, p := range s.Spec.Ports {
		proto := strings.ToLower(string(p.Protocol))
		if proto == "" {
			proto = "tcp"
		}
		port := strconv.Itoa(int(p.Port))
		if i == 0 {
			out[name+"_SERVICE_PORT"] = port
			out[name+"_PORT"] = proto + "://" + s.Spec.ClusterIP + ":" + port
		}
		if p.Name != "" {
			out[name+"_SERVICE_PORT_"+strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_"))] = port
		}
		prefix := name + "_PORT_" + port + "_" + strings.ToUpper(proto)
		out[prefix] = proto + "://" + s.Spec.ClusterIP + ":" + port
		out[prefix+"_PROTO"] = proto
		out[prefix+"_PORT"] = port
		out[prefix+"_ADDR"] = s.Spec.ClusterIP
	}
	return out
}

// translate applies the loopback translations to every value of env, for a pod whose
// own container ports are served at self ("" for a pod without ports), and returns the
// process environment.
func (l loopback) translate(pod *corev1.Pod, c corev1.Container, env resolvedEnv, self string) ([]string, error) {
	var pairs []addrPair
	for svc, addr := range l.services {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("backend of service %s: %w", svc, err)
		}
		for _, host := range []string{svc + "." + pod.Namespace + ".svc.cluster.local", svc + "." + pod.Namespace + ".svc", svc + "." + pod.Namespace, svc} {
			pairs = append(pairs, addrPair{host + ":", addr})
		}
	}
	// Longest first, so "x.ns.svc:" wins over "x:".
	sort.Slice(pairs, func(i, j int) bool { return len(pairs[i].from) > len(pairs[j].from) })
	var mounts []addrPair
	for _, m := range c.VolumeMounts {
		dir := filepath.Join(l.dir, pod.Name, m.Name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		mounts = append(mounts, addrPair{m.MountPath, dir})
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].from) > len(mounts[j].from) })
	listens := map[string]bool{}
	for _, p := range c.Ports {
		listens[":"+strconv.Itoa(int(p.ContainerPort))] = true
		listens["0.0.0.0:"+strconv.Itoa(int(p.ContainerPort))] = true
	}
	var out []string
	for _, kv := range env.list() {
		name, v, _ := strings.Cut(kv, "=")
		switch {
		case listens[v]:
			if self == "" {
				return nil, fmt.Errorf("%s=%s listens on a container port, but the pod has no loopback address", name, v)
			}
			v = self
		default:
			v = replaceServices(v, pairs)
			for _, m := range mounts {
				if v == m.from || strings.HasPrefix(v, m.from+"/") {
					v = m.to + strings.TrimPrefix(v, m.from)
					break
				}
			}
		}
		out = append(out, name+"="+v)
	}
	return out, nil
}

// addrPair is one translation: from is replaced by to.
type addrPair struct{ from, to string }

// replaceServices rewrites "service-host:port" occurrences; the port in the value must
// be the Service's, and the backend's address replaces both.
func replaceServices(v string, pairs []addrPair) string {
	for _, p := range pairs {
		from := 0
		for {
			i := strings.Index(v[from:], p.from)
			if i < 0 {
				break
			}
			i += from
			rest := v[i+len(p.from):]
			j := 0
			for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
				j++
			}
			// A host name starts the value or follows a separator, and a port follows it.
			if (i > 0 && !strings.ContainsRune("/@,= ", rune(v[i-1]))) || j == 0 {
				from = i + len(p.from)
				continue
			}
			v = v[:i] + p.to + rest[j:]
			from = i + len(p.to)
		}
	}
	return v
}

// process is a pod's container running as a local process (testenv.Process), with the
// names the operator's tests use: addr is its HTTP address, done is closed once err
// says how it ended.
type process struct {
	*testenv.Process
	addr string
	out  *syncLog
	done chan struct{}
	err  error
}

// syncLog is a process's output kept for failure reports.
type syncLog struct{ testenv.LogTail }

func (l *syncLog) tail(n int) string { return l.Tail(n) }

// command is the container's argv as the image (entrypoint parley) would run it.
func command(bin string, c corev1.Container, env []string) []string {
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	argv := []string{bin}
	if len(c.Command) > 0 {
		// The image's only program is parley; any other command is not emulated.
		argv = []string{expand(c.Command[0], vars)}
		for _, a := range c.Command[1:] {
			argv = append(argv, expand(a, vars))
		}
	}
	for _, a := range c.Args {
		argv = append(argv, expand(a, vars))
	}
	return argv
}

// startProcess runs argv with exactly env (nothing inherited from the test) and stops
// it with SIGTERM when the test ends.
func startProcess(t *testing.T, name, addr string, argv, env []string) *process {
	t.Helper()
	out := &syncLog{}
	tp := &testenv.Process{Name: name, Path: argv[0], Args: argv[1:], Env: env, CleanEnv: true, Dir: t.TempDir(), Addr: addr,
		StopTimeout: 30 * time.Second, Log: &out.LogTail}
	tp.Launch(t)
	p := &process{Process: tp, addr: addr, out: out, done: make(chan struct{})}
	exited := tp.Exited()
	go func() { <-exited; p.err = tp.Err(); close(p.done) }()
	return p
}

// waitReady polls the process's /readyz until it answers 200, failing when it exits.
func waitReady(t *testing.T, p *process, timeout time.Duration) {
	t.Helper()
	p.WaitReady(t, timeout)
}

// freeLoopback reserves a loopback port and returns its address.
func freeLoopback(t *testing.T) string { return testenv.FreeAddr(t) }
