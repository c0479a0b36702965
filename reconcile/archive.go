package reconcile

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/instance"
	"github.com/example/database-operator/render"
)

// Continuous archiving (spec.backup.s3). The operator never talks to the
// object store and never reads the store's keys: what it reports comes
// from the pods. Each server's agent reports its pg_stat_archiver
// (instance.ArchiverReport); each base-backup Job's container writes an
// instance.BackupReport to its termination message. The status keeps the
// newest of what it said before and what the pods say now, so a pod that
// restarts (its statistics start over) or a backup pod that is cleaned up
// does not move the recoverable window backwards.

// Reasons of the ContinuousArchiving condition.
const (
	reasonArchiving      = "Archiving"
	reasonArchivingFails = "ArchivingFailing"
	reasonNotArchived    = "NotArchivedYet"
)

// jobRun is one finished pod of one of the operator's Jobs: whether its
// container succeeded, when it terminated, and the report it left in its
// termination message.
type jobRun[R any] struct {
	pod       string
	succeeded bool
	finished  time.Time
	report    R
}

// backupRun is a finished base-backup pod; checkRun a restore-check pod.
type (
	backupRun = jobRun[instance.BackupReport]
	checkRun  = jobRun[instance.RestoreCheckReport]
)

// newestRun is the run that finished last, or nil.
func newestRun[R any](runs []jobRun[R]) *jobRun[R] {
	var last *jobRun[R]
	for i := range runs {
		if last == nil || runs[i].finished.After(last.finished) {
			last = &runs[i]
		}
	}
	return last
}

// jobRuns reads db's finished pods of component from the cache; read turns
// each one's terminated container into its report.
func jobRuns[R any](ctx context.Context, c client.Reader, db *databasev1.Database, component, container string,
	read func(*corev1.ContainerStateTerminated) R) ([]jobRun[R], error) {
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(db.Namespace), client.MatchingLabels{
		render.LabelInstance:  db.Name,
		render.LabelManagedBy: FieldManager,
		render.LabelComponent: component,
	}); err != nil {
		return nil, fmt.Errorf("list %s pods: %w", component, err)
	}
	var runs []jobRun[R]
	for i := range pods.Items {
		if run, ok := jobRunOf(&pods.Items[i], container, read); ok {
			runs = append(runs, run)
		}
	}
	return runs, nil
}

// jobRunOf reads a finished pod's container; false while it runs.
func jobRunOf[R any](pod *corev1.Pod, container string, read func(*corev1.ContainerStateTerminated) R) (jobRun[R], bool) {
	for _, cs := range pod.Status.ContainerStatuses {
		if t := cs.State.Terminated; cs.Name == container && t != nil {
			return jobRun[R]{pod: pod.Name, succeeded: t.ExitCode == 0, finished: t.FinishedAt.Time, report: read(t)}, true
		}
	}
	return jobRun[R]{}, false
}

// diedWithout is the reason of a container that died before writing its
// report (OOM-killed, say): its reason is all there is.
func diedWithout(t *corev1.ContainerStateTerminated) string {
	return fmt.Sprintf("%s (exit code %d)", t.Reason, t.ExitCode)
}

// archiveObservation is what a reconcile saw of a Database's archive.
type archiveObservation struct {
	// reports are the agents' archiver reports by pod name.
	reports map[string]*instance.ArchiverReport
	// primary is the pod holding the primary role ("" when unknown).
	primary string
	// runs are the finished base-backup pods still there, any order.
	runs []backupRun
	// files names what the engine archives: "WAL file" (PostgreSQL) or
	// "binary log" (MySQL).
	files string
}

// archivedFiles is what db's engine archives, for messages.
func archivedFiles(db *databasev1.Database) string {
	if db.Spec.Type == databasev1.MySQL {
		return "binary log"
	}
	return "WAL file"
}

