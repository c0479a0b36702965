// Command database-operator runs the Database controller: one manager, one
// controller, caches limited to what the operator owns.
//
// It reads its kubeconfig from --kubeconfig, $KUBECONFIG, the in-cluster
// service account, or ~/.kube/config, in that order. See parseFlags for the
// flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	kubeconfig "sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/internal/fence"
	"github.com/example/database-operator/reconcile"
	"github.com/example/database-operator/render"
)

const (
	// The leader's Lease: a standby replica takes over at most
	// leaseDuration after the leader stopped renewing, which a failover
	// waits for when the leader dies with the primary's node; the
	// libraries' 15s would take half of the 30s that node loss may cost.
	leaseDuration = 8 * time.Second
	renewDeadline = 5 * time.Second
	retryPeriod   = time.Second
	// leaderElectionID is the name of the Lease the replicas compete for.
	leaderElectionID = "database-operator.database.example.com"
	// eventSource is the reporting controller of the operator's Events.
	eventSource = "database-operator"
	// gracefulShutdownTimeout bounds how long running reconciles may take to
	// finish after SIGTERM.
	gracefulShutdownTimeout = 30 * time.Second
	// inClusterNamespaceFile holds the pod's namespace when running in a cluster.
	inClusterNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
)

// options are the operator's settings, from its command line.
type options struct {
	// MetricsAddr is where /metrics is served; "0" disables it.
	MetricsAddr string
	// ProbeAddr is where /healthz and /readyz are served; "0" disables them.
	ProbeAddr string
	// LeaderElect makes replicas compete for a Lease so only one reconciles.
	LeaderElect bool
	// Namespaces limits the operator to these namespaces; empty means all.
	Namespaces []string
	// LogLevel is debug, info or error.
	LogLevel string
	// LogFormat is json or console.
	LogFormat string
	// Render holds the exporter images.
	Render render.Options
	// Kubeconfig is the --kubeconfig path, for the startup log only:
	// controller-runtime's ctrl.GetConfig reads the flag itself.
	Kubeconfig string
	// QPS and Burst limit the operator's requests to the API server;
	// a negative QPS disables client-side throttling.
	QPS   float64
	Burst int
	// MaxConcurrentReconciles is how many Databases are reconciled at once.
	MaxConcurrentReconciles int
}

// parseFlags reads the command line (without the program name) into options
// and checks them; errors name the offending flag.
func parseFlags(args []string) (options, error) {
	defaults := render.DefaultOptions()
	var o options
	var namespaces string

	fs := flag.NewFlagSet("database-operator", flag.ContinueOnError)
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080",
		`Address the metrics endpoint (/metrics) binds to; "0" disables it.`)
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081",
		`Address the health endpoints (/healthz, /readyz) bind to; "0" disables them.`)
	fs.BoolVar(&o.LeaderElect, "leader-elect", false,
		"Elect a leader through the Lease "+leaderElectionID+" in the operator's namespace "+
			"($POD_NAMESPACE, else the in-cluster namespace, else \"default\"), so only one replica reconciles.")
	fs.StringVar(&namespaces, "namespaces", "",
		"Comma-separated namespaces to watch; empty watches all namespaces.")
	fs.StringVar(&o.LogLevel, "log-level", "info", "Log level: debug, info or error.")
	fs.StringVar(&o.LogFormat, "log-format", "json", "Log format: json, or console for development.")
	fs.StringVar(&o.Render.PostgresExporterImage, "postgres-exporter-image", defaults.PostgresExporterImage,
		"Image of the postgres_exporter sidecar of PostgreSQL Databases with monitoring.metrics.")
	fs.StringVar(&o.Render.MySQLExporterImage, "mysql-exporter-image", defaults.MySQLExporterImage,
		"Image of the mysqld_exporter sidecar of MySQL Databases with monitoring.metrics.")
	fs.StringVar(&o.Render.AgentImage, "agent-image", defaults.AgentImage,
		"Image that holds /database-agent, which the database pods copy in and run their server under: the operator's own image.")
	fs.StringVar(&o.Render.RunbookBaseURL, "runbook-base-url", defaults.RunbookBaseURL,
		"Address of the alert runbooks (docs/runbooks.md); each alert's runbook_url is this plus #<alert name in lower case>.")
	fs.Float64Var(&o.QPS, "kube-api-qps", 50,
		"Sustained requests per second to the API server; negative disables client-side throttling.")
	fs.IntVar(&o.Burst, "kube-api-burst", 100, "Request burst to the API server above --kube-api-qps.")
	fs.IntVar(&o.MaxConcurrentReconciles, "max-concurrent-reconciles", 4,
		"How many Databases are reconciled at the same time.")
	// --kubeconfig belongs to controller-runtime: RegisterFlags binds it to
	// the variable ctrl.GetConfig reads.
	kubeconfig.RegisterFlags(fs)

	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	o.Kubeconfig = fs.Lookup(kubeconfig.KubeconfigFlagName).Value.String()
	o.Namespaces = splitNamespaces(namespaces)
	return o, o.validate()
}

