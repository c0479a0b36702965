package v1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DatabaseType names a database engine.
type DatabaseType string

const (
	// MySQL runs the official mysql image.
	MySQL DatabaseType = "mysql"
	// PostgreSQL runs the official postgres image.
	PostgreSQL DatabaseType = "postgresql"
)

// Environment names the stage a Database serves; it selects the resource
// profile and engine tuning applied at render time.
type Environment string

const (
	// Development is the default: small resources, verbose logging allowed.
	Development Environment = "development"
	// Staging sits between development and production.
	Staging Environment = "staging"
	// Production requires at least two replicas and gets the largest profile.
	Production Environment = "production"
)

// DatabaseSpec is the desired state of a Database.
//
// The transition rules compare the version's leading numbers: for PostgreSQL
// the major version (the first number) is fixed, because a new major version
// needs pg_upgrade or a dump and restore; for MySQL the version may only move
// forward, because MySQL cannot downgrade a data directory. A MySQL tag
// without a minor version is the newest release of its major version: "8"
// counts as 8.4 (the last 8.x series), "9" as newer than any 9.x, so "9" may
// not become "9.1" (that could be a downgrade) while "9.1" may become "9".
//
// A MySQL replica's replication settings (SOURCE_SSL, SOURCE_SSL_CA, ...)
// live in its data directory and are written once, when the replica is
// created, so spec.tls.enabled may only change while the Database has a
// single pod, before and after the change; replicas created afterwards get
// the new setting. (PostgreSQL replicas follow a change by themselves: their
// init container rewrites primary_conninfo on every start.)
//
// +kubebuilder:validation:XValidation:rule="!has(self.environment) || self.environment != 'production' || (has(self.replicas) && self.replicas >= 2)",message="spec.replicas must be at least 2 when spec.environment is production",fieldPath=".replicas"
// +kubebuilder:validation:XValidation:rule="!has(self.environment) || self.environment != 'production' || !has(self.resources) || has(self.resources.limits)",message="spec.resources.limits must be set when spec.environment is production and spec.resources is given (omit spec.resources to get the production profile)",fieldPath=".resources"
// +kubebuilder:validation:XValidation:rule="self.type != 'postgresql' || oldSelf.type != 'postgresql' || self.version.find('^[0-9]+') == oldSelf.version.find('^[0-9]+')",message="spec.version: the PostgreSQL major version cannot change in place; restore a backup into a new Database with the new version",fieldPath=".version"
// +kubebuilder:validation:XValidation:rule="self.type != 'mysql' || oldSelf.type != 'mysql' || !self.version.matches('^[0-9]{1,4}([.][0-9]{1,4})?([.-]|$)') || !oldSelf.version.matches('^[0-9]{1,4}([.][0-9]{1,4})?([.-]|$)') || int(self.version.find('^[0-9]+')) > int(oldSelf.version.find('^[0-9]+')) || (int(self.version.find('^[0-9]+')) == int(oldSelf.version.find('^[0-9]+')) && (self.version.matches('^[0-9]+[.][0-9]') ? int(self.version.find('^[0-9]+[.][0-9]+').find('[0-9]+$')) : (self.version.find('^[0-9]+') == '8' ? 4 : 9999)) >= (oldSelf.version.matches('^[0-9]+[.][0-9]') ? int(oldSelf.version.find('^[0-9]+[.][0-9]+').find('[0-9]+$')) : (oldSelf.version.find('^[0-9]+') == '8' ? 4 : 9999)))",message="spec.version: MySQL cannot be downgraded; the version may only stay or move forward",fieldPath=".version"
// +kubebuilder:validation:XValidation:rule="self.type != 'postgresql' || !self.version.matches('^[0-9]{1,4}([.]|-|$)') || (int(self.version.find('^[0-9]+')) >= 14 && int(self.version.find('^[0-9]+')) <= 18)",message="spec.version: PostgreSQL 14 to 18 are supported (tags such as 14, 16.4 or 17-trixie); older versions store an md5 superuser password and lack settings the operator renders",fieldPath=".version"
// +kubebuilder:validation:XValidation:rule="self.type != 'mysql' || self.version.matches('^(8|8[.]0|8[.]0[.](3[2-9]|[4-9][0-9]|[1-9][0-9]{2})|8[.][1-9]([.][0-9]{1,4})?|9([.][0-9]{1,4}){0,2})(-.*)?$')",message="spec.version: MySQL 8.0.32 or later is supported: 8.0 (the newest 8.0), 8.0.32 and later 8.0 releases, 8.4 (LTS), 8 (the newest 8.x, today 8.4) and 9.x (9 is the newest 9.x); 5.7 and 8.0 before 8.0.32 are refused (no CHANGE REPLICATION SOURCE, or mysqldump's GTID bug that loses transactions on replicas)",fieldPath=".version"
// +kubebuilder:validation:XValidation:rule="!self.version.contains('alpine')",message="spec.version: alpine tags are not supported: the database pods run as uid 999, the database user of the Debian- and Oracle-based official images (alpine's postgres user is uid 70); use the tag without -alpine, such as 17 or 17-trixie",fieldPath=".version"
// +kubebuilder:validation:XValidation:rule="!has(self.replication) || !has(self.replication.mode) || self.replication.mode != 'sync' || (has(self.autoscaling) ? (has(self.autoscaling.minReplicas) && self.autoscaling.minReplicas >= 2) : (has(self.replicas) && self.replicas >= 2))",message="spec.replication.mode sync needs at least 2 replicas (spec.replicas, or spec.autoscaling.minReplicas): a commit waits for a replica",fieldPath=".replication.mode"
// +kubebuilder:validation:XValidation:rule="!has(self.autoscaling) || !has(self.environment) || self.environment != 'production' || (has(self.autoscaling.minReplicas) && self.autoscaling.minReplicas >= 2)",message="spec.autoscaling.minReplicas must be at least 2 when spec.environment is production",fieldPath=".autoscaling.minReplicas"
// +kubebuilder:validation:XValidation:rule="!has(self.backup) || !has(self.backup.restoreCheck) || has(self.backup.s3)",message="spec.backup.restoreCheck restores the continuous archive: it needs spec.backup.s3",fieldPath=".backup.restoreCheck"
// +kubebuilder:validation:XValidation:rule="!has(self.restore) || !has(self.restore.pointInTime) || !has(self.restore.pointInTime.targetTime) || self.type == 'postgresql' || !self.restore.pointInTime.targetTime.contains('.')",message="spec.restore.pointInTime.targetTime: MySQL's binary log stamps events to the second; give a time in whole seconds, such as 2026-12-02T23:15:00Z",fieldPath=".restore.pointInTime.targetTime"
// +kubebuilder:validation:XValidation:rule="!has(self.restore) || !has(self.restore.pointInTime) || !has(self.restore.backup)",message="spec.restore: set either backup (a dump on the source's backup volume) or pointInTime (its archive in object storage), not both",fieldPath=".restore"
// +kubebuilder:validation:XValidation:rule="!has(self.restore) || !has(self.restore.pointInTime) || has(self.restore.pointInTime.s3) || (has(self.backup) && has(self.backup.s3))",message="spec.restore.pointInTime needs the object store that holds the source's archive: set spec.restore.pointInTime.s3, or spec.backup.s3 when the source archived to the same bucket and path",fieldPath=".restore.pointInTime"
// +kubebuilder:validation:XValidation:rule="has(oldSelf.restore) || !has(self.restore)",message="spec.restore can only be set when the Database is created",fieldPath=".restore"
// +kubebuilder:validation:XValidation:rule="!has(self.restore) || !has(oldSelf.restore) || self.restore == oldSelf.restore",message="spec.restore is immutable; it may only be removed, once the restore is done",fieldPath=".restore"
// +kubebuilder:validation:XValidation:rule="self.type != 'mysql' || ((has(self.tls) && has(self.tls.enabled) && self.tls.enabled) == (has(oldSelf.tls) && has(oldSelf.tls.enabled) && oldSelf.tls.enabled)) || ((!has(self.replicas) || self.replicas <= 1) && (!has(oldSelf.replicas) || oldSelf.replicas <= 1))",message="spec.tls.enabled cannot change while a MySQL Database has more than 1 replica: replicas keep the replication settings they were created with. Scale to 1 replica, delete the replicas' data PVCs data-<database>-1 to data-<database>-N, change spec.tls, then scale up again; new replicas are bootstrapped with the new setting",fieldPath=".tls"
type DatabaseSpec struct {
	// Type is the database engine: mysql or postgresql. It cannot be changed
	// after creation.
	// +required
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self in ['mysql', 'postgresql']",message="spec.type must be one of: mysql, postgresql"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.type is immutable; create a new Database to change the engine"
	Type DatabaseType `json:"type"`

	// Version is the engine version and the tag of the official image. It
	// must start with the numeric version; a suffix such as "-trixie" or
	// "-oracle" is allowed, "-alpine" is not (the pods run as uid 999, which
	// alpine images do not use). Supported: PostgreSQL 14 to 18 ("17" is
	// the newest 17.x, "17.6" exactly that release); MySQL "8.0" (the newest
	// 8.0) or 8.0.32 and later, "8.4" (LTS), "8" (the newest 8.x, today
	// 8.4) and "9", "9.x" (innovation releases). Other versions are refused.
	// +required
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.size() > 0",message="spec.version must not be empty"
	// +kubebuilder:validation:XValidation:rule="self.size() == 0 || self.matches('^[0-9]{1,4}([.][0-9]{1,4}){0,2}(-[A-Za-z0-9._-]{1,40})?$')",message="spec.version must be a numeric version such as 8.0, 8.4, 14 or 16, optionally with an image tag suffix such as 16.4-bookworm"
	Version string `json:"version"`

	// Image overrides the container image, for example to pull the engine from
	// a private registry. When empty the official image mysql:<version> or
	// postgres:<version> is used. The image must be compatible with the
	// official one (same entrypoint, paths and tools).
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image,omitempty"`

	// Replicas is the number of database pods, 1 to 10. One of them is the
	// primary (status.currentPrimary; pod 0 when the Database is created),
	// the others are read replicas that stream from it and may replace it
	// (spec.replication). Defaults to 1; the scale subresource sets it
	// (kubectl scale, HorizontalPodAutoscaler).
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:XValidation:rule="self >= 1 && self <= 10",message="spec.replicas must be between 1 and 10"
	Replicas *int32 `json:"replicas,omitempty"`

	// Storage describes the data volume of each pod.
	// +required
	Storage StorageSpec `json:"storage"`

	// Replication says how replicas follow the primary and when a replica
	// replaces a failed primary. Unset means asynchronous replication and
	// a failover after 5s.
	// +optional
	Replication *ReplicationSpec `json:"replication,omitempty"`

	// Backup configures scheduled logical backups to a dedicated volume.
	// +optional
	// +kubebuilder:default={}
	Backup *BackupSpec `json:"backup,omitempty"`

	// Monitoring turns on the metrics exporter and query logging.
	// +optional
	// +kubebuilder:default={}
	Monitoring *MonitoringSpec `json:"monitoring,omitempty"`

	// Environment is development, staging or production. It selects the
	// resource profile used when resources is unset and the engine tuning.
	// Production requires at least 2 replicas. Defaults to development.
	// +optional
	// +kubebuilder:default=development
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self in ['development', 'staging', 'production']",message="spec.environment must be one of: development, staging, production"
	Environment Environment `json:"environment,omitempty"`

	// DeletionProtection refuses deleting the Database while true. The Helm
	// chart's ValidatingAdmissionPolicy enforces it. When unset, production
	// Databases are protected and others are not; set it to false, then
	// delete, to remove a protected Database. It protects the Database object
	// only: data volumes, backups and credentials are never deleted by the
	// operator either way.
	// +optional
	DeletionProtection *bool `json:"deletionProtection,omitempty"`

	// Restore fills a new Database from a logical backup (a dump written by
	// spec.backup) of another Database of the same type in the same
	// namespace. The dump is loaded once, by pod 0, while its data directory
	// is initialised; replicas copy pod 0 as usual. It can only be given
	// when the Database is created and never changed; it may be removed once
	// the Database is Ready (the source's backup volume is released by then).
	// +optional
	Restore *RestoreSpec `json:"restore,omitempty"`

	// Autoscaling adds read capacity with a HorizontalPodAutoscaler that
	// scales this Database (its scale subresource, spec.replicas) between
	// minReplicas and maxReplicas on the database container's CPU and/or
	// memory utilisation. Replicas added this way are read replicas: pod 0
	// stays the only primary. While it is set, spec.replicas belongs to the
	// HorizontalPodAutoscaler: leave it out of Git, or have Argo CD ignore
	// it.
	// +optional
	Autoscaling *AutoscalingSpec `json:"autoscaling,omitempty"`

	// NetworkPolicy restricts who may connect to the database pods with a
	// NetworkPolicy <database>. When unset, production Databases get one and
	// others do not. It needs a network plugin that enforces NetworkPolicies.
	// +optional
	NetworkPolicy *NetworkPolicySpec `json:"networkPolicy,omitempty"`

	// TLS encrypts client and replication connections. When enabled without
	// secretName, the operator creates a CA and a server certificate once
	// and keeps them in the Secret <database>-tls; clients verify the server
	// with its ca.crt. In production the engine then refuses unencrypted TCP
	// connections. Unset means off.
	// +optional
	TLS *TLSSpec `json:"tls,omitempty"`

	// Resources are the compute resources of the database container. When
	// unset, the environment's profile applies: development requests 100m CPU
	// and 256Mi memory with limits 500m and 512Mi; staging 200m/512Mi with
	// limits 1000m/1Gi; production 500m/1Gi with limits 2000m/4Gi. In
	// production, resources given here must include limits.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`
}

