package render

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// PrometheusRuleGVK is the Prometheus Operator's PrometheusRule kind. The
// reconciler applies the PrometheusRule only when this kind is served.
var PrometheusRuleGVK = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "PrometheusRule"}

// Alert names. They are part of the contract: silences, inhibitions and the
// runbooks (docs/runbooks.md, one section per alert) refer to them.
const (
	// AlertInstanceDown: the engine or its exporter is unreachable.
	AlertInstanceDown = "DatabaseInstanceDown"
	// AlertPodsNotReady: fewer pods are ready than the Database asks for,
	// including pods that have no scrape target at all (Pending, deleted).
	AlertPodsNotReady = "DatabasePodsNotReady"
	// AlertReplicationNotStreaming: fewer replicas replicate than exist.
	AlertReplicationNotStreaming = "DatabaseReplicationNotStreaming"
	// AlertReplicationLagHigh: a replica is far behind the primary.
	AlertReplicationLagHigh = "DatabaseReplicationLagHigh"
	// AlertBackupTooOld: no successful backup for twice the schedule's interval.
	AlertBackupTooOld = "DatabaseBackupTooOld"
	// AlertArchivingFailing: a server's WAL archiver keeps failing and
	// archives nothing (spec.backup.s3).
	AlertArchivingFailing = "DatabaseArchivingFailing"
	// AlertArchivingBehind: complete WAL files pile up unarchived.
	AlertArchivingBehind = "DatabaseArchivingBehind"
	// AlertVolumeNearlyFull: a data volume is running out of space.
	AlertVolumeNearlyFull = "DatabaseVolumeNearlyFull"
	// AlertConnectionsNearLimit: connections approach the engine's maximum.
	AlertConnectionsNearLimit = "DatabaseConnectionsNearLimit"
)

// DefaultRunbookBaseURL is where the runbooks (docs/runbooks.md) live unless
// Options.RunbookBaseURL says otherwise; each alert links to its section.
const DefaultRunbookBaseURL = "https://github.com/example/database-operator/blob/main/docs/runbooks.md"

// Alert thresholds.
const (
	replicationLagThresholdSecond = 300
	connectionsThreshold          = 0.8
	volumeWarningFreeRatio        = 0.15
	volumeCriticalFreeRatio       = 0.05
	// archiveReadyThreshold is how many complete WAL files may wait to be
	// archived: a healthy archiver keeps at most one or two waiting.
	archiveReadyThreshold = 4
)

// alertRule is one Prometheus alerting rule.
type alertRule struct {
	alert, expr, forDuration, severity string
	summary, description               string
}

// engineQueries are the engine-specific PromQL pieces of the alerts, from the
// exporter sidecar's metrics (internal/metricnames/metrics.txt lists them
// with their source). sel matches the Database's scrape targets.
type engineQueries struct {
	// name is the engine's display name.
	name string
	// up is the exporter's "can I reach the server" gauge.
	up string
	// connections is the ratio of used to allowed connections per pod.
	connections func(sel string) string
	// lag is the replication lag in seconds per pod.
	lag func(sel string) string
	// streaming counts the replicas that replicate from pod 0; guard, when
	// not empty, must hold for the count to be trusted.
	streaming func(s *spec, sel string) (count, guard string)
}

