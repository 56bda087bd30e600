package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/runtime/bus"
	"github.com/parleychat/parley/runtime/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// The crash child is this test binary run again with these variables set: it consumes
// with group core and dies with os.Exit right after its first database commit, so it
// neither publishes, nor commits offsets, nor leaves the group.
const (
	envCrashChild   = "PARLEY_TEST_PIPELINE_CRASH_CHILD"
	envCrashBrokers = "PARLEY_TEST_PIPELINE_CRASH_BROKERS"
	envCrashDSN     = "PARLEY_TEST_PIPELINE_CRASH_DSN"
	crashExitCode   = 37
)

func TestMain(m *testing.M) {
	if os.Getenv(envCrashChild) == "1" {
		os.Exit(crashChild())
	}
	os.Exit(m.Run())
}

// dieAfterCommit prints the outcomes of the first committed batch and kills the process.
type dieAfterCommit struct {
	MessageAcceptor
	died atomic.Bool
}

func (d *dieAfterCommit) AcceptMessages(ctx context.Context, in []protocol.MessageSent) ([]Outcome, error) {
	out, err := d.MessageAcceptor.AcceptMessages(ctx, in)
	if err == nil && d.died.CompareAndSwap(false, true) {
		_ = json.NewEncoder(os.Stdout).Encode(out)
		os.Exit(crashExitCode)
	}
	return out, err
}

func crashChild() int {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv(envCrashDSN))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	k, err := bus.NewKafka(bus.KafkaConfig{
		Brokers:           strings.Split(os.Getenv(envCrashBrokers), ","),
		SessionTimeout:    2 * time.Second,
		HeartbeatInterval: 200 * time.Millisecond,
		RebalanceTimeout:  2 * time.Second,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	p, err := New(k, &dieAfterCommit{MessageAcceptor: &pgChat{pool: pool, maxBody: 1000}}, nil, testConfig(prometheus.NewRegistry()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	return 1 // reaching this means the child never processed a batch
}

// TestProcessCrashBetweenDatabaseCommitAndOffsetCommit kills a real consumer process at
// the worst moment: its batch is in PostgreSQL, its offsets are not committed, and it
// never leaves the group, so the broker must notice it is gone before handing its
// partitions to the next consumer.
func TestProcessCrashBetweenDatabaseCommitAndOffsetCommit(t *testing.T) {
	b := kafkaBus(t, 2)
	dsn := testenv.Postgres(t)
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	chat := &pgChat{pool: pool, maxBody: 1000}
	if _, err := pool.Exec(context.Background(), testSchema); err != nil {
		t.Fatal(err)
	}
	chat.addMembers(t, "room-1", "ann")
	chat.addMembers(t, "room-2", "ann")
	const n = 16
	for i := range n {
		send(t, b, msg(fmt.Sprintf("room-%d", 1+i%2), "ann", fmt.Sprintf("a-%02d", i), fmt.Sprint(i)))
	}

	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), envCrashChild+"=1",
		envCrashBrokers+"="+strings.Join(b.(*bus.Kafka).Brokers(), ","), envCrashDSN+"="+dsn)
	var stdout, stderr bytes.Buffer
	child.Stdout, child.Stderr = &stdout, &stderr
	err = child.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != crashExitCode {
		t.Fatalf("child: %v, want exit status %d\nstderr: %s", err, crashExitCode, stderr.String())
	}
	var firstBatch []Outcome
	if err := json.Unmarshal(stdout.Bytes(), &firstBatch); err != nil || len(firstBatch) == 0 {
		t.Fatalf("child output %q: %v", stdout.String(), err)
	}
	if rows := chat.count(t, `SELECT count(*) FROM messages`); rows != len(firstBatch) {
		t.Fatalf("%d rows after the crash, want the %d of the committed batch", rows, len(firstBatch))
	}

	out := observe(t, b, protocol.TopicMessageDelivered)
	second := &countingAcceptor{MessageAcceptor: chat}
	p, err := New(b, second, nil, testConfig(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	running(t, p)
	got := map[string]*protocol.MessageDelivered{}
	for len(got) < n {
		for _, d := range delivered(t, out.next(1)) {
			got[d.ClientID] = d
		}
	}
	if rows := chat.count(t, `SELECT count(*) FROM messages`); rows != n {
		t.Fatalf("%d rows after redelivery, want %d", rows, n)
	}
	for _, o := range firstBatch {
		d := o.Delivered
		if d == nil {
			t.Fatalf("the child's batch has a rejection: %+v", o.Rejected)
		}
		if got[d.ClientID].ServerID != d.ServerID || got[d.ClientID].Seq != d.Seq {
			t.Fatalf("%s re-emitted as %s/%d, stored by the dead process as %s/%d", d.ClientID,
				got[d.ClientID].ServerID, got[d.ClientID].Seq, d.ServerID, d.Seq)
		}
	}
}