// ReplicationMode is how a commit waits for the replicas.
type ReplicationMode string

const (
	// ReplicationAsync acknowledges a commit once the primary has it.
	ReplicationAsync ReplicationMode = "async"
	// ReplicationSync acknowledges a commit once the primary and at least
	// one replica have it.
	ReplicationSync ReplicationMode = "sync"
)

// ReplicationSpec says how replicas follow the primary and when the
// operator replaces a primary that stopped serving.
type ReplicationSpec struct {
	// Mode is async or sync. In async mode (the default) a commit is
	// acknowledged once the primary has flushed it; a failover loses the
	// commits no replica had received yet. In sync mode a commit is
	// acknowledged only once at least one replica has flushed it too
	// (PostgreSQL synchronous_standby_names = 'ANY 1 (*)'), and a failover
	// never loses an acknowledged commit: it promotes only a replica that
	// has every one, and waits rather than promote one that may not. The
	// price: commits wait for a replica's round trip, and stop while no
	// replica is connected. Sync mode needs at least 2 replicas, and 3 to
	// keep accepting writes while one pod is down.
	// +optional
	// +kubebuilder:validation:MaxLength=8
	// +kubebuilder:validation:XValidation:rule="self in ['async', 'sync']",message="spec.replication.mode must be async or sync"
	Mode ReplicationMode `json:"mode,omitempty"`

	// FailoverDelay is how long the primary may be unavailable (its server
	// not answering, its pod not ready or gone, its node lost, or every
	// replica cut off from it) before the operator promotes the most
	// advanced replica, from 0s to 300s. Defaults to 5s: longer than a
	// crashed server takes to restart in its pod (about 1s), so a crash
	// alone does not cost a failover, and short enough that writes resume
	// within 10s when the pod or its node is lost.
	// +optional
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]+(ms|s|m)$') && duration(self) <= duration('300s')",message="spec.replication.failoverDelay must be a duration from 0s to 300s, such as 5s or 1m"
	FailoverDelay string `json:"failoverDelay,omitempty"`
}

