package gateway

import (
	"flag"
	"reflect"
	"testing"
)

// Every limit of Config is a flag (issue 14: "flags for every limit"), except what the
// role derives from other settings.
func TestEveryLimitIsAFlag(t *testing.T) {
	notFlags := map[string]bool{
		"ID": true, "AllowedOrigins": true, // the role's own flags
		"MessagesPerSecond": true, // core's --messages-per-second
		"HeartbeatInterval": true, // a third of --presence-ttl
	}
	var cfg Config
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	var args []string
	fs.VisitAll(func(f *flag.Flag) {
		v := "7"
		if _, ok := f.Value.(flag.Getter).Get().(interface{ Seconds() float64 }); ok {
			v = "7s"
		}
		args = append(args, "--"+f.Name+"="+v)
	})
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	v := reflect.ValueOf(cfg)
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		if notFlags[name] {
			continue
		}
		if v.Field(i).IsZero() {
			t.Errorf("Config.%s is set by no flag", name)
		}
	}
}
