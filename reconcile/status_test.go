package reconcile

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

func statusTestDatabase(replicas int32, backup bool) *databasev1.Database {
	return &databasev1.Database{
		ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "shop", Generation: 4},
		Spec: databasev1.DatabaseSpec{
			Type: databasev1.PostgreSQL, Version: "16", Replicas: &replicas,
			Storage: databasev1.StorageSpec{Size: resource.MustParse("1Gi")},
			Backup:  &databasev1.BackupSpec{Enabled: backup},
		},
	}
}

// sts is a StatefulSet status as the StatefulSet controller reports it.
func sts(replicas, ready, updated int32, settled bool) *appsv1.StatefulSet {
	s := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Generation: 2}}
	s.Status = appsv1.StatefulSetStatus{
		ObservedGeneration: 2, Replicas: replicas, ReadyReplicas: ready, UpdatedReplicas: updated,
		CurrentRevision: "r1", UpdateRevision: "r1",
	}
	if !settled {
		s.Status.UpdateRevision = "r2"
	}
	return s
}

func TestComputeStatusPhases(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	cases := []struct {
		name        string
		o           observed
		phase       databasev1.Phase
		ready       metav1.ConditionStatus
		progressing string
	}{
		{"no StatefulSet", observed{}, databasev1.PhasePending, metav1.ConditionFalse, "Creating"},
		{"none ready", observed{statefulSet: sts(3, 0, 3, true)}, databasev1.PhaseCreating, metav1.ConditionFalse, "WaitingForReplicas"},
		{"one of three", observed{statefulSet: sts(3, 1, 3, true)}, databasev1.PhasePartiallyReady, metav1.ConditionFalse, "WaitingForReplicas"},
		{"scaling up", observed{statefulSet: sts(2, 2, 2, true)}, databasev1.PhasePartiallyReady, metav1.ConditionFalse, "Scaling"},
		{"rolling update", observed{statefulSet: sts(3, 3, 1, false)}, databasev1.PhasePartiallyReady, metav1.ConditionFalse, "RollingUpdate"},
		{"all ready", observed{statefulSet: sts(3, 3, 3, true)}, databasev1.PhaseReady, metav1.ConditionTrue, "Stable"},
		{"resizing", observed{statefulSet: sts(3, 3, 3, true), resizing: true}, databasev1.PhasePartiallyReady, metav1.ConditionFalse, "Resizing"},
		{"degraded", observed{statefulSet: sts(3, 3, 3, true), degraded: &degradation{"StorageResizeFailed", "no"}}, databasev1.PhaseFailed, metav1.ConditionFalse, "Stable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			s := computeStatus(statusTestDatabase(3, false), tc.o, now)
			g.Expect(s.Phase).To(Equal(tc.phase))
			g.Expect(s.Ready).To(Equal(tc.phase == databasev1.PhaseReady))
			g.Expect(s.ObservedGeneration).To(Equal(int64(4)))
			g.Expect(s.Selector).To(Equal("app.kubernetes.io/instance=orders,app.kubernetes.io/managed-by=database-operator,app.kubernetes.io/name=database"))
			g.Expect(meta.FindStatusCondition(s.Conditions, databasev1.ConditionReady).Status).To(Equal(tc.ready))
			g.Expect(meta.FindStatusCondition(s.Conditions, databasev1.ConditionProgressing).Reason).To(Equal(tc.progressing))
			degraded := meta.FindStatusCondition(s.Conditions, databasev1.ConditionDegraded)
			if tc.o.degraded != nil {
				g.Expect(degraded.Status).To(Equal(metav1.ConditionTrue))
				g.Expect(degraded.Reason).To(Equal(tc.o.degraded.reason))
			} else {
				g.Expect(degraded.Status).To(Equal(metav1.ConditionFalse))
			}
			g.Expect(meta.FindStatusCondition(s.Conditions, databasev1.ConditionBackupReady)).To(BeNil())
			for _, c := range s.Conditions {
				g.Expect(c.ObservedGeneration).To(Equal(int64(4)))
			}
		})
	}
}

// A condition's LastTransitionTime moves only when its status moves.
func TestComputeStatusKeepsTransitionTimes(t *testing.T) {
	g := NewWithT(t)
	t0 := metav1.NewTime(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(time.Hour))
	db := statusTestDatabase(3, false)
	db.Status = computeStatus(db, observed{statefulSet: sts(3, 1, 3, true)}, t0)

	again := computeStatus(db, observed{statefulSet: sts(3, 2, 3, true)}, t1)
	for _, c := range again.Conditions {
		g.Expect(c.LastTransitionTime).To(Equal(t0), c.Type)
	}
	db.Status = again
	ready := computeStatus(db, observed{statefulSet: sts(3, 3, 3, true)}, t1)
	g.Expect(meta.FindStatusCondition(ready.Conditions, databasev1.ConditionReady).LastTransitionTime).To(Equal(t1))
	g.Expect(meta.FindStatusCondition(ready.Conditions, databasev1.ConditionDegraded).LastTransitionTime).To(Equal(t0))
}

