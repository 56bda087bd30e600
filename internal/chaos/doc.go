// Package chaos is Parley's own fault suite: its tests run every role as a real process
// (core, notification, two gateways, a redis-server and a Kafka-protocol broker of their
// own, PostgreSQL behind a proxy the test can cut), put a steady load of retrying,
// resuming clients on them, inject one fault at a time and check after each that no
// acknowledged message was lost, duplicated or left with a sequence gap, and that every
// member got every message. See README.md.
package chaos
