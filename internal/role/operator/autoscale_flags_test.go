package operator_test

import (
	"bytes"
	"context"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/controllers"
	"github.com/parleychat/parley/internal/cli"
	"github.com/parleychat/parley/internal/role/operator"
)

// The connection autoscaler's sampling interval is a flag (and its PARLEY_ variable)
// with the documented default and bounds.
func TestConnectionSampleIntervalFlag(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want time.Duration
	}{
		{nil, controllers.DefaultConnectionSampleInterval},
		{[]string{"--connection-sample-interval", "5s"}, 5 * time.Second},
	} {
		var o operator.Options
		fs := flag.NewFlagSet("operator", flag.ContinueOnError)
		o.RegisterFlags(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		if o.ConnectionSampleInterval != tt.want {
			t.Errorf("%v: %s, want %s", tt.args, o.ConnectionSampleInterval, tt.want)
		}
	}
	for _, env := range []map[string]string{{"PARLEY_CONNECTION_SAMPLE_INTERVAL": "100ms"}, {"PARLEY_CONNECTION_SAMPLE_INTERVAL": "1h"}} {
		var errb bytes.Buffer
		code := cli.Main(context.Background(), cli.Env{Stdout: io.Discard, Stderr: &errb, Getenv: func(k string) string { return env[k] }},
			[]cli.Role{operator.Role()}, []string{"operator"})
		if code != cli.ExitUsage || !strings.Contains(errb.String(), "--connection-sample-interval") {
			t.Errorf("%v: exit %d, stderr %q; want a usage error naming the flag", env, code, errb.String())
		}
	}
}
