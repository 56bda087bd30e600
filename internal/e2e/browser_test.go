package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
	"github.com/parleychat/parley/controllers/render"
	"github.com/parleychat/parley/internal/testenv"
)

// The browser tests drive the web client (runtime/web) in headless Chromium through the
// scenarios of runtime/web/e2e (node + playwright-core), against a `parley dev` per
// scenario and, in TestBrowserBehindIngress, against core, notification and two gateways
// behind a reverse proxy that routes like the operator's Ingress.
//
// Prerequisites: /usr/bin/chromium (or PARLEY_CHROMIUM), node, runtime/web/node_modules
// (npm ci) and a built client (npm run build, embedded into the binary at build time).
// A missing one skips the tests locally and fails them under CI=true.
//
// Artifacts (screenshots, axe reports, the LCP measurement) land in .test/browser/<name>/.
// PARLEY_UPDATE_SCREENSHOTS=1 copies the conversation screenshots to docs/images/.

// browserScenarios run each against a fresh `parley dev`.
var browserScenarios = []string{"dm", "files", "block", "group", "offline", "offline-keepalive", "security", "a11y", "scroll", "lcp", "screenshots", "conversation-actions", "search", "mentions"}

// scenarioTimeout bounds one node process; waits inside are 30–60 s each.
const scenarioTimeout = 5 * time.Minute

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found from %s: %v", root, err)
	}
	return root
}

func chromiumPath() string {
	if p := os.Getenv("PARLEY_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// browserPrerequisites skips (locally) or fails (CI=true) when something the browser
// tests need is missing, and returns runtime/web.
func browserPrerequisites(t *testing.T) string {
	t.Helper()
	web := filepath.Join(repoRoot(t), "runtime", "web")
	var missing []string
	if _, err := os.Stat(chromiumPath()); err != nil {
		missing = append(missing, "Chromium at "+chromiumPath())
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing = append(missing, "node on PATH")
	}
	for _, pkg := range []string{"playwright-core", "axe-core"} {
		if _, err := os.Stat(filepath.Join(web, "node_modules", pkg, "package.json")); err != nil {
			missing = append(missing, "runtime/web/node_modules/"+pkg+" (cd runtime/web && npm ci)")
		}
	}
	if _, err := os.Stat(filepath.Join(web, "dist", "app", "index.html")); err != nil {
		missing = append(missing, "the client build runtime/web/dist/app (cd runtime/web && npm run build)")
	}
	if len(missing) > 0 {
		testenv.Unavailable(t, "browser test prerequisites", errors.New("missing "+strings.Join(missing, ", ")))
	}
	return web
}

// browserBinary is parley built once per test binary, embedding runtime/web/dist/app as
// it is now. PARLEY_BROWSER_BIN names a binary built beforehand instead (it must have
// been built after the client).
func browserBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PARLEY_BROWSER_BIN"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	return testenv.ParleyBinary(t)
}

// startDev runs `parley dev` on a random port with its files in a temp dir.
func startDev(t *testing.T, bin string) string {
	t.Helper()
	c := &cluster{t: t, bin: bin}
	addr := testenv.FreeAddr(t)
	c.start("dev", "dev", addr, "--listen", addr, "--messages-per-second", "1000", "--files-dir", t.TempDir(), "--log-level", "warn")
	return "http://" + addr
}

// hookFunc answers a scenario's "@@hook <name>" line; its result goes back on stdin.
type hookFunc func() (string, error)

// runScenario runs `node e2e/run.mjs <scenario>` against baseURL, streaming its output
// into the test log, answering its hooks, and failing the test on a non-zero exit.
func runScenario(t *testing.T, web, scenario, artifacts, baseURL string, hooks map[string]hookFunc) string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), ".test", "browser", artifacts)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "e2e/run.mjs", scenario)
	cmd.Dir = web
	cmd.Env = append(os.Environ(), "PARLEY_URL="+baseURL, "PARLEY_ARTIFACTS="+dir, "PARLEY_CHROMIUM="+chromiumPath())
	// node and the Chromium it starts share a process group, so a timeout or a crash
	// never leaves a browser behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	var output strings.Builder
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for sc.Scan() {
			line := sc.Text()
			output.WriteString(line + "\n")
			t.Logf("%s: %s", scenario, line)
			name, ok := strings.CutPrefix(line, "@@hook ")
			if !ok {
				continue
			}
			answer := "error: no such hook"
			if h := hooks[name]; h != nil {
				a, err := h()
				if err != nil {
					answer = "error: " + err.Error()
				} else {
					answer = "ok " + a
				}
			}
			t.Logf("%s: hook %s -> %s", scenario, name, answer)
			fmt.Fprintf(stdin, "%s %s\n", name, answer)
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	err = cmd.Wait()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // stragglers of the group, if any
	pw.Close()
	<-scanned
	t.Logf("%s: %s in %v (artifacts in %s)", scenario, map[bool]string{true: "passed", false: "failed"}[err == nil], time.Since(start).Round(100*time.Millisecond), dir)
	if ctx.Err() != nil {
		t.Fatalf("scenario %s timed out after %v", scenario, scenarioTimeout)
	}
	if err != nil {
		t.Fatalf("scenario %s: %v", scenario, err)
	}
	return output.String()
}

