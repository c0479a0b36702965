package reconcile

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/instance"
	"github.com/example/database-operator/render"
)

// Reasons of the Restored condition.
const (
	reasonRestoring        = "Restoring"
	reasonRestoreFailed    = "RestoreFailed"
	reasonRestoreSucceeded = "RestoreSucceeded"
)

// restoreOutcome is the Restored condition a reconcile reports; nil leaves
// the condition as it is.
type restoreOutcome struct {
	status          metav1.ConditionStatus
	reason, message string
}

// done says the restore finished: render no longer applies spec.restore.
func (o *restoreOutcome) done() bool { return o != nil && o.status == metav1.ConditionTrue }

// failed says the last attempt failed; the pod retries by itself.
func (o *restoreOutcome) failed() bool { return o != nil && o.reason == reasonRestoreFailed }

// decideRestore is where a restore stands, from the Database and its pod 0
// (nil when it does not exist). Once Restored is True it stays True: later
// restarts of pod 0 find an initialised data directory and load nothing.
// Until then, pod 0 Ready means the restore completed: initialisation is all
// or nothing, so a pod that serves has loaded the whole dump. A database
// container whose termination message is a restore failure (the restore
// script writes it) failed to load; its pod retries from scratch, and the
// outcome stays failed until a retry succeeds.
//
// The restore is also done when the StatefulSet exists without the
// restoring label on its pod template: the operator rendered it after the
// restore (Restored=True may not have reached the cache yet), or an
// operator from before the Restored condition did. Acting as if it were
// restoring would scale it down to pod 0 again.
func decideRestore(db *databasev1.Database, sts *appsv1.StatefulSet, pod0 *corev1.Pod) *restoreOutcome {
	if db.Spec.Restore == nil {
		return nil
	}
	if meta.IsStatusConditionTrue(db.Status.Conditions, databasev1.ConditionRestored) {
		return &restoreOutcome{status: metav1.ConditionTrue, reason: reasonRestoreSucceeded,
			message: meta.FindStatusCondition(db.Status.Conditions, databasev1.ConditionRestored).Message}
	}
	source := "the latest dump of Database " + db.Spec.Restore.FromDatabase
	if db.Spec.Restore.Backup != "" {
		source = fmt.Sprintf("dump %s of Database %s", db.Spec.Restore.Backup, db.Spec.Restore.FromDatabase)
	}
	if pit := db.Spec.Restore.PointInTime; pit != nil {
		target := "the end of the archive"
		if pit.TargetTime != "" {
			target = pit.TargetTime
		}
		source = fmt.Sprintf("the archive of Database %s to %s", db.Spec.Restore.FromDatabase, target)
	}
	podName := render.StatefulSetName(db.Name) + "-0"
	if sts != nil && sts.Spec.Template.Labels[render.LabelRestoring] != "true" {
		return &restoreOutcome{status: metav1.ConditionTrue, reason: reasonRestoreSucceeded,
			message: fmt.Sprintf("restored %s", source)}
	}
	if wasReady(db.Status) {
		// Restored by an operator from before the Restored condition: a
		// Database that has been Ready restored long ago. Running it as a
		// restore again would scale it down to pod 0.
		return &restoreOutcome{status: metav1.ConditionTrue, reason: reasonRestoreSucceeded,
			message: fmt.Sprintf("restored %s (the Database has been Ready since)", source)}
	}
	if pod0 == nil {
		return &restoreOutcome{status: metav1.ConditionFalse, reason: reasonRestoring,
			message: fmt.Sprintf("waiting for pod %s to restore %s", podName, source)}
	}
	if podReady(pod0) {
		return &restoreOutcome{status: metav1.ConditionTrue, reason: reasonRestoreSucceeded,
			message: fmt.Sprintf("pod %s restored %s", podName, source)}
	}
	if reason := restoreFailure(pod0); reason != "" {
		return &restoreOutcome{status: metav1.ConditionFalse, reason: reasonRestoreFailed,
			message: fmt.Sprintf("pod %s could not restore %s: %s; it empties its data directory and tries again", podName, source, reason)}
	}
	return &restoreOutcome{status: metav1.ConditionFalse, reason: reasonRestoring,
		message: fmt.Sprintf("pod %s is restoring %s", podName, source)}
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// restoreFailure is the reason in the database container's (or the
// restore init container's) termination message, current or last, when it
// is a restore failure; "" otherwise.
// A server under the agent is restarted in place, so its container does
// not terminate: the agent reports the termination message instead.
func restoreFailure(pod *corev1.Pod) string {
	if raw, ok := pod.Annotations[instance.AnnotationReport]; ok {
		if r, err := instance.ParseReport(raw); err == nil {
			if _, reason, found := strings.Cut(r.Message, render.RestoreFailedPrefix); found {
				return strings.TrimSpace(reason)
			}
		}
	}
	// A point-in-time restore runs in pod 0's restore init container.
	statuses := append(append([]corev1.ContainerStatus(nil), pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...)
	for _, cs := range statuses {
		if cs.Name != render.DatabaseContainerName && cs.Name != render.RestoreInitContainerName {
			continue
		}
		for _, t := range []*corev1.ContainerStateTerminated{cs.State.Terminated, cs.LastTerminationState.Terminated} {
			if t != nil && strings.HasPrefix(t.Message, render.RestoreFailedPrefix) {
				return strings.TrimSpace(strings.TrimPrefix(t.Message, render.RestoreFailedPrefix))
			}
		}
	}
	return ""
}

// restoringPod reads pod 0 of a Database with spec.restore from the cache; nil
// without spec.restore or when there is no such pod. decideRestore judges
// what it means.
func (r *Reconciler) restoringPod(ctx context.Context, db *databasev1.Database) (*corev1.Pod, error) {
	if db.Spec.Restore == nil {
		return nil, nil
	}
	pod, err := r.getOptional(ctx, db, render.StatefulSetName(db.Name)+"-0", &corev1.Pod{})
	if err != nil || pod == nil {
		return nil, err
	}
	return pod.(*corev1.Pod), nil
}
