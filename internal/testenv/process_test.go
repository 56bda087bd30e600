package testenv

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestProcessHelper is not a test: run by TestProcess as a child process, it serves
// /readyz at PARLEY_TEST_HELPER_ADDR after writing its pid, until it is killed or
// sent SIGTERM.
func TestProcessHelper(t *testing.T) {
	addr := os.Getenv("PARLEY_TEST_HELPER_ADDR")
	if addr == "" {
		return // an ordinary run: nothing to serve
	}
	fmt.Printf("first line\nstarted %d\n", os.Getpid())
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, os.Getpid()) })
	fmt.Fprintln(os.Stderr, http.ListenAndServe(addr, mux))
	os.Exit(1)
}

func readyPID(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var pid string
	_, _ = fmt.Fscan(resp.Body, &pid)
	return pid
}

func TestProcess(t *testing.T) {
	addr := FreeAddr(t)
	p := &Process{Name: "helper", Path: os.Args[0], Args: []string{"-test.run=^TestProcessHelper$"}, Addr: addr,
		Env: []string{"PARLEY_TEST_HELPER_ADDR=" + addr}, StopTimeout: 5 * time.Second}
	p.Start(t)
	first := readyPID(t, addr)
	if !strings.Contains(p.Log.Tail(5), "started "+first) || p.Log.Head(1) != "first line" {
		t.Fatalf("log head %q, tail %q; want the helper's lines", p.Log.Head(1), p.Log.Tail(5))
	}
	exited := p.Exited()
	p.Restart(t)
	select {
	case <-exited:
	default:
		t.Fatal("Restart left the first run alive")
	}
	second := readyPID(t, addr)
	if second == first {
		t.Fatalf("after Restart the same process (%s) answers", first)
	}
	if !strings.Contains(p.Log.Tail(5), "started "+second) || p.Log.Head(1) != "first line" {
		t.Fatalf("log after restart: head %q, tail %q", p.Log.Head(1), p.Log.Tail(5))
	}
	p.Kill()
	select {
	case <-p.Exited():
	default:
		t.Fatal("Kill returned before the process ended")
	}
	if p.Err() == nil || !strings.Contains(p.Err().Error(), "killed") {
		t.Fatalf("Err after Kill = %v, want killed", p.Err())
	}
	if _, err := http.Get("http://" + addr + "/readyz"); err == nil {
		t.Fatal("the killed process still answers")
	}
}

func TestLogTail(t *testing.T) {
	tests := []struct {
		name       string
		writes     []string
		head, tail string
	}{
		{"empty", nil, "", ""},
		{"split writes", []string{"a", "b\nc", "\nd"}, "ab\nc", "c\nd"},
		{"many lines", func() []string {
			var w []string
			for i := range 1000 {
				w = append(w, fmt.Sprintf("%d\n", i))
			}
			return w
		}(), "0\n1", "998\n999"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var l LogTail
			for _, w := range tc.writes {
				_, _ = l.Write([]byte(w))
			}
			if got := l.Head(2); got != tc.head {
				t.Errorf("Head(2) = %q, want %q", got, tc.head)
			}
			if got := l.Tail(2); got != tc.tail {
				t.Errorf("Tail(2) = %q, want %q", got, tc.tail)
			}
		})
	}
}

// TestStaleBinDirs: the binary directory of a test process that is gone is removed, one
// of a live process is kept.
func TestStaleBinDirs(t *testing.T) {
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	stale, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", binDirPrefix, gone.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	live, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", binDirPrefix, os.Getppid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(stale); _ = os.RemoveAll(live) })
	removeStaleBinDirs()
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("%s of an ended process is still there (%v)", filepath.Base(stale), err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("%s of a live process was removed: %v", filepath.Base(live), err)
	}
}
