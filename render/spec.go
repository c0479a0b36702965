package render

import (
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// Defaults applied at render time when a field is absent. The CRD schema
// carries the same defaults, so they only matter for objects that were not
// defaulted by an API server (unit tests, or a Database read before the CRD
// gained a default).
const (
	defaultReplicas       = 1
	defaultEnvironment    = databasev1.Development
	defaultBackupSchedule = "0 2 * * *"
	defaultRetentionDays  = 7
	// defaultMonitoringNamespace is where Prometheus runs unless
	// spec.networkPolicy.monitoringNamespace says otherwise.
	defaultMonitoringNamespace = "monitoring"
)

// profile is what an environment implies when the spec leaves it open.
type profile struct {
	requests, limits corev1.ResourceList
	maxConnections   int
	// terminationGracePeriod gives the engine time for a clean shutdown
	// (a checkpoint) before the kubelet kills it.
	terminationGracePeriod int64
}

func resources(cpuRequest, memRequest, cpuLimit, memLimit string) (corev1.ResourceList, corev1.ResourceList) {
	return corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse(cpuRequest),
			corev1.ResourceMemory: resource.MustParse(memRequest),
		}, corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse(cpuLimit),
			corev1.ResourceMemory: resource.MustParse(memLimit),
		}
}

func profileFor(env databasev1.Environment) profile {
	switch env {
	case databasev1.Production:
		req, lim := resources("500m", "1Gi", "2000m", "4Gi")
		return profile{requests: req, limits: lim, maxConnections: 400, terminationGracePeriod: 120}
	case databasev1.Staging:
		req, lim := resources("200m", "512Mi", "1000m", "1Gi")
		return profile{requests: req, limits: lim, maxConnections: 200, terminationGracePeriod: 60}
	default:
		req, lim := resources("100m", "256Mi", "500m", "512Mi")
		return profile{requests: req, limits: lim, maxConnections: 100, terminationGracePeriod: 30}
	}
}

// spec is a Database with every default resolved: the one place that knows
// what an absent field means, so the builders never check for nil.
type spec struct {
	db   *databasev1.Database
	eng  engine
	opts Options

	name, namespace string
	replicas        int32
	environment     databasev1.Environment
	profile         profile
	image           string

	// requests and limits of the database container: the spec's, or the
	// environment profile's when the spec has none.
	requests, limits corev1.ResourceList
	claims           []corev1.ResourceClaim
	// memoryBytes sizes the engine's caches: the memory limit, else the
	// request, else the profile's limit.
	memoryBytes int64

	backup        databasev1.BackupSpec
	retentionDays int
	backupSize    resource.Quantity

	metrics, logging bool

	// restore is spec.restore: nil unless the Database starts from a dump.
	restore *databasev1.RestoreSpec

	// autoscaling is spec.autoscaling: nil unless the Database autoscales.
	autoscaling *databasev1.AutoscalingSpec

	// networkPolicy is whether the NetworkPolicy is rendered: spec's
	// networkPolicy.enabled, else on in production only.
	networkPolicy bool
	// allowFrom are the clients of the database port besides the
	// Database's own pods and backup Jobs.
	allowFrom []databasev1.NetworkPeer
	// monitoringNamespace may scrape the metrics port.
	monitoringNamespace string

	// syncReplication is spec.replication.mode sync.
	syncReplication bool

	// keepPods is Observed.KeepPods.
	keepPods int32

	// tlsSecret is the Secret with the server certificate the pods mount
	// (tls.go); "" when TLS is off.
	tlsSecret string
	// tlsCertificate is the fingerprint of that Secret's certificate, as
	// observed by the reconciler (Observed.TLSCertificate); "" when TLS is
	// off or nothing was observed.
	tlsCertificate string
}

func environmentOf(db *databasev1.Database) databasev1.Environment {
	if db.Spec.Environment == "" {
		return defaultEnvironment
	}
	return db.Spec.Environment
}

