package reconcile_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// backupJob creates a Job the way the CronJob controller does from the
// backup CronJob's template (same labels), then gives it a terminal status.
func backupJob(t *testing.T, g *WithT, ns, db, name string, failed bool) {
	ctx := ctxFor(t)
	cj := get(ctx, g, ns, db+"-backup", &batchv1.CronJob{})
	tpl := cj.Spec.JobTemplate
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: tpl.Labels},
		Spec:       *tpl.Spec.DeepCopy(),
	}
	g.Expect(env.Client.Create(ctx, job)).To(Succeed())
	start := metav1.NewTime(time.Now().Add(-time.Minute).Truncate(time.Second))
	end := metav1.NewTime(time.Now().Truncate(time.Second))
	job.Status.StartTime = &start
	if failed {
		job.Status.Failed = 3
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit", LastTransitionTime: end},
			{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit", LastTransitionTime: end},
		}
	} else {
		job.Status.Succeeded = 1
		job.Status.CompletionTime = &end
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: end},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: end},
		}
	}
	g.Expect(env.Client.Status().Update(ctx, job)).To(Succeed())
}

// TestBackupReadyFollowsJobs: BackupReady comes from the backup Jobs' real
// outcome: the latest Job failing turns it False with the reason, even after
// an earlier success; lastBackup stays the CronJob's last success.
func TestBackupReadyFollowsJobs(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)
	db := readyDatabase(ctx, g, newDatabase(ns, "pg", withBackup(true)))
	key := client.ObjectKeyFromObject(db)
	waitObserved(ctx, g, key, conditionIs(databasev1.ConditionBackupReady, metav1.ConditionUnknown, "NoBackupYet"))

	backupJob(t, g, ns, "pg", "pg-backup-1", false)
	success := time.Now().Add(-time.Hour).Truncate(time.Second)
	setLastSuccessfulBackup(ctx, g, ns, "pg-backup", success)
	ok := waitObserved(ctx, g, key, conditionIs(databasev1.ConditionBackupReady, metav1.ConditionTrue, "BackupSucceeded"))
	g.Expect(ok.Status.LastBackup.Time.Equal(success)).To(BeTrue())

	time.Sleep(1100 * time.Millisecond) // a later creationTimestamp for the next Job
	backupJob(t, g, ns, "pg", "pg-backup-2", true)
	failed := waitObserved(ctx, g, key, conditionIs(databasev1.ConditionBackupReady, metav1.ConditionFalse, "BackupFailed"))
	g.Expect(condition(g, failed, databasev1.ConditionBackupReady).Message).To(
		And(ContainSubstring("pg-backup-2"), ContainSubstring("backoff limit")))
	g.Expect(failed.Status.LastBackup.Time.Equal(success)).To(BeTrue(), "lastBackup is the last success, not the failed run")
	g.Expect(failed.Status.Ready).To(BeTrue(), "a failed backup does not make the database unavailable")
}
