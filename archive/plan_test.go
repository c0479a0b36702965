package archive_test

import (
	"errors"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/example/database-operator/archive"
)

func TestLSNAndSegmentNames(t *testing.T) {
	g := NewWithT(t)
	for _, s := range []string{"0/2000028", "1/A0000000", "16/B374D848"} {
		l, err := archive.ParseLSN(s)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(l.String()).To(Equal(s))
	}
	for _, bad := range []string{"", "12", "g/1", "1/2/3"} {
		_, err := archive.ParseLSN(bad)
		g.Expect(err).To(HaveOccurred(), bad)
	}
	l, _ := archive.ParseLSN("0/3000000")
	g.Expect(l.Segment()).To(Equal(uint64(3)))

	g.Expect(archive.SegmentName(1, 1)).To(Equal("000000010000000000000001"))
	// 256 segments of 16 MiB per 4 GiB of WAL.
	g.Expect(archive.SegmentName(2, 0x100)).To(Equal("000000020000000100000000"))
	tli, seg, ok := archive.ParseSegmentName("000000020000000100000000")
	g.Expect(ok).To(BeTrue())
	g.Expect(tli).To(Equal(uint32(2)))
	g.Expect(seg).To(Equal(uint64(0x100)))
	for _, notSegment := range []string{"00000001.history", "000000010000000000000001.partial", "00000001000000000000000a", "000000010000000000000100"} {
		_, _, ok := archive.ParseSegmentName(notSegment)
		g.Expect(ok).To(BeFalse(), notSegment)
	}
	h, ok := archive.ParseHistoryName("0000000A.history")
	g.Expect(ok).To(BeTrue())
	g.Expect(h).To(Equal(uint32(10)))

	sw, err := archive.ParseHistory("1\t0/3000148\tno recovery target specified\n\n2\t0/50000A0\tat restore point\n")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sw).To(HaveLen(2))
	g.Expect(sw[1].Parent).To(Equal(uint32(2)))
	g.Expect(sw[1].At.String()).To(Equal("0/50000A0"))
	_, err = archive.ParseHistory("1\n")
	g.Expect(err).To(HaveOccurred())
	_, err = archive.ParseHistory("x\t0/1\treason\n")
	g.Expect(err).To(HaveOccurred())
}

var now = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

func backupAt(id string, end time.Time, startWAL string) archive.BaseBackup {
	return archive.BaseBackup{ID: id, Timeline: 1, StartWAL: startWAL, EndTime: end}
}

func wal(names ...string) []archive.WALFile {
	var out []archive.WALFile
	for _, n := range names {
		out = append(out, archive.WALFile{Name: n})
	}
	return out
}