// validate checks the values flag parsing cannot.
func (o options) validate() error {
	for _, ns := range o.Namespaces {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return fmt.Errorf("invalid --namespaces entry %q: %s", ns, strings.Join(errs, "; "))
		}
	}
	if _, err := zapLevel(o.LogLevel); err != nil {
		return err
	}
	if o.LogFormat != "json" && o.LogFormat != "console" {
		return fmt.Errorf("invalid --log-format %q: must be json or console", o.LogFormat)
	}
	if o.Render.PostgresExporterImage == "" {
		return errors.New("--postgres-exporter-image must not be empty")
	}
	if o.Render.MySQLExporterImage == "" {
		return errors.New("--mysql-exporter-image must not be empty")
	}
	if o.Render.AgentImage == "" {
		return errors.New("--agent-image must not be empty")
	}
	if o.QPS == 0 {
		// client-go would silently replace 0 with its default of 5.
		return errors.New("--kube-api-qps must not be 0; use a negative value to disable throttling")
	}
	if o.QPS > 0 && o.Burst < 1 {
		return fmt.Errorf("invalid --kube-api-burst %d: must be at least 1", o.Burst)
	}
	if o.MaxConcurrentReconciles < 1 {
		return fmt.Errorf("invalid --max-concurrent-reconciles %d: must be at least 1", o.MaxConcurrentReconciles)
	}
	return nil
}

// splitNamespaces splits a comma-separated list, trimming spaces and
// dropping empty entries.
func splitNamespaces(s string) []string {
	var out []string
	for _, ns := range strings.Split(s, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			out = append(out, ns)
		}
	}
	return out
}

// zapLevel maps --log-level to a zap level. logr's V(1) is zap's debug.
func zapLevel(level string) (zapcore.Level, error) {
	switch level {
	case "debug":
		return zapcore.DebugLevel, nil
	case "info":
		return zapcore.InfoLevel, nil
	case "error":
		return zapcore.ErrorLevel, nil
	}
	return 0, fmt.Errorf("invalid --log-level %q: must be debug, info or error", level)
}

// newLogger builds the operator's logger: zap's production JSON logger, or
// its development console logger with --log-format=console.
func newLogger(o options) (logr.Logger, error) {
	level, err := zapLevel(o.LogLevel)
	if err != nil {
		return logr.Discard(), err
	}
	var cfg zap.Config
	switch o.LogFormat {
	case "json":
		cfg = zap.NewProductionConfig()
	case "console":
		cfg = zap.NewDevelopmentConfig()
	default:
		return logr.Discard(), fmt.Errorf("invalid --log-format %q: must be json or console", o.LogFormat)
	}
	cfg.Level = zap.NewAtomicLevelAt(level)
	z, err := cfg.Build()
	if err != nil {
		return logr.Discard(), fmt.Errorf("build zap logger: %w", err)
	}
	return zapr.NewLogger(z), nil
}

// leaderElectionNamespace is the namespace of the leader election Lease:
// $POD_NAMESPACE, else the in-cluster namespace file, else "default" (out
// of cluster, where controller-runtime would refuse to guess).
func leaderElectionNamespace(getenv func(string) string, namespaceFile string) string {
	if ns := strings.TrimSpace(getenv("POD_NAMESPACE")); ns != "" {
		return ns
	}
	if b, err := os.ReadFile(namespaceFile); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return "default"
}

// newScheme knows the built-in kinds and Databases. ServiceMonitors are
// handled as unstructured objects and need no registration.
func newScheme() (*runtime.Scheme, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("add client-go types to scheme: %w", err)
	}
	if err := databasev1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("add %s to scheme: %w", databasev1.GroupVersion, err)
	}
	return scheme, nil
}

// managerOptions are the manager's settings for the given options.
// lock, when not nil, is the leader election's Lease (a fence.Lease).
func managerOptions(o options, scheme *runtime.Scheme, leaseNamespace string, monitoring reconcile.MonitoringAPIs, lock resourcelock.Interface) ctrl.Options {
	shutdown := gracefulShutdownTimeout
	return ctrl.Options{
		LeaderElectionResourceLockInterface: lock,
		Scheme:                              scheme,
		Cache:                               reconcile.CacheOptions(o.Namespaces, monitoring),
		Client:                              reconcile.ClientOptions(),
		Metrics:                             metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:              o.ProbeAddr,
		LeaderElection:                      o.LeaderElect,
		LeaderElectionID:                    leaderElectionID,
		LeaderElectionNamespace:             leaseNamespace,
		LeaderElectionReleaseOnCancel:       true,
		LeaseDuration:                       ptr.To(leaseDuration),
		RenewDeadline:                       ptr.To(renewDeadline),
		RetryPeriod:                         ptr.To(retryPeriod),
		GracefulShutdownTimeout:             &shutdown,
		// The reconciler's builder sets no controller options, so this
		// manager-wide default applies to it.
		Controller: config.Controller{MaxConcurrentReconciles: o.MaxConcurrentReconciles},
	}
}

