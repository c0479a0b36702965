package instance_test

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/example/database-operator/instance"
)

func TestReportComparisons(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	base := instance.Report{Role: instance.Primary, Timeline: 1, Position: "0/1000000", ObservedAt: t0,
		Archive: &instance.ArchiverReport{LastArchivedWAL: "000000010000000000000001", LastArchivedTime: t0}}
	with := func(f func(r *instance.Report)) instance.Report {
		r := base
		a := *base.Archive
		r.Archive = &a
		f(&r)
		return r
	}
	for _, c := range []struct {
		name                     string
		other                    instance.Report
		sameExcept, samePosition bool
	}{
		{"identical but observed later", with(func(r *instance.Report) { r.ObservedAt = t0.Add(time.Second) }), true, true},
		{"position moved", with(func(r *instance.Report) { r.Position = "0/2000000" }), true, false},
		{"archived one more file", with(func(r *instance.Report) {
			r.Archive.LastArchivedWAL, r.Archive.LastArchivedTime = "000000010000000000000002", t0.Add(time.Minute)
		}), true, false},
		{"archiving starts failing", with(func(r *instance.Report) {
			r.Archive.LastFailedWAL, r.Archive.LastFailedTime = "000000010000000000000002", t0.Add(time.Minute)
		}), false, false},
		{"archiving stops reporting", with(func(r *instance.Report) { r.Archive = nil }), true, false},
		{"role changed", with(func(r *instance.Report) { r.Role = instance.Replica }), false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(base.SameExceptPositions(c.other)).To(Equal(c.sameExcept))
			g.Expect(base.SamePositions(c.other)).To(Equal(c.samePosition))
		})
	}
	// Two failing archivers compare the same, whatever failed last.
	f1 := with(func(r *instance.Report) { r.Archive.LastFailedWAL, r.Archive.LastFailedTime = "a", t0.Add(time.Minute) })
	f2 := with(func(r *instance.Report) {
		r.Archive.LastFailedWAL, r.Archive.LastFailedTime = "b", t0.Add(2*time.Minute)
	})
	NewWithT(t).Expect(f1.SameExceptPositions(f2)).To(BeTrue())
}

func TestReportRoundTrip(t *testing.T) {
	g := NewWithT(t)
	r := instance.Report{Role: instance.Replica, ObservedAt: time.Date(2026, 12, 3, 6, 0, 0, 5, time.UTC),
		Archive: &instance.ArchiverReport{LastArchivedWAL: "000000010000000000000001", LastArchivedTime: time.Date(2026, 12, 3, 5, 0, 0, 0, time.UTC), Ready: 3}}
	back, err := instance.ParseReport(r.String())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(back).To(Equal(r))
	g.Expect(r.String()).NotTo(ContainSubstring("lastFailedTime"), "zero times are left out")
}

func TestBackupReportFitsTheTerminationMessage(t *testing.T) {
	g := NewWithT(t)
	long := instance.BackupReport{Error: strings.Repeat("pg_basebackup: error: connection lost; ", 300)}
	s := long.String()
	g.Expect(len(s)).To(BeNumerically("<=", 4096))
	back, err := instance.ParseBackupReport(s)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(back.Error).To(HavePrefix("pg_basebackup: error: connection lost"))
	g.Expect(back.Error).To(HaveSuffix("…"))

	ok := instance.BackupReport{ID: "20261203T060000Z", EndTime: time.Date(2026, 12, 3, 6, 0, 5, 0, time.UTC), Size: 42}
	back, err = instance.ParseBackupReport(ok.String())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(back).To(Equal(ok))
	g.Expect(ok.String()).NotTo(ContainSubstring("error"))
}

func TestVolumeNearlyFull(t *testing.T) {
	const gib = int64(1) << 30
	for _, c := range []struct {
		name       string
		size, free int64
		nearlyFull bool
	}{
		{name: "not measured", size: 0, free: 0},
		{name: "half free", size: gib, free: gib / 2},
		{name: "5% free of 1 GiB is 51 MiB", size: gib, free: gib/20 + 1},
		{name: "under 5% free", size: gib, free: gib/20 - 1, nearlyFull: true},
		{name: "20% of a small volume is under 32 MiB", size: 100 << 20, free: 20 << 20, nearlyFull: true},
		{name: "full", size: gib, free: 0, nearlyFull: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			r := instance.Report{VolumeBytes: c.size, VolumeFreeBytes: c.free}
			g.Expect(r.VolumeNearlyFull()).To(Equal(c.nearlyFull))
		})
	}
	g := NewWithT(t)
	a := instance.Report{Role: instance.Primary, VolumeBytes: gib, VolumeFreeBytes: gib / 2}
	b := a
	b.VolumeFreeBytes = gib / 3
	g.Expect(a.SameExceptPositions(b)).To(BeTrue(), "free space moves like a position")
	g.Expect(a.SamePositions(b)).To(BeFalse())
	b.VolumeFreeBytes = 0
	g.Expect(a.SameExceptPositions(b)).To(BeFalse(), "becoming nearly full is news")
}
