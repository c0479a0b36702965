package reconcile

import (
	"testing"

	. "github.com/onsi/gomega"

	"github.com/example/database-operator/instance"
)

func TestVolumeProblem(t *testing.T) {
	withVolume := func(m member, size, free int64) member {
		r := *m.report
		r.VolumeBytes, r.VolumeFreeBytes = size, free
		m.report = &r
		return m
	}
	const mib = 1 << 20
	for _, c := range []struct {
		name    string
		members []member
		want    string
	}{
		{name: "no volume measured", members: []member{primaryAt(0, "0/9"), replicaAt(1, 1, "0/9", true)}},
		{name: "room on every volume", members: []member{withVolume(primaryAt(0, "0/9"), 1024*mib, 600*mib), withVolume(replicaAt(1, 1, "0/9", true), 1024*mib, 500*mib)}},
		{name: "the primary's volume nearly full",
			members: []member{withVolume(primaryAt(0, "0/9"), 256*mib, 3*mib), withVolume(replicaAt(1, 1, "0/9", true), 256*mib, 200*mib)},
			want:    "data volume nearly full: db-0 has 3.0 MiB free of 256.0 MiB; writes fail"},
		{name: "reported while the server does not answer (a full volume stops it)",
			members: []member{withVolume(notAnswering(primaryAt(0, "0/9")), 256*mib, 0)},
			want:    "db-0 has 0.0 MiB free"},
		{name: "a pod that is gone does not count", members: []member{{name: "db-0", report: &instance.Report{VolumeBytes: 256 * mib}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			p := volumeProblem(c.members)
			if c.want == "" {
				g.Expect(p).To(BeNil())
				return
			}
			g.Expect(p).NotTo(BeNil())
			g.Expect(p.reason).To(Equal(reasonVolumeNearlyFull))
			g.Expect(p.message).To(ContainSubstring(c.want))
			g.Expect(p.message).To(ContainSubstring("Grow spec.storage.size"))
		})
	}
}
