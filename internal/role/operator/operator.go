// Package operator is the `parley operator` role: the controller manager that runs the
// ChatCluster controller with leader election, health probes and metrics.
package operator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
	"github.com/parleychat/parley/controllers"
	"github.com/parleychat/parley/internal/cli"
	"github.com/parleychat/parley/internal/version"
)

// LeaderElectionID names the Lease the replicas of the operator compete for.
const LeaderElectionID = "parley-operator.chat.parley.dev"

// Options are the role's flags.
type Options struct {
	MetricsAddr    string
	ProbeAddr      string
	LeaderElect    bool
	LeaderElectNS  string
	WatchNamespace string
	DefaultImage   string
	LogLevel       string
	// MaxConcurrentReconciles is how many ChatClusters are reconciled at once.
	MaxConcurrentReconciles int
	// ConnectionSampleInterval is how often the connection autoscaler reads each
	// connection-scaled gateway's pods.
	ConnectionSampleInterval time.Duration
	// KubeAPIQPS and KubeAPIBurst bound the operator's own requests to the API server on
	// the client side; 0 QPS leaves them to the server's API Priority and Fairness.
	KubeAPIQPS   float64
	KubeAPIBurst int
	RestConfig   *rest.Config // nil: in-cluster or $KUBECONFIG
}

// DefaultMaxConcurrentReconciles suits hundreds of ChatClusters: a reconcile mostly waits
// on the API server, so workers overlap well, and each ChatCluster is only ever handled
// by one worker at a time.
const DefaultMaxConcurrentReconciles = 16

// Role returns the operator role.
func Role() cli.Role {
	return cli.Role{
		Name:    "operator",
		Summary: "Kubernetes controller manager for ChatCluster resources",
		Setup: func(fs *flag.FlagSet) cli.RunFunc {
			var o Options
			o.RegisterFlags(fs)
			return func(ctx context.Context, env cli.Env, _ []string) error {
				return Run(ctx, env, o)
			}
		},
	}
}

// RegisterFlags binds the role's flags to o, with their defaults.
func (o *Options) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080", `address of the Prometheus /metrics endpoint ("0" disables it)`)
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz endpoints")
	fs.BoolVar(&o.LeaderElect, "leader-elect", false, "elect a leader among the operator's replicas (set it when running more than one)")
	fs.StringVar(&o.LeaderElectNS, "leader-election-namespace", "", "namespace of the leader-election Lease (default: the pod's namespace)")
	fs.StringVar(&o.WatchNamespace, "watch-namespace", "", "only reconcile ChatClusters in these comma-separated namespaces (default: every namespace)")
	fs.StringVar(&o.DefaultImage, "default-image", "parley:"+version.Version, "image the workloads run when a ChatCluster names no version or image: the operator's own")
	fs.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.IntVar(&o.MaxConcurrentReconciles, "max-concurrent-reconciles", DefaultMaxConcurrentReconciles, "ChatClusters reconciled at once, 1 to 1000 (each one by a single worker at a time)")
	fs.Float64Var(&o.KubeAPIQPS, "kube-api-qps", 0, "requests per second the operator sends the API server, sustained (0: no client-side limit, the API server's priority and fairness governs)")
	fs.IntVar(&o.KubeAPIBurst, "kube-api-burst", 0, "requests the operator may send at once above --kube-api-qps (0: twice --kube-api-qps)")
	fs.DurationVar(&o.ConnectionSampleInterval, "connection-sample-interval", controllers.DefaultConnectionSampleInterval, "how often the connection autoscaler reads the open connections of each gateway pod (targetConnectionsPerPod), 1s to 10m")
}

// ErrInvalidOption is a flag value the operator cannot run with.
var ErrInvalidOption = errors.New("invalid option")

