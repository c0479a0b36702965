package reconcile

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/instance"
	"github.com/example/database-operator/render"
)

func stsWith(podLabels map[string]string) *appsv1.StatefulSet {
	s := &appsv1.StatefulSet{}
	s.Spec.Template.Labels = podLabels
	return s
}

func TestDecideRestore(t *testing.T) {
	restoring := func(conditions ...metav1.Condition) *databasev1.Database {
		db := &databasev1.Database{ObjectMeta: metav1.ObjectMeta{Name: "copy", Namespace: "shop"}}
		db.Spec.Restore = &databasev1.RestoreSpec{FromDatabase: "orders"}
		db.Status.Conditions = conditions
		return db
	}
	pod := func(ready bool, state, last *corev1.ContainerStateTerminated) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "copy-0"}}
		status := corev1.ConditionFalse
		if ready {
			status = corev1.ConditionTrue
		}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{
			Name:                 render.DatabaseContainerName,
			State:                corev1.ContainerState{Terminated: state},
			LastTerminationState: corev1.ContainerState{Terminated: last},
		}}
		return p
	}
	reported := func(p *corev1.Pod, r instance.Report) *corev1.Pod {
		p.Annotations = map[string]string{instance.AnnotationReport: r.String()}
		return p
	}
	pointInTime := func(target string) *databasev1.Database {
		db := restoring()
		db.Spec.Restore.PointInTime = &databasev1.PointInTimeSpec{TargetTime: target}
		return db
	}
	// A point-in-time restore fails in pod 0's restore init container.
	initFailed := func(last *corev1.ContainerStateTerminated) *corev1.Pod {
		p := pod(false, nil, nil)
		p.Status.InitContainerStatuses = []corev1.ContainerStatus{{
			Name: render.RestoreInitContainerName, LastTerminationState: corev1.ContainerState{Terminated: last},
		}}
		return p
	}
	walMissing := &corev1.ContainerStateTerminated{ExitCode: 1, Message: render.RestoreFailedPrefix + "WAL segment 000000010000000000000007 is missing from the archive"}
	failed := &corev1.ContainerStateTerminated{ExitCode: 1, Message: render.RestoreFailedPrefix + "no dump named orders-<timestamp>.sql.gz in /restore"}
	oom := &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}
	restored := metav1.Condition{Type: databasev1.ConditionRestored, Status: metav1.ConditionTrue, Reason: reasonRestoreSucceeded, Message: "pod copy-0 restored the latest dump of Database orders"}

	for _, tc := range []struct {
		name       string
		db         *databasev1.Database
		sts        *appsv1.StatefulSet
		pod0       *corev1.Pod
		want       *restoreOutcome
		wantInText string
	}{
		{name: "no restore", db: &databasev1.Database{}, want: nil},
		{name: "no pod yet", db: restoring(), want: &restoreOutcome{status: metav1.ConditionFalse, reason: reasonRestoring}, wantInText: "waiting for pod copy-0"},
		{name: "loading", db: restoring(), pod0: pod(false, nil, nil), want: &restoreOutcome{status: metav1.ConditionFalse, reason: reasonRestoring}, wantInText: "is restoring the latest dump of Database orders"},
		{name: "killed (not a restore failure) is still restoring", db: restoring(), pod0: pod(false, nil, oom), want: &restoreOutcome{status: metav1.ConditionFalse, reason: reasonRestoring}},
		{name: "failed, retrying", db: restoring(), pod0: pod(false, nil, failed), want: &restoreOutcome{status: metav1.ConditionFalse, reason: reasonRestoreFailed}, wantInText: "no dump named orders-<timestamp>.sql.gz in /restore"},
		{name: "failed, terminated now", db: restoring(), pod0: pod(false, failed, nil), want: &restoreOutcome{status: metav1.ConditionFalse, reason: reasonRestoreFailed}},
		{name: "failed under the agent: its report carries the termination message (the container does not terminate)", db: restoring(),
			pod0: reported(pod(false, nil, nil), instance.Report{Message: "retrying after failure 3: " + failed.Message}),
			want: &restoreOutcome{status: metav1.ConditionFalse, reason: reasonRestoreFailed}, wantInText: "could not restore the latest dump of Database orders: no dump named orders-<timestamp>.sql.gz in /restore"},
		{name: "under the agent, another failure is still restoring", db: restoring(),
			pod0: reported(pod(false, nil, nil), instance.Report{Message: "retrying after failure 3"}),
			want: &restoreOutcome{status: metav1.ConditionFalse, reason: reasonRestoring}},
		{name: "ready: restored (an earlier failure is history)", db: restoring(), pod0: pod(true, nil, failed), want: &restoreOutcome{status: metav1.ConditionTrue, reason: reasonRestoreSucceeded}, wantInText: "pod copy-0 restored"},
		{name: "once restored, stays restored", db: restoring(restored), pod0: nil, want: &restoreOutcome{status: metav1.ConditionTrue, reason: reasonRestoreSucceeded}, wantInText: restored.Message},
		{name: "restored before the condition existed: Ready before is done, not restored again", db: restoring(metav1.Condition{Type: databasev1.ConditionReady, Status: metav1.ConditionTrue, Reason: reasonAllReplicasReady}),
			want: &restoreOutcome{status: metav1.ConditionTrue, reason: reasonRestoreSucceeded}, wantInText: "has been Ready since"},
		{name: "StatefulSet still restoring", db: restoring(), sts: stsWith(map[string]string{render.LabelRestoring: "true"}), pod0: pod(false, nil, nil),
			want: &restoreOutcome{status: metav1.ConditionFalse, reason: reasonRestoring}},
		{name: "StatefulSet rendered after the restore, Restored not yet in the cache", db: restoring(), sts: stsWith(map[string]string{}),
			want: &restoreOutcome{status: metav1.ConditionTrue, reason: reasonRestoreSucceeded}},
		{name: "point in time, restoring", db: pointInTime("2026-12-02T23:15:00Z"), pod0: pod(false, nil, nil),
			want: &restoreOutcome{status: metav1.ConditionFalse, reason: reasonRestoring}, wantInText: "is restoring the archive of Database orders to 2026-12-02T23:15:00Z"},
		{name: "point in time, latest, failed in the restore init container", db: pointInTime(""), pod0: initFailed(walMissing),
			want:       &restoreOutcome{status: metav1.ConditionFalse, reason: reasonRestoreFailed},
			wantInText: "could not restore the archive of Database orders to the end of the archive: WAL segment 000000010000000000000007 is missing"},
		{name: "point in time, restored", db: pointInTime(""), pod0: pod(true, nil, nil),
			want: &restoreOutcome{status: metav1.ConditionTrue, reason: reasonRestoreSucceeded}, wantInText: "restored the archive of Database orders"},
		{name: "once restored, a failing pod does not undo it", db: restoring(restored), pod0: pod(false, failed, nil), want: &restoreOutcome{status: metav1.ConditionTrue, reason: reasonRestoreSucceeded}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got := decideRestore(tc.db, tc.sts, tc.pod0)
			if tc.want == nil {
				g.Expect(got).To(BeNil())
				return
			}
			g.Expect(got).NotTo(BeNil())
			g.Expect(got.status).To(Equal(tc.want.status))
			g.Expect(got.reason).To(Equal(tc.want.reason))
			g.Expect(got.message).To(ContainSubstring(tc.wantInText))
			g.Expect(got.done()).To(Equal(tc.want.status == metav1.ConditionTrue))
		})
	}
}

