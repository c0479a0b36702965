package reconcile_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/instance"
	"github.com/example/database-operator/render"
)

func withS3(secret string) func(*databasev1.Database) {
	return func(db *databasev1.Database) {
		withBackup(true)(db)
		db.Spec.Backup.S3 = &databasev1.ObjectStoreSpec{Endpoint: "http://s3.storage.svc:8333", Bucket: "backups", Path: "team-a", CredentialsSecret: secret}
	}
}

func s3Secret(ns, name string, keys ...string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{}}
	for _, k := range keys {
		s.Data[k] = []byte("value of " + k)
	}
	return s
}

// TestObjectStoreSecretChecked: an archiving Database whose credentials
// Secret is missing, then lacks a key, is Degraded naming the field, the
// Secret and the key, and gets no StatefulSet (its pods could not start);
// once the Secret is complete the Database recovers.
func TestObjectStoreSecretChecked(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)
	db := createDatabase(ctx, g, newDatabase(ns, "pg", withS3("pg-s3")))
	key := client.ObjectKeyFromObject(db)
	waitObserved(ctx, g, key, phaseIs(databasev1.PhaseFailed),
		degradedWith("ObjectStoreSecretMissing", "Secret pg-s3", "spec.backup.s3.credentialsSecret", "does not exist", "access-key-id and secret-access-key"))
	absent(ctx, g, ns, "pg", &appsv1.StatefulSet{})
	absent(ctx, g, ns, "pg-backup", &batchv1.CronJob{})

	secret := s3Secret(ns, "pg-s3", render.S3AccessKeyIDKey)
	g.Expect(env.Client.Create(ctx, secret)).To(Succeed())
	touchAnnotation(ctx, g, key, "1")
	waitObserved(ctx, g, key, degradedWith("ObjectStoreSecretInvalid", "Secret pg-s3", "no key secret-access-key"))
	absent(ctx, g, ns, "pg", &appsv1.StatefulSet{})

	secret.Data[render.S3SecretAccessKeyKey] = []byte("the secret")
	g.Expect(env.Client.Update(ctx, secret)).To(Succeed())
	touchAnnotation(ctx, g, key, "2")
	waitObserved(ctx, g, key, conditionIs(databasev1.ConditionDegraded, metav1.ConditionFalse))
	get(ctx, g, ns, "pg", &appsv1.StatefulSet{})
	get(ctx, g, ns, "pg-backup", &batchv1.CronJob{})
	for _, e := range databaseEvents(ctx, g, ns, "pg") {
		g.Expect(e.Note).NotTo(ContainSubstring("the secret"), "no Event carries a key")
	}
}

// backupPod plays a finished pod of a base-backup Job: the labels of the
// CronJob's pod template, and a backup container that terminated with
// report as its termination message.
func backupPod(t *testing.T, g *WithT, ns, db, name string, exit int32, report instance.BackupReport) {
	ctx := ctxFor(t)
	cj := get(ctx, g, ns, db+"-backup", &batchv1.CronJob{})
	tpl := cj.Spec.JobTemplate.Spec.Template
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: tpl.Labels}, Spec: *tpl.Spec.DeepCopy()}
	g.Expect(env.Client.Create(ctx, pod)).To(Succeed())
	phase := corev1.PodSucceeded
	if exit != 0 {
		phase = corev1.PodFailed
	}
	pod.Status.Phase = phase
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: render.BackupContainerName, Image: tpl.Spec.Containers[0].Image,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: exit, Message: report.String(),
			FinishedAt: metav1.NewTime(time.Now().Truncate(time.Second))}}}}
	g.Expect(env.Client.Status().Update(ctx, pod)).To(Succeed())
}

