package reconcile

import (
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	databasev1ac "github.com/example/database-operator/apis/database/v1/applyconfiguration/database/v1"
	"github.com/example/database-operator/render"
)

// degradation is a problem only a human can fix: it sets Degraded=True with
// the reason, and the reconciler does not retry it on its own.
type degradation struct {
	reason, message string
}

// observed is what one reconcile saw of a Database's children.
type observed struct {
	// statefulSet is nil until it exists.
	statefulSet *appsv1.StatefulSet
	// resizing is true while the StatefulSet is re-created for bigger volumes.
	resizing bool
	// cronJob is the backup CronJob; nil with backup disabled.
	cronJob *batchv1.CronJob
	// lastBackupJob is the most recently created backup Job, if any.
	lastBackupJob *batchv1.Job
	// backupRuns are the finished base-backup pods (spec.backup.s3).
	backupRuns []backupRun
	// checkRuns are the finished restore-check pods.
	checkRuns []checkRun
	// degraded is the problem found, if any.
	degraded *degradation
	// serviceMonitorSkipped is true when metrics are on but the
	// ServiceMonitor kind is not served.
	serviceMonitorSkipped bool
	// prometheusRuleSkipped is true when metrics are on but the
	// PrometheusRule kind is not served.
	prometheusRuleSkipped bool
	// restore is the Restored condition to report; nil leaves it as it is.
	restore *restoreOutcome
	// conflictRetry is when to take a StatefulSet's fields back from
	// another writer; 0 for no wait.
	conflictRetry time.Duration
	// primary is who holds the primary role and what each pod reported;
	// nil until decided (the status keeps what it said).
	primary *primaryOutcome
}

// primaryProblem is why no replica could take over from an unavailable
// primary; reported as Degraded without stopping any apply.
func (o observed) primaryProblem() *degradation {
	if o.primary == nil {
		return nil
	}
	return o.primary.decision.problem
}

