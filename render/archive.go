package render

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	batchv1ac "k8s.io/client-go/applyconfigurations/batch/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/instance"
)

// Continuous archiving (spec.backup.s3). The agent binary that runs every
// database server is also its archive tool (package archive). PostgreSQL:
//
//   - every server runs archive_mode = always with the agent's wal-push as
//     archive_command: the primary archives what it writes, each replica
//     what it receives. The archive refuses a second, different copy of a
//     file and accepts an identical one, so the segments the old primary
//     had not archived when it was lost are archived by the replicas that
//     received them, and a failover leaves no gap;
//   - the backup CronJob runs the agent's base-backup in the database
//     image: pg_basebackup from the primary, streamed into the archive,
//     then retention;
//   - spec.restore.pointInTime adds an init container to pod 0 that runs
//     the agent's restore before the database container starts.
//
// MySQL (mysqlArchive):
//
//   - the primary's agent ships its closed binary log files and closes the
//     current one after archiveTimeout (agent.BinlogShipper); only the
//     primary ships, as only the operator's primary is sure to be on the
//     Database's history;
//   - the backup CronJob runs the agent's base-backup --engine=mysql in the
//     database image: a mysqldump of the application database recording
//     its binary log position, then retention;
//   - spec.restore.pointInTime adds a restore script to the entrypoint's
//     init scripts, as a dump restore does: the agent's restore-mysql writes
//     the dump and the replayed binary logs, which the script loads into the
//     entrypoint's temporary server.
//
// The object store's keys reach the containers only as environment
// variables that refer to the user's Secret.

// Keys of the Secret spec.backup.s3.credentialsSecret names, and of its
// caSecret.
const (
	S3AccessKeyIDKey     = "access-key-id"
	S3SecretAccessKeyKey = "secret-access-key"
	S3SessionTokenKey    = "session-token"
	S3CAKey              = "ca.crt"
)

// defaultArchiveTimeout is spec.backup.archiveTimeout when unset.
const defaultArchiveTimeout = "30s"

const (
	archiveCAVolume = "archive-ca"
	archiveCAPath   = "/etc/database-operator/archive-ca"
	restoreCAVolume = "restore-ca"
	restoreCAPath   = "/etc/database-operator/restore-ca"
)

// RestoreInitContainerName names pod 0's init container that restores
// spec.restore.pointInTime.
const RestoreInitContainerName = "restore"

// RestoreFailedPrefix starts the termination message of a container whose
// restore failed; the rest is the reason.
const RestoreFailedPrefix = instance.RestoreFailedPrefix

// ArchivingOf is the object store db archives to: spec.backup.s3 while
// backups are enabled; nil otherwise.
func ArchivingOf(db *databasev1.Database) *databasev1.ObjectStoreSpec {
	b := db.Spec.Backup
	if b == nil || !b.Enabled || b.S3 == nil {
		return nil
	}
	return b.S3
}

// pointInTime is spec.restore.pointInTime while the restore applies.
func (s *spec) pointInTime() *databasev1.PointInTimeSpec {
	if s.restore == nil {
		return nil
	}
	return s.restore.PointInTime
}

// pointInTimeStore is where the restore's source archive is: its own s3,
// else spec.backup.s3.
func (s *spec) pointInTimeStore() *databasev1.ObjectStoreSpec {
	if p := s.pointInTime(); p != nil && p.S3 != nil {
		return p.S3
	}
	return s.db.Spec.Backup.S3
}

// objectStoreEnv is the archive tool's environment for store, under prefix
// (ARCHIVE_ for the Database's own archive, RESTORE_ for a restore's
// source), naming the archive folder database.
func objectStoreEnv(prefix string, store *databasev1.ObjectStoreSpec, database, caPath string) []*corev1ac.EnvVarApplyConfiguration {
	name := func(n string) string { return prefix + n }
	key := func(k string) *corev1ac.EnvVarSourceApplyConfiguration {
		return corev1ac.EnvVarSource().WithSecretKeyRef(corev1ac.SecretKeySelector().WithName(store.CredentialsSecret).WithKey(k))
	}
	env := []*corev1ac.EnvVarApplyConfiguration{
		valueEnv(name("S3_ENDPOINT"), store.Endpoint),
		valueEnv(name("S3_BUCKET"), store.Bucket),
		valueEnv(name("S3_PATH"), store.Path),
		valueEnv(name("S3_REGION"), store.Region),
		valueEnv(name("S3_VIRTUAL_HOSTED"), fmt.Sprint(store.VirtualHostedStyle)),
		corev1ac.EnvVar().WithName(name("S3_ACCESS_KEY_ID")).WithValueFrom(key(S3AccessKeyIDKey)),
		corev1ac.EnvVar().WithName(name("S3_SECRET_ACCESS_KEY")).WithValueFrom(key(S3SecretAccessKeyKey)),
		corev1ac.EnvVar().WithName(name("S3_SESSION_TOKEN")).WithValueFrom(
			corev1ac.EnvVarSource().WithSecretKeyRef(corev1ac.SecretKeySelector().WithName(store.CredentialsSecret).WithKey(S3SessionTokenKey).WithOptional(true))),
		valueEnv(name("DATABASE"), database),
	}
	if store.CASecret != "" {
		env = append(env, valueEnv(name("S3_CA_FILE"), caPath+"/"+S3CAKey))
	}
	return env
}

