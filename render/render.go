// Package render turns one Database into the server-side apply configurations
// of every child object the operator manages.
//
// Render is pure: the same Database, Options and Observed always give the
// same objects, byte for byte. It reads no clock, no randomness, no
// environment and talks to no API server: what the reconciler read from the
// cluster comes in as Observed, and the reconciler applies what it returns.
// Defaults that the CRD
// schema does not fill in (for example the environment's resource profile) are
// applied here, so they are never written back into the Database's spec.
package render

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	autoscalingv2ac "k8s.io/client-go/applyconfigurations/autoscaling/v2"
	batchv1ac "k8s.io/client-go/applyconfigurations/batch/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// Options are the operator-wide settings render needs besides the Database.
type Options struct {
	// PostgresExporterImage is the prometheus-community postgres_exporter image.
	PostgresExporterImage string
	// MySQLExporterImage is the prometheus-community mysqld_exporter image.
	MySQLExporterImage string
	// RunbookBaseURL is the address of docs/runbooks.md that the alerts'
	// runbook_url annotations point into; DefaultRunbookBaseURL when empty.
	RunbookBaseURL string
	// AgentImage is the operator's own image, which holds the agent
	// (/database-agent) that init containers copy into the database pods.
	AgentImage string
}

// DefaultAgentImage is Options.AgentImage unless told otherwise: the
// operator's image of this release.
const DefaultAgentImage = "ghcr.io/example/database-operator:0.1.0"

// DefaultOptions returns the Options the operator uses unless told otherwise.
func DefaultOptions() Options {
	return Options{
		PostgresExporterImage: "quay.io/prometheuscommunity/postgres-exporter:v0.17.1",
		MySQLExporterImage:    "quay.io/prometheus/mysqld-exporter:v0.17.2",
		RunbookBaseURL:        DefaultRunbookBaseURL,
		AgentImage:            DefaultAgentImage,
	}
}

// Children are the apply configurations of every object a Database owns or
// uses. A nil field means the object is not wanted for this spec and, if it
// exists and this Database controls it, should be pruned.
type Children struct {
	// StatefulSet runs the database pods.
	StatefulSet *appsv1ac.StatefulSetApplyConfiguration
	// HeadlessService gives each pod a stable DNS name; it is the
	// StatefulSet's serviceName.
	HeadlessService *corev1ac.ServiceApplyConfiguration
	// Service is the read-write endpoint: it selects the pod labelled
	// primary (status.currentPrimary).
	Service *corev1ac.ServiceApplyConfiguration
	// ReadService selects every pod, for read traffic; only with replicas > 1.
	ReadService *corev1ac.ServiceApplyConfiguration
	// ConfigMap holds the engine configuration and init scripts.
	ConfigMap *corev1ac.ConfigMapApplyConfiguration
	// PodDisruptionBudget keeps all but one pod up during voluntary
	// disruptions; only with replicas > 1.
	PodDisruptionBudget *policyv1ac.PodDisruptionBudgetApplyConfiguration
	// BackupCronJob runs the logical backups; only with backup enabled.
	BackupCronJob *batchv1ac.CronJobApplyConfiguration
	// RestoreCheckCronJob runs the restore check; only with
	// spec.backup.restoreCheck on an archiving Database.
	RestoreCheckCronJob *batchv1ac.CronJobApplyConfiguration
	// BackupPVC holds the dumps; only with backup enabled. It carries no owner
	// reference: backups outlive the schedule and the Database.
	BackupPVC *corev1ac.PersistentVolumeClaimApplyConfiguration
	// ServiceMonitor asks the Prometheus Operator to scrape the exporter; only
	// with monitoring.metrics. The monitoring.coreos.com API has no typed apply
	// configurations, so this is a plain object with exactly the fields the
	// operator owns.
	ServiceMonitor *unstructured.Unstructured
	// PrometheusRule holds the Database's alerts; only with
	// monitoring.metrics. Plain object, like the ServiceMonitor.
	PrometheusRule *unstructured.Unstructured
	// HorizontalPodAutoscaler scales the Database itself (its scale
	// subresource); only with spec.autoscaling.
	HorizontalPodAutoscaler *autoscalingv2ac.HorizontalPodAutoscalerApplyConfiguration
	// NetworkPolicy limits ingress to the database pods; with
	// spec.networkPolicy.enabled, or by default in production.
	NetworkPolicy *networkingv1ac.NetworkPolicyApplyConfiguration
	// ServiceAccount, Role and RoleBinding let each pod's agent read and
	// annotate the Database's pods; only for engines that run under the
	// agent.
	ServiceAccount *corev1ac.ServiceAccountApplyConfiguration
	Role           *rbacv1ac.RoleApplyConfiguration
	RoleBinding    *rbacv1ac.RoleBindingApplyConfiguration
}