// TestArchiveStatusFromBackupPods: the base-backup pods' reports become
// status.archive (the last base backup, the start of the recoverable
// window) and BackupReady; a failed run's own error reaches BackupReady,
// and the window stays where the last success put it. ContinuousArchiving
// is Unknown until a server reports an archived file.
func TestArchiveStatusFromBackupPods(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)
	g.Expect(env.Client.Create(ctx, s3Secret(ns, "pg-s3", render.S3AccessKeyIDKey, render.S3SecretAccessKeyKey))).To(Succeed())
	db := readyDatabase(ctx, g, newDatabase(ns, "pg", withS3("pg-s3")))
	key := client.ObjectKeyFromObject(db)
	waitObserved(ctx, g, key, conditionIs(databasev1.ConditionContinuousArchiving, metav1.ConditionUnknown, "NotArchivedYet"),
		conditionIs(databasev1.ConditionBackupReady, metav1.ConditionUnknown, "NoBackupYet"))

	end := time.Now().Add(-time.Minute).Truncate(time.Second).UTC()
	first := end.Add(-24 * time.Hour)
	backupJob(t, g, ns, "pg", "pg-backup-1", false)
	backupPod(t, g, ns, "pg", "pg-backup-1-abcde", 0, instance.BackupReport{ID: "20261203T060000Z", StartTime: end.Add(-time.Minute), EndTime: end, Size: 1 << 20, FirstRecoverable: first})
	ok := waitObserved(ctx, g, key, conditionIs(databasev1.ConditionBackupReady, metav1.ConditionTrue, "BackupSucceeded"))
	g.Expect(ok.Status.Archive).NotTo(BeNil())
	g.Expect(ok.Status.Archive.LastBaseBackup).To(Equal("20261203T060000Z"))
	g.Expect(ok.Status.Archive.LastBaseBackupTime.Time.Equal(end)).To(BeTrue())
	g.Expect(ok.Status.Archive.FirstRecoverableTime.Time.Equal(first)).To(BeTrue())
	g.Expect(condition(g, ok, databasev1.ConditionBackupReady).Message).To(ContainSubstring("last base backup 20261203T060000Z"))

	time.Sleep(1100 * time.Millisecond) // a later creationTimestamp for the next Job
	backupJob(t, g, ns, "pg", "pg-backup-2", true)
	backupPod(t, g, ns, "pg", "pg-backup-2-fghij", 1, instance.BackupReport{Error: "pg_basebackup: could not connect to server: connection refused"})
	failed := waitObserved(ctx, g, key, conditionIs(databasev1.ConditionBackupReady, metav1.ConditionFalse, "BackupFailed"))
	g.Expect(condition(g, failed, databasev1.ConditionBackupReady).Message).To(
		And(ContainSubstring("pg-backup-2"), ContainSubstring("connection refused")))
	g.Expect(failed.Status.Archive.LastBaseBackup).To(Equal("20261203T060000Z"), "the window stays where the last success put it")
}

// TestRestoreCheck: spec.backup.restoreCheck adds the CronJob
// <db>-restore-check; its pods' reports become BackupVerified (Unknown
// before the first); removing restoreCheck prunes the CronJob and the
// condition.
func TestRestoreCheck(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)
	g.Expect(env.Client.Create(ctx, s3Secret(ns, "pg-s3", render.S3AccessKeyIDKey, render.S3SecretAccessKeyKey))).To(Succeed())
	db := readyDatabase(ctx, g, newDatabase(ns, "pg", withS3("pg-s3"), func(db *databasev1.Database) {
		db.Spec.Backup.RestoreCheck = &databasev1.RestoreCheckSpec{Schedule: "0 6 * * *"}
	}))
	key := client.ObjectKeyFromObject(db)
	waitObserved(ctx, g, key, conditionIs(databasev1.ConditionBackupVerified, metav1.ConditionUnknown, "NotVerifiedYet"))
	cj := get(ctx, g, ns, "pg-restore-check", &batchv1.CronJob{})
	g.Expect(cj.Spec.Schedule).To(Equal("0 6 * * *"))
	controllerRefTo(g, cj, db)

	tpl := cj.Spec.JobTemplate.Spec.Template
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg-restore-check-1-abcde", Labels: tpl.Labels}, Spec: *tpl.Spec.DeepCopy()}
	g.Expect(env.Client.Create(ctx, pod)).To(Succeed())
	end := time.Now().Truncate(time.Second).UTC()
	pod.Status.Phase = corev1.PodSucceeded
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: render.RestoreCheckContainerName, Image: tpl.Spec.Containers[0].Image,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{FinishedAt: metav1.NewTime(end),
			Message: instance.RestoreCheckReport{Backup: "20261203T020000Z", StartTime: end.Add(-42 * time.Second), EndTime: end, Answer: "7"}.String()}}}}
	g.Expect(env.Client.Status().Update(ctx, pod)).To(Succeed())
	ok := waitObserved(ctx, g, key, conditionIs(databasev1.ConditionBackupVerified, metav1.ConditionTrue, "Verified"))
	g.Expect(condition(g, ok, databasev1.ConditionBackupVerified).Message).To(And(ContainSubstring("in 42s"), ContainSubstring(`answered "7"`)))
	g.Expect(ok.Status.Archive.LastVerifiedBackup).To(Equal("20261203T020000Z"))

	updateDatabase(ctx, g, key, func(db *databasev1.Database) { db.Spec.Backup.RestoreCheck = nil })
	waitObserved(ctx, g, key, func(g Gomega, db *databasev1.Database) {
		g.Expect(meta.FindStatusCondition(db.Status.Conditions, databasev1.ConditionBackupVerified)).To(BeNil())
	})
	absent(ctx, g, ns, "pg-restore-check", &batchv1.CronJob{})
}

