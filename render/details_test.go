package render_test

import (
	"encoding/json"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

func mustRender(t *testing.T, db *databasev1.Database) *render.Children {
	t.Helper()
	c, err := render.Render(db, render.DefaultOptions())
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return c
}

// Scaling must not change the pod template: a changed template would restart
// the running primary to add a replica.
func TestScalingKeepsPodTemplate(t *testing.T) {
	for _, typ := range []databasev1.DatabaseType{databasev1.MySQL, databasev1.PostgreSQL} {
		g := NewWithT(t)
		one := typed[appsv1.StatefulSet](t, mustRender(t, newDatabase(typ, facts[typ].version, replicas(1))).StatefulSet)
		three := typed[appsv1.StatefulSet](t, mustRender(t, newDatabase(typ, facts[typ].version, replicas(3))).StatefulSet)
		a, _ := json.Marshal(one.Spec.Template)
		b, _ := json.Marshal(three.Spec.Template)
		g.Expect(string(b)).To(Equal(string(a)), string(typ))
		g.Expect(*three.Spec.Replicas).To(Equal(int32(3)))
	}
}

// A configuration change must change the pod template's checksum, so the
// pods roll and pick the new configuration up.
func TestConfigChangeRollsPods(t *testing.T) {
	for _, typ := range []databasev1.DatabaseType{databasev1.MySQL, databasev1.PostgreSQL} {
		g := NewWithT(t)
		quiet := typed[appsv1.StatefulSet](t, mustRender(t, newDatabase(typ, facts[typ].version)).StatefulSet)
		verbose := typed[appsv1.StatefulSet](t, mustRender(t, newDatabase(typ, facts[typ].version, logging(true))).StatefulSet)
		g.Expect(verbose.Spec.Template.Annotations[render.ConfigChecksumAnnotation]).
			NotTo(Equal(quiet.Spec.Template.Annotations[render.ConfigChecksumAnnotation]), string(typ))
	}
}

func TestStorageClassAndBackupSize(t *testing.T) {
	g := NewWithT(t)
	db := newDatabase(databasev1.PostgreSQL, "16", storageClass("fast-ssd"), backup(true))
	db.Spec.Backup.Size = ptr(resource.MustParse("25Gi"))
	c := mustRender(t, db)
	sts := typed[appsv1.StatefulSet](t, c.StatefulSet)
	g.Expect(*sts.Spec.VolumeClaimTemplates[0].Spec.StorageClassName).To(Equal("fast-ssd"))
	pvc := typed[corev1.PersistentVolumeClaim](t, c.BackupPVC)
	g.Expect(*pvc.Spec.StorageClassName).To(Equal("fast-ssd"))
	g.Expect(pvc.Spec.Resources.Requests.Storage().String()).To(Equal("25Gi"))
}

func TestSpecResourcesOverrideProfile(t *testing.T) {
	g := NewWithT(t)
	db := newDatabase(databasev1.MySQL, "8.4", environment(databasev1.Production), replicas(2))
	db.Spec.Resources = &corev1ResourceRequirements
	c := mustRender(t, db)
	sts := typed[appsv1.StatefulSet](t, c.StatefulSet)
	main := sts.Spec.Template.Spec.Containers[0]
	g.Expect(main.Resources.Requests.Cpu().String()).To(Equal("250m"))
	g.Expect(main.Resources.Limits.Memory().String()).To(Equal("2Gi"))
	g.Expect(main.Resources.Limits.Cpu().IsZero()).To(BeTrue(), "no CPU limit was given, none is invented")
	// Engine caches follow the memory actually given: half of 2Gi for InnoDB.
	cm := typed[corev1.ConfigMap](t, c.ConfigMap)
	g.Expect(cm.Data["my.cnf"]).To(ContainSubstring("innodb_buffer_pool_size = 1024M"))
	g.Expect(cm.Data["my.cnf"]).To(ContainSubstring("max_connections = 400"))
}

func TestImageOverride(t *testing.T) {
	g := NewWithT(t)
	db := newDatabase(databasev1.MySQL, "8.0", backup(true))
	db.Spec.Image = "registry.example.com/mysql:8.0.40"
	c := mustRender(t, db)
	sts := typed[appsv1.StatefulSet](t, c.StatefulSet)
	g.Expect(sts.Spec.Template.Spec.Containers[0].Image).To(Equal("registry.example.com/mysql:8.0.40"))
	cj := typed[batchv1.CronJob](t, c.BackupCronJob)
	g.Expect(cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image).To(Equal("registry.example.com/mysql:8.0.40"))
}

func TestBackupScheduleAndRetention(t *testing.T) {
	g := NewWithT(t)
	db := newDatabase(databasev1.PostgreSQL, "16", backup(true))
	db.Spec.Backup.Schedule = "*/30 * * * *"
	db.Spec.Backup.Retention = "30d"
	cj := typed[batchv1.CronJob](t, mustRender(t, db).BackupCronJob)
	g.Expect(cj.Spec.Schedule).To(Equal("*/30 * * * *"))
	g.Expect(envByName(cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0])["RETENTION_DAYS"].Value).To(Equal("30"))
}