// archiveStatus merges what was observed into the previous status.archive:
// each field moves only forwards in time.
func archiveStatus(prev *databasev1.ArchiveStatus, o archiveObservation) *databasev1.ArchiveStatus {
	s := &databasev1.ArchiveStatus{}
	if prev != nil {
		s = prev.DeepCopy()
	}
	newer := func(t time.Time, than *metav1.Time) bool {
		return !t.IsZero() && (than == nil || t.After(than.Time))
	}
	names := make([]string, 0, len(o.reports))
	for name := range o.reports {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		a := o.reports[name]
		if a == nil {
			continue
		}
		if newer(a.LastArchivedTime, s.LastArchivedTime) {
			s.LastArchivedTime, s.LastArchivedWAL = metaTime(a.LastArchivedTime), a.LastArchivedWAL
		}
		if newer(a.LastFailedTime, s.LastFailedTime) {
			s.LastFailedTime, s.LastFailedWAL = metaTime(a.LastFailedTime), a.LastFailedWAL
		}
	}
	for _, run := range o.runs {
		r := run.report
		if !run.succeeded || r.ID == "" || r.Error != "" {
			continue
		}
		if newer(r.EndTime, s.LastBaseBackupTime) {
			s.LastBaseBackup, s.LastBaseBackupTime = r.ID, metaTime(r.EndTime)
			if !r.FirstRecoverable.IsZero() {
				s.FirstRecoverableTime = metaTime(r.FirstRecoverable)
			}
		}
	}
	if *s == (databasev1.ArchiveStatus{}) {
		return nil
	}
	return s
}

func metaTime(t time.Time) *metav1.Time {
	mt := metav1.NewTime(t.UTC())
	return &mt
}