// computeStatus derives the Database's status from what was observed.
// Conditions start from the current ones so that LastTransitionTime moves
// only when a condition's status does; now stamps the ones that move.
func computeStatus(db *databasev1.Database, o observed, now metav1.Time) databasev1.DatabaseStatus {
	desired := int32(1)
	if db.Spec.Replicas != nil {
		desired = *db.Spec.Replicas
	}
	s := databasev1.DatabaseStatus{
		Selector:           labels.SelectorFromSet(render.SelectorLabels(db.Name)).String(),
		ObservedGeneration: db.Generation,
		Conditions:         append([]metav1.Condition(nil), db.Status.Conditions...),
	}

	var ready, updated, current int32
	settled := false
	if sts := o.statefulSet; sts != nil {
		ready, updated, current = sts.Status.ReadyReplicas, sts.Status.UpdatedReplicas, sts.Status.Replicas
		settled = sts.Status.ObservedGeneration >= sts.Generation &&
			sts.Status.CurrentRevision == sts.Status.UpdateRevision
	}
	s.Replicas = ready
	allReady := o.statefulSet != nil && !o.resizing && settled && ready == desired && updated == desired && current == desired
	// A failed restore needs a human only if retrying cannot fix it; the pod
	// retries meanwhile, so it is reported without stopping the applies.
	degraded := o.degraded
	if degraded == nil && o.restore.failed() {
		degraded = &degradation{reason: reasonRestoreFailed, message: o.restore.message}
	}
	if degraded == nil {
		degraded = o.primaryProblem()
	}
	if degraded == nil && o.primary != nil {
		degraded = volumeProblem(o.primary.members)
	}
	s.CurrentPrimary = db.Status.CurrentPrimary
	s.Instances = db.Status.Instances
	s.LastPrimaryChange = db.Status.LastPrimaryChange
	s.Switchover = db.Status.Switchover
	if p := o.primary; p != nil {
		d := p.decision
		if d.primary != "" {
			s.CurrentPrimary = d.primary
		}
		if d.change != nil {
			s.LastPrimaryChange = d.change.DeepCopy()
		}
		s.Switchover = d.switchover.DeepCopy()
		s.Instances = instanceStatuses(p.members, s.CurrentPrimary)
	}

	switch {
	case degraded != nil:
		s.Phase = databasev1.PhaseFailed
	case o.statefulSet == nil:
		s.Phase = databasev1.PhasePending
	case ready == 0:
		s.Phase = databasev1.PhaseCreating
	case allReady:
		s.Phase = databasev1.PhaseReady
	default:
		s.Phase = databasev1.PhasePartiallyReady
	}
	s.Ready = s.Phase == databasev1.PhaseReady

	set := func(typ string, status metav1.ConditionStatus, reason, message string) {
		meta.SetStatusCondition(&s.Conditions, metav1.Condition{
			Type: typ, Status: status, Reason: reason, Message: message,
			ObservedGeneration: db.Generation, LastTransitionTime: now,
		})
	}

	readyMessage := fmt.Sprintf("%d/%d replicas ready", ready, desired)
	var skipped []string
	if o.serviceMonitorSkipped {
		skipped = append(skipped, "ServiceMonitor")
	}
	if o.prometheusRuleSkipped {
		skipped = append(skipped, "PrometheusRule")
	}
	if len(skipped) > 0 {
		readyMessage += "; no " + strings.Join(skipped, " or ") + " created: the monitoring.coreos.com API is not installed"
	}
	switch {
	case s.Ready:
		set(databasev1.ConditionReady, metav1.ConditionTrue, reasonAllReplicasReady, readyMessage)
	case wasReady(db.Status):
		set(databasev1.ConditionReady, metav1.ConditionFalse, reasonUnavailable, readyMessage+", phase "+string(s.Phase))
	default:
		set(databasev1.ConditionReady, metav1.ConditionFalse, string(s.Phase), readyMessage)
	}

	switch {
	case o.resizing:
		set(databasev1.ConditionProgressing, metav1.ConditionTrue, "Resizing", "re-creating the StatefulSet for the new volume size")
	case o.restore != nil && !o.restore.done():
		set(databasev1.ConditionProgressing, metav1.ConditionTrue, reasonRestoring, o.restore.message+"; the replicas follow once it is done")
	case o.statefulSet == nil:
		set(databasev1.ConditionProgressing, metav1.ConditionTrue, "Creating", "creating the StatefulSet")
	case !settled || updated != current:
		set(databasev1.ConditionProgressing, metav1.ConditionTrue, "RollingUpdate", fmt.Sprintf("%d/%d replicas updated", updated, desired))
	case current != desired:
		set(databasev1.ConditionProgressing, metav1.ConditionTrue, "Scaling", fmt.Sprintf("scaling from %d to %d replicas", current, desired))
	case ready != desired:
		set(databasev1.ConditionProgressing, metav1.ConditionTrue, "WaitingForReplicas", readyMessage)
	default:
		set(databasev1.ConditionProgressing, metav1.ConditionFalse, "Stable", "all replicas are up to date")
	}

	if degraded != nil {
		set(databasev1.ConditionDegraded, metav1.ConditionTrue, degraded.reason, degraded.message)
	} else {
		set(databasev1.ConditionDegraded, metav1.ConditionFalse, "AsExpected", "no problem found")
	}

	if o.restore != nil {
		set(databasev1.ConditionRestored, o.restore.status, o.restore.reason, o.restore.message)
	}

	archiving := render.ArchivingOf(db) != nil
	if archiving {
		view := archiveObservation{primary: s.CurrentPrimary, runs: o.backupRuns, files: archivedFiles(db)}
		if o.primary != nil {
			view.reports = archiverReports(o.primary.members)
		}
		s.Archive = lastVerified(archiveStatus(db.Status.Archive, view), o.checkRuns)
		status, reason, msg := archivingCondition(s.Archive, view)
		set(databasev1.ConditionContinuousArchiving, status, reason, msg)
		if db.Spec.Backup.RestoreCheck != nil {
			if status, reason, msg, ok := verifiedCondition(o.checkRuns); ok {
				set(databasev1.ConditionBackupVerified, status, reason, msg)
			} else if meta.FindStatusCondition(s.Conditions, databasev1.ConditionBackupVerified) == nil {
				set(databasev1.ConditionBackupVerified, metav1.ConditionUnknown, reasonNotVerifiedYet, fmt.Sprintf("no restore check has run yet (schedule %q)", db.Spec.Backup.RestoreCheck.Schedule))
			}
		} else {
			meta.RemoveStatusCondition(&s.Conditions, databasev1.ConditionBackupVerified)
		}
	} else {
		s.Archive = db.Status.Archive
		meta.RemoveStatusCondition(&s.Conditions, databasev1.ConditionContinuousArchiving)
		meta.RemoveStatusCondition(&s.Conditions, databasev1.ConditionBackupVerified)
	}

	if db.Spec.Backup != nil && db.Spec.Backup.Enabled {
		var last *metav1.Time
		if o.cronJob != nil && o.cronJob.Status.LastSuccessfulTime != nil {
			last = o.cronJob.Status.LastSuccessfulTime.DeepCopy()
			s.LastBackup = last
		}
		switch failed := jobFailure(o.lastBackupJob); {
		case failed != nil:
			why := failed.Message
			if run := newestRun(o.backupRuns); run != nil && !run.succeeded && run.report.Error != "" {
				why = run.report.Error
			}
			msg := fmt.Sprintf("backup Job %s failed: %s", o.lastBackupJob.Name, why)
			if last != nil {
				msg += "; last successful backup at " + last.UTC().Format(time.RFC3339)
			}
			set(databasev1.ConditionBackupReady, metav1.ConditionFalse, "BackupFailed", msg)
		case archiving && s.Archive != nil && s.Archive.LastBaseBackupTime != nil:
			set(databasev1.ConditionBackupReady, metav1.ConditionTrue, "BackupSucceeded",
				fmt.Sprintf("last base backup %s ended at %s", s.Archive.LastBaseBackup, formatTime(s.Archive.LastBaseBackupTime.Time)))
		case last != nil:
			set(databasev1.ConditionBackupReady, metav1.ConditionTrue, "BackupSucceeded",
				"last successful backup at "+last.UTC().Format(time.RFC3339))
		default:
			set(databasev1.ConditionBackupReady, metav1.ConditionUnknown, "NoBackupYet", "no backup has completed yet")
		}
	} else {
		meta.RemoveStatusCondition(&s.Conditions, databasev1.ConditionBackupReady)
	}
	return s
}