// TestMySQLArchiving: a MySQL Database archiving to S3 gets the base-dump
// CronJob (the agent's base-backup --engine=mysql, as root, with the
// archive's environment) and its pods an agent that ships binary logs;
// ContinuousArchiving speaks of binary logs. A MySQL Database restoring a
// moment of that archive runs the restore among pod 0's init scripts, with
// the source's store in the database container's environment, and no
// PostgreSQL restore init container.
func TestMySQLArchiving(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)
	g.Expect(env.Client.Create(ctx, s3Secret(ns, "shop-s3", render.S3AccessKeyIDKey, render.S3SecretAccessKeyKey))).To(Succeed())
	mysql := func(db *databasev1.Database) { db.Spec.Type, db.Spec.Version = databasev1.MySQL, "8.4" }
	db := readyDatabase(ctx, g, newDatabase(ns, "shop", mysql, withS3("shop-s3")))
	waitObserved(ctx, g, client.ObjectKeyFromObject(db),
		conditionIs(databasev1.ConditionContinuousArchiving, metav1.ConditionUnknown, "NotArchivedYet"),
		func(g Gomega, db *databasev1.Database) {
			g.Expect(condition(g, db, databasev1.ConditionContinuousArchiving).Message).To(ContainSubstring("no binary log has been archived yet"))
		})
	cj := get(ctx, g, ns, "shop-backup", &batchv1.CronJob{})
	c := cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0]
	g.Expect(c.Command).To(ContainElement("--engine=mysql"))
	names := map[string]bool{}
	for _, e := range c.Env {
		names[e.Name] = true
	}
	g.Expect(names).To(And(HaveKey("DB_HOST"), HaveKey("MYSQL_PWD"), HaveKey("ARCHIVE_S3_BUCKET"), HaveKey("ARCHIVE_S3_SECRET_ACCESS_KEY")))
	sts := get(ctx, g, ns, "shop", &appsv1.StatefulSet{})
	g.Expect(sts.Spec.Template.Spec.Containers[0].Command).To(ContainElement("--archive-timeout=30s"))

	restored := createDatabase(ctx, g, newDatabase(ns, "shop-copy", mysql, func(db *databasev1.Database) {
		db.Spec.Restore = &databasev1.RestoreSpec{FromDatabase: "shop", PointInTime: &databasev1.PointInTimeSpec{
			TargetTime: "2026-12-02T09:15:00Z",
			S3:         &databasev1.ObjectStoreSpec{Endpoint: "http://s3.storage.svc:8333", Bucket: "backups", Path: "team-a", CredentialsSecret: "shop-s3"}}}
	}))
	sts = get(ctx, g, ns, "shop-copy", &appsv1.StatefulSet{})
	for _, ic := range sts.Spec.Template.Spec.InitContainers {
		g.Expect(ic.Name).NotTo(Equal(render.RestoreInitContainerName))
	}
	env := map[string]string{}
	for _, e := range sts.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	g.Expect(env).To(HaveKeyWithValue("RESTORE_TARGET_TIME", "2026-12-02T09:15:00Z"))
	g.Expect(env).To(HaveKeyWithValue("RESTORE_DATABASE", "shop"))
	g.Expect(get(ctx, g, ns, "shop-copy-config", &corev1.ConfigMap{}).Data["initdb-restore.sh"]).To(ContainSubstring("restore-mysql"))
	waitObserved(ctx, g, client.ObjectKeyFromObject(restored), conditionIs(databasev1.ConditionRestored, metav1.ConditionFalse, "Restoring"))
}