// StorageSpec describes the persistent volume of each database pod.
type StorageSpec struct {
	// Size is the capacity of each data volume, for example 10Gi. It may grow
	// (the volumes are expanded, which the storage class must allow) but never
	// shrink.
	// +required
	// +kubebuilder:validation:XValidation:rule="isQuantity(string(self)) && quantity(string(self)).isGreaterThan(quantity('0'))",message="spec.storage.size must be a positive quantity such as 10Gi"
	// +kubebuilder:validation:XValidation:rule="!isQuantity(string(self)) || !isQuantity(string(oldSelf)) || quantity(string(self)).compareTo(quantity(string(oldSelf))) >= 0",message="spec.storage.size may not shrink; volumes can only grow"
	Size resource.Quantity `json:"size"`

	// Class is the StorageClass of the data volumes. When unset the cluster's
	// default StorageClass is used.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="spec.storage.class must be a StorageClass name: a DNS-1123 subdomain of lowercase letters, digits, '-' and '.'"
	Class string `json:"class,omitempty"`
}

// RestoreCheckSpec schedules the restore check of spec.backup.restoreCheck.
//
// +kubebuilder:validation:XValidation:rule="self.schedule.matches('^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(([*]|([0-5]?[0-9])(-([0-5]?[0-9]))?)(/[0-9]{1,2})?(,([*]|([0-5]?[0-9])(-([0-5]?[0-9]))?)(/[0-9]{1,2})?)*)[ ]+(([*]|([01]?[0-9]|2[0-3])(-([01]?[0-9]|2[0-3]))?)(/[0-9]{1,2})?(,([*]|([01]?[0-9]|2[0-3])(-([01]?[0-9]|2[0-3]))?)(/[0-9]{1,2})?)*)[ ]+([?]|([*]|(0?[1-9]|[12][0-9]|3[01])(-(0?[1-9]|[12][0-9]|3[01]))?)(/[0-9]{1,2})?(,([*]|(0?[1-9]|[12][0-9]|3[01])(-(0?[1-9]|[12][0-9]|3[01]))?)(/[0-9]{1,2})?)*)[ ]+(([*]|(0?[1-9]|1[0-2]|[A-Za-z]{3})(-(0?[1-9]|1[0-2]|[A-Za-z]{3}))?)(/[0-9]{1,2})?(,([*]|(0?[1-9]|1[0-2]|[A-Za-z]{3})(-(0?[1-9]|1[0-2]|[A-Za-z]{3}))?)(/[0-9]{1,2})?)*)[ ]+([?]|([*]|([0-7]|[A-Za-z]{3})(-([0-7]|[A-Za-z]{3}))?)(/[0-9]{1,2})?(,([*]|([0-7]|[A-Za-z]{3})(-([0-7]|[A-Za-z]{3}))?)(/[0-9]{1,2})?)*))$')",message="spec.backup.restoreCheck.schedule must be a 5-field cron expression (minute hour day-of-month month day-of-week) or one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly",fieldPath=".schedule"
type RestoreCheckSpec struct {
	// Schedule is when the check runs, in cron format, such as "0 6 * * *"
	// (after the night's base backup).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Schedule string `json:"schedule"`

	// Query is the SQL the check runs, as the superuser, in the restored
	// copy of the application database; it must succeed and its answer is
	// recorded (the first 200 characters). Defaults to counting the
	// database's tables: SELECT count(*) FROM pg_catalog.pg_tables WHERE
	// schemaname NOT IN ('pg_catalog', 'information_schema') for
	// PostgreSQL, SELECT count(*) FROM information_schema.tables WHERE
	// table_schema = DATABASE() for MySQL (as root).
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Query string `json:"query,omitempty"`
}