// cacheSynced is a readiness check that passes once the manager's caches
// have started and every informer has synced.
func cacheSynced(c cache.Cache) healthz.Checker {
	return func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		if !c.WaitForCacheSync(ctx) {
			return errors.New("caches not synced")
		}
		return nil
	}
}

// run sets up the manager and the controller and blocks until ctx ends.
func run(ctx context.Context, o options, log logr.Logger) error {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.QPS = float32(o.QPS)
	cfg.Burst = o.Burst

	leaseNamespace := leaderElectionNamespace(os.Getenv, inClusterNamespaceFile)
	watched := "all"
	if len(o.Namespaces) > 0 {
		watched = strings.Join(o.Namespaces, ",")
	}
	log.Info("starting database-operator",
		"apiServer", cfg.Host,
		"kubeconfig", o.Kubeconfig,
		"namespaces", watched,
		"metricsBindAddress", o.MetricsAddr,
		"healthProbeBindAddress", o.ProbeAddr,
		"leaderElect", o.LeaderElect,
		"leaderElectionID", leaderElectionID,
		"leaderElectionNamespace", leaseNamespace,
		"logLevel", o.LogLevel,
		"logFormat", o.LogFormat,
		"postgresExporterImage", o.Render.PostgresExporterImage,
		"mysqlExporterImage", o.Render.MySQLExporterImage,
		"runbookBaseURL", o.Render.RunbookBaseURL,
		"agentImage", o.Render.AgentImage,
		"kubeAPIQPS", o.QPS,
		"kubeAPIBurst", o.Burst,
		"maxConcurrentReconciles", o.MaxConcurrentReconciles,
	)

	monitoring, err := reconcile.MonitoringServed(cfg)
	if err != nil {
		return fmt.Errorf("check whether the monitoring.coreos.com kinds are served: %w", err)
	}
	if !monitoring.ServiceMonitors {
		log.Info("monitoring.coreos.com/v1 ServiceMonitor is not served; Databases with monitoring.metrics " +
			"get no ServiceMonitor until the operator restarts after the Prometheus Operator is installed")
	}
	if !monitoring.PrometheusRules {
		log.Info("monitoring.coreos.com/v1 PrometheusRule is not served; Databases with monitoring.metrics " +
			"get no alerting rules until the operator restarts after the Prometheus Operator is installed")
	}

	scheme, err := newScheme()
	if err != nil {
		return err
	}
	// Every request names this process: an audit log tells two replicas
	// of one ServiceAccount apart (the fault matrix checks that a replica
	// that lost the Lease wrote nothing).
	identity := processIdentity()
	cfg.UserAgent = "database-operator (" + identity + ")"
	var lock resourcelock.Interface
	if o.LeaderElect {
		// The fence refuses this replica's writes once its last renewal is
		// older than the renew deadline, when client-go would give the
		// leadership up: a replica frozen past its Lease wakes up with
		// reconciles in flight, and they must not write while another
		// replica leads.
		lease, err := fence.NewLease(cfg, leaseNamespace, leaderElectionID, identity, renewDeadline, log.WithName("fence"))
		if err != nil {
			return err
		}
		cfg = rest.CopyConfig(cfg)
		cfg.Wrap(lease.Transport)
		lock = lease
	}
	mgr, err := ctrl.NewManager(cfg, managerOptions(o, scheme, leaseNamespace, monitoring, lock))
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("add healthz check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", cacheSynced(mgr.GetCache())); err != nil {
		return fmt.Errorf("add readyz check: %w", err)
	}

	r := &reconcile.Reconciler{
		Client:     mgr.GetClient(),
		APIReader:  mgr.GetAPIReader(),
		Recorder:   mgr.GetEventRecorder(eventSource),
		Render:     o.Render,
		Monitoring: monitoring,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up Database controller: %w", err)
	}

	log.Info("starting manager")
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("run manager: %w", err)
	}
	log.Info("stopped")
	return nil
}

// processIdentity is the leader election identity: the host (the pod's
// name) and a fresh UUID, so that a restarted process is another holder.
func processIdentity() string {
	host, err := os.Hostname()
	if err != nil {
		host = "database-operator"
	}
	return host + "_" + string(uuid.NewUUID())
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "database-operator: %v\n", err)
		os.Exit(2)
	}
	log, err := newLogger(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "database-operator: %v\n", err)
		os.Exit(2)
	}
	// controller-runtime and client-go (klog) log through the same logger.
	ctrl.SetLogger(log)
	klog.SetLogger(log)

	if err := run(ctrl.SetupSignalHandler(), o, log); err != nil {
		log.Error(err, "database-operator failed")
		os.Exit(1)
	}
}
