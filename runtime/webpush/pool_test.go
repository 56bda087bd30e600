package webpush_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/parleychat/parley/runtime/webpush"
	"github.com/parleychat/parley/runtime/webpush/webpushtest"
)

// The pool never blocks its caller: with its workers busy and its queue full, a new
// message is dropped at once and counted; the queue depth is exported.
func TestPoolDropsWhenFullAndNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	var inFlight atomic.Int32
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		inFlight.Add(1)
		<-release
		w.WriteHeader(http.StatusCreated)
	}))
	defer slow.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	cfg := testConfig(t)
	cfg.AllowInsecureEndpoints, cfg.Workers, cfg.QueueSize = true, 1, 2
	store := webpush.NewMemoryStore()
	browser, err := webpushtest.NewBrowser()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := store.Add(context.Background(), fmt.Sprint("u", i), browser.Subscription(fmt.Sprintf("%s/push/%d", slow.URL, i))); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	sender, err := webpush.NewSender(cfg, store, webpush.WithMetrics(webpush.NewMetrics(reg)))
	if err != nil {
		t.Fatal(err)
	}
	pool := webpush.NewPool(sender)
	defer pool.Close()
	p := webpush.Payload{Type: webpush.PayloadTypeMessage, Room: "r", Sender: "s", Seq: 1}
	// One job in the worker's hands, two queued, then full.
	if err := pool.Enqueue([]string{"u2"}, p); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); inFlight.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the worker never sent")
		}
	}
	var full error
	for i := 0; i < 10 && full == nil; i++ {
		full = pool.Enqueue([]string{"u0", "u1"}, p)
	}
	if !errors.Is(full, webpush.ErrQueueFull) {
		t.Fatalf("Enqueue with the queue full = %v, want ErrQueueFull", full)
	}
	if n, err := testutil.GatherAndCount(reg, "parley_webpush_dropped_total", "parley_webpush_queue_depth"); err != nil || n != 2 {
		t.Fatalf("metrics: %d, %v", n, err)
	}
	if v := gathered(t, reg, "parley_webpush_dropped_total"); v != 2 {
		t.Fatalf("dropped = %v, want 2 (one message to two users)", v)
	}
	if v := gathered(t, reg, "parley_webpush_queue_depth"); v != 2 {
		t.Fatalf("queue depth = %v, want 2", v)
	}
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pool.Drained(ctx); err != nil {
		t.Fatal(err)
	}
	if v := gathered(t, reg, "parley_webpush_queue_depth"); v != 0 {
		t.Fatalf("queue depth after draining = %v", v)
	}
}

func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}
