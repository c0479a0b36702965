package render_test

import (
	"encoding/json"
	"reflect"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// typed converts an apply configuration into the API type it configures, so
// assertions read like the object the API server would store.
func typed[T any](t testing.TB, ac any) *T {
	t.Helper()
	raw, err := json.Marshal(ac)
	if err != nil {
		t.Fatalf("marshal %T: %v", ac, err)
	}
	out := new(T)
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("unmarshal into %T: %v", out, err)
	}
	return out
}

// dbOption changes a test Database.
type dbOption func(*databasev1.Database)

// newDatabase is a Database as the API server returns it, CRD defaults filled in.
func newDatabase(typ databasev1.DatabaseType, version string, opts ...dbOption) *databasev1.Database {
	db := &databasev1.Database{
		ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "shop", UID: "0b1e6f1c-3c1d-4c38-9d7a-6a3b0f0f0001", Generation: 1},
		Spec: databasev1.DatabaseSpec{
			Type:        typ,
			Version:     version,
			Replicas:    ptr(int32(1)),
			Storage:     databasev1.StorageSpec{Size: resource.MustParse("10Gi")},
			Environment: databasev1.Development,
			Backup:      &databasev1.BackupSpec{Schedule: "0 2 * * *", Retention: "7d"},
			Monitoring:  &databasev1.MonitoringSpec{},
		},
	}
	for _, o := range opts {
		o(db)
	}
	return db
}

func replicas(n int32) dbOption { return func(db *databasev1.Database) { db.Spec.Replicas = &n } }
func environment(e databasev1.Environment) dbOption {
	return func(db *databasev1.Database) { db.Spec.Environment = e }
}
func storageClass(c string) dbOption {
	return func(db *databasev1.Database) { db.Spec.Storage.Class = c }
}
func backup(enabled bool) dbOption {
	return func(db *databasev1.Database) { db.Spec.Backup.Enabled = enabled }
}
func metrics(on bool) dbOption {
	return func(db *databasev1.Database) {
		db.Spec.Monitoring.Enabled = db.Spec.Monitoring.Enabled || on
		db.Spec.Monitoring.Metrics = on
	}
}
func logging(on bool) dbOption {
	return func(db *databasev1.Database) {
		db.Spec.Monitoring.Enabled = db.Spec.Monitoring.Enabled || on
		db.Spec.Monitoring.Logging = on
	}
}

func restore(from, backup string) dbOption {
	return func(db *databasev1.Database) {
		db.Spec.Restore = &databasev1.RestoreSpec{FromDatabase: from, Backup: backup}
	}
}

// s3Backup archives to an S3 store with a private CA.
func s3Backup(db *databasev1.Database) {
	db.Spec.Backup.Enabled = true
	db.Spec.Backup.S3 = &databasev1.ObjectStoreSpec{
		Endpoint: "https://s3.storage.svc:9000", Bucket: "backups", Path: "team-a/prod", Region: "eu-west-1",
		CredentialsSecret: "s3-keys", CASecret: "s3-ca",
	}
}

// pointInTime restores the archive of from at target ("" for latest) from
// the Database's own store (spec.backup.s3).
func pointInTime(from, target string) dbOption {
	return func(db *databasev1.Database) {
		db.Spec.Restore = &databasev1.RestoreSpec{FromDatabase: from, PointInTime: &databasev1.PointInTimeSpec{TargetTime: target}}
	}
}

func ptr[T any](v T) *T { return &v }

// envByName indexes a container's environment.
func envByName(c corev1.Container) map[string]corev1.EnvVar {
	m := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		m[e.Name] = e
	}
	return m
}

func containerNamed(g Gomega, containers []corev1.Container, name string) corev1.Container {
	for _, c := range containers {
		if c.Name == name {
			return c
		}
	}
	g.Expect(containers).To(ContainElement(HaveField("Name", name)))
	return corev1.Container{}
}

var corev1ResourceRequirements = corev1.ResourceRequirements{
	Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("2Gi")},
	Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")},
}

// isNil reports whether an interface holds a nil pointer.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	return reflect.ValueOf(v).Kind() == reflect.Ptr && reflect.ValueOf(v).IsNil()
}

func autoscaling(minReplicas, maxReplicas int32, cpu, memory, scaleDown *int32) dbOption {
	return func(db *databasev1.Database) {
		db.Spec.Autoscaling = &databasev1.AutoscalingSpec{
			MinReplicas:                       &minReplicas,
			MaxReplicas:                       maxReplicas,
			TargetCPUUtilizationPercentage:    cpu,
			TargetMemoryUtilizationPercentage: memory,
			ScaleDownStabilizationSeconds:     scaleDown,
		}
	}
}

func networkPolicy(enabled *bool, monitoringNamespace string, allowFrom ...databasev1.NetworkPeer) dbOption {
	return func(db *databasev1.Database) {
		db.Spec.NetworkPolicy = &databasev1.NetworkPolicySpec{
			Enabled:             enabled,
			AllowFrom:           allowFrom,
			MonitoringNamespace: monitoringNamespace,
		}
	}
}

// appPeer selects the pods labelled app=<app> in the Database's namespace.
func appPeer(app string) databasev1.NetworkPeer {
	return databasev1.NetworkPeer{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}}
}

// teamNamespacePeer selects every pod of the namespaces labelled team=<team>.
func teamNamespacePeer(team string) databasev1.NetworkPeer {
	return databasev1.NetworkPeer{NamespaceSelector: &metav1.LabelSelector{
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: metav1.LabelSelectorOpIn, Values: []string{team}}},
	}}
}
