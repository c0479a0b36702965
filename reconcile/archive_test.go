package reconcile

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/instance"
	"github.com/example/database-operator/render"
)

var archiveT0 = time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)

func at(minutes int) time.Time { return archiveT0.Add(time.Duration(minutes) * time.Minute) }

func mt(minutes int) *metav1.Time { return metaTime(at(minutes)) }

func wal(n int) string {
	return "0000000100000000000000" + string(rune('0'+n/10)) + string(rune('0'+n%10))
}

func TestArchiveStatus(t *testing.T) {
	archived := func(n, minute int) *instance.ArchiverReport {
		return &instance.ArchiverReport{LastArchivedWAL: wal(n), LastArchivedTime: at(minute)}
	}
	backup := func(id string, end, first int, ok bool) backupRun {
		r := instance.BackupReport{ID: id, EndTime: at(end), FirstRecoverable: at(first)}
		if !ok {
			r = instance.BackupReport{Error: "pg_basebackup: connection refused"}
		}
		return backupRun{pod: "orders-backup-" + id, succeeded: ok, finished: at(end), report: r}
	}
	for _, tc := range []struct {
		name string
		prev *databasev1.ArchiveStatus
		o    archiveObservation
		want *databasev1.ArchiveStatus
	}{
		{name: "nothing seen, nothing before", want: nil},
		{name: "the newest archived file of any server",
			o:    archiveObservation{reports: map[string]*instance.ArchiverReport{"orders-0": archived(5, 10), "orders-1": archived(6, 11), "orders-2": nil}},
			want: &databasev1.ArchiveStatus{LastArchivedWAL: wal(6), LastArchivedTime: mt(11)}},
		{name: "a restarted server's empty statistics do not move the status back",
			prev: &databasev1.ArchiveStatus{LastArchivedWAL: wal(9), LastArchivedTime: mt(20)},
			o:    archiveObservation{reports: map[string]*instance.ArchiverReport{"orders-0": {}, "orders-1": archived(6, 11)}},
			want: &databasev1.ArchiveStatus{LastArchivedWAL: wal(9), LastArchivedTime: mt(20)}},
		{name: "failures are recorded next to successes",
			o:    archiveObservation{reports: map[string]*instance.ArchiverReport{"orders-0": {LastArchivedWAL: wal(5), LastArchivedTime: at(10), LastFailedWAL: wal(6), LastFailedTime: at(12)}}},
			want: &databasev1.ArchiveStatus{LastArchivedWAL: wal(5), LastArchivedTime: mt(10), LastFailedWAL: wal(6), LastFailedTime: mt(12)}},
		{name: "the newest successful base backup sets the window's start; failed runs do not",
			prev: &databasev1.ArchiveStatus{LastBaseBackup: "a", LastBaseBackupTime: mt(1), FirstRecoverableTime: mt(1)},
			o:    archiveObservation{runs: []backupRun{backup("c", 30, 10, true), backup("b", 10, 1, true), backup("d", 40, 0, false)}},
			want: &databasev1.ArchiveStatus{LastBaseBackup: "c", LastBaseBackupTime: mt(30), FirstRecoverableTime: mt(10)}},
		{name: "backup pods that are gone leave the status as it was",
			prev: &databasev1.ArchiveStatus{LastBaseBackup: "c", LastBaseBackupTime: mt(30), FirstRecoverableTime: mt(10)},
			o:    archiveObservation{runs: []backupRun{backup("b", 10, 1, true)}},
			want: &databasev1.ArchiveStatus{LastBaseBackup: "c", LastBaseBackupTime: mt(30), FirstRecoverableTime: mt(10)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(archiveStatus(tc.prev, tc.o)).To(Equal(tc.want))
		})
	}
}

