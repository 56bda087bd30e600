package webpush_test

import (
	"context"
	"testing"
)

// BenchmarkNotify measures one notification to a user with four subscriptions, through
// encryption, VAPID signing and TLS to a local push service that also decrypts.
func BenchmarkNotify(b *testing.B) {
	f := newFixture(b, nil)
	for range 4 {
		f.subscribe(b, "alice")
	}
	p := samplePayload()
	b.ReportAllocs()
	for b.Loop() {
		if sent, err := f.sender.Notify(context.Background(), "alice", p); sent != 4 || err != nil {
			b.Fatalf("sent %d err %v", sent, err)
		}
	}
	b.ReportMetric(float64(4*b.N)/b.Elapsed().Seconds(), "pushes/s")
}