func TestBrowser(t *testing.T) {
	web := browserPrerequisites(t)
	bin := browserBinary(t)
	for _, scenario := range browserScenarios {
		t.Run(scenario, func(t *testing.T) {
			// Each scenario has a server of its own; as many run at once as -parallel
			// allows (GOMAXPROCS by default), so offline-keepalive's long wait for the
			// client's keepalive overlaps the others.
			t.Parallel()
			base := startDev(t, bin)
			runScenario(t, web, scenario, scenario, base, nil)
			if scenario == "screenshots" {
				updateScreenshots(t, filepath.Join(repoRoot(t), ".test", "browser", scenario))
			}
		})
	}
}

// updateScreenshots copies the documentation screenshots into docs/images when asked, so
// that ordinary runs never dirty the tree.
func updateScreenshots(t *testing.T, dir string) {
	t.Helper()
	if os.Getenv("PARLEY_UPDATE_SCREENSHOTS") != "1" {
		return
	}
	dst := filepath.Join(repoRoot(t), "docs", "images")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"conversation-desktop.png", "conversation-phone.png"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("updated docs/images/%s", name)
	}
}

// TestBrowserBehindIngress runs the dm and conversation-actions scenarios against core, notification and two
// gateways as separate processes (PostgreSQL, Redis, in-process Kafka) behind a reverse
// proxy routing as the Ingress the operator renders, then kills a gateway
// mid-conversation (failover).
func TestBrowserBehindIngress(t *testing.T) {
	web := browserPrerequisites(t)
	pg := testenv.Postgres(t)
	rdb := testenv.Redis(t)
	brokers := testenv.Kafka(t)
	bin := browserBinary(t)
	env := []string{
		"PARLEY_POSTGRES_URL=" + pg,
		fmt.Sprintf("PARLEY_REDIS_URL=redis://%s/%d", rdb.Addr, rdb.DB),
		"PARLEY_KAFKA_BROKERS=" + strings.Join(brokers, ","),
		"PARLEY_KAFKA_PARTITIONS=4",
		"PARLEY_BUS=kafka",
		"PARLEY_JWT_SIGNING_KEY=" + signingKey,
		"PARLEY_LOG_LEVEL=warn",
		"PARLEY_PRESENCE_TTL=6s",
		"PARLEY_FILES_DIR=" + t.TempDir(),
		"PARLEY_MESSAGES_PER_SECOND=1000",
	}
	run(t, bin, env, "migrate")
	c := &cluster{t: t, bin: bin, env: env}
	core := c.start("core", "core", testenv.FreeAddr(t))
	c.start("notification", "notification", testenv.FreeAddr(t), "--sweep-interval=500ms")
	gws := []*testenv.Process{
		c.start("gw1", "gateway", testenv.FreeAddr(t), "--gateway-id=gw1"),
		c.start("gw2", "gateway", testenv.FreeAddr(t), "--gateway-id=gw2"),
	}
	ing := newIngress(t, core, gws)
	srv := httptest.NewServer(ing)
	t.Cleanup(srv.Close)
	t.Logf("ingress at %s: core %s, gateways %s, %s", srv.URL, core.Addr, gws[0].Addr, gws[1].Addr)

	runScenario(t, web, "dm", "ingress-dm", srv.URL, nil)
	// Replies, edits, deletions and reactions through Kafka (chat.message_updated) and
	// notification to two gateways, including a member's resume after being offline.
	runScenario(t, web, "conversation-actions", "ingress-conversation-actions", srv.URL, nil)
	runScenario(t, web, "failover", "ingress-failover", srv.URL, map[string]hookFunc{
		"kill-gateway": ing.killBusiest,
		"reconnected":  ing.awaitReconnect,
	})
}

// ingress routes as the Ingress that the operator renders (render.Ingress) would: the
// longest matching Prefix path wins, its backend Service is core or the gateways, and the
// gateways are picked round robin per request (per connection for WebSockets, counted
// separately) over those still alive, with the Host header kept and X-Forwarded-* set as
// an ingress controller does.
type ingress struct {
	core   *url.URL
	routes []ingressRoute // longest prefix first
	mu     sync.Mutex
	gws    []*ingressBackend
	next   map[bool]int // round robin position, for WebSockets (true) and other requests
	// wsBefore is how many WebSockets were open when a gateway was killed.
	wsBefore int
}

type ingressRoute struct {
	prefix string
	role   string // render.RoleCore or render.RoleGateway
}

type ingressBackend struct {
	proc *testenv.Process
	url  *url.URL
	dead bool
	ws   int // open WebSocket connections
}

