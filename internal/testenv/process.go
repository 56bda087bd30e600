package testenv

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// This file runs programs as real processes for the multi-process tests (internal/chaos,
// internal/e2e, the operator's pods in controllers): build a binary of this module once
// per test binary, start it with its arguments and environment, keep the head and tail
// of its output for failure reports, wait until it says it is ready, kill or stop it and
// start it again with the same command line, and stop it when the test ends.

// ParleyPackage is the import path of the parley binary.
const ParleyPackage = "github.com/parleychat/parley"

var builds struct {
	mu   sync.Mutex
	dir  string
	bins map[string]*builtBinary
}

type builtBinary struct {
	once sync.Once
	path string
	err  error
}

// BuildBinary compiles a main package of this module once per test binary and returns
// the executable's path. The binaries live in a directory of this test process (it
// outlives any single test, so t.TempDir would not do); directories of processes that
// are gone are removed on the next build.
func BuildBinary(pkg string) (string, error) {
	builds.mu.Lock()
	if builds.bins == nil {
		builds.bins = map[string]*builtBinary{}
	}
	b := builds.bins[pkg]
	if b == nil {
		b = &builtBinary{}
		builds.bins[pkg] = b
	}
	builds.mu.Unlock()
	b.once.Do(func() {
		dir, err := binDir()
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-o", b.path, pkg)
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
		}
	})
	return b.path, b.err
}

// Binary is BuildBinary that fails the test on a build error.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	path, err := BuildBinary(pkg)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// ParleyBinary is the parley binary of this tree, built once per test binary.
func ParleyBinary(t testing.TB) string {
	t.Helper()
	return Binary(t, ParleyPackage)
}

const binDirPrefix = "parley-testbin-"

// binDir is this process's binary directory, named after its pid so that a later test
// process can tell it is stale.
func binDir() (string, error) {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir != "" {
		return builds.dir, nil
	}
	removeStaleBinDirs()
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", binDirPrefix, os.Getpid()))
	if err != nil {
		return "", fmt.Errorf("binary directory: %w", err)
	}
	builds.dir = dir
	return dir, nil
}

func removeStaleBinDirs() {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), binDirPrefix+"*"))
	for _, m := range matches {
		pidText, _, ok := strings.Cut(strings.TrimPrefix(filepath.Base(m), binDirPrefix), "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			_ = os.RemoveAll(m)
		}
	}
}

// FreeAddr reserves a loopback port for a moment and returns its address. Another
// process could take it before the test's does: good enough on a test machine.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// FreePort is FreeAddr's port.
func FreePort(t testing.TB) int {
	t.Helper()
	_, port, err := net.SplitHostPort(FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// LogTail keeps the first and the last lines written to it, for failure reports: the
// first say why a program refused to start (a usage error), the last what it did
// before it failed.
type LogTail struct {
	mu    sync.Mutex
	head  []string
	lines []string
	part  string
}

const (
	keepHead  = 10
	keepLines = 400
)

// Write implements io.Writer.
func (b *LogTail) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	parts := strings.Split(b.part+string(p), "\n")
	b.part = parts[len(parts)-1]
	for _, l := range parts[:len(parts)-1] {
		if len(b.head) < keepHead {
			b.head = append(b.head, l)
		}
		b.lines = append(b.lines, l)
	}
	if len(b.lines) > 2*keepLines {
		b.lines = append([]string(nil), b.lines[len(b.lines)-keepLines:]...)
	}
	return len(p), nil
}

// Tail is the last n lines (and an unfinished one).
func (b *LogTail) Tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.lines
	if b.part != "" {
		l = append(l[:len(l):len(l)], b.part)
	}
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// Head is the first n lines (at most 10 are kept).
func (b *LogTail) Head(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.head
	if len(l) > n {
		l = l[:n]
	}
	return strings.Join(l, "\n")
}

// Process is one program the test runs, kills and starts again with the same command
// line, environment and address. Set the fields, then Start (or Launch) it.
type Process struct {
	Name string
	Path string
	Args []string
	// Env is added to the test process's environment; with CleanEnv it is the whole
	// environment (as kubelet gives a container).
	Env      []string
	CleanEnv bool
	Dir      string // working directory; empty: the test's
	// Addr is the HTTP address the process serves, if any.
	Addr string
	// Ready says whether the process is up; nil means /readyz of Addr answering 200, or,
	// without Addr, having started.
	Ready func(ctx context.Context) error
	// ReadyTimeout bounds Start's wait (90 s by default); StopTimeout is how long Stop
	// waits after SIGTERM before it kills (15 s by default).
	ReadyTimeout, StopTimeout time.Duration
	// Log holds what the process wrote to stdout and stderr, across restarts; nil: the
	// first Launch makes one.
	Log *LogTail

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
	cleanup bool
}

// Launch starts the process without waiting for it to be ready. The first launch
// registers its stop at the end of the test (with the log's tail when the test failed).
func (p *Process) Launch(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.Log == nil {
		p.Log = &LogTail{}
	}
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env = p.Env
	if !p.CleanEnv {
		cmd.Env = append(os.Environ(), p.Env...)
	}
	cmd.Dir = p.Dir
	cmd.Stdout, cmd.Stderr = p.Log, p.Log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.err = cmd, done, nil
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		if p.cmd == cmd {
			p.err = err
		}
		p.mu.Unlock()
		close(done)
	}()
	if !p.cleanup {
		p.cleanup = true
		t.Cleanup(func() {
			p.Stop()
			if t.Failed() {
				t.Logf("--- %s: last log lines ---\n%s", p.Name, p.Log.Tail(40))
			}
		})
	}
}