// Render returns the children of db with nothing observed in the cluster: it
// is RenderObserved with the zero Observed. It fails only for a Database the
// CRD would have refused (for example an unknown type), so a rendering error
// means the API's validation and render disagree.
func Render(db *databasev1.Database, opts Options) (*Children, error) {
	return RenderObserved(db, opts, Observed{})
}

// RenderObserved returns the children of db, given what the reconciler
// observed of db in the cluster (see Observed). It fails as Render does.
func RenderObserved(db *databasev1.Database, opts Options, observed Observed) (*Children, error) {
	eng, err := engineFor(db)
	if err != nil {
		return nil, err
	}
	if err := checkRenderable(db); err != nil {
		return nil, err
	}
	s := newSpec(db, eng, opts)
	if s.tlsSecret != "" {
		s.tlsCertificate = observed.TLSCertificate
	}
	if observed.RestoreDone {
		s.restore = nil
	}
	s.keepPods = observed.KeepPods

	configMap := buildConfigMap(s)
	c := &Children{
		StatefulSet:     buildStatefulSet(s, configChecksum(configMap.Data)),
		HeadlessService: buildHeadlessService(s),
		Service:         buildService(s),
		ConfigMap:       configMap,
	}
	if s.replicas > 1 {
		c.ReadService = buildReadService(s)
		c.PodDisruptionBudget = buildPodDisruptionBudget(s)
	}
	switch {
	case ArchivingOf(db) != nil:
		c.BackupCronJob = buildBaseBackupCronJob(s)
		if s.backup.RestoreCheck != nil {
			c.RestoreCheckCronJob = buildRestoreCheckCronJob(s)
		}
	case s.backup.Enabled:
		c.BackupCronJob = buildBackupCronJob(s)
		c.BackupPVC = buildBackupPVC(s)
	}
	if s.metrics {
		c.ServiceMonitor = buildServiceMonitor(s)
		c.PrometheusRule = buildPrometheusRule(s)
	}
	if s.autoscaling != nil {
		c.HorizontalPodAutoscaler = buildHorizontalPodAutoscaler(s)
	}
	if s.networkPolicy {
		c.NetworkPolicy = buildNetworkPolicy(s)
	}
	if s.eng.agent(s) != nil {
		c.ServiceAccount = buildServiceAccount(s)
		c.Role = buildRole(s)
		c.RoleBinding = buildRoleBinding(s)
	}
	return c, nil
}

func engineFor(db *databasev1.Database) (engine, error) {
	switch db.Spec.Type {
	case databasev1.MySQL:
		return mysql{}, nil
	case databasev1.PostgreSQL:
		return postgres{}, nil
	default:
		return nil, fmt.Errorf("spec.type: unsupported database type %q (want %q or %q)", db.Spec.Type, databasev1.MySQL, databasev1.PostgreSQL)
	}
}

// checkRenderable refuses what the CRD refuses and render could not build
// at all, so a spec that bypassed admission (render is a library) gets an
// error naming the field instead of a panic.
func checkRenderable(db *databasev1.Database) error {
	if r := db.Spec.Restore; r != nil && r.PointInTime != nil && r.PointInTime.S3 == nil &&
		(db.Spec.Backup == nil || db.Spec.Backup.S3 == nil) {
		return fmt.Errorf("spec.restore.pointInTime.s3: required when spec.backup.s3 is unset (the archive to restore from)")
	}
	return nil
}

// ownerReference makes the Database the controller of a child, so the garbage
// collector removes the child with it and the reconciler may prune it.
func ownerReference(db *databasev1.Database) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(databasev1.GroupVersion.String()).
		WithKind("Database").
		WithName(db.Name).
		WithUID(db.UID).
		WithController(true).
		WithBlockOwnerDeletion(true)
}