func queriesFor(t databasev1.DatabaseType) engineQueries {
	if t == databasev1.MySQL {
		return engineQueries{
			name: "MySQL",
			up:   "mysql_up",
			connections: func(sel string) string {
				return fmt.Sprintf("max by (namespace, pod) (mysql_global_status_threads_connected{%s})\n/\nmax by (namespace, pod) (mysql_global_variables_max_connections{%s})", sel, sel)
			},
			// MySQL before 8.4 and MariaDB answer SHOW SLAVE STATUS
			// (…_master, slave_…); MySQL 8.4 answers SHOW REPLICA STATUS
			// (…_source, replica_…). The exporter names metrics after the
			// columns, so either set may be there.
			lag: func(sel string) string {
				return fmt.Sprintf("max by (namespace, pod) (\n  mysql_slave_status_seconds_behind_master{%s}\n  or mysql_slave_status_seconds_behind_source{%s}\n)", sel, sel)
			},
			streaming: func(s *spec, sel string) (string, string) {
				replicas := fmt.Sprintf("%s,pod!=%q", sel, PodName(s.name, 0))
				return fmt.Sprintf("count(\n  min by (namespace, pod) (mysql_slave_status_slave_io_running{%[1]s} or mysql_slave_status_replica_io_running{%[1]s})\n  * min by (namespace, pod) (mysql_slave_status_slave_sql_running{%[1]s} or mysql_slave_status_replica_sql_running{%[1]s})\n  == 1\n)", replicas), ""
			},
		}
	}
	return engineQueries{
		name: "PostgreSQL",
		up:   "pg_up",
		connections: func(sel string) string {
			return fmt.Sprintf("sum by (namespace, pod) (pg_stat_database_numbackends{%s})\n/\nmax by (namespace, pod) (pg_settings_max_connections{%s})", sel, sel)
		},
		lag: func(sel string) string {
			return fmt.Sprintf("max by (namespace, pod) (pg_replication_lag_seconds{%s})", sel)
		},
		// The primary lists its WAL senders in pg_stat_replication; a
		// replica that streams has one in state "streaming". The count is
		// only meaningful while the primary's exporter reaches it.
		streaming: func(s *spec, sel string) (string, string) {
			primary := fmt.Sprintf("%s,pod=%q", sel, PodName(s.name, 0))
			return fmt.Sprintf("count(pg_stat_replication_pg_wal_lsn_diff{%s,state=\"streaming\"})", primary),
				fmt.Sprintf("max(pg_up{%s}) == 1", primary)
		},
	}
}

// buildPrometheusRule renders <db>: the alerts an on-call engineer needs for
// this Database, scoped to its own series. Targets carry the labels the
// Prometheus Operator sets from the ServiceMonitor (namespace, service, pod);
// kube-state-metrics and the kubelet label theirs with namespace and the
// object's name.
func buildPrometheusRule(s *spec) *unstructured.Unstructured {
	rules := alertRules(s)
	list := make([]any, 0, len(rules))
	for _, r := range rules {
		list = append(list, map[string]any{
			"alert": r.alert,
			"expr":  r.expr,
			"for":   r.forDuration,
			"labels": map[string]any{
				"severity":  r.severity,
				"database":  s.name,
				"namespace": s.namespace,
			},
			"annotations": map[string]any{
				"summary":     r.summary,
				"description": r.description,
				"runbook_url": runbookURL(s.opts, r.alert),
			},
		})
	}
	return monitoringObject(s, PrometheusRuleGVK, PrometheusRuleName(s.name), map[string]any{
		"groups": []any{map[string]any{
			"name":  "database-operator." + s.name,
			"rules": list,
		}},
	})
}

// runbookURL is the runbook section of an alert: docs/runbooks.md has one
// heading per alert, and GitHub anchors headings in lower case.
func runbookURL(opts Options, alert string) string {
	base := opts.RunbookBaseURL
	if base == "" {
		base = DefaultRunbookBaseURL
	}
	return base + "#" + strings.ToLower(alert)
}