// Start launches the process and waits until it is ready.
func (p *Process) Start(t testing.TB) {
	t.Helper()
	p.Launch(t)
	p.WaitReady(t, p.ReadyTimeout)
}

// Restart kills the process (SIGKILL, no cleanup of its own) and starts it again with
// the same command line.
func (p *Process) Restart(t testing.TB) {
	t.Helper()
	p.Kill()
	p.Start(t)
}

// WaitReady polls Ready until it succeeds, failing the test when the process exits
// first or timeout (90 s when 0) passes; the wait is generous because the machine may
// be loaded, and never a measurement.
func (p *Process) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	if timeout <= 0 {
		timeout = 90 * time.Second
	}
	ready := p.Ready
	if ready == nil {
		if p.Addr == "" {
			return
		}
		ready = HTTPReady(p.Addr, "/readyz")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		err := ready(ctx)
		if err == nil {
			return
		}
		select {
		case <-p.Exited():
			// A usage error names the setting first, then prints the role's flags.
			t.Fatalf("%s exited (%v) before it was ready:\n%s\n...\n%s", p.Name, p.Err(), p.Log.Head(3), p.Log.Tail(30))
		case <-ctx.Done():
			t.Fatalf("%s not ready after %v (last: %v):\n%s", p.Name, timeout, err, p.Log.Tail(30))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Exited is closed when the current run of the process has ended (nil before Launch).
func (p *Process) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// Err is how the last run ended, once Exited is closed.
func (p *Process) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Kill sends SIGKILL and waits until the process is gone.
func (p *Process) Kill() { p.Signal(syscall.SIGKILL, 10*time.Second) }

// Stop ends the process with SIGTERM, or kills it after StopTimeout.
func (p *Process) Stop() {
	wait := p.StopTimeout
	if wait <= 0 {
		wait = 15 * time.Second
	}
	p.Signal(syscall.SIGTERM, wait)
}

// Signal sends sig and waits up to wait for the process to end, then kills it.
func (p *Process) Signal(sig syscall.Signal, wait time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Output runs the program to its end (a one-shot command such as migrate) and returns
// what it wrote; the Process is not started.
func (p *Process) Output(ctx context.Context) ([]byte, error) {
	cmd := exec.CommandContext(ctx, p.Path, p.Args...)
	cmd.Env = p.Env
	if !p.CleanEnv {
		cmd.Env = append(os.Environ(), p.Env...)
	}
	cmd.Dir = p.Dir
	return cmd.CombinedOutput()
}

// HTTPReady checks that GET path at addr answers 200.
func HTTPReady(addr, path string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %d %s", path, resp.StatusCode, strings.TrimSpace(string(body)))
		}
		return nil
	}
}

// TCPReady checks that addr accepts connections.
func TCPReady(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// RedisReady checks that the server at addr answers PING with PONG.
func RedisReady(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			return err
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, "+PONG") {
			return fmt.Errorf("redis answered %q", line)
		}
		return nil
	}
}
