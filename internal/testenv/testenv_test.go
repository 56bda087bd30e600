package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
)

func TestPostgresRoundTripInOwnSchema(t *testing.T) {
	ctx := context.Background()
	a, b := PostgresPool(t), PostgresPool(t)

	if _, err := a.Exec(ctx, `CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL)`); err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := a.Exec(ctx, `INSERT INTO notes VALUES (1, $1)`, "héllo; DROP TABLE notes --"); err != nil {
		t.Fatalf("insert: %v", err)
	}
	var body string
	if err := a.QueryRow(ctx, `SELECT body FROM notes WHERE id = 1`).Scan(&body); err != nil {
		t.Fatalf("select: %v", err)
	}
	if body != "héllo; DROP TABLE notes --" {
		t.Fatalf("body = %q", body)
	}

	// The second schema must not see the first one's table.
	err := b.QueryRow(ctx, `SELECT body FROM notes WHERE id = 1`).Scan(&body)
	if err == nil {
		t.Fatal("second schema sees the first schema's table")
	}
	var schemaA, schemaB string
	_ = a.QueryRow(ctx, `SELECT current_schema()`).Scan(&schemaA)
	_ = b.QueryRow(ctx, `SELECT current_schema()`).Scan(&schemaB)
	if schemaA == schemaB || schemaA == "public" {
		t.Fatalf("schemas not isolated: %q and %q", schemaA, schemaB)
	}
}

func TestPostgresSchemaDroppedAfterTest(t *testing.T) {
	var dsn string
	t.Run("inner", func(t *testing.T) { dsn = Postgres(t) })
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	schema := cfg.RuntimeParams["search_path"]
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1`, schema).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if schema == "" || n != 0 {
		t.Fatalf("schema %q still exists after its test (count %d)", schema, n)
	}
}

func TestRedisRoundTripInOwnDatabase(t *testing.T) {
	ctx := context.Background()
	a, b := RedisClient(t), RedisClient(t)
	if a.Options().DB == b.Options().DB {
		t.Fatalf("two claims got the same database %d", a.Options().DB)
	}
	if err := a.Set(ctx, "greeting", "hi", time.Minute).Err(); err != nil {
		t.Fatalf("set: %v", err)
	}
	got, err := a.Get(ctx, "greeting").Result()
	if err != nil || got != "hi" {
		t.Fatalf("get = %q, %v", got, err)
	}
	if _, err := b.Get(ctx, "greeting").Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("other database sees the key: %v", err)
	}
}

func TestKafkaRoundTripWithKafkaGo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addrs := Kafka(t)

	conn, err := kafka.DialContext(ctx, "tcp", addrs[0])
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	controller, err := conn.Controller()
	if err != nil {
		t.Fatalf("controller: %v", err)
	}
	cc, err := kafka.DialContext(ctx, "tcp", net.JoinHostPort(controller.Host, strconv.Itoa(controller.Port)))
	if err != nil {
		t.Fatalf("dial controller: %v", err)
	}
	defer cc.Close()
	const topic = "smoke"
	if err := cc.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: 3, ReplicationFactor: 1}); err != nil {
		t.Fatalf("create topic: %v", err)
	}

	w := &kafka.Writer{
		Addr:         kafka.TCP(addrs...),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
	}
	defer w.Close()
	const n = 30
	want := map[string]string{}
	var msgs []kafka.Message
	for i := range n {
		k, v := fmt.Sprintf("room-%d", i%5), fmt.Sprintf("msg-%d", i)
		want[v] = k
		msgs = append(msgs, kafka.Message{Key: []byte(k), Value: []byte(v)})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("write: %v", err)
	}

	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:        addrs,
		GroupID:        "smoke",
		Topic:          topic,
		SessionTimeout: time.Second,
		MaxWait:        50 * time.Millisecond,
	})
	defer r.Close()
	lastOffset := map[int]int64{}
	for range n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		if want[string(m.Value)] != string(m.Key) {
			t.Fatalf("message %q arrived with key %q", m.Value, m.Key)
		}
		delete(want, string(m.Value))
		if prev, ok := lastOffset[m.Partition]; ok && m.Offset <= prev {
			t.Fatalf("partition %d went backwards: %d after %d", m.Partition, m.Offset, prev)
		}
		lastOffset[m.Partition] = m.Offset
		if err := r.CommitMessages(ctx, m); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	if len(want) != 0 {
		t.Fatalf("never received %d messages: %v", len(want), want)
	}
}