// Options that MySQL 8.0 removed (query cache, old names) or 8.4 removed
// (default_authentication_plugin, expire_logs_days): mysqld refuses to start
// with any of them. Sources: MySQL 8.0 reference manual, "Features Removed in
// MySQL 8.0"; MySQL 8.4 reference manual, "Features Removed in MySQL 8.4".
var removedMySQLOptions = []string{
	"query_cache_size", "query_cache_type", "query_cache_limit", "innodb_file_format", "innodb_large_prefix",
	"tx_isolation", "tx_read_only", "log_warnings", "sync_frm", "ignore_builtin_innodb",
	"default_authentication_plugin", "expire_logs_days", "master_info_repository", "relay_log_info_repository",
	"log_bin_use_v1_row_events", "binlog_transaction_dependency_tracking",
}

func TestMySQLConfigHasNoRemovedOptions(t *testing.T) {
	for _, version := range []string{"8.0", "8.4"} {
		for _, env := range []databasev1.Environment{databasev1.Development, databasev1.Staging, databasev1.Production} {
			g := NewWithT(t)
			cm := typed[corev1.ConfigMap](t, mustRender(t, newDatabase(databasev1.MySQL, version, environment(env), logging(true))).ConfigMap)
			for _, key := range []string{"my.cnf", "initdb-replication.sh"} {
				for _, opt := range removedMySQLOptions {
					g.Expect(strings.Contains(cm.Data[key], opt)).To(BeFalse(), "%s %s contains removed option %s", version, key, opt)
				}
			}
		}
	}
}

func TestMySQLResetStatementFollowsVersion(t *testing.T) {
	for version, want := range map[string]string{
		"8.0": "RESET MASTER", "8.0.40": "RESET MASTER", "8.4": "RESET BINARY LOGS AND GTIDS",
		"8.4.3-oraclelinux9": "RESET BINARY LOGS AND GTIDS", "9": "RESET BINARY LOGS AND GTIDS",
	} {
		g := NewWithT(t)
		sts := typed[appsv1.StatefulSet](t, mustRender(t, newDatabase(databasev1.MySQL, version)).StatefulSet)
		g.Expect(envByName(sts.Spec.Template.Spec.Containers[0])["RESET_BINARY_LOGS"].Value).To(Equal(want), version)
	}
}

func TestUnknownTypeIsAnError(t *testing.T) {
	g := NewWithT(t)
	_, err := render.Render(newDatabase("oracle", "23"), render.DefaultOptions())
	g.Expect(err).To(MatchError(ContainSubstring("spec.type")))
}

// A Database read without CRD defaults (replicas, environment, backup and
// monitoring absent) renders with the same defaults the CRD would fill in.
func TestRenderTimeDefaults(t *testing.T) {
	g := NewWithT(t)
	db := newDatabase(databasev1.PostgreSQL, "16")
	db.Spec.Replicas, db.Spec.Backup, db.Spec.Monitoring, db.Spec.Environment = nil, nil, nil, ""
	c := mustRender(t, db)
	sts := typed[appsv1.StatefulSet](t, c.StatefulSet)
	g.Expect(*sts.Spec.Replicas).To(Equal(int32(1)))
	g.Expect(sts.Labels).To(HaveKeyWithValue("database.example.com/environment", "development"))
	g.Expect(sts.Spec.Template.Spec.Containers[0].Resources.Limits.Memory().String()).To(Equal("512Mi"))
	g.Expect(c.BackupCronJob).To(BeNil())
	g.Expect(c.ServiceMonitor).To(BeNil())
	g.Expect(db.Spec.Replicas).To(BeNil(), "defaults are never written back into the spec")
}

// Metrics and logging only apply while monitoring.enabled is true.
func TestMonitoringMasterSwitch(t *testing.T) {
	g := NewWithT(t)
	db := newDatabase(databasev1.MySQL, "8.0")
	db.Spec.Monitoring = &databasev1.MonitoringSpec{Enabled: false, Metrics: true, Logging: true}
	c := mustRender(t, db)
	g.Expect(c.ServiceMonitor).To(BeNil())
	g.Expect(typed[appsv1.StatefulSet](t, c.StatefulSet).Spec.Template.Spec.Containers).To(HaveLen(1))
	g.Expect(typed[corev1.ConfigMap](t, c.ConfigMap).Data["my.cnf"]).To(ContainSubstring("slow_query_log = OFF"))
}