func newSpec(db *databasev1.Database, eng engine, opts Options) *spec {
	s := &spec{
		db:          db,
		eng:         eng,
		opts:        opts,
		name:        db.Name,
		namespace:   db.Namespace,
		replicas:    defaultReplicas,
		environment: environmentOf(db),
	}
	if db.Spec.Replicas != nil {
		s.replicas = *db.Spec.Replicas
	}
	s.profile = profileFor(s.environment)
	s.syncReplication = ReplicationModeOf(db) == databasev1.ReplicationSync

	s.image = db.Spec.Image
	if s.image == "" {
		s.image = eng.defaultImage(db.Spec.Version)
	}

	s.requests, s.limits = s.profile.requests, s.profile.limits
	if r := db.Spec.Resources; r != nil {
		s.requests, s.limits, s.claims = r.Requests, r.Limits, r.Claims
	}
	s.memoryBytes = s.profile.limits.Memory().Value()
	if m, ok := s.limits[corev1.ResourceMemory]; ok {
		s.memoryBytes = m.Value()
	} else if m, ok := s.requests[corev1.ResourceMemory]; ok {
		s.memoryBytes = m.Value()
	}

	if db.Spec.Backup != nil {
		s.backup = *db.Spec.Backup
	}
	if s.backup.Schedule == "" {
		s.backup.Schedule = defaultBackupSchedule
	}
	s.retentionDays = parseRetentionDays(s.backup.Retention)
	s.backupSize = db.Spec.Storage.Size
	if s.backup.Size != nil {
		s.backupSize = *s.backup.Size
	}

	s.restore = db.Spec.Restore
	if m := db.Spec.Monitoring; m != nil && m.Enabled {
		s.metrics, s.logging = m.Metrics, m.Logging
	}

	s.autoscaling = db.Spec.Autoscaling

	// The NetworkPolicy's default depends on the environment; it is decided
	// here, never written into the spec.
	s.networkPolicy = s.environment == databasev1.Production
	s.monitoringNamespace = defaultMonitoringNamespace
	if np := db.Spec.NetworkPolicy; np != nil {
		if np.Enabled != nil {
			s.networkPolicy = *np.Enabled
		}
		s.allowFrom = np.AllowFrom
		if np.MonitoringNamespace != "" {
			s.monitoringNamespace = np.MonitoringNamespace
		}
	}
	s.tlsSecret = TLSSecretFor(db)
	return s
}

// podCount is the StatefulSet's replicas: one pod while a restore is in
// progress. Only the restoring pod may mount the source's backup volume,
// which storage attaching a volume to one node at a time (ReadWriteOnce)
// could not give to pods on other nodes; the replicas are created, as copies
// of pod 0, once the restore is done (Observed.RestoreDone).
func (s *spec) podCount() int32 {
	if s.restore != nil {
		return 1
	}
	return max(s.replicas, s.keepPods)
}

// parseRetentionDays reads "<N>d"; the CRD only admits that form, so anything
// else falls back to the default rather than deleting backups early.
func parseRetentionDays(retention string) int {
	n, err := strconv.Atoi(strings.TrimSuffix(retention, "d"))
	if err != nil || n < 1 || !strings.HasSuffix(retention, "d") {
		return defaultRetentionDays
	}
	return n
}

// resourceRequirements is the database container's resources as an apply
// configuration.
func (s *spec) resourceRequirements() *corev1ac.ResourceRequirementsApplyConfiguration {
	r := corev1ac.ResourceRequirements()
	if len(s.requests) > 0 {
		r.WithRequests(s.requests)
	}
	if len(s.limits) > 0 {
		r.WithLimits(s.limits)
	}
	for _, c := range s.claims {
		claim := corev1ac.ResourceClaim().WithName(c.Name)
		if c.Request != "" {
			claim.WithRequest(c.Request)
		}
		r.WithClaims(claim)
	}
	return r
}

// megabytes is a fraction of the container's memory in whole MiB, at least min.
func (s *spec) megabytes(numerator, denominator, min int64) int64 {
	mb := s.memoryBytes * numerator / denominator / (1 << 20)
	if mb < min {
		return min
	}
	return mb
}

// DefaultFailoverDelay is spec.replication.failoverDelay when unset.
const DefaultFailoverDelay = 5 * time.Second

// ReplicationModeOf is spec.replication.mode, async when unset.
func ReplicationModeOf(db *databasev1.Database) databasev1.ReplicationMode {
	if r := db.Spec.Replication; r != nil && r.Mode != "" {
		return r.Mode
	}
	return databasev1.ReplicationAsync
}

// FailoverDelayOf is spec.replication.failoverDelay, DefaultFailoverDelay
// when unset. The CRD admits only durations from 0s to 300s; anything else
// (an object no API server validated) counts as unset.
func FailoverDelayOf(db *databasev1.Database) time.Duration {
	if r := db.Spec.Replication; r != nil && r.FailoverDelay != "" {
		if d, err := time.ParseDuration(r.FailoverDelay); err == nil && d >= 0 && d <= 300*time.Second {
			return d
		}
	}
	return DefaultFailoverDelay
}