// archiveEnv is the environment of the containers that write the
// Database's own archive: its store, and who owns the archive.
func archiveEnv(s *spec) []*corev1ac.EnvVarApplyConfiguration {
	return append(objectStoreEnv("ARCHIVE_", ArchivingOf(s.db), s.name, archiveCAPath),
		valueEnv("ARCHIVE_DATABASE_UID", string(s.db.UID)),
		valueEnv("ARCHIVE_NAMESPACE", s.namespace))
}

func caVolume(name, secret string) *corev1ac.VolumeApplyConfiguration {
	return corev1ac.Volume().WithName(name).WithSecret(corev1ac.SecretVolumeSource().
		WithSecretName(secret).WithDefaultMode(0o444).
		WithItems(corev1ac.KeyToPath().WithKey(S3CAKey).WithPath(S3CAKey)))
}

// archiveVolumes are the CA volumes the database pods' archive tool reads:
// the archive's and, while restoring, the source's.
func archiveVolumes(s *spec) []*corev1ac.VolumeApplyConfiguration {
	v := ownArchiveVolumes(s)
	if s.pointInTime() != nil && s.pointInTimeStore().CASecret != "" {
		v = append(v, caVolume(restoreCAVolume, s.pointInTimeStore().CASecret))
	}
	return v
}

// ownArchiveVolumes is the CA volume of the Database's own archive.
func ownArchiveVolumes(s *spec) []*corev1ac.VolumeApplyConfiguration {
	if a := ArchivingOf(s.db); a != nil && a.CASecret != "" {
		return []*corev1ac.VolumeApplyConfiguration{caVolume(archiveCAVolume, a.CASecret)}
	}
	return nil
}

func archiveCAMounts(s *spec) []*corev1ac.VolumeMountApplyConfiguration {
	if a := ArchivingOf(s.db); a != nil && a.CASecret != "" {
		return []*corev1ac.VolumeMountApplyConfiguration{corev1ac.VolumeMount().WithName(archiveCAVolume).WithMountPath(archiveCAPath).WithReadOnly(true)}
	}
	return nil
}

// archiveTimeout is spec.backup.archiveTimeout, defaulted.
func (s *spec) archiveTimeout() string {
	if s.backup.ArchiveTimeout != "" {
		return s.backup.ArchiveTimeout
	}
	return defaultArchiveTimeout
}

// postgresArchiveConf is the postgresql.conf section of continuous
// archiving.
func postgresArchiveConf(s *spec) string {
	a := ArchivingOf(s.db)
	return fmt.Sprintf(`# Continuous archiving to s3://%s/%s by the agent (spec.backup.s3). Every server
# archives what it has, the primary what it writes and each replica what it receives,
# so the segments a lost primary had not archived yet are archived by a replica.
archive_mode = always
archive_command = '%s wal-push %%p'
# A segment with transactions in it is closed and archived at least this often:
# the bound on what a restore to the end of the archive can lose.
archive_timeout = '%s'
`, a.Bucket, ArchiveFolder(a, s.name), agentBinary, s.archiveTimeout())
}

// ArchiveFolder is the folder of database's archive in store's bucket,
// ending in "/".
func ArchiveFolder(store *databasev1.ObjectStoreSpec, database string) string {
	if store.Path == "" {
		return database + "/"
	}
	return store.Path + "/" + database + "/"
}

// restoreInitContainer restores spec.restore.pointInTime into an empty data
// directory before the database container starts; a data directory that
// exists (the restore finished) is left alone.
func restoreInitContainer(s *spec) *corev1ac.ContainerApplyConfiguration {
	env := append(s.eng.env(s), valueEnv("REPLICATION_USER", ReplicationUser))
	env = append(env, restoreSourceEnv(s)...)
	return corev1ac.Container().
		WithName(RestoreInitContainerName).
		WithImage(s.image).
		WithImagePullPolicy(corev1.PullIfNotPresent).
		WithCommand(agentBinary, "restore", "--termination-log="+corev1.TerminationMessagePathDefault).
		WithEnv(env...).
		WithResources(s.resourceRequirements()).
		WithSecurityContext(containerSecurityContext()).
		WithVolumeMounts(
			corev1ac.VolumeMount().WithName(dataVolumeName).WithMountPath(s.eng.dataPath()),
			corev1ac.VolumeMount().WithName(agentVolumeName).WithMountPath(agentMountPath)).
		WithVolumeMounts(restoreCAMounts(s)...)
}