// BackupSpec configures scheduled logical backups (mysqldump or pg_dump) to a
// volume named <database>-backup. The backup volume and its dumps are kept
// when backups are disabled or the Database is deleted.
//
// +kubebuilder:validation:XValidation:rule="!has(self.enabled) || !self.enabled || (has(self.schedule) && self.schedule.matches('^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(([*]|([0-5]?[0-9])(-([0-5]?[0-9]))?)(/[0-9]{1,2})?(,([*]|([0-5]?[0-9])(-([0-5]?[0-9]))?)(/[0-9]{1,2})?)*)[ ]+(([*]|([01]?[0-9]|2[0-3])(-([01]?[0-9]|2[0-3]))?)(/[0-9]{1,2})?(,([*]|([01]?[0-9]|2[0-3])(-([01]?[0-9]|2[0-3]))?)(/[0-9]{1,2})?)*)[ ]+([?]|([*]|(0?[1-9]|[12][0-9]|3[01])(-(0?[1-9]|[12][0-9]|3[01]))?)(/[0-9]{1,2})?(,([*]|(0?[1-9]|[12][0-9]|3[01])(-(0?[1-9]|[12][0-9]|3[01]))?)(/[0-9]{1,2})?)*)[ ]+(([*]|(0?[1-9]|1[0-2]|[A-Za-z]{3})(-(0?[1-9]|1[0-2]|[A-Za-z]{3}))?)(/[0-9]{1,2})?(,([*]|(0?[1-9]|1[0-2]|[A-Za-z]{3})(-(0?[1-9]|1[0-2]|[A-Za-z]{3}))?)(/[0-9]{1,2})?)*)[ ]+([?]|([*]|([0-7]|[A-Za-z]{3})(-([0-7]|[A-Za-z]{3}))?)(/[0-9]{1,2})?(,([*]|([0-7]|[A-Za-z]{3})(-([0-7]|[A-Za-z]{3}))?)(/[0-9]{1,2})?)*))$'))",message="spec.backup.schedule must be a 5-field cron expression (minute hour day-of-month month day-of-week) or one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly",fieldPath=".schedule"
// +kubebuilder:validation:XValidation:rule="!has(self.enabled) || !self.enabled || (has(self.retention) && self.retention.matches('^[1-9][0-9]{0,3}d$'))",message="spec.backup.retention must be a number of days such as 7d",fieldPath=".retention"
type BackupSpec struct {
	// Enabled turns scheduled backups on. Defaults to false.
	// +optional
	// +kubebuilder:default=false
	Enabled bool `json:"enabled,omitempty"`

	// Schedule is when backups run, in cron format (UTC unless the cluster's
	// CronJob controller says otherwise). Defaults to "0 2 * * *".
	// +optional
	// +kubebuilder:default="0 2 * * *"
	// +kubebuilder:validation:MaxLength=128
	Schedule string `json:"schedule,omitempty"`

	// Retention is how long dumps are kept, as a number of days such as "7d".
	// Older dumps are deleted after each successful backup; the newest dump is
	// never deleted. Defaults to "7d".
	// +optional
	// +kubebuilder:default="7d"
	// +kubebuilder:validation:MaxLength=8
	Retention string `json:"retention,omitempty"`

	// Size is the capacity of the backup volume. Defaults to storage.size.
	// Not used with s3.
	// +optional
	// +kubebuilder:validation:XValidation:rule="isQuantity(string(self)) && quantity(string(self)).isGreaterThan(quantity('0'))",message="spec.backup.size must be a positive quantity such as 20Gi"
	Size *resource.Quantity `json:"size,omitempty"`

	// S3 sends the backups to an S3-compatible object store instead of the
	// backup volume, where they survive the loss of the cluster and its
	// storage. For PostgreSQL: a physical base backup (pg_basebackup) on the
	// schedule, and continuous archiving of every WAL segment (every server
	// archives what it has, so a failover loses no segment), which lets
	// spec.restore.pointInTime restore any moment between the oldest base
	// backup kept and the last archived segment. Retention keeps every
	// moment of the last retention days restorable: the base backups that
	// ended within it, the newest one before it, and the WAL from the oldest
	// kept on; the newest base backup is never deleted. For MySQL: a base
	// dump of the application database (mysqldump, one consistent snapshot
	// that records its binary log position) on the schedule, and the
	// primary's binary log files shipped as they close (GTIDs are on), which
	// a point-in-time restore replays from the dump's position; retention
	// keeps the dumps as above and the binary logs from the oldest kept
	// dump on. MySQL's path is proven on MariaDB only (see the README).
	// +optional
	S3 *ObjectStoreSpec `json:"s3,omitempty"`

	// ArchiveTimeout bounds the recovery point with s3: while transactions
	// are written, the primary closes and archives its current WAL segment
	// at least this often, so a restore of a lost Database to the end of its
	// archive loses at most about this much (plus the upload). From 10s to
	// 600s; defaults to 30s, half the 60s recovery-point target, because an
	// upload takes time too. Each forced segment is 16 MiB before
	// compression, mostly zeros when little was written. For MySQL the
	// primary's agent closes the current binary log file (FLUSH BINARY
	// LOGS) once it holds transactions and is this old, and ships it.
	// +optional
	// +kubebuilder:validation:MaxLength=8
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]+(s|m)$') && duration(self) >= duration('10s') && duration(self) <= duration('600s')",message="spec.backup.archiveTimeout must be a duration from 10s to 600s, such as 30s or 5m"
	ArchiveTimeout string `json:"archiveTimeout,omitempty"`

	// RestoreCheck proves that the archive restores (with s3): on its
	// schedule, a throwaway pod restores the newest base backup and every
	// archived WAL file after it (MySQL: the newest base dump and every
	// archived binary log after it, into a throwaway server), runs a check
	// query on the result, and the outcome, its time and its duration
	// become the BackupVerified condition. The pod's scratch volume goes
	// with it.
	// +optional
	RestoreCheck *RestoreCheckSpec `json:"restoreCheck,omitempty"`
}

