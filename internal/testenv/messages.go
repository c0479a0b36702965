package testenv

// The Database CRD's validation messages, verbatim from the markers in
// apis/database/v1/database_types.go, shared by the envtest and e2e suites
// that assert them.
const (
	MsgTypeEnum         = "spec.type must be one of: mysql, postgresql"
	MsgTypeImmutable    = "spec.type is immutable; create a new Database to change the engine"
	MsgVersionEmpty     = "spec.version must not be empty"
	MsgVersionForm      = "spec.version must be a numeric version such as 8.0, 8.4, 14 or 16, optionally with an image tag suffix such as 16.4-bookworm"
	MsgReplicasRange    = "spec.replicas must be between 1 and 10"
	MsgStoragePos       = "spec.storage.size must be a positive quantity such as 10Gi"
	MsgStorageShrink    = "spec.storage.size may not shrink; volumes can only grow"
	MsgEnvironment      = "spec.environment must be one of: development, staging, production"
	MsgProdReplicas     = "spec.replicas must be at least 2 when spec.environment is production"
	MsgProdLimits       = "spec.resources.limits must be set when spec.environment is production and spec.resources is given (omit spec.resources to get the production profile)"
	MsgPostgresMajor    = "spec.version: the PostgreSQL major version cannot change in place; restore a backup into a new Database with the new version"
	MsgMySQLDowngrade   = "spec.version: MySQL cannot be downgraded; the version may only stay or move forward"
	MsgPostgresVersions = "spec.version: PostgreSQL 14 to 18 are supported (tags such as 14, 16.4 or 17-trixie); older versions store an md5 superuser password and lack settings the operator renders"
	MsgMySQLVersions    = "spec.version: MySQL 8.0.32 or later is supported: 8.0 (the newest 8.0), 8.0.32 and later 8.0 releases, 8.4 (LTS), 8 (the newest 8.x, today 8.4) and 9.x (9 is the newest 9.x); 5.7 and 8.0 before 8.0.32 are refused (no CHANGE REPLICATION SOURCE, or mysqldump's GTID bug that loses transactions on replicas)"
	MsgAlpine           = "spec.version: alpine tags are not supported: the database pods run as uid 999, the database user of the Debian- and Oracle-based official images (alpine's postgres user is uid 70); use the tag without -alpine, such as 17 or 17-trixie"
	MsgSchedule         = "spec.backup.schedule must be a 5-field cron expression (minute hour day-of-month month day-of-week) or one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly"
	MsgRetention        = "spec.backup.retention must be a number of days such as 7d"
	MsgBackupSize       = "spec.backup.size must be a positive quantity such as 20Gi"
	MsgName             = "metadata.name must be at most 45 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit: the operator names Services (<name>-headless, DNS labels of at most 63) and backup CronJobs (<name>-backup, at most 52) after it"
	MsgNameRestoreCheck = "metadata.name must be at most 38 characters with spec.backup.restoreCheck: the check's CronJob is <name>-restore-check, and a CronJob's name holds at most 52"
	MsgStorageClass     = "spec.storage.class must be a StorageClass name: a DNS-1123 subdomain of lowercase letters, digits, '-' and '.'"
)

// The spec.tls rules' messages.
const (
	MsgTLSSecretNeedsEnabled = "spec.tls.secretName may only be set when spec.tls.enabled is true"
	MsgTLSSecretName         = "spec.tls.secretName must be a Secret name: a DNS-1123 subdomain of lowercase letters, digits, '-' and '.'"
	MsgTLSSecretCredentials  = "spec.tls.secretName must not be the credentials Secret <database>-credentials"
	MsgTLSMySQLReplicas      = "spec.tls.enabled cannot change while a MySQL Database has more than 1 replica: replicas keep the replication settings they were created with. Scale to 1 replica, delete the replicas' data PVCs data-<database>-1 to data-<database>-N, change spec.tls, then scale up again; new replicas are bootstrapped with the new setting"
)