// A failed restore makes the Database Degraded (phase Failed) with the
// reason, while the pod retries; Progressing says the restore holds the
// replicas back.
func TestComputeStatusRestore(t *testing.T) {
	g := NewWithT(t)
	db := &databasev1.Database{}
	db.Spec.Restore = &databasev1.RestoreSpec{FromDatabase: "orders"}
	o := observed{restore: &restoreOutcome{status: metav1.ConditionFalse, reason: reasonRestoreFailed, message: "pod copy-0 could not restore: gunzip failed"}}
	s := computeStatus(db, o, metav1.Now())
	g.Expect(s.Phase).To(Equal(databasev1.PhaseFailed))
	g.Expect(s.Conditions).To(ContainElement(And(HaveField("Type", databasev1.ConditionDegraded), HaveField("Status", metav1.ConditionTrue),
		HaveField("Reason", reasonRestoreFailed), HaveField("Message", ContainSubstring("gunzip failed")))))
	g.Expect(s.Conditions).To(ContainElement(And(HaveField("Type", databasev1.ConditionRestored), HaveField("Status", metav1.ConditionFalse))))
	g.Expect(s.Conditions).To(ContainElement(And(HaveField("Type", databasev1.ConditionProgressing), HaveField("Reason", reasonRestoring))))

	o.restore = &restoreOutcome{status: metav1.ConditionTrue, reason: reasonRestoreSucceeded, message: "pod copy-0 restored"}
	s = computeStatus(db, o, metav1.Now())
	g.Expect(s.Conditions).To(ContainElement(And(HaveField("Type", databasev1.ConditionRestored), HaveField("Status", metav1.ConditionTrue))))
	g.Expect(s.Conditions).To(ContainElement(And(HaveField("Type", databasev1.ConditionDegraded), HaveField("Status", metav1.ConditionFalse))))
}
