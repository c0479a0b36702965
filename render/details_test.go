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

// Options and system variables that MySQL removed: mysqld refuses to start
// with any of them in my.cnf or on its command line. Sources: MySQL 8.0
// Reference Manual, 1.4 "What Is New in MySQL 8.0", "Options and Variables
// Removed in MySQL 8.0"; MySQL 8.4 Reference Manual, 1.4 "What Is New in
// MySQL 8.4 since MySQL 8.0", "Features Removed in MySQL 8.4" (which also
// lists what 8.1 to 8.3 removed).
var removedMySQLOptions = []string{
	// Removed in 8.0.
	"query_cache_size", "query_cache_type", "query_cache_limit", "query_cache_min_res_unit", "query_cache_wlock_invalidate",
	"innodb_file_format", "innodb_file_format_check", "innodb_file_format_max", "innodb_large_prefix",
	"innodb_locks_unsafe_for_binlog", "innodb_support_xa", "tx_isolation", "tx_read_only", "log_warnings",
	"sync_frm", "ignore_builtin_innodb", "secure_auth", "old_passwords", "date_format", "datetime_format",
	"time_format", "max_tmp_tables", "metadata_locks_cache_size", "metadata_locks_hash_instances",
	"have_crypt", "ignore_db_dirs", "log_builtin_as_identified_by_password",
	"des_key_file", "temp_pool",
	// Removed in 8.1 to 8.4.
	"default_authentication_plugin", "expire_logs_days", "master_info_repository", "relay_log_info_repository",
	"log_bin_use_v1_row_events", "binlog_transaction_dependency_tracking", "transaction_write_set_extraction",
	"slave_rows_search_algorithms", "have_openssl", "have_ssl", "skip_host_cache", "avoid_temporal_upgrade",
	"show_old_temporals", "innodb_api_enable_binlog", "innodb_api_enable_mdl", "innodb_api_trx_level",
	"innodb_api_bk_commit_interval", "innodb_api_disable_rowlock", "daemon_memcached",
}

// TestMySQLConfigHasNoRemovedOptions checks everything render hands to
// mysqld: my.cnf, the start wrapper's command line, and the SQL of the init
// scripts.
func TestMySQLConfigHasNoRemovedOptions(t *testing.T) {
	for _, version := range []string{"8.0", "8.4"} {
		for _, env := range []databasev1.Environment{databasev1.Development, databasev1.Staging, databasev1.Production} {
			g := NewWithT(t)
			c := mustRender(t, newDatabase(databasev1.MySQL, version, environment(env), logging(true), replicas(3), restore("orders-old", "")))
			cm := typed[corev1.ConfigMap](t, c.ConfigMap)
			texts := map[string]string{}
			for _, key := range []string{"my.cnf", "initdb-replication.sh", "initdb-restore.sh"} {
				g.Expect(cm.Data).To(HaveKey(key))
				texts[key] = cm.Data[key]
			}
			main := typed[appsv1.StatefulSet](t, c.StatefulSet).Spec.Template.Spec.Containers[0]
			texts["database container command"] = strings.Join(append(main.Command, main.Args...), " ")
			for name, text := range texts {
				// Option files and command lines accept - for _ in names.
				text = strings.ReplaceAll(text, "-", "_")
				for _, opt := range removedMySQLOptions {
					g.Expect(strings.Contains(text, opt)).To(BeFalse(), "%s %s contains removed option %s", version, name, opt)
				}
			}
		}
	}
}

func TestMySQLResetStatementFollowsVersion(t *testing.T) {
	for version, want := range map[string]string{
		"8.0": "RESET MASTER", "8.0.40": "RESET MASTER", "8.4": "RESET BINARY LOGS AND GTIDS",
		"8.4.3-oraclelinux9": "RESET BINARY LOGS AND GTIDS", "9": "RESET BINARY LOGS AND GTIDS",
		// A tag without a minor version is the newest release: mysql:8 is 8.4.
		"8": "RESET BINARY LOGS AND GTIDS", "8-oracle": "RESET BINARY LOGS AND GTIDS", "9.1": "RESET BINARY LOGS AND GTIDS",
		"8.1": "RESET MASTER", "8.2.0": "RESET BINARY LOGS AND GTIDS", "8.0-debian": "RESET MASTER",
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