// archivingCondition is ContinuousArchiving: False while the primary's
// archiver fails (its latest attempt is newer than its latest success),
// True once anything was archived, Unknown before.
func archivingCondition(s *databasev1.ArchiveStatus, o archiveObservation) (metav1.ConditionStatus, string, string) {
	if a := o.reports[o.primary]; a.Failing() {
		msg := fmt.Sprintf("primary %s cannot archive %s %s (latest attempt %s)", o.primary, o.files, a.LastFailedWAL, formatTime(a.LastFailedTime))
		if s != nil && s.LastArchivedTime != nil {
			msg += fmt.Sprintf("; the archive ends at %s, archived %s", s.LastArchivedWAL, formatTime(s.LastArchivedTime.Time))
		}
		return metav1.ConditionFalse, reasonArchivingFails, msg + "; the database container's log says why"
	}
	if s == nil || s.LastArchivedTime == nil {
		return metav1.ConditionUnknown, reasonNotArchived, fmt.Sprintf("no %s has been archived yet", o.files)
	}
	msg := fmt.Sprintf("last archived %s %s at %s", o.files, s.LastArchivedWAL, formatTime(s.LastArchivedTime.Time))
	if a := o.reports[o.primary]; a != nil && a.Ready > 1 {
		msg += fmt.Sprintf("; %d %ss wait on %s", a.Ready, o.files, o.primary)
	}
	return metav1.ConditionTrue, reasonArchiving, msg
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// backupRuns reads db's finished backup pods, with the reports their
// backup containers left.
func (r *Reconciler) backupRuns(ctx context.Context, db *databasev1.Database) ([]backupRun, error) {
	return jobRuns(ctx, r.Client, db, "backup", render.BackupContainerName, readBackupReport)
}

// readBackupReport is a base-backup container's report.
func readBackupReport(t *corev1.ContainerStateTerminated) instance.BackupReport {
	report, err := instance.ParseBackupReport(strings.TrimSpace(t.Message))
	if err != nil {
		return instance.BackupReport{Error: diedWithout(t)}
	}
	return report
}

// archiverReports are the agents' archiver reports of the members.
func archiverReports(ms []member) map[string]*instance.ArchiverReport {
	out := map[string]*instance.ArchiverReport{}
	for _, m := range ms {
		if m.report != nil && m.report.Archive != nil {
			out[m.name] = m.report.Archive
		}
	}
	return out
}

// checkObjectStoreSecrets reports a credentials or CA Secret of the
// Database's object stores (its archive, and the source of a restore that
// has not finished) that is missing or lacks a key the pods need: they
// would not start. It reads which keys the Secrets have, never their
// values into anything it writes.
func (r *Reconciler) checkObjectStoreSecrets(ctx context.Context, db *databasev1.Database, restoreDone bool) (*degradation, error) {
	type use struct {
		field string
		store *databasev1.ObjectStoreSpec
	}
	var uses []use
	if a := render.ArchivingOf(db); a != nil {
		uses = append(uses, use{"spec.backup.s3", a})
	}
	if rs := db.Spec.Restore; rs != nil && rs.PointInTime != nil && !restoreDone {
		if rs.PointInTime.S3 != nil {
			uses = append(uses, use{"spec.restore.pointInTime.s3", rs.PointInTime.S3})
		} else if db.Spec.Backup != nil && db.Spec.Backup.S3 != nil {
			uses = append(uses, use{"spec.backup.s3", db.Spec.Backup.S3})
		}
	}
	for _, u := range uses {
		checks := []struct {
			field, name string
			keys        []string
		}{
			{u.field + ".credentialsSecret", u.store.CredentialsSecret, []string{render.S3AccessKeyIDKey, render.S3SecretAccessKeyKey}},
			{u.field + ".caSecret", u.store.CASecret, []string{render.S3CAKey}},
		}
		for _, c := range checks {
			if c.name == "" {
				continue
			}
			secret, err := r.getSecret(ctx, db.Namespace, c.name)
			if err != nil {
				return nil, err
			}
			if secret == nil {
				return &degradation{reason: "ObjectStoreSecretMissing", message: fmt.Sprintf(
					"Secret %s named by %s does not exist; create it with the keys %s. %s The pods are left as they are until then.",
					c.name, c.field, strings.Join(c.keys, " and "), noticeHint(db))}, nil
			}
			for _, k := range c.keys {
				if len(secret.Data[k]) == 0 {
					return &degradation{reason: "ObjectStoreSecretInvalid", message: fmt.Sprintf(
						"Secret %s named by %s has no key %s (it needs %s). %s The pods are left as they are until then.",
						c.name, c.field, k, strings.Join(c.keys, " and "), noticeHint(db))}, nil
				}
			}
		}
	}
	return nil, nil
}

// backupEnabledMessage is the note of the BackupEnabled Event.
func backupEnabledMessage(db *databasev1.Database, schedule string) string {
	if a := render.ArchivingOf(db); a != nil {
		what := "base backups scheduled %q and WAL archived continuously to s3://%s/%s"
		if db.Spec.Type == databasev1.MySQL {
			what = "base dumps scheduled %q and binary logs archived continuously to s3://%s/%s"
		}
		return fmt.Sprintf(what, schedule, a.Bucket, render.ArchiveFolder(a, db.Name))
	}
	return fmt.Sprintf("backups scheduled %q to PVC %s", schedule, render.BackupName(db.Name))
}

// Reasons of the BackupVerified condition.
const (
	reasonVerified       = "Verified"
	reasonVerifyFailed   = "RestoreCheckFailed"
	reasonNotVerifiedYet = "NotVerifiedYet"
)

// restoreCheckRuns reads db's finished restore-check pods.
func (r *Reconciler) restoreCheckRuns(ctx context.Context, db *databasev1.Database) ([]checkRun, error) {
	return jobRuns(ctx, r.Client, db, render.ComponentRestoreCheck, render.RestoreCheckContainerName, readCheckReport)
}

// readCheckReport is a restore-check container's report; a failed one
// always says why.
func readCheckReport(t *corev1.ContainerStateTerminated) instance.RestoreCheckReport {
	report, err := instance.ParseRestoreCheckReport(strings.TrimSpace(t.Message))
	if err != nil {
		return instance.RestoreCheckReport{Error: diedWithout(t)}
	}
	if t.ExitCode != 0 && report.Error == "" {
		report.Error = fmt.Sprintf("exit code %d", t.ExitCode)
	}
	return report
}

// verifiedCondition is BackupVerified from the newest finished check, or
// nil to leave the condition as it is (no check pod left: the last
// outcome stands).
func verifiedCondition(runs []checkRun) (status metav1.ConditionStatus, reason, message string, ok bool) {
	last := newestRun(runs)
	if last == nil {
		return "", "", "", false
	}
	r := last.report
	took := r.EndTime.Sub(r.StartTime).Round(time.Second)
	if !last.succeeded {
		msg := fmt.Sprintf("restore check %s failed", last.pod)
		if !r.EndTime.IsZero() {
			msg += fmt.Sprintf(" at %s after %s", formatTime(r.EndTime), took)
		}
		return metav1.ConditionFalse, reasonVerifyFailed, msg + ": " + r.Error, true
	}
	return metav1.ConditionTrue, reasonVerified, fmt.Sprintf("base backup %s (%d MiB) and the archived WAL after it restored into a throwaway pod at %s in %s; the check query answered %q",
		r.Backup, r.Size>>20, formatTime(r.EndTime), took, r.Answer), true
}

// lastVerified moves status.archive's last verification forwards.
func lastVerified(s *databasev1.ArchiveStatus, runs []checkRun) *databasev1.ArchiveStatus {
	for _, run := range runs {
		if !run.succeeded || run.report.EndTime.IsZero() {
			continue
		}
		if s == nil {
			s = &databasev1.ArchiveStatus{}
		}
		if s.LastVerifiedTime == nil || run.report.EndTime.After(s.LastVerifiedTime.Time) {
			s.LastVerifiedTime, s.LastVerifiedBackup = metaTime(run.report.EndTime), run.report.Backup
		}
	}
	return s
}