func newIngress(t *testing.T, core *testenv.Process, gws []*testenv.Process) *ingress {
	t.Helper()
	cc := &chatv1alpha1.ChatCluster{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e", Namespace: "default"},
		Spec:       chatv1alpha1.ChatClusterSpec{Ingress: &chatv1alpha1.IngressSpec{Host: "chat.e2e.test"}},
	}
	rendered := render.Ingress(cc)
	if rendered == nil || len(rendered.Spec.Rules) != 1 || rendered.Spec.Rules[0].HTTP == nil {
		t.Fatalf("render.Ingress gave %+v", rendered)
	}
	in := &ingress{core: &url.URL{Scheme: "http", Host: core.Addr}, next: map[bool]int{}}
	roles := map[string]string{}
	for _, role := range []string{render.RoleCore, render.RoleGateway} {
		roles[render.WorkloadName(cc, role)] = role
	}
	for _, p := range rendered.Spec.Rules[0].HTTP.Paths {
		if p.PathType == nil || *p.PathType != networkingv1.PathTypePrefix || p.Backend.Service == nil {
			t.Fatalf("ingress path %+v: this proxy only knows Prefix paths to Services", p)
		}
		role, ok := roles[p.Backend.Service.Name]
		if !ok {
			t.Fatalf("ingress path %s goes to Service %s, neither core nor gateway", p.Path, p.Backend.Service.Name)
		}
		in.routes = append(in.routes, ingressRoute{prefix: p.Path, role: role})
	}
	sort.Slice(in.routes, func(i, j int) bool { return len(in.routes[i].prefix) > len(in.routes[j].prefix) })
	t.Logf("ingress routes (from render.Ingress): %+v", in.routes)
	for _, g := range gws {
		in.gws = append(in.gws, &ingressBackend{proc: g, url: &url.URL{Scheme: "http", Host: g.Addr}})
	}
	return in
}

func proxyTo(target *url.URL) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host // the gateway checks Origin against Host
			r.SetXForwarded()
		},
		FlushInterval: -1,
	}
}

// pathPrefix matches like an Ingress path of type Prefix: element by element.
func pathPrefix(path, prefix string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	return prefix == "" || path == prefix || strings.HasPrefix(path, prefix+"/")
}

func (in *ingress) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	role := ""
	for _, rt := range in.routes {
		if pathPrefix(r.URL.Path, rt.prefix) {
			role = rt.role
			break
		}
	}
	switch role {
	case render.RoleCore:
		proxyTo(in.core).ServeHTTP(w, r)
		return
	case render.RoleGateway:
	default:
		http.NotFound(w, r) // no rule: what an ingress controller's default backend says
		return
	}
	ws := strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
	in.mu.Lock()
	var gw *ingressBackend
	for range in.gws {
		b := in.gws[in.next[ws]%len(in.gws)]
		in.next[ws]++
		if !b.dead {
			gw = b
			break
		}
	}
	if gw != nil && ws {
		gw.ws++
	}
	in.mu.Unlock()
	if gw == nil {
		http.Error(w, "no gateway alive", http.StatusServiceUnavailable)
		return
	}
	if ws {
		defer func() { in.mu.Lock(); gw.ws--; in.mu.Unlock() }()
	}
	proxyTo(gw.url).ServeHTTP(w, r)
}

// killBusiest SIGKILLs the gateway holding the most WebSocket connections (no draining:
// a crash) and takes it out of the rotation, as the Service would once it is not ready.
func (in *ingress) killBusiest() (string, error) {
	in.mu.Lock()
	var victim *ingressBackend
	counts := []string{}
	for _, b := range in.gws {
		counts = append(counts, fmt.Sprintf("%s:%d", b.proc.Name, b.ws))
		if !b.dead && (victim == nil || b.ws > victim.ws) {
			victim = b
		}
	}
	if victim == nil {
		in.mu.Unlock()
		return "", errors.New("no gateway alive")
	}
	victim.dead = true
	in.wsBefore = 0
	for _, b := range in.gws {
		in.wsBefore += b.ws
	}
	in.mu.Unlock()
	victim.proc.Kill()
	return fmt.Sprintf("killed %s (WebSockets before: %s)", victim.proc.Name, strings.Join(counts, " ")), nil
}

// awaitReconnect waits until the gateways still alive hold as many WebSockets as all of
// them did before the kill: every client came back, through the ingress, to a survivor.
func (in *ingress) awaitReconnect() (string, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		in.mu.Lock()
		alive, counts := 0, []string{}
		for _, b := range in.gws {
			if !b.dead {
				alive += b.ws
			}
			counts = append(counts, fmt.Sprintf("%s:%d", b.proc.Name, b.ws))
		}
		want := in.wsBefore
		in.mu.Unlock()
		if alive >= want {
			return fmt.Sprintf("%d WebSockets on the surviving gateways (%s)", alive, strings.Join(counts, " ")), nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("after 60s the surviving gateways hold %d WebSockets, want %d (%s)", alive, want, strings.Join(counts, " "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