func TestArchivingCondition(t *testing.T) {
	status := &databasev1.ArchiveStatus{LastArchivedWAL: wal(5), LastArchivedTime: mt(10)}
	for _, tc := range []struct {
		name       string
		s          *databasev1.ArchiveStatus
		o          archiveObservation
		want       metav1.ConditionStatus
		reason     string
		wantInText string
	}{
		{name: "nothing archived yet", want: metav1.ConditionUnknown, reason: reasonNotArchived},
		{name: "archiving", s: status, o: archiveObservation{primary: "orders-0", files: "WAL file", reports: map[string]*instance.ArchiverReport{"orders-0": {LastArchivedWAL: wal(5), LastArchivedTime: at(10)}}},
			want: metav1.ConditionTrue, reason: reasonArchiving, wantInText: "last archived WAL file " + wal(5) + " at 2026-12-03T06:10:00Z"},
		{name: "the primary's latest attempt failed", s: status,
			o: archiveObservation{primary: "orders-0", files: "WAL file", reports: map[string]*instance.ArchiverReport{
				"orders-0": {LastArchivedWAL: wal(5), LastArchivedTime: at(10), LastFailedWAL: wal(6), LastFailedTime: at(12)}}},
			want: metav1.ConditionFalse, reason: reasonArchivingFails,
			wantInText: "primary orders-0 cannot archive WAL file " + wal(6) + " (latest attempt 2026-12-03T06:12:00Z); the archive ends at " + wal(5)},
		{name: "an old failure, archived since", s: status,
			o: archiveObservation{primary: "orders-0", files: "WAL file", reports: map[string]*instance.ArchiverReport{
				"orders-0": {LastArchivedWAL: wal(5), LastArchivedTime: at(10), LastFailedWAL: wal(5), LastFailedTime: at(9)}}},
			want: metav1.ConditionTrue, reason: reasonArchiving},
		{name: "a replica failing while the primary archives", s: status,
			o: archiveObservation{primary: "orders-0", files: "WAL file", reports: map[string]*instance.ArchiverReport{
				"orders-0": {LastArchivedWAL: wal(5), LastArchivedTime: at(10)},
				"orders-1": {LastFailedWAL: wal(5), LastFailedTime: at(11)}}},
			want: metav1.ConditionTrue, reason: reasonArchiving},
		{name: "files waiting are said", s: status,
			o:    archiveObservation{primary: "orders-0", files: "WAL file", reports: map[string]*instance.ArchiverReport{"orders-0": {LastArchivedWAL: wal(5), LastArchivedTime: at(10), Ready: 7}}},
			want: metav1.ConditionTrue, reason: reasonArchiving, wantInText: "7 WAL files wait on orders-0"},
		{name: "MySQL: binary logs", s: &databasev1.ArchiveStatus{LastArchivedWAL: "binlog.000042", LastArchivedTime: mt(10)},
			o: archiveObservation{primary: "orders-0", files: "binary log", reports: map[string]*instance.ArchiverReport{
				"orders-0": {LastArchivedWAL: "binlog.000042", LastArchivedTime: at(10), LastFailedWAL: "binlog.000043", LastFailedTime: at(12)}}},
			want: metav1.ConditionFalse, reason: reasonArchivingFails, wantInText: "primary orders-0 cannot archive binary log binlog.000043"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			st, reason, msg := archivingCondition(tc.s, tc.o)
			g.Expect(st).To(Equal(tc.want))
			g.Expect(reason).To(Equal(tc.reason))
			g.Expect(msg).To(ContainSubstring(tc.wantInText))
		})
	}
}

func TestBackupRunOf(t *testing.T) {
	pod := func(cs ...corev1.ContainerStatus) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "orders-backup-1-x"}}
		p.Status.ContainerStatuses = cs
		return p
	}
	done := func(code int32, msg string) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: render.BackupContainerName, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: code, Message: msg, Reason: "Error", FinishedAt: metav1.NewTime(at(3))}}}
	}
	ok := instance.BackupReport{ID: "20261203T060000Z", EndTime: at(2), FirstRecoverable: at(1)}
	for _, tc := range []struct {
		name  string
		pod   *corev1.Pod
		found bool
		want  backupRun
	}{
		{name: "running", pod: pod(corev1.ContainerStatus{Name: render.BackupContainerName}), found: false},
		{name: "succeeded", pod: pod(done(0, ok.String())), found: true,
			want: backupRun{pod: "orders-backup-1-x", succeeded: true, finished: at(3), report: ok}},
		{name: "failed with a report", pod: pod(done(1, instance.BackupReport{Error: "retention: access denied"}.String())), found: true,
			want: backupRun{pod: "orders-backup-1-x", finished: at(3), report: instance.BackupReport{Error: "retention: access denied"}}},
		{name: "killed before writing", pod: pod(done(137, "")), found: true,
			want: backupRun{pod: "orders-backup-1-x", finished: at(3), report: instance.BackupReport{Error: "Error (exit code 137)"}}},
		{name: "only the backup container counts", pod: pod(corev1.ContainerStatus{Name: "agent", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}}), found: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got, found := jobRunOf(tc.pod, render.BackupContainerName, readBackupReport)
			g.Expect(found).To(Equal(tc.found))
			if tc.found {
				g.Expect(got).To(Equal(tc.want))
			}
		})
	}
}