// AutoscalingSpec configures the HorizontalPodAutoscaler <database>, whose
// scaleTargetRef is the Database itself. Utilisation is measured on the
// database container against its requests (the environment's profile, or
// spec.resources.requests, which must then name the resource).
//
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",message="spec.autoscaling.minReplicas must not be greater than spec.autoscaling.maxReplicas",fieldPath=".minReplicas"
// +kubebuilder:validation:XValidation:rule="has(self.targetCPUUtilizationPercentage) || has(self.targetMemoryUtilizationPercentage)",message="spec.autoscaling needs a target: set targetCPUUtilizationPercentage, targetMemoryUtilizationPercentage or both"
type AutoscalingSpec struct {
	// MinReplicas is the fewest replicas the autoscaler leaves, 1 to 10 and
	// at least 2 in production. Defaults to 1.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:XValidation:rule="self >= 1 && self <= 10",message="spec.autoscaling.minReplicas must be between 1 and 10"
	MinReplicas *int32 `json:"minReplicas,omitempty"`

	// MaxReplicas is the most replicas the autoscaler adds, up to 10 (the
	// limit of spec.replicas), and at least minReplicas.
	// +required
	// +kubebuilder:validation:XValidation:rule="self >= 1 && self <= 10",message="spec.autoscaling.maxReplicas must be between 1 and 10"
	MaxReplicas int32 `json:"maxReplicas"`

	// TargetCPUUtilizationPercentage is the average CPU use of the database
	// containers, in percent of their CPU request, the autoscaler aims at.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self >= 1 && self <= 100",message="spec.autoscaling.targetCPUUtilizationPercentage must be between 1 and 100"
	TargetCPUUtilizationPercentage *int32 `json:"targetCPUUtilizationPercentage,omitempty"`

	// TargetMemoryUtilizationPercentage is the average memory use of the
	// database containers, in percent of their memory request, the
	// autoscaler aims at.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self >= 1 && self <= 100",message="spec.autoscaling.targetMemoryUtilizationPercentage must be between 1 and 100"
	TargetMemoryUtilizationPercentage *int32 `json:"targetMemoryUtilizationPercentage,omitempty"`

	// ScaleDownStabilizationSeconds is how long load must stay low before
	// the autoscaler removes replicas, 0 to 3600. When unset the
	// HorizontalPodAutoscaler's default applies (300).
	// +optional
	// +kubebuilder:validation:XValidation:rule="self >= 0 && self <= 3600",message="spec.autoscaling.scaleDownStabilizationSeconds must be between 0 and 3600"
	ScaleDownStabilizationSeconds *int32 `json:"scaleDownStabilizationSeconds,omitempty"`
}

