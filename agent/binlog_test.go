package agent

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/example/database-operator/archive"
)

// TestShippingFrom: a primary that has never archived skips the files the
// archive already covers (a first failover); one that has archived before
// skips nothing, so its files in the archive have no hole (a failback
// after a restart of its agent).
func TestShippingFrom(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	file := func(server, name string, last int) archive.BinlogFile {
		return archive.BinlogFile{Server: server, Name: name, Last: t0.Add(time.Duration(last) * time.Minute)}
	}
	for _, tc := range []struct {
		name     string
		server   string
		files    []archive.BinlogFile
		wantFrom time.Time
		shipped  []string
	}{
		{name: "a new archive: everything", server: "a", wantFrom: time.Time{}},
		{name: "the first primary restarted: everything after its own", server: "a", files: []archive.BinlogFile{file("a", "binlog.000001", 5), file("a", "binlog.000002", 10)},
			wantFrom: time.Time{}, shipped: []string{"binlog.000001", "binlog.000002"}},
		{name: "a replica promoted for the first time: from the archive's end, less the clock margin", server: "b",
			files: []archive.BinlogFile{file("a", "binlog.000001", 5), file("a", "binlog.000002", 30)}, wantFrom: t0.Add(30*time.Minute - ClockMargin)},
		{name: "a former primary promoted again: everything", server: "a",
			files:    []archive.BinlogFile{file("a", "binlog.000003", 10), file("b", "binlog.000007", 60)},
			wantFrom: time.Time{}, shipped: []string{"binlog.000003"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			shipped, from := shippingFrom(tc.files, tc.server)
			g.Expect(from).To(Equal(tc.wantFrom))
			var names []string
			for n := range shipped {
				names = append(names, n)
			}
			g.Expect(names).To(ConsistOf(tc.shipped))
		})
	}
}
