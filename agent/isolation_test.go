package agent

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func TestIsolationFence(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	const timeout = 2 * time.Second
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	for _, c := range []struct {
		name    string
		iso     isolation
		now     time.Time
		probing bool
		fence   bool
	}{
		{name: "replicas stream: nothing to check", iso: isolation{hadReplica: true}, now: at(time.Hour)},
		{name: "a primary that never had a replica never fences (a one-pod Database in an API outage)",
			iso: isolation{replicasLostAt: t0, apiFailingSince: t0}, now: at(time.Minute)},
		{name: "replicas gone, the API answers: probing, no fence",
			iso: isolation{hadReplica: true, replicasLostAt: t0}, now: at(10 * time.Second), probing: true},
		{name: "both gone for less than the timeout",
			iso: isolation{hadReplica: true, replicasLostAt: t0, apiFailingSince: at(time.Second)}, now: at(2500 * time.Millisecond), probing: true},
		{name: "both gone for the timeout: fence",
			iso: isolation{hadReplica: true, replicasLostAt: t0, apiFailingSince: at(time.Second)}, now: at(3 * time.Second), probing: true, fence: true},
		{name: "the API lost first, replicas just now: the replicas' timeout counts too",
			iso: isolation{hadReplica: true, replicasLostAt: at(10 * time.Second), apiFailingSince: t0}, now: at(11 * time.Second), probing: true},
		{name: "an API outage long after the replicas went is not a partition",
			iso: isolation{hadReplica: true, replicasLostAt: t0, apiFailingSince: at(2 * time.Minute)}, now: at(3 * time.Minute)},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(c.iso.probing(c.now)).To(Equal(c.probing), "probing")
			g.Expect(c.iso.fenceDue(c.now, timeout)).To(Equal(c.fence), "fence")
			g.Expect(c.iso.fenceDue(c.now, 0)).To(BeFalse(), "no timeout, no fence")
		})
	}
}
