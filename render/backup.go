package render

import (
	"fmt"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	batchv1ac "k8s.io/client-go/applyconfigurations/batch/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
)

// backupPodName is the app.kubernetes.io/name of backup pods. It differs from
// the database pods' on purpose: with the same selector labels, the Services
// would send database traffic to a running backup pod and the
// PodDisruptionBudget would count it.
const backupPodName = "database-backup"

// BackupContainerName names the container of a backup Job's pod that takes
// the backup; with spec.backup.s3 its termination message is an
// instance.BackupReport.
const BackupContainerName = "backup"

// backupPodLabels are the labels of db's backup Jobs and their pods.
func backupPodLabels(db string) map[string]string {
	return map[string]string{
		LabelName:      backupPodName,
		LabelInstance:  db,
		LabelManagedBy: managedBy,
		LabelComponent: "backup",
	}
}

// buildBackupCronJob renders <db>-backup: a logical dump of the application
// database to the backup volume on the spec's schedule. Runs never overlap.
func buildBackupCronJob(s *spec) *batchv1ac.CronJobApplyConfiguration {
	podLabels := backupPodLabels(s.name)
	env := append(s.eng.backupEnv(s),
		valueEnv("BACKUP_PREFIX", s.name),
		valueEnv("RETENTION_DAYS", fmt.Sprint(s.retentionDays)))
	container := corev1ac.Container().
		WithName(BackupContainerName).
		WithImage(s.image).
		WithImagePullPolicy(corev1.PullIfNotPresent).
		WithCommand("bash", "-c", s.eng.backupScript(s)).
		WithEnv(env...).
		WithResources(corev1ac.ResourceRequirements().
			WithRequests(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")}).
			WithLimits(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("512Mi")})).
		WithSecurityContext(containerSecurityContext()).
		WithVolumeMounts(corev1ac.VolumeMount().WithName("backup").WithMountPath(backupMountPath))

	return buildJobCronJob(s, jobCronJob{name: BackupName(s.name), component: "backup", schedule: s.backup.Schedule,
		podLabels: podLabels, history: 3, backoffLimit: 2,
		pod: corev1ac.PodSpec().
			WithContainers(container).
			WithVolumes(corev1ac.Volume().WithName("backup").
				WithPersistentVolumeClaim(corev1ac.PersistentVolumeClaimVolumeSource().
					WithClaimName(BackupName(s.name))))})
}

// jobCronJob is what differs between the operator's CronJobs: the dump,
// the base backup and the restore check.
type jobCronJob struct {
	name, component, schedule string
	podLabels                 map[string]string
	// history is how many finished Jobs of each outcome are kept.
	history      int32
	backoffLimit int32
	// pod has the containers and volumes; buildJobCronJob adds the rest.
	pod *corev1ac.PodSpecApplyConfiguration
}

// buildJobCronJob renders one of the operator's CronJobs. Runs never
// overlap; a run missed by up to an hour (operator or controller down)
// still happens; the pods run once, as the database user, without API
// credentials or service links.
func buildJobCronJob(s *spec, j jobCronJob) *batchv1ac.CronJobApplyConfiguration {
	return batchv1ac.CronJob(j.name, s.namespace).
		WithLabels(labels(s.db, j.component)).
		WithOwnerReferences(ownerReference(s.db)).
		WithSpec(batchv1ac.CronJobSpec().
			WithSchedule(j.schedule).
			WithConcurrencyPolicy(batchv1.ForbidConcurrent).
			WithStartingDeadlineSeconds(3600).
			WithSuccessfulJobsHistoryLimit(j.history).
			WithFailedJobsHistoryLimit(j.history).
			WithJobTemplate(batchv1ac.JobTemplateSpec().
				WithLabels(j.podLabels).
				WithSpec(batchv1ac.JobSpec().
					WithBackoffLimit(j.backoffLimit).
					WithTemplate(corev1ac.PodTemplateSpec().
						WithLabels(j.podLabels).
						WithSpec(j.pod.
							WithRestartPolicy(corev1.RestartPolicyNever).
							WithAutomountServiceAccountToken(false).
							WithEnableServiceLinks(false).
							WithSecurityContext(podSecurityContext()))))))
}

// buildBackupPVC renders the backup volume claim <db>-backup. It has no owner
// reference: dumps must survive disabling backups and deleting the Database.
func buildBackupPVC(s *spec) *corev1ac.PersistentVolumeClaimApplyConfiguration {
	return corev1ac.PersistentVolumeClaim(BackupName(s.name), s.namespace).
		WithLabels(labels(s.db, "backup")).
		WithSpec(volumeClaimSpec(s, s.backupSize))
}

// backupScript wraps an engine's dump commands (the body of a shell function
// that writes the dump to stdout): the dump is compressed into a hidden
// partial file and renamed only when complete, so a failed run never leaves a
// truncated dump that looks good. Dumps are named
// <BACKUP_PREFIX>-<UTC timestamp>.sql.gz, so names sort by time. Retention
// then deletes this Database's dumps older than RETENTION_DAYS days, but
// never the one just written, the newest, so a long outage of the schedule
// (or a clock ahead) never leaves zero backups. It needs
// only bash, coreutils and gzip. BACKUP_DIR (default /backup, where the
// CronJob mounts the backup volume) exists so the script can be exercised
// outside a pod.
func backupScript(dump string) string {
	return strings.ReplaceAll(`set -euo pipefail
dir="${BACKUP_DIR:-`+backupMountPath+`}"
dump_database() {
DUMP
}
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
file="${dir}/${BACKUP_PREFIX}-${stamp}.sql.gz"
partial="${dir}/.${BACKUP_PREFIX}-${stamp}.sql.gz.partial"
trap 'rm -f -- "$partial"' EXIT
dump_database | gzip -c >"$partial"
mv -- "$partial" "$file"
echo "backup written: $file ($(wc -c <"$file") bytes)"
cutoff=$(($(date +%s) - RETENTION_DAYS * 86400))
for f in "${dir}/${BACKUP_PREFIX}"-[0-9]*.sql.gz; do
  # The dump just written is the newest: never deleted, whatever the clocks say.
  if [ ! -e "$f" ] || [ "$f" = "$file" ]; then
    continue
  fi
  if [ "$(stat -c %Y -- "$f")" -lt "$cutoff" ]; then
    rm -f -- "$f"
    echo "retention: deleted $f (older than ${RETENTION_DAYS} days)"
  fi
done
`, "DUMP", dump)
}