// NetworkPolicySpec configures the NetworkPolicy <database>: ingress to the
// database pods is allowed on the database port from the peers listed in
// allowFrom, from the Database's own pods (replication) and from its backup
// Jobs; on the metrics port (with monitoring.metrics) from the monitoring
// namespace only. Everything else is refused.
type NetworkPolicySpec struct {
	// Enabled turns the NetworkPolicy on or off. When unset it is on in
	// production and off in other environments.
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// AllowFrom are the clients allowed to connect to the database port, as
	// in a NetworkPolicy's ingress "from": a podSelector alone selects pods
	// in the Database's namespace, a namespaceSelector alone every pod of the
	// selected namespaces, both together the selected pods of the selected
	// namespaces.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	AllowFrom []NetworkPeer `json:"allowFrom,omitempty"`

	// MonitoringNamespace is the namespace whose pods (Prometheus) may
	// scrape the metrics port. Defaults to "monitoring".
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	MonitoringNamespace string `json:"monitoringNamespace,omitempty"`
}

// TLSSpec configures TLS for a Database's engine. The certificate Secret is
// mounted read-only into the database pods; turning TLS on or off, or
// pointing at another Secret, rolls the pods.
//
// +kubebuilder:validation:XValidation:rule="!has(self.secretName) || (has(self.enabled) && self.enabled)",message="spec.tls.secretName may only be set when spec.tls.enabled is true",fieldPath=".secretName"
type TLSSpec struct {
	// Enabled turns TLS on: the engine serves TLS with the certificate from
	// secretName, or from the Secret <database>-tls that the operator
	// creates once (a CA and a server certificate valid for 10 years, for
	// every Service and pod DNS name of the Database; the CA's private key
	// is not kept). The operator never renews or replaces <database>-tls:
	// to rotate, delete the Secret; the operator issues a new one and the
	// pods roll onto it, as they do when a secretName certificate is
	// renewed. Replicas verify the primary's name, so a secretName
	// certificate must carry *.<database>-headless.<namespace>.svc. In production,
	// unencrypted TCP connections are refused. Defaults to false. For MySQL
	// it can only change while the Database has 1 replica (before and after
	// the change): replicas keep the replication settings they were created
	// with. PostgreSQL replicas follow a change on their next start.
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// SecretName names a Secret in the Database's namespace that holds the
	// server certificate, for example one issued by cert-manager: keys
	// tls.crt (the certificate chain), tls.key (its private key) and ca.crt
	// (the CA clients verify against). The certificate should name the
	// Database's Services (<database>, <database>-ro, <database>-headless,
	// with .<namespace>.svc) and its pods (*.<database>-headless.<namespace>.svc).
	// The operator only reads it; while it is missing or incomplete the
	// Database is Degraded and the pods are left as they are. Only with
	// enabled; it must not be the credentials Secret.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="spec.tls.secretName must be a Secret name: a DNS-1123 subdomain of lowercase letters, digits, '-' and '.'"
	SecretName string `json:"secretName,omitempty"`
}

// NetworkPeer selects clients of the database port by namespace and/or pod
// labels, like a NetworkPolicyPeer without ipBlock.
//
// +kubebuilder:validation:XValidation:rule="has(self.namespaceSelector) || has(self.podSelector)",message="spec.networkPolicy.allowFrom: each entry needs a namespaceSelector, a podSelector or both"
type NetworkPeer struct {
	// NamespaceSelector selects namespaces by their labels, e.g.
	// kubernetes.io/metadata.name: shop. An empty selector selects every
	// namespace.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// PodSelector selects pods by their labels, in the Database's namespace
	// or, with namespaceSelector, in the selected namespaces.
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`
}

// RestoreSpec names the dump a new Database starts from.
//
// Pod 0 mounts the backup volume of the source, <fromDatabase>-backup,
// read-only at /restore. The official images run the scripts in
// /docker-entrypoint-initdb.d only while they initialise an empty data
// directory; the restore script is one of them, so the dump is loaded into
// the application database exactly once, after the users are created, and
// never into a data directory that already holds data. If loading fails, the
// script empties the data directory and the container exits, so the next
// start tries again instead of serving an empty database.
//
// The source Database may have been deleted: its backup volume is kept. The
// dump holds the application database only; the new Database gets its own
// credentials, and PostgreSQL objects are owned by the new application user.
//
// The restore is all or nothing: if the load fails or the container is
// killed before it finished, the next start empties the data directory and
// restores again from scratch. The Restored condition reports the outcome
// (Restoring, RestoreFailed with the reason, which also sets Degraded, or
// RestoreSucceeded). While the restore is in progress the Database runs pod
// 0 alone, so only the restoring pod mounts the source's backup volume
// (ReadWriteOnce storage attaches it to one node); once it is done pod 0
// restarts once without that volume and the replicas are created as copies
// of pod 0. spec.restore may stay in Git: after the restore it changes
// nothing.
type RestoreSpec struct {
	// FromDatabase is the name of the Database, in the same namespace and of
	// the same type, whose backups are restored.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	FromDatabase string `json:"fromDatabase"`

	// Backup is the file name of the dump on the source's backup volume, for
	// example "orders-20250102T020000Z.sql.gz". When empty the latest dump of
	// the source is restored.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][A-Za-z0-9._-]*[.]sql[.]gz$`
	Backup string `json:"backup,omitempty"`

	// PointInTime restores the source's continuous archive in object
	// storage (its spec.backup.s3) instead of a dump: pod 0's init container
	// fetches the newest base backup that ended before the target, replays
	// the archived WAL up to the target, promotes the copy and gives its
	// users this Database's names and passwords, before the database starts.
	// A missing or corrupted WAL segment fails the restore (RestoreFailed)
	// rather than end it early. PostgreSQL only.
	// +optional
	PointInTime *PointInTimeSpec `json:"pointInTime,omitempty"`
}

