package archive_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/example/database-operator/archive"
)

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

// binlogOf is server's file number seq, covering the minutes from first to
// last after t0.
func binlogOf(server string, seq uint64, first, last int) archive.BinlogFile {
	return archive.BinlogFile{Server: server, Name: archive.BinlogName("binlog.000001", seq), Seq: seq,
		First: t0.Add(time.Duration(first) * time.Minute), Last: t0.Add(time.Duration(last) * time.Minute)}
}

func steps(s []archive.ReplayStep) []string {
	var out []string
	for _, st := range s {
		out = append(out, st.File.Server+"/"+st.File.Name)
	}
	return out
}

// TestPlanBinlogReplay: which archived binary logs a restore from a dump
// replays, in which order, and when it refuses.
func TestPlanBinlogReplay(t *testing.T) {
	// The dump started at minute 10 on server a, at binlog.000003:157
	// (its --flush-logs opened file 3 then).
	dump := archive.BaseBackup{ID: "d", Engine: archive.MySQLEngine, StartTime: t0.Add(10 * time.Minute), EndTime: t0.Add(11 * time.Minute),
		BinlogServer: "a", BinlogFile: "binlog.000003", BinlogPosition: 157, GTIDExecuted: "a:1-100"}
	at := func(min int) archive.Target { return archive.Target{Time: t0.Add(time.Duration(min) * time.Minute)} }
	a1, a2, a3, a4, a5 := binlogOf("a", 1, 0, 5), binlogOf("a", 2, 5, 10), binlogOf("a", 3, 10, 20), binlogOf("a", 4, 20, 30), binlogOf("a", 5, 30, 40)
	// b was a replica of a until a was lost at minute 35; its files before
	// the dump hold nothing the restore needs.
	b7, b8, b9 := binlogOf("b", 7, 0, 9), binlogOf("b", 8, 9, 36), binlogOf("b", 9, 36, 50)

	cases := []struct {
		name    string
		files   []archive.BinlogFile
		target  archive.Target
		want    []string
		wantErr string
		gap     bool
	}{
		{name: "latest, one server: from the dump's file on", files: []archive.BinlogFile{a5, a1, a2, a3, a4}, target: archive.Target{},
			want: []string{"a/binlog.000003", "a/binlog.000004", "a/binlog.000005"}},
		{name: "a moment: no file that began after it", files: []archive.BinlogFile{a1, a2, a3, a4, a5}, target: at(25),
			want: []string{"a/binlog.000003", "a/binlog.000004"}},
		{name: "a moment in the dump's own file", files: []archive.BinlogFile{a3, a4}, target: at(15),
			want: []string{"a/binlog.000003"}},
		{name: "the dump's file not archived yet: the dump alone", files: []archive.BinlogFile{a1, a2}, target: archive.Target{},
			want: nil},
		{name: "a missing file after the dump's", files: []archive.BinlogFile{a3, a5}, target: archive.Target{},
			wantErr: "binary log binlog.000004 of server a is missing", gap: true},
		{name: "a missing file whose successor began after the target", files: []archive.BinlogFile{a3, a5}, target: at(21),
			wantErr: "binlog.000004 of server a is missing", gap: true},
		{name: "the dump's own file missing", files: []archive.BinlogFile{a4, a5}, target: archive.Target{},
			wantErr: "binlog.000003 of server a is missing", gap: true},
		{name: "after a failover: the new primary's files after the dump's server's", files: []archive.BinlogFile{a3, a4, b7, b8, b9},
			target: archive.Target{}, want: []string{"a/binlog.000003", "a/binlog.000004", "b/binlog.000008", "b/binlog.000009"}},
		{name: "a missing file of the new primary", files: []archive.BinlogFile{a3, b8, binlogOf("b", 10, 50, 60)}, target: archive.Target{},
			wantErr: "binlog.000009 of server b is missing", gap: true},
		{name: "a target past every archived event", files: []archive.BinlogFile{a3, a4}, target: at(31),
			wantErr: "the archive ends at 2026-12-03T10:30:00Z, before the target"},
		{name: "a target in the last archived second", files: []archive.BinlogFile{a3, a4}, target: archive.Target{Time: t0.Add(30*time.Minute + 500*time.Millisecond)},
			want: []string{"a/binlog.000003", "a/binlog.000004"}},
		{name: "a target within the dump", files: nil, target: at(11), want: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := archive.PlanBinlogReplay(dump, tc.files, tc.target)
			if tc.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
				var gap *archive.BinlogGap
				g.Expect(errors.As(err, &gap)).To(Equal(tc.gap))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(steps(got)).To(Equal(tc.want))
			if len(got) > 0 && got[0].File.Server == "a" && got[0].File.Seq == 3 {
				g.Expect(got[0].Start).To(Equal(int64(157)), "the dump's file from the dump's position")
			}
			for i, s := range got {
				if i > 0 {
					g.Expect(s.Start).To(BeZero(), "later files from their beginning")
				}
			}
		})
	}

	t.Run("a dump without a position", func(t *testing.T) {
		g := NewWithT(t)
		_, err := archive.PlanBinlogReplay(archive.BaseBackup{ID: "pg"}, []archive.BinlogFile{a1}, archive.Target{})
		g.Expect(err).To(MatchError(ContainSubstring("records no binary log position")))
	})
}