// jobFailure returns the Failed condition of a finished, failed Job; nil for
// a Job that is running or succeeded, or no Job at all.
func jobFailure(job *batchv1.Job) *batchv1.JobCondition {
	if job == nil {
		return nil
	}
	for i, c := range job.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			return &job.Status.Conditions[i]
		}
	}
	return nil
}

// Reasons of the Ready condition. Until a Database is first Ready, a False
// Ready's reason is its phase; afterwards it is reasonUnavailable, so the
// condition itself remembers that the Database has been Ready before.
const (
	reasonAllReplicasReady = "AllReplicasReady"
	reasonUnavailable      = "Unavailable"
)

// wasReady reports whether a status says its Database has been Ready before.
func wasReady(s databasev1.DatabaseStatus) bool {
	c := meta.FindStatusCondition(s.Conditions, databasev1.ConditionReady)
	return c != nil && (c.Status == metav1.ConditionTrue || c.Reason == reasonUnavailable)
}

// firstReady reports whether a Database becomes Ready for the first time.
// Coming back after a scale-up, a rollout or an outage is not news.
func firstReady(before, after databasev1.DatabaseStatus) bool {
	return meta.IsStatusConditionTrue(after.Conditions, databasev1.ConditionReady) && !wasReady(before)
}

// statusApplyConfiguration is the apply configuration of a Database status:
// every field the operator owns, so fields it stops setting are released.
func statusApplyConfiguration(db *databasev1.Database, s databasev1.DatabaseStatus) *databasev1ac.DatabaseApplyConfiguration {
	st := databasev1ac.DatabaseStatus().
		WithPhase(s.Phase).
		WithReady(s.Ready).
		WithReplicas(s.Replicas).
		WithSelector(s.Selector).
		WithObservedGeneration(s.ObservedGeneration)
	if s.LastBackup != nil {
		st.WithLastBackup(*s.LastBackup)
	}
	if a := s.Archive; a != nil {
		ac := databasev1ac.ArchiveStatus()
		if a.FirstRecoverableTime != nil {
			ac.WithFirstRecoverableTime(*a.FirstRecoverableTime)
		}
		if a.LastArchivedTime != nil {
			ac.WithLastArchivedTime(*a.LastArchivedTime).WithLastArchivedWAL(a.LastArchivedWAL)
		}
		if a.LastFailedTime != nil {
			ac.WithLastFailedTime(*a.LastFailedTime).WithLastFailedWAL(a.LastFailedWAL)
		}
		if a.LastBaseBackupTime != nil {
			ac.WithLastBaseBackupTime(*a.LastBaseBackupTime).WithLastBaseBackup(a.LastBaseBackup)
		}
		if a.LastVerifiedTime != nil {
			ac.WithLastVerifiedTime(*a.LastVerifiedTime).WithLastVerifiedBackup(a.LastVerifiedBackup)
		}
		st.WithArchive(ac)
	}
	if s.CurrentPrimary != "" {
		st.WithCurrentPrimary(s.CurrentPrimary)
	}
	for _, in := range s.Instances {
		ac := databasev1ac.InstanceStatus().WithName(in.Name).WithReady(in.Ready)
		if in.Role != "" {
			ac.WithRole(in.Role)
		}
		if in.Timeline != 0 {
			ac.WithTimeline(in.Timeline)
		}
		if in.Position != "" {
			ac.WithPosition(in.Position)
		}
		if in.LagBytes != nil {
			ac.WithLagBytes(*in.LagBytes)
		}
		if in.Message != "" {
			ac.WithMessage(in.Message)
		}
		st.WithInstances(ac)
	}
	if c := s.LastPrimaryChange; c != nil {
		ac := databasev1ac.PrimaryChange().WithReason(c.Reason).WithFrom(c.From).WithTo(c.To).WithTime(c.Time)
		if c.Message != "" {
			ac.WithMessage(c.Message)
		}
		st.WithLastPrimaryChange(ac)
	}
	if sw := s.Switchover; sw != nil {
		st.WithSwitchover(databasev1ac.SwitchoverStatus().WithFrom(sw.From).WithTo(sw.To).WithStarted(sw.Started))
	}
	for _, c := range s.Conditions {
		st.WithConditions(metav1ac.Condition().
			WithType(c.Type).
			WithStatus(c.Status).
			WithReason(c.Reason).
			WithMessage(c.Message).
			WithObservedGeneration(c.ObservedGeneration).
			WithLastTransitionTime(c.LastTransitionTime))
	}
	return databasev1ac.Database(db.Name, db.Namespace).WithStatus(st)
}
