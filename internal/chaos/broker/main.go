// Command broker is the Kafka-protocol broker of the fault suite: kfake as a process of
// its own, on a fixed port with a data directory, so the test can kill it with SIGKILL
// and start it again with its topics, records and group offsets.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	port := flag.Int("port", 0, "port to listen on (127.0.0.1)")
	dataDir := flag.String("data-dir", "", "directory that keeps the broker's state across restarts")
	minSession := flag.Duration("group-min-session-timeout", time.Second, "smallest consumer group session timeout accepted")
	flag.Parse()
	if *port == 0 || *dataDir == "" {
		fmt.Fprintln(os.Stderr, "broker: --port and --data-dir are required")
		os.Exit(2)
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.Ports(*port),
		kfake.DataDir(*dataDir),
		kfake.GroupMinSessionTimeout(*minSession),
	)
	if err != nil {
		fmt.Fprintf(os.Stderr, "broker: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("broker ready on %v\n", c.ListenAddrs())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	c.Close()
}