func TestVerifiedCondition(t *testing.T) {
	passed := checkRun{pod: "orders-restore-check-1-a", succeeded: true, finished: at(10), report: instance.RestoreCheckReport{
		Backup: "20261203T020000Z", Size: 300 << 20, StartTime: at(8), EndTime: at(10), Answer: "42"}}
	failed := checkRun{pod: "orders-restore-check-2-b", finished: at(20), report: instance.RestoreCheckReport{
		StartTime: at(19), EndTime: at(20), Error: "WAL segment 000000010000000000000007 is missing from the archive"}}
	for _, tc := range []struct {
		name       string
		runs       []checkRun
		ok         bool
		want       metav1.ConditionStatus
		reason     string
		wantInText string
	}{
		{name: "no check pod: the condition stays", ok: false},
		{name: "passed", runs: []checkRun{passed}, ok: true, want: metav1.ConditionTrue, reason: reasonVerified,
			wantInText: `base backup 20261203T020000Z (300 MiB) and the archived WAL after it restored into a throwaway pod at 2026-12-03T06:10:00Z in 2m0s; the check query answered "42"`},
		{name: "the newest run counts", runs: []checkRun{failed, passed}, ok: true, want: metav1.ConditionFalse, reason: reasonVerifyFailed,
			wantInText: "restore check orders-restore-check-2-b failed at 2026-12-03T06:20:00Z after 1m0s: WAL segment 000000010000000000000007 is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			st, reason, msg, ok := verifiedCondition(tc.runs)
			g.Expect(ok).To(Equal(tc.ok))
			if !tc.ok {
				return
			}
			g.Expect(st).To(Equal(tc.want))
			g.Expect(reason).To(Equal(tc.reason))
			g.Expect(msg).To(ContainSubstring(tc.wantInText))
		})
	}
	g := NewWithT(t)
	s := lastVerified(nil, []checkRun{failed, passed})
	g.Expect(s.LastVerifiedBackup).To(Equal("20261203T020000Z"))
	g.Expect(s.LastVerifiedTime).To(Equal(mt(10)))
	g.Expect(lastVerified(s, []checkRun{failed})).To(Equal(s), "a failed check does not move the last verification")
}

func TestCheckRunOf(t *testing.T) {
	pod := func(code int32, msg string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "orders-restore-check-1-a"}}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: render.RestoreCheckContainerName, State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Message: msg, Reason: "Error", FinishedAt: metav1.NewTime(at(5))}}}}
		return p
	}
	g := NewWithT(t)
	checkRunOf := func(p *corev1.Pod) (checkRun, bool) {
		return jobRunOf(p, render.RestoreCheckContainerName, readCheckReport)
	}
	run, ok := checkRunOf(pod(0, instance.RestoreCheckReport{Backup: "b", Answer: "1"}.String()))
	g.Expect(ok).To(BeTrue())
	g.Expect(run.succeeded).To(BeTrue())
	run, _ = checkRunOf(pod(1, instance.RestoreCheckReport{Error: "the check query failed"}.String()))
	g.Expect(run.succeeded).To(BeFalse())
	g.Expect(run.report.Error).To(Equal("the check query failed"))
	run, _ = checkRunOf(pod(137, ""))
	g.Expect(run.succeeded).To(BeFalse())
	g.Expect(run.report.Error).To(Equal("Error (exit code 137)"))
	run, _ = checkRunOf(pod(1, instance.RestoreCheckReport{Backup: "b"}.String()))
	g.Expect(run.succeeded).To(BeFalse(), "a non-zero exit fails the check even without an error in the report")
	_, ok = checkRunOf(&corev1.Pod{})
	g.Expect(ok).To(BeFalse())
}