// restoreSourceEnv is what the agent's restore reads: the source's archive
// (RESTORE_S3_*) and the target time.
func restoreSourceEnv(s *spec) []*corev1ac.EnvVarApplyConfiguration {
	env := objectStoreEnv("RESTORE_", s.pointInTimeStore(), s.restore.FromDatabase, restoreCAPath)
	if t := s.pointInTime().TargetTime; t != "" {
		env = append(env, valueEnv("RESTORE_TARGET_TIME", t))
	}
	return env
}

// restoreCAMounts mounts the source store's CA, when it has one.
func restoreCAMounts(s *spec) []*corev1ac.VolumeMountApplyConfiguration {
	if s.pointInTimeStore().CASecret == "" {
		return nil
	}
	return []*corev1ac.VolumeMountApplyConfiguration{corev1ac.VolumeMount().WithName(restoreCAVolume).WithMountPath(restoreCAPath).WithReadOnly(true)}
}

// agentCopyContainer copies the agent from the operator's image into a
// Job pod's agent volume.
func agentCopyContainer(s *spec) *corev1ac.ContainerApplyConfiguration {
	return corev1ac.Container().
		WithName("agent").
		WithImage(s.opts.AgentImage).
		WithImagePullPolicy(corev1.PullIfNotPresent).
		WithCommand("/database-agent", "copy", agentBinary).
		WithVolumeMounts(corev1ac.VolumeMount().WithName(agentVolumeName).WithMountPath(agentMountPath)).
		WithResources(corev1ac.ResourceRequirements().
			WithRequests(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")}).
			WithLimits(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("64Mi")})).
		WithSecurityContext(containerSecurityContext().WithReadOnlyRootFilesystem(true))
}

// baseBackupEnv is the base-backup container's connection to the primary
// and the application's names, which the archive's owner record keeps.
func baseBackupEnv(s *spec) []*corev1ac.EnvVarApplyConfiguration {
	if s.db.Spec.Type == databasev1.MySQL {
		// mysqldump --source-data needs RELOAD and REPLICATION CLIENT, and
		// --flush-logs RELOAD: root, as the volume's dumps.
		return []*corev1ac.EnvVarApplyConfiguration{
			valueEnv("DB_HOST", ServiceName(s.name)),
			valueEnv("DB_PORT", fmt.Sprint(mysqlPort)),
			secretEnv(s, "MYSQL_PWD", SecretKeyRootPassword),
			secretEnv(s, "MYSQL_USER", SecretKeyUsername),
			secretEnv(s, "MYSQL_DATABASE", SecretKeyDatabase),
		}
	}
	env := []*corev1ac.EnvVarApplyConfiguration{
		valueEnv("PGHOST", ServiceName(s.name)),
		valueEnv("PGPORT", fmt.Sprint(postgresPort)),
		valueEnv("PGUSER", ReplicationUser),
		secretEnv(s, "PGPASSWORD", SecretKeyReplicationPassword),
		secretEnv(s, "APP_USER", SecretKeyUsername),
		secretEnv(s, "POSTGRES_DB", SecretKeyDatabase),
	}
	if s.tlsSecret != "" {
		env = append(env, valueEnv("PGSSLMODE", "require"))
	}
	return env
}

// buildBaseBackupCronJob renders <db>-backup with spec.backup.s3: a base
// backup (PostgreSQL) or base dump (MySQL) of the primary into the archive
// on the schedule, then retention. The agent comes from the operator's
// image, as in the database pods.
func buildBaseBackupCronJob(s *spec) *batchv1ac.CronJobApplyConfiguration {
	podLabels := backupPodLabels(s.name)
	env := append(baseBackupEnv(s), archiveEnv(s)...)
	container := corev1ac.Container().
		WithName(BackupContainerName).
		WithImage(s.image).
		WithImagePullPolicy(corev1.PullIfNotPresent).
		WithCommand(agentBinary, "base-backup",
			"--engine="+string(s.db.Spec.Type),
			fmt.Sprintf("--retention=%dd", s.retentionDays),
			"--termination-log="+corev1.TerminationMessagePathDefault).
		WithEnv(env...).
		WithResources(corev1ac.ResourceRequirements().
			WithRequests(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("128Mi")}).
			WithLimits(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("512Mi")})).
		WithSecurityContext(containerSecurityContext()).
		WithVolumeMounts(corev1ac.VolumeMount().WithName(agentVolumeName).WithMountPath(agentMountPath)).
		WithVolumeMounts(archiveCAMounts(s)...)
	copyAgent := agentCopyContainer(s)

	return buildJobCronJob(s, jobCronJob{name: BackupName(s.name), component: "backup", schedule: s.backup.Schedule,
		podLabels: podLabels, history: 3, backoffLimit: 2,
		pod: corev1ac.PodSpec().
			WithInitContainers(copyAgent).
			WithContainers(container).
			WithVolumes(corev1ac.Volume().WithName(agentVolumeName).WithEmptyDir(corev1ac.EmptyDirVolumeSource())).
			WithVolumes(ownArchiveVolumes(s)...)})
}
