package render

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	batchv1ac "k8s.io/client-go/applyconfigurations/batch/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// RestoreCheckName is the name of the restore check's CronJob.
func RestoreCheckName(db string) string { return db + "-restore-check" }

// RestoreCheckContainerName names the container of a restore-check pod; its
// termination message is an instance.RestoreCheckReport.
const RestoreCheckContainerName = "restore-check"

// ComponentRestoreCheck labels the restore check's Jobs and pods.
const ComponentRestoreCheck = "restore-check"

const (
	scratchVolumeName = "scratch"
	scratchMountPath  = "/scratch"
)

// restoreCheckPodLabels are the labels of the restore check's Jobs and
// pods: not the database pods' selector labels, so no Service sends them
// traffic and no PodDisruptionBudget counts them.
func restoreCheckPodLabels(db string) map[string]string {
	return map[string]string{
		LabelName:      "database-restore-check",
		LabelInstance:  db,
		LabelManagedBy: managedBy,
		LabelComponent: ComponentRestoreCheck,
	}
}

// buildRestoreCheckCronJob renders <db>-restore-check with
// spec.backup.restoreCheck: a pod that restores the newest base backup and
// every archived WAL file after it (MySQL: the newest base dump and every
// binary log after it, into a throwaway server) into a scratch volume,
// with the Database's own image and the agent, runs the check query and
// reports.
// The scratch volume is as large as the data volume; the agent empties it
// when done, and it goes with the pod.
func buildRestoreCheckCronJob(s *spec) *batchv1ac.CronJobApplyConfiguration {
	rc := s.backup.RestoreCheck
	podLabels := restoreCheckPodLabels(s.name)
	env := objectStoreEnv("RESTORE_", ArchivingOf(s.db), s.name, archiveCAPath)
	if s.db.Spec.Type == databasev1.MySQL {
		// A throwaway server of the image's mysqld, on a socket beside it.
		env = append(env, valueEnv("MYSQL_DATADIR", scratchMountPath+"/mysql/data"))
	} else {
		env = append(env, valueEnv("PGDATA", scratchMountPath+"/pgdata"))
	}
	if rc.Query != "" {
		env = append(env, valueEnv("CHECK_QUERY", rc.Query))
	}
	container := corev1ac.Container().
		WithName(RestoreCheckContainerName).
		WithImage(s.image).
		WithImagePullPolicy(corev1.PullIfNotPresent).
		WithCommand(agentBinary, "restore-check", "--engine="+string(s.db.Spec.Type), "--termination-log="+corev1.TerminationMessagePathDefault).
		WithEnv(env...).
		WithResources(corev1ac.ResourceRequirements().
			WithRequests(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("256Mi")}).
			WithLimits(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")})).
		WithSecurityContext(containerSecurityContext()).
		WithVolumeMounts(
			corev1ac.VolumeMount().WithName(agentVolumeName).WithMountPath(agentMountPath),
			corev1ac.VolumeMount().WithName(scratchVolumeName).WithMountPath(scratchMountPath)).
		WithVolumeMounts(archiveCAMounts(s)...)
	size := s.db.Spec.Storage.Size
	// One attempt per run: a failed check is the finding.
	return buildJobCronJob(s, jobCronJob{name: RestoreCheckName(s.name), component: ComponentRestoreCheck, schedule: rc.Schedule,
		podLabels: podLabels, history: 1, backoffLimit: 0,
		pod: corev1ac.PodSpec().
			WithInitContainers(agentCopyContainer(s)).
			WithContainers(container).
			WithVolumes(
				corev1ac.Volume().WithName(agentVolumeName).WithEmptyDir(corev1ac.EmptyDirVolumeSource()),
				corev1ac.Volume().WithName(scratchVolumeName).WithEmptyDir(corev1ac.EmptyDirVolumeSource().WithSizeLimit(size))).
			WithVolumes(ownArchiveVolumes(s)...)})
}
