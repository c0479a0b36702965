package agent

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/example/database-operator/instance"
)

func TestParsePostgresObserve(t *testing.T) {
	archived := time.Date(2026, 12, 3, 6, 40, 1, 123456000, time.UTC)
	failed := time.Date(2026, 12, 3, 6, 41, 0, 0, time.UTC)
	for _, c := range []struct {
		name, out string
		want      instance.Report
		err       string
	}{
		{name: "primary without archiving", out: "f|3|0/3000060||f|f|||||0|0",
			want: instance.Report{Role: instance.Primary, Timeline: 3, Position: "0/3000060"}},
		{name: "primary with two streaming replicas", out: "f|3|0/3000060||f|f|||||0|2",
			want: instance.Report{Role: instance.Primary, Timeline: 3, Position: "0/3000060", StreamingReplicas: 2}},
		{name: "streaming replica", out: "t|2|0/5000000|0/4FFFFF0|t|f|||||0|0",
			want: instance.Report{Role: instance.Replica, Timeline: 2, Position: "0/5000000", ReplayPosition: "0/4FFFFF0", Streaming: true}},
		{name: "archiving, never archived yet", out: "f|1|0/1000000||f|t|||||0|0",
			want: instance.Report{Role: instance.Primary, Timeline: 1, Position: "0/1000000", Archive: &instance.ArchiverReport{}}},
		{name: "archiving with a failure after the last success", out: "f|1|0/9000000||f|t|000000010000000000000007|1796280001.123456|000000010000000000000008|1796280060|2|0",
			want: instance.Report{Role: instance.Primary, Timeline: 1, Position: "0/9000000", Archive: &instance.ArchiverReport{
				LastArchivedWAL: "000000010000000000000007", LastArchivedTime: archived,
				LastFailedWAL: "000000010000000000000008", LastFailedTime: failed, Ready: 2}}},
		{name: "too few fields", out: "f|1|0/1000000|||f", err: "unexpected answer"},
		{name: "a replica count that is not a number", out: "f|3|0/3000060||f|f|||||0|x", err: "streaming replicas"},
		{name: "bad epoch", out: "f|1|0/1000000||f|t|000000010000000000000001|1e9|||0|0", err: "last_archived_time"},
		{name: "too many decimals", out: "f|1|0/1000000||f|t|000000010000000000000001|1.1234567890|||0|0", err: "nine decimals"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			r, err := parsePostgresObserve(c.out)
			if c.err != "" {
				g.Expect(err).To(MatchError(ContainSubstring(c.err)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(r).To(Equal(c.want))
			g.Expect(r.Archive.Failing()).To(Equal(c.want.Archive != nil && c.want.Archive.LastFailedWAL != ""))
		})
	}
}

func TestSegmentClock(t *testing.T) {
	g := NewWithT(t)
	t0 := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	limit := 35 * time.Second
	c := &SegmentClock{}
	seg8 := instance.LSN(8*walSegmentSize + 0x5000)
	g.Expect(c.due(seg8, t0, limit)).To(BeFalse(), "first sight starts the clock")
	g.Expect(c.due(seg8+0x100, t0.Add(34*time.Second), limit)).To(BeFalse())
	g.Expect(c.due(seg8+0x200, t0.Add(35*time.Second), limit)).To(BeTrue(), "current for the limit: close it")
	g.Expect(c.due(seg8+0x200, t0.Add(36*time.Second), limit)).To(BeFalse(), "the clock restarts after a switch request")
	seg9 := instance.LSN(9 * walSegmentSize)
	g.Expect(c.due(seg9, t0.Add(40*time.Second), limit)).To(BeFalse(), "a new segment restarts the clock")
	g.Expect(c.due(seg9, t0.Add(80*time.Second), limit)).To(BeFalse(), "nothing written in the segment: nothing to close")
	g.Expect(c.due(seg9+0x28, t0.Add(120*time.Second), limit)).To(BeTrue())
}