// TestPlanRetention runs on a fixed clock: what retention deletes so that
// every moment of the last 7 days stays restorable.
func TestPlanRetention(t *testing.T) {
	day := 24 * time.Hour
	week := 7 * day
	cases := []struct {
		name        string
		backups     []archive.BaseBackup
		wal         []archive.WALFile
		wantBackups []string
		wantWAL     []string
		wantKept    string
	}{
		{
			name: "the newest backup before the window stays",
			backups: []archive.BaseBackup{
				backupAt("b10", now.Add(-10*day), "000000010000000000000002"),
				backupAt("b8", now.Add(-8*day), "000000010000000000000010"),
				backupAt("b6", now.Add(-6*day), "000000010000000000000020"),
				backupAt("b1", now.Add(-1*day), "000000010000000000000030"),
			},
			wal: wal("000000010000000000000002", "00000001000000000000000F", "000000010000000000000010",
				"000000020000000000000005", "000000010000000000000003.00000028.backup", "00000001000000000000000E.partial",
				"00000002.history", "000000010000000000000011"),
			wantBackups: []string{"b10"},
			wantWAL: []string{"000000010000000000000002", "00000001000000000000000F", "000000020000000000000005",
				"000000010000000000000003.00000028.backup", "00000001000000000000000E.partial"},
			wantKept: "b8",
		},
		{
			name: "all older than the window: only the newest stays",
			backups: []archive.BaseBackup{
				backupAt("b30", now.Add(-30*day), "000000010000000000000001"),
				backupAt("b20", now.Add(-20*day), "000000010000000000000005"),
				backupAt("b9", now.Add(-9*day), "000000010000000000000009"),
			},
			wal:         wal("000000010000000000000008", "000000010000000000000009"),
			wantBackups: []string{"b30", "b20"},
			wantWAL:     []string{"000000010000000000000008"},
			wantKept:    "b9",
		},
		{
			name:     "a single old backup is never deleted",
			backups:  []archive.BaseBackup{backupAt("b100", now.Add(-100*day), "000000010000000000000004")},
			wal:      wal("000000010000000000000004", "000000010000000000000005"),
			wantKept: "b100",
		},
		{
			name: "a clock behind: a backup ending in the future stays, and so does the one before it",
			backups: []archive.BaseBackup{
				backupAt("old", now.Add(-20*day), "000000010000000000000001"),
				backupAt("future", now.Add(2*day), "000000010000000000000009"),
			},
			wal:      wal("000000010000000000000001"),
			wantKept: "old",
		},
		{
			name: "no backups: nothing is deleted, WAL included",
			wal:  wal("000000010000000000000001"),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			r := archive.PlanRetention(tc.backups, tc.wal, now, week)
			g.Expect(r.Backups).To(ConsistOf(toAny(tc.wantBackups)...))
			g.Expect(r.WAL).To(ConsistOf(toAny(tc.wantWAL)...))
			if tc.wantKept == "" {
				g.Expect(r.Kept).To(BeNil())
			} else {
				g.Expect(r.Kept).NotTo(BeNil())
				g.Expect(r.Kept.ID).To(Equal(tc.wantKept))
			}
		})
	}
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func TestChooseBackup(t *testing.T) {
	g := NewWithT(t)
	b1 := backupAt("b1", now.Add(-3*time.Hour), "000000010000000000000002")
	b2 := backupAt("b2", now.Add(-1*time.Hour), "000000010000000000000008")
	b, err := archive.ChooseBackup([]archive.BaseBackup{b2, b1}, archive.Target{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(b.ID).To(Equal("b2"), "latest is the newest, whatever the order")
	b, err = archive.ChooseBackup([]archive.BaseBackup{b2, b1}, archive.Target{Time: now.Add(-2 * time.Hour)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(b.ID).To(Equal("b1"))
	b, err = archive.ChooseBackup([]archive.BaseBackup{b2, b1}, archive.Target{Time: b2.EndTime})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(b.ID).To(Equal("b1"), "a backup must have ended strictly before the target")
	_, err = archive.ChooseBackup([]archive.BaseBackup{b2, b1}, archive.Target{Time: now.Add(-4 * time.Hour)})
	g.Expect(err).To(MatchError(ContainSubstring("earliest recoverable moment is 2026-12-02T09:00:00Z")))
	_, err = archive.ChooseBackup(nil, archive.Target{})
	g.Expect(err).To(MatchError(ContainSubstring("no complete base backup")))
}

func lsnOf(t *testing.T, s string) archive.LSN {
	l, err := archive.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestCheckChain(t *testing.T) {
	b := backupAt("b", now, "000000010000000000000002")
	// Timeline 2 began in segment 4.
	switchedIn4 := map[uint32][]archive.Switch{2: {{Parent: 1, At: lsnOf(t, "0/4000100")}}}
	cases := []struct {
		name      string
		wal       []archive.WALFile
		histories map[uint32][]archive.Switch
		wantTLI   uint32
		wantLast  string
		wantGap   string
	}{
		{name: "one timeline", wal: wal("000000010000000000000002", "000000010000000000000003", "000000010000000000000004"),
			wantTLI: 1, wantLast: "000000010000000000000004"},
		{name: "a missing middle segment", wal: wal("000000010000000000000002", "000000010000000000000004"),
			wantGap: "000000010000000000000003"},
		{name: "the first segment missing", wal: wal("000000010000000000000003"), wantGap: "000000010000000000000002"},
		{name: "a timeline switch", histories: switchedIn4,
			wal: wal("000000010000000000000002", "000000010000000000000003", "000000010000000000000004",
				"000000020000000000000004", "000000020000000000000005", "000000020000000000000006", "00000002.history"),
			wantTLI: 2, wantLast: "000000020000000000000006"},
		{name: "the switch segment from the old timeline only", histories: switchedIn4,
			wal: wal("000000010000000000000002", "000000010000000000000003", "000000010000000000000004",
				"000000020000000000000005", "000000020000000000000006"),
			wantTLI: 2, wantLast: "000000020000000000000006"},
		{name: "a gap after the switch", histories: switchedIn4,
			wal: wal("000000010000000000000002", "000000010000000000000003", "000000010000000000000004",
				"000000020000000000000004", "000000020000000000000006"),
			wantGap: "000000020000000000000005"},
		{name: "the old timeline's segments after the switch do not count", histories: switchedIn4,
			wal: wal("000000010000000000000002", "000000010000000000000003", "000000010000000000000004",
				"000000010000000000000005", "000000020000000000000004", "000000020000000000000006"),
			wantGap: "000000020000000000000005"},
		{name: "a new timeline with no segment yet", histories: switchedIn4,
			wal:     wal("000000010000000000000002", "000000010000000000000003", "000000010000000000000004", "000000010000000000000005"),
			wantTLI: 1, wantLast: "000000010000000000000004"},
		{name: "an unrelated timeline is ignored",
			histories: map[uint32][]archive.Switch{3: {{Parent: 2, At: lsnOf(t, "0/5000000")}}},
			wal:       wal("000000010000000000000002", "000000010000000000000003", "000000030000000000000009"),
			wantTLI:   1, wantLast: "000000010000000000000003"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			tli, last, err := archive.CheckChain(b, tc.wal, tc.histories)
			if tc.wantGap != "" {
				var gap *archive.Gap
				g.Expect(errors.As(err, &gap)).To(BeTrue(), "%v", err)
				g.Expect(gap.Missing).To(Equal(tc.wantGap))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(tli).To(Equal(tc.wantTLI))
			g.Expect(last).To(Equal(tc.wantLast))
		})
	}
}

func TestRecoverySettings(t *testing.T) {
	g := NewWithT(t)
	g.Expect(archive.RecoverySettings("/agent wal-fetch %f %p", archive.Target{})).To(Equal([]string{
		"restore_command = '/agent wal-fetch %f %p'",
		"recovery_target_timeline = 'latest'",
		"recovery_target_action = 'promote'",
	}))
	at := archive.RecoverySettings("/agent wal-fetch %f %p", archive.Target{Time: time.Date(2026, 12, 2, 23, 15, 0, 123000000, time.FixedZone("", 3600))})
	g.Expect(at).To(ContainElements("recovery_target_time = '2026-12-02 22:15:00.123+00'", "recovery_target_inclusive = on"))
	quoted := archive.RecoverySettings(`/a'b\c %f %p`, archive.Target{})
	g.Expect(quoted[0]).To(Equal(`restore_command = '/a''b\\c %f %p'`))
}