// TestReplayArgs: mysqlbinlog's options for each step.
func TestReplayArgs(t *testing.T) {
	g := NewWithT(t)
	dump := archive.BaseBackup{BinlogServer: "a", GTIDExecuted: "a:1-100"}
	target := archive.Target{Time: time.Date(2026, 12, 3, 10, 40, 50, 0, time.UTC)}
	same := archive.MySQLRestore{SourceDatabase: "orders", Database: "orders"}
	g.Expect(archive.ReplayArgs(dump, archive.ReplayStep{File: archive.BinlogFile{Server: "a"}, Start: 157}, target, same)).
		To(Equal([]string{"--database=orders", "--start-position=157", "--stop-datetime=2026-12-03 10:40:50"}))
	g.Expect(archive.ReplayArgs(dump, archive.ReplayStep{File: archive.BinlogFile{Server: "a"}}, archive.Target{}, same)).
		To(Equal([]string{"--database=orders"}), "latest: no stop")
	renamed := archive.MySQLRestore{SourceDatabase: "orders", Database: "shop"}
	g.Expect(archive.ReplayArgs(dump, archive.ReplayStep{File: archive.BinlogFile{Server: "b"}}, archive.Target{}, renamed)).
		To(Equal([]string{"--rewrite-db=orders->shop", "--database=shop", "--exclude-gtids=a:1-100"}),
			"MySQL filters by the new name; another server's files leave out what the dump holds")
	renamed.MariaDB = true
	g.Expect(archive.ReplayArgs(dump, archive.ReplayStep{File: archive.BinlogFile{Server: "a"}}, archive.Target{}, renamed)).
		To(Equal([]string{"--rewrite-db=orders->shop", "--database=orders"}), "MariaDB filters by the old name")

	// MariaDB's mariadb-binlog has no --exclude-gtids: a restore that needs
	// another server's files is refused before anything is written.
	var out strings.Builder
	err := (&archive.Archive{}).WriteMySQLRestore(context.Background(), &out, dump,
		[]archive.ReplayStep{{File: archive.BinlogFile{Server: "a", Name: "binlog.000003"}}, {File: archive.BinlogFile{Server: "b", Name: "binlog.000008"}}},
		archive.Target{}, renamed)
	g.Expect(err).To(MatchError(ContainSubstring("needs binary log binlog.000008 of server b")))
	g.Expect(out.Len()).To(BeZero())
}

// TestPlanBinlogRetention runs on a fixed clock: binary logs only as old as
// the oldest kept base dump needs, on every server; never the newest dump.
func TestPlanBinlogRetention(t *testing.T) {
	g := NewWithT(t)
	week := 7 * 24 * time.Hour
	day := func(d int) time.Time { return t0.Add(time.Duration(d) * 24 * time.Hour) }
	dumps := []archive.BaseBackup{
		{ID: "d0", Engine: archive.MySQLEngine, StartTime: day(0), EndTime: day(0).Add(time.Minute)},
		{ID: "d5", Engine: archive.MySQLEngine, StartTime: day(5), EndTime: day(5).Add(time.Minute)},
		{ID: "d9", Engine: archive.MySQLEngine, StartTime: day(9), EndTime: day(9).Add(time.Minute)},
	}
	files := []archive.BinlogFile{
		{Server: "a", Name: "binlog.000001", Seq: 1, First: day(0), Last: day(4)},
		{Server: "a", Name: "binlog.000002", Seq: 2, First: day(4), Last: day(5).Add(-time.Second)},
		{Server: "a", Name: "binlog.000003", Seq: 3, First: day(5), Last: day(8)},
		{Server: "b", Name: "binlog.000010", Seq: 10, First: day(1), Last: day(3)},
		{Server: "b", Name: "binlog.000011", Seq: 11, First: day(3), Last: day(12)},
	}
	// Day 13: the window is days 6 to 13; d5 is the newest dump that ended
	// before day 6, so it stays, and so does every file with events from
	// its start on.
	plan := archive.PlanRetention(dumps, nil, day(13), week)
	g.Expect(plan.Backups).To(Equal([]string{"d0"}))
	g.Expect(plan.Kept.ID).To(Equal("d5"))
	var dropped []string
	for _, f := range archive.PlanBinlogRetention(plan.Kept, files) {
		dropped = append(dropped, f.Server+"/"+f.Name)
	}
	g.Expect(dropped).To(Equal([]string{"a/binlog.000001", "a/binlog.000002", "b/binlog.000010"}))

	// Far in the future only the newest dump stays, with what it needs.
	plan = archive.PlanRetention(dumps, nil, day(100), week)
	g.Expect(plan.Kept.ID).To(Equal("d9"))
	g.Expect(archive.PlanBinlogRetention(plan.Kept, files)).To(HaveLen(4), "b/binlog.000011 reaches past d9's start")
	g.Expect(archive.PlanBinlogRetention(nil, files)).To(BeEmpty(), "no dump: keep everything")
}
