package deps

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestServePprofOnLoopbackOnly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, addr := range []string{"0.0.0.0:0", "10.1.2.3:0", "[::]:0", "example.com:0"} {
		if _, err := ServePprof(ctx, addr, nil); !errors.Is(err, ErrPprofNotLoopback) {
			t.Errorf("ServePprof(%q) = %v, want ErrPprofNotLoopback", addr, err)
		}
	}
	if got, err := ServePprof(ctx, "", nil); got != "" || err != nil {
		t.Fatalf("off: %q, %v", got, err)
	}
	// No host: loopback.
	got, err := ServePprof(ctx, ":0", nil)
	if err != nil {
		t.Fatal(err)
	}
	host, _, _ := net.SplitHostPort(got)
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		t.Fatalf("listening on %s, want loopback", got)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Get("http://" + got + "/debug/pprof/heap?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "heap profile") {
		t.Fatalf("heap profile: %d %.80s", resp.StatusCode, body)
	}
	cancel()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := client.Get("http://" + got + "/debug/pprof/"); err != nil {
			break // stopped with its context
		}
		if time.Now().After(deadline) {
			t.Fatal("the profile server outlived its context")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