// alertRules lists the Database's alerts in a fixed order. Replication alerts
// need replicas; the backup alert needs backups and a schedule with a
// measurable interval.
func alertRules(s *spec) []alertRule {
	q := queriesFor(s.db.Spec.Type)
	sel := fmt.Sprintf("namespace=%q,service=%q", s.namespace, HeadlessServiceName(s.name))
	db := s.namespace + "/" + s.name

	rules := []alertRule{{
		alert: AlertInstanceDown,
		expr: fmt.Sprintf("min by (namespace, pod) (%s{%s}) == 0\nor\nmin by (namespace, pod) (up{%s}) == 0",
			q.up, sel, sel),
		forDuration: "5m",
		severity:    "critical",
		summary:     fmt.Sprintf("%s pod {{ $labels.pod }} of Database %s is down", q.name, db),
		description: fmt.Sprintf("The exporter of pod {{ $labels.pod }} cannot reach %s, or Prometheus cannot scrape the exporter, for 5 minutes.", q.name),
	}}

	// A pod that is Pending, or gone, has no endpoint and so no scrape
	// target: the exporter alerts above cannot see it. kube-state-metrics
	// reports the StatefulSet's ready and wanted replicas either way.
	sts := fmt.Sprintf("namespace=%q,statefulset=%q", s.namespace, StatefulSetName(s.name))
	ready := fmt.Sprintf("max by (namespace, statefulset) (kube_statefulset_status_replicas_ready{%s})", sts)
	wanted := fmt.Sprintf("max by (namespace, statefulset) (kube_statefulset_replicas{%s})", sts)
	rules = append(rules, alertRule{
		alert:       AlertPodsNotReady,
		expr:        fmt.Sprintf("%s\n<\n%s", ready, wanted),
		forDuration: "15m",
		severity:    "warning",
		summary:     fmt.Sprintf("Database %s has {{ $value }} ready pods, fewer than it asks for", db),
		description: fmt.Sprintf("StatefulSet %s has had fewer ready pods than replicas for 15 minutes: pods are Pending, crash-looping or failing their readiness probe.", StatefulSetName(s.name)),
	}, alertRule{
		alert:       AlertPodsNotReady,
		expr:        fmt.Sprintf("%s == 0\nand on (namespace, statefulset)\n%s > 0", ready, wanted),
		forDuration: "5m",
		severity:    "critical",
		summary:     fmt.Sprintf("Database %s has no ready pod", db),
		description: fmt.Sprintf("No pod of StatefulSet %s has been ready for 5 minutes: the Database is unavailable.", StatefulSetName(s.name)),
	})

	if s.replicas > 1 {
		count, guard := q.streaming(s, sel)
		want := s.replicas - 1
		expr := fmt.Sprintf("(\n%s\nor vector(0)\n) < %d", count, want)
		if guard != "" {
			expr += "\nand on () (" + guard + ")"
		}
		rules = append(rules, alertRule{
			alert:       AlertReplicationNotStreaming,
			expr:        expr,
			forDuration: "10m",
			severity:    "critical",
			summary:     fmt.Sprintf("Database %s: only {{ $value }} of %d replicas are replicating", db, want),
			description: fmt.Sprintf("%d of the Database's replicas should replicate from %s, but only {{ $value }} have for 10 minutes. Reads from %s may be stale and a failover would lose data.",
				want, PodName(s.name, 0), ReadServiceName(s.name)),
		}, alertRule{
			alert:       AlertReplicationLagHigh,
			expr:        fmt.Sprintf("%s > %d", q.lag(sel), replicationLagThresholdSecond),
			forDuration: "5m",
			severity:    "warning",
			summary:     fmt.Sprintf("Replica {{ $labels.pod }} of Database %s is {{ $value | humanizeDuration }} behind", db),
			description: fmt.Sprintf("Replica {{ $labels.pod }} has been more than %s behind the primary for 5 minutes.", formatDuration(replicationLagThresholdSecond*time.Second)),
		})
	}

	if s.backup.Enabled {
		if gap, ok := longestScheduleGap(s.backup.Schedule); ok {
			limit := 2 * gap
			cj := fmt.Sprintf("namespace=%q,cronjob=%q", s.namespace, BackupName(s.name))
			seconds := int64(limit / time.Second)
			rules = append(rules, alertRule{
				alert: AlertBackupTooOld,
				expr: fmt.Sprintf("time() - max by (namespace, cronjob) (kube_cronjob_status_last_successful_time{%[1]s}) > %[2]d\n"+
					"or\n"+
					"(\n  time() - max by (namespace, cronjob) (kube_cronjob_created{%[1]s}) > %[2]d\n"+
					"  unless on (namespace, cronjob) kube_cronjob_status_last_successful_time{%[1]s}\n)",
					cj, seconds),
				forDuration: "5m",
				severity:    "warning",
				summary:     fmt.Sprintf("Database %s has no successful backup for more than %s", db, formatDuration(limit)),
				description: fmt.Sprintf("The last successful run of CronJob %s (schedule %q) is older than %s, twice the schedule's longest interval, or it never succeeded and is older than that.",
					BackupName(s.name), s.backup.Schedule, formatDuration(limit)),
			})
		}
	}

	// MySQL's shipper is the agent, which no exporter reads: its failures
	// show in the ContinuousArchiving condition.
	if ArchivingOf(s.db) != nil && s.db.Spec.Type == databasev1.PostgreSQL {
		rules = append(rules, alertRule{
			alert: AlertArchivingFailing,
			expr: fmt.Sprintf("max by (namespace, pod) (increase(pg_stat_archiver_failed_count{%[1]s}[5m])) > 0\n"+
				"unless on (namespace, pod)\nmax by (namespace, pod) (increase(pg_stat_archiver_archived_count{%[1]s}[5m])) > 0", sel),
			forDuration: "5m",
			severity:    "critical",
			summary:     fmt.Sprintf("Pod {{ $labels.pod }} of Database %s cannot archive its WAL", db),
			description: fmt.Sprintf("The WAL archiver of pod {{ $labels.pod }} has failed and archived nothing for 10 minutes: the archive in s3://%s/%s ends there, so a restore loses what was written since, and WAL piles up in the data volume. The pod's database container logs say why (credentials, endpoint, bucket).",
				ArchivingOf(s.db).Bucket, ArchiveFolder(ArchivingOf(s.db), s.name)),
		}, alertRule{
			alert:       AlertArchivingBehind,
			expr:        fmt.Sprintf("max by (namespace, pod) (pg_archive_ready_wal_files{%s}) > %d", sel, archiveReadyThreshold),
			forDuration: "10m",
			severity:    "warning",
			summary:     fmt.Sprintf("Pod {{ $labels.pod }} of Database %s has {{ $value }} WAL files waiting to be archived", db),
			description: fmt.Sprintf("More than %d complete WAL files of pod {{ $labels.pod }} have waited for the archiver for 10 minutes: the object store is slower than the writes, and a restore to the end of the archive would lose what they hold.", archiveReadyThreshold),
		})
	}

	pvc := fmt.Sprintf("namespace=%q,persistentvolumeclaim=~%q", s.namespace, dataVolumeName+"-"+s.name+"-[0-9]+")
	free := fmt.Sprintf("max by (namespace, persistentvolumeclaim) (kubelet_volume_stats_available_bytes{%s})\n/\nmax by (namespace, persistentvolumeclaim) (kubelet_volume_stats_capacity_bytes{%s})", pvc, pvc)
	for _, v := range []struct {
		ratio       float64
		forDuration string
		severity    string
	}{{volumeWarningFreeRatio, "10m", "warning"}, {volumeCriticalFreeRatio, "5m", "critical"}} {
		rules = append(rules, alertRule{
			alert:       AlertVolumeNearlyFull,
			expr:        fmt.Sprintf("%s < %g", free, v.ratio),
			forDuration: v.forDuration,
			severity:    v.severity,
			summary:     fmt.Sprintf("Data volume {{ $labels.persistentvolumeclaim }} of Database %s has {{ $value | humanizePercentage }} free", db),
			description: fmt.Sprintf("Less than %.0f%% of data volume {{ $labels.persistentvolumeclaim }} is free. When it fills up, %s stops accepting writes.", v.ratio*100, q.name),
		})
	}

	rules = append(rules, alertRule{
		alert:       AlertConnectionsNearLimit,
		expr:        fmt.Sprintf("%s > %g", q.connections(sel), connectionsThreshold),
		forDuration: "5m",
		severity:    "warning",
		summary:     fmt.Sprintf("Pod {{ $labels.pod }} of Database %s uses {{ $value | humanizePercentage }} of its connections", db),
		description: fmt.Sprintf("More than %.0f%% of the maximum connections of %s on pod {{ $labels.pod }} are in use; new clients will be refused when none are left.", connectionsThreshold*100, q.name),
	})
	return rules
}

// formatDuration prints whole days, hours or minutes: "14d", "48h", "10m".
func formatDuration(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	default:
		return d.String()
	}
}