func TestComputeStatusBackup(t *testing.T) {
	g := NewWithT(t)
	now := metav1.NewTime(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	db := statusTestDatabase(1, true)

	none := computeStatus(db, observed{statefulSet: sts(1, 1, 1, true), cronJob: &batchv1.CronJob{}}, now)
	g.Expect(none.LastBackup).To(BeNil(), "never invented")
	g.Expect(meta.FindStatusCondition(none.Conditions, databasev1.ConditionBackupReady).Status).To(Equal(metav1.ConditionUnknown))

	last := metav1.NewTime(time.Date(2026, 11, 26, 2, 0, 31, 0, time.UTC))
	cj := &batchv1.CronJob{Status: batchv1.CronJobStatus{LastSuccessfulTime: &last}}
	done := computeStatus(db, observed{statefulSet: sts(1, 1, 1, true), cronJob: cj}, now)
	g.Expect(done.LastBackup).To(Equal(&last))
	c := meta.FindStatusCondition(done.Conditions, databasev1.ConditionBackupReady)
	g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
	g.Expect(c.Message).To(ContainSubstring("2026-11-26T02:00:31Z"))

	// Backup disabled again: the condition goes away.
	db.Status = done
	db.Spec.Backup.Enabled = false
	off := computeStatus(db, observed{statefulSet: sts(1, 1, 1, true)}, now)
	g.Expect(meta.FindStatusCondition(off.Conditions, databasev1.ConditionBackupReady)).To(BeNil())
	g.Expect(off.LastBackup).To(BeNil())
}

func TestComputeStatusServiceMonitorSkipped(t *testing.T) {
	g := NewWithT(t)
	s := computeStatus(statusTestDatabase(1, false), observed{statefulSet: sts(1, 1, 1, true), serviceMonitorSkipped: true}, metav1.Now())
	c := meta.FindStatusCondition(s.Conditions, databasev1.ConditionReady)
	g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
	g.Expect(c.Message).To(ContainSubstring("monitoring.coreos.com"))
}

// TestComputeStatusMonitoringSkipped: the Ready message names exactly the
// monitoring objects that could not be created.
func TestComputeStatusMonitoringSkipped(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		serviceMonitor, rule bool
		want                 string
	}{
		{"nothing skipped", false, false, "1/1 replicas ready"},
		{"ServiceMonitor only", true, false, "1/1 replicas ready; no ServiceMonitor created: the monitoring.coreos.com API is not installed"},
		{"PrometheusRule only", false, true, "1/1 replicas ready; no PrometheusRule created: the monitoring.coreos.com API is not installed"},
		{"both", true, true, "1/1 replicas ready; no ServiceMonitor or PrometheusRule created: the monitoring.coreos.com API is not installed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			s := computeStatus(statusTestDatabase(1, false), observed{statefulSet: sts(1, 1, 1, true),
				serviceMonitorSkipped: tc.serviceMonitor, prometheusRuleSkipped: tc.rule}, metav1.Now())
			g.Expect(meta.FindStatusCondition(s.Conditions, databasev1.ConditionReady).Message).To(Equal(tc.want))
		})
	}
}

// The Ready condition remembers that a Database has been Ready, so the
// "Ready" Event fires once, not after every scale-up or outage.
func TestFirstReady(t *testing.T) {
	g := NewWithT(t)
	now := metav1.Now()
	db := statusTestDatabase(3, false)
	steps := []struct {
		o     observed
		first bool
	}{
		{observed{}, false},
		{observed{statefulSet: sts(3, 0, 3, true)}, false},
		{observed{statefulSet: sts(3, 1, 3, true)}, false},
		{observed{statefulSet: sts(3, 3, 3, true)}, true},
		{observed{statefulSet: sts(3, 2, 3, true)}, false},
		{observed{statefulSet: sts(3, 0, 3, true)}, false},
		{observed{statefulSet: sts(3, 3, 3, true)}, false},
	}
	for i, step := range steps {
		next := computeStatus(db, step.o, now)
		g.Expect(firstReady(db.Status, next)).To(Equal(step.first), "step %d", i)
		if i >= 4 && !next.Ready {
			g.Expect(meta.FindStatusCondition(next.Conditions, databasev1.ConditionReady).Reason).To(Equal("Unavailable"), "step %d", i)
		}
		db.Status = next
	}
}

// BackupReady follows the latest backup Job: a failed run turns it False with
// the Job's reason even when an older backup succeeded; lastBackup stays the
// last success.
func TestComputeStatusBackupJobs(t *testing.T) {
	g := NewWithT(t)
	now := metav1.NewTime(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	last := metav1.NewTime(time.Date(2026, 11, 25, 2, 0, 40, 0, time.UTC))
	db := statusTestDatabase(1, true)
	cj := &batchv1.CronJob{Status: batchv1.CronJobStatus{LastSuccessfulTime: &last}}
	failed := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "orders-backup-29000000"}, Status: batchv1.JobStatus{
		Conditions: []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit"}},
	}}
	s := computeStatus(db, observed{statefulSet: sts(1, 1, 1, true), cronJob: cj, lastBackupJob: failed}, now)
	c := meta.FindStatusCondition(s.Conditions, databasev1.ConditionBackupReady)
	g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(c.Reason).To(Equal("BackupFailed"))
	g.Expect(c.Message).To(And(ContainSubstring("orders-backup-29000000"), ContainSubstring("backoff limit"), ContainSubstring("2026-11-25T02:00:40Z")))
	g.Expect(s.LastBackup).To(Equal(&last))

	running := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "orders-backup-29000001"}}
	s = computeStatus(db, observed{statefulSet: sts(1, 1, 1, true), cronJob: cj, lastBackupJob: running}, now)
	g.Expect(meta.FindStatusCondition(s.Conditions, databasev1.ConditionBackupReady).Status).To(Equal(metav1.ConditionTrue))

	s = computeStatus(db, observed{statefulSet: sts(1, 1, 1, true), cronJob: &batchv1.CronJob{}, lastBackupJob: failed}, now)
	c = meta.FindStatusCondition(s.Conditions, databasev1.ConditionBackupReady)
	g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(s.LastBackup).To(BeNil(), "never invented")
}