// MonitoringSpec turns on observability features. Metrics and logging take
// effect only while enabled is true.
type MonitoringSpec struct {
	// Enabled is the master switch: metrics and logging apply only when it is
	// true. Defaults to false.
	// +optional
	// +kubebuilder:default=false
	Enabled bool `json:"enabled,omitempty"`

	// Metrics adds a Prometheus exporter sidecar (postgres_exporter or
	// mysqld_exporter) with a port named "metrics", and a ServiceMonitor when
	// the Prometheus Operator is installed. Defaults to false.
	// +optional
	// +kubebuilder:default=false
	Metrics bool `json:"metrics,omitempty"`

	// Logging turns on slow-query (MySQL) or statement-duration (PostgreSQL)
	// logging to the container's stderr. Defaults to false.
	// +optional
	// +kubebuilder:default=false
	Logging bool `json:"logging,omitempty"`
}

// Phase summarises a Database's state in one word.
type Phase string

const (
	// PhasePending means the StatefulSet does not exist yet.
	PhasePending Phase = "Pending"
	// PhaseCreating means the StatefulSet exists but no pod is ready.
	PhaseCreating Phase = "Creating"
	// PhasePartiallyReady means some but not all pods are ready.
	PhasePartiallyReady Phase = "PartiallyReady"
	// PhaseReady means every pod is ready and the spec is observed.
	PhaseReady Phase = "Ready"
	// PhaseFailed means a problem needs a human; the Degraded condition says which.
	PhaseFailed Phase = "Failed"
)

// Condition types set on a Database.
const (
	// ConditionReady is True when all replicas are ready and the spec is observed.
	ConditionReady = "Ready"
	// ConditionProgressing is True while rolling out, scaling or resizing.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True when a problem needs a human; the reason names it.
	ConditionDegraded = "Degraded"
	// ConditionBackupReady reports the latest backup's outcome when backup
	// is enabled: the dump, or with spec.backup.s3 the base backup.
	ConditionBackupReady = "BackupReady"
	// ConditionContinuousArchiving is True while the primary archives its
	// WAL (spec.backup.s3), False with reason ArchivingFailing when its
	// latest attempt failed, Unknown until it has archived once.
	ConditionContinuousArchiving = "ContinuousArchiving"
	// ConditionBackupVerified reports the last restore check
	// (spec.backup.restoreCheck): True with the time, the duration and the
	// check query's answer, False with the reason the restore or the query
	// failed, Unknown until the first check.
	ConditionBackupVerified = "BackupVerified"
	// ConditionRestored reports the outcome of spec.restore: False with
	// reason Restoring while pod 0 loads the dump, False with reason
	// RestoreFailed (and Degraded) when the load failed, True with reason
	// RestoreSucceeded once it is done. It stays after spec.restore is
	// removed, as the record of where the data came from.
	ConditionRestored = "Restored"
)

