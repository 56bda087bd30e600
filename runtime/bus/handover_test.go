package bus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/parleychat/parley/internal/testenv"
)

// crashDialer dials like the bus does until crash(), which closes every connection it
// made and refuses new ones: to the broker that is a process killed with SIGKILL (its
// sockets gone, no LeaveGroup, no heartbeats).
type crashDialer struct {
	mu      sync.Mutex
	conns   []net.Conn
	crashed bool
}

func (d *crashDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.crashed {
		return nil, errors.New("process killed")
	}
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err == nil {
		d.conns = append(d.conns, c)
	}
	return c, err
}

func (d *crashDialer) crash() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.crashed = true
	for _, c := range d.conns {
		_ = c.Close()
	}
}

// handoverDeadline is generous: the requirement is 3 s after a SIGKILL, and far less
// after a clean close; the test prints what it measured and fails only past this.
const handoverDeadline = 8 * time.Second

// TestKafkaGroupHandsPartitionsOver: a member that closes (SIGTERM) or dies (SIGKILL)
// has its partitions consumed by the next member of its group within seconds, with the
// bus's default group timers (what a restarted core or notification gets).
func TestKafkaGroupHandsPartitionsOver(t *testing.T) {
	brokers := testenv.Kafka(t)
	const topic, partitions = "handover", 3
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := EnsureTopics(ctx, brokers, partitions, topic); err != nil {
		t.Fatal(err)
	}
	pub, err := NewKafka(KafkaConfig{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	publish := func(round string) {
		t.Helper()
		var recs []Record
		for i := range 30 {
			recs = append(recs, Record{Key: fmt.Appendf(nil, "%s-%d", round, i), Value: []byte(round)})
		}
		if err := pub.Publish(ctx, topic, recs...); err != nil {
			t.Fatal(err)
		}
	}
	// consumeAll fetches until it has seen a message of round from every partition.
	consumeAll := func(sub Subscription, round string, deadline time.Duration) error {
		seen := map[int]bool{}
		fctx, fcancel := context.WithTimeout(ctx, deadline)
		defer fcancel()
		for len(seen) < partitions {
			msgs, err := sub.Fetch(fctx, 100, 10*time.Millisecond)
			if err != nil {
				return fmt.Errorf("partitions %v of %d after %v: %w", seen, partitions, deadline, err)
			}
			for _, m := range msgs {
				if string(m.Value) == round {
					seen[m.Partition] = true
				}
			}
			if err := sub.Commit(fctx, msgs...); err != nil {
				return err
			}
		}
		return nil
	}

	for i, tc := range []struct {
		name string
		stop func(sub Subscription, d *crashDialer)
		// survivor: the next member is already in the group (another replica) rather
		// than the restarted process joining after the stop.
		survivor bool
	}{
		{"closed (SIGTERM)", func(sub Subscription, _ *crashDialer) { _ = sub.Close() }, false},
		{"killed (SIGKILL)", func(_ Subscription, d *crashDialer) { d.crash() }, false},
		{"killed (SIGKILL) beside another replica", func(_ Subscription, d *crashDialer) { d.crash() }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			group := fmt.Sprintf("handover-%d", i)
			first, err := NewKafka(KafkaConfig{Brokers: brokers})
			if err != nil {
				t.Fatal(err)
			}
			d := &crashDialer{}
			first.dialer.DialFunc = d.dial
			subA, err := first.Subscribe(ctx, group, topic)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = subA.Close(); _ = first.Close() })
			publish("before")
			if err := consumeAll(subA, "before", 30*time.Second); err != nil {
				t.Fatalf("first member: %v", err)
			}

			second, err := NewKafka(KafkaConfig{Brokers: brokers})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = second.Close() })
			var subB Subscription
			join := func() {
				if subB, err = second.Subscribe(ctx, group, topic); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = subB.Close() })
			}
			if tc.survivor {
				join()
				// Both members share the partitions: wait until the new one consumes,
				// while the first keeps consuming (and so takes part in the rebalance).
				bGot := make(chan struct{})
				go func() {
					defer close(bGot)
					fctx, fcancel := context.WithTimeout(ctx, 30*time.Second)
					defer fcancel()
					for fctx.Err() == nil {
						msgs, err := subB.Fetch(fctx, 100, 10*time.Millisecond)
						if err == nil && len(msgs) > 0 {
							_ = subB.Commit(fctx, msgs...)
							return
						}
					}
				}()
				for shared := true; shared; {
					publish("shared")
					fctx, fcancel := context.WithTimeout(ctx, 200*time.Millisecond)
					if msgs, err := subA.Fetch(fctx, 100, 10*time.Millisecond); err == nil {
						_ = subA.Commit(fctx, msgs...)
					}
					fcancel()
					select {
					case <-bGot:
						shared = false
					default:
					}
				}
			}
			start := time.Now()
			tc.stop(subA, d)
			if !tc.survivor {
				join()
			}
			publish("after")
			err = consumeAll(subB, "after", handoverDeadline)
			took := time.Since(start)
			t.Logf("first member %s: the next member consumed every partition after %v (session timeout %v, heartbeat %v)",
				tc.name, took.Round(time.Millisecond), DefaultSessionTimeout, DefaultHeartbeatInterval)
			if err != nil {
				t.Fatalf("next member: %v", err)
			}
		})
	}
}

// TestKafkaJoinsBrokersThatRefuseShortSessions: a broker with Apache Kafka's default
// group.min.session.timeout.ms (6 s) refuses the default 2 s session timeout; the bus
// raises its session timeout to the brokers' minimum instead of never joining.
func TestKafkaJoinsBrokersThatRefuseShortSessions(t *testing.T) {
	brokers := testenv.Kafka(t, kfake.GroupMinSessionTimeout(6*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := EnsureTopics(ctx, brokers, 1, "strict"); err != nil {
		t.Fatal(err)
	}
	b, err := NewKafka(KafkaConfig{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	sub, err := b.Subscribe(ctx, "strict", "strict")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	if err := b.Publish(ctx, "strict", Record{Key: []byte("k"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	fctx, fcancel := context.WithTimeout(ctx, 20*time.Second)
	defer fcancel()
	msgs, err := sub.Fetch(fctx, 1, 0)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("fetch = %v, %v; want the message (a member that joined)", msgs, err)
	}
	if got := b.cfg.SessionTimeout; got != 6*time.Second {
		t.Fatalf("session timeout %v, want the brokers' minimum of 6s", got)
	}
}