func (o Options) validate() error {
	if strings.TrimSpace(o.DefaultImage) == "" {
		return fmt.Errorf("%w: --default-image must not be empty", ErrInvalidOption)
	}
	if _, err := parseLevel(o.LogLevel); err != nil {
		return err
	}
	if o.MaxConcurrentReconciles < 0 || o.MaxConcurrentReconciles > 1000 {
		return fmt.Errorf("%w: --max-concurrent-reconciles %d: want 1 to 1000", ErrInvalidOption, o.MaxConcurrentReconciles)
	}
	if o.KubeAPIQPS < 0 || o.KubeAPIQPS > 100000 {
		return fmt.Errorf("%w: --kube-api-qps %g: want 0 (no client-side limit) to 100000", ErrInvalidOption, o.KubeAPIQPS)
	}
	if o.KubeAPIBurst < 0 || o.KubeAPIBurst > 200000 {
		return fmt.Errorf("%w: --kube-api-burst %d: want 0 to 200000", ErrInvalidOption, o.KubeAPIBurst)
	}
	if o.ConnectionSampleInterval != 0 && (o.ConnectionSampleInterval < time.Second || o.ConnectionSampleInterval > 10*time.Minute) {
		return fmt.Errorf("%w: --connection-sample-interval %s: want 1s to 10m", ErrInvalidOption, o.ConnectionSampleInterval)
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%w: --log-level %q: want debug, info, warn or error", ErrInvalidOption, s)
	}
	return l, nil
}

// NewScheme holds the kinds the operator reads and writes.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := chatv1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Run starts the manager and blocks until ctx is cancelled.
func Run(ctx context.Context, env cli.Env, o Options) error {
	if err := o.validate(); err != nil {
		return fmt.Errorf("%w: %w", cli.ErrUsage, err)
	}
	if o.MaxConcurrentReconciles == 0 {
		o.MaxConcurrentReconciles = DefaultMaxConcurrentReconciles
	}
	level, _ := parseLevel(o.LogLevel)
	logger := logr.FromSlogHandler(slog.NewJSONHandler(env.Stderr, &slog.HandlerOptions{Level: level}))
	ctrl.SetLogger(logger)

	cfg := o.RestConfig
	if cfg == nil {
		var err error
		if cfg, err = ctrl.GetConfig(); err != nil {
			return fmt.Errorf("kubernetes config: %w", err)
		}
	}
	cfg = o.limitRequests(cfg)
	scheme, err := NewScheme()
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Logger:                        logger,
		Metrics:                       metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:        o.ProbeAddr,
		LeaderElection:                o.LeaderElect,
		LeaderElectionID:              LeaderElectionID,
		LeaderElectionNamespace:       o.LeaderElectNS,
		LeaderElectionReleaseOnCancel: true,
		Cache:                         controllers.CacheOptions(splitNamespaces(o.WatchNamespace)),
	})
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	r := &controllers.ChatClusterReconciler{
		Client:       mgr.GetClient(),
		APIReader:    mgr.GetAPIReader(),
		Scheme:       mgr.GetScheme(),
		Recorder:     mgr.GetEventRecorder("parley-operator"),
		DefaultImage: o.DefaultImage,

		MaxConcurrentReconciles:  o.MaxConcurrentReconciles,
		ConnectionSampleInterval: o.ConnectionSampleInterval,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	logger.Info("starting parley operator", "version", version.Version, "defaultImage", o.DefaultImage,
		"watchNamespace", o.WatchNamespace, "leaderElect", o.LeaderElect, "maxConcurrentReconciles", o.MaxConcurrentReconciles,
		"kubeAPIQPS", cfg.QPS, "kubeAPIBurst", cfg.Burst)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	return nil
}

// limitRequests applies --kube-api-qps and --kube-api-burst to a copy of cfg. Without
// them cfg keeps controller-runtime's default, no client-side limit: each reconcile sends
// its requests one after another, so --max-concurrent-reconciles already bounds how many
// are in flight, and the API server's priority and fairness queues them fairly against
// everyone else's. A cap suits a small or shared API server.
func (o Options) limitRequests(cfg *rest.Config) *rest.Config {
	if o.KubeAPIQPS == 0 {
		return cfg
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS = float32(o.KubeAPIQPS)
	cfg.Burst = o.KubeAPIBurst
	if cfg.Burst == 0 {
		cfg.Burst = max(1, int(2*o.KubeAPIQPS))
	}
	cfg.RateLimiter = nil // built from QPS and Burst
	return cfg
}

func splitNamespaces(list string) []string {
	var out []string
	for _, ns := range strings.Split(list, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			out = append(out, ns)
		}
	}
	return out
}