// DatabaseStatus is the observed state of a Database, written by the operator.
type DatabaseStatus struct {
	// Phase is Pending (no StatefulSet yet), Creating (no pod ready),
	// PartiallyReady, Ready or Failed.
	// +optional
	Phase Phase `json:"phase,omitempty"`

	// Ready is true when every replica is ready and the current spec is observed.
	// +optional
	Ready bool `json:"ready,omitempty"`

	// Replicas is the number of ready database pods.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// Selector is the label selector of the database pods, in string form, for
	// the scale subresource (HorizontalPodAutoscaler).
	// +optional
	Selector string `json:"selector,omitempty"`

	// LastBackup is when the latest successful backup finished, taken from the
	// backup CronJob. Empty until a backup has succeeded.
	// +optional
	LastBackup *metav1.Time `json:"lastBackup,omitempty"`

	// ObservedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// CurrentPrimary is the pod that holds the primary role: the one the
	// read-write Service <database> selects and the replicas stream from.
	// +optional
	CurrentPrimary string `json:"currentPrimary,omitempty"`

	// Instances is what each database pod's agent last reported.
	// +optional
	// +listType=map
	// +listMapKey=name
	Instances []InstanceStatus `json:"instances,omitempty"`

	// LastPrimaryChange records the latest failover or switchover.
	// +optional
	LastPrimaryChange *PrimaryChange `json:"lastPrimaryChange,omitempty"`

	// Switchover is the planned switchover in progress, if any.
	// +optional
	Switchover *SwitchoverStatus `json:"switchover,omitempty"`

	// Archive is the state of the continuous archive (spec.backup.s3): the
	// recoverable window and the last base backup.
	// +optional
	Archive *ArchiveStatus `json:"archive,omitempty"`

	// Conditions are Ready, Progressing, Degraded, with backup enabled
	// BackupReady, and for a Database created with spec.restore Restored.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// InstanceStatus is one database pod as its agent reported it.
type InstanceStatus struct {
	// Name is the pod's name.
	Name string `json:"name"`
	// Role is the role the server runs in, primary or replica; empty while
	// it does not answer.
	// +optional
	Role string `json:"role,omitempty"`
	// Ready is the pod's Ready condition.
	Ready bool `json:"ready"`
	// Timeline is the PostgreSQL timeline the server is on.
	// +optional
	Timeline int64 `json:"timeline,omitempty"`
	// Position is the server's WAL location (PostgreSQL) or executed GTID
	// set (MySQL): on a replica, what it has received.
	// +optional
	Position string `json:"position,omitempty"`
	// LagBytes is how far a PostgreSQL replica's received WAL is behind
	// the primary's, as last reported (reports of moving positions are at
	// most 10s apart).
	// +optional
	LagBytes *int64 `json:"lagBytes,omitempty"`
	// Message is what the agent is waiting for or what failed.
	// +optional
	Message string `json:"message,omitempty"`
}

// PrimaryChange is a move of the primary role from one pod to another.
type PrimaryChange struct {
	// Reason is FailedOver (the primary was unavailable) or SwitchedOver
	// (requested).
	Reason string `json:"reason"`
	// From is the pod that held the role.
	From string `json:"from"`
	// To is the pod that holds it now.
	To string `json:"to"`
	// Time is when the operator gave the role to To.
	Time metav1.Time `json:"time"`
	// Message explains the choice, for example the positions compared.
	// +optional
	Message string `json:"message,omitempty"`
}

// SwitchoverStatus is a planned switchover in progress.
type SwitchoverStatus struct {
	// From is the primary being demoted.
	From string `json:"from"`
	// To is the replica being promoted.
	To string `json:"to"`
	// Started is when the primary was asked to stop.
	Started metav1.Time `json:"started"`
}

// SwitchoverAnnotation on a Database asks for a planned switchover to the
// named pod (or to the most advanced replica when the value is "any"). The
// operator removes it when the switchover is done or refused, and records
// the outcome in status.lastPrimaryChange and an Event. An annotation, not
// a spec field: a switchover is an operation, not a state to keep in Git.
const SwitchoverAnnotation = "database.example.com/switchover-to"

// Database is a MySQL or PostgreSQL instance: a StatefulSet with its
// Services, configuration, credentials and, optionally, scheduled backups and
// metrics.
//
// +kubebuilder:object:root=true
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 45 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be at most 45 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit: the operator names Services (<name>-headless, DNS labels of at most 63) and backup CronJobs (<name>-backup, at most 52) after it"
// +kubebuilder:validation:XValidation:rule="!has(self.spec.backup) || !has(self.spec.backup.restoreCheck) || size(self.metadata.name) <= 38",message="metadata.name must be at most 38 characters with spec.backup.restoreCheck: the check's CronJob is <name>-restore-check, and a CronJob's name holds at most 52",fieldPath=".spec.backup.restoreCheck"
// +kubebuilder:validation:XValidation:rule="!has(self.spec.tls) || !has(self.spec.tls.secretName) || self.spec.tls.secretName != self.metadata.name + '-credentials'",message="spec.tls.secretName must not be the credentials Secret <database>-credentials",fieldPath=".spec.tls.secretName"
// +kubebuilder:validation:XValidation:rule="!has(self.spec.restore) || !has(self.spec.restore.pointInTime) || self.spec.restore.fromDatabase != self.metadata.name || !has(self.spec.backup) || !has(self.spec.backup.s3) || (has(self.spec.restore.pointInTime.s3) && (self.spec.restore.pointInTime.s3.bucket != self.spec.backup.s3.bucket || (has(self.spec.restore.pointInTime.s3.path) ? self.spec.restore.pointInTime.s3.path : '/') != (has(self.spec.backup.s3.path) ? self.spec.backup.s3.path : '/') || (has(self.spec.restore.pointInTime.s3.endpoint) ? self.spec.restore.pointInTime.s3.endpoint : '/') != (has(self.spec.backup.s3.endpoint) ? self.spec.backup.s3.endpoint : '/')))",message="spec.backup.s3: this Database restores the archive of a Database of the same name and would archive into it (<path>/<name>/), mixing two histories; give spec.backup.s3 another path or bucket (the source's archive is kept as it is)",fieldPath=".spec.backup.s3"
// +kubebuilder:resource:shortName=db,categories=all
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.spec.version`
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.spec.replicas`
// +kubebuilder:printcolumn:name="Environment",type=string,JSONPath=`.spec.environment`
// +kubebuilder:printcolumn:name="Primary",type=string,JSONPath=`.status.currentPrimary`
// +kubebuilder:printcolumn:name="Ready",type=boolean,JSONPath=`.status.ready`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Database struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired state of the Database.
	// +required
	Spec DatabaseSpec `json:"spec"`

	// Status is the observed state of the Database, written by the operator.
	// +optional
	Status DatabaseStatus `json:"status,omitempty"`
}

// DatabaseList is a list of Databases.
//
// +kubebuilder:object:root=true
type DatabaseList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	// Items are the Databases.
	Items []Database `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Database{}, &DatabaseList{})
}
