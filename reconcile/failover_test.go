package reconcile

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/instance"
)

var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

// Members for the decision tables: db-N, existing and ready unless said.
func primaryAt(n int, pos string) member {
	return member{name: podName(n), ordinal: n, exists: true, ready: true,
		report: &instance.Report{Role: instance.Primary, Timeline: 1, Position: pos}}
}

func replicaAt(n int, tli int64, pos string, streaming bool) member {
	return member{name: podName(n), ordinal: n, exists: true, ready: true,
		report: &instance.Report{Role: instance.Replica, Timeline: tli, Position: pos, Streaming: streaming}}
}

func cutOff(m member) member {
	m.report.Streaming, m.report.PrimaryUnreachable = false, true
	return m
}

func gone(n int) member { return member{name: podName(n), ordinal: n} }

func deleting(m member) member { m.deleting = true; return m }

func notAnswering(m member) member {
	m.report = &instance.Report{Message: "server not answering"}
	return m
}

// MySQL server UUIDs of two sources of transactions.
const (
	gtidA = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	gtidB = "4f22ab58-82db-22f2-af44-d91bb0530673"
)

// mysqlReplica reports a MySQL replica: no timeline, its executed GTID set.
func mysqlReplica(n int, gtids string, streaming bool) member {
	return replicaAt(n, 0, gtids, streaming)
}

func podName(n int) string { return "db-" + string(rune('0'+n)) }

func TestDecidePrimary(t *testing.T) {
	delay := 5 * time.Second
	base := func(current string, ms ...member) primaryView {
		return primaryView{current: current, members: ms, managed: true, mode: databasev1.ReplicationAsync, delay: delay, established: true, now: t0}
	}
	sync := func(v primaryView) primaryView { v.mode = databasev1.ReplicationSync; return v }
	mysql := func(v primaryView) primaryView { v.engine = databasev1.MySQL; return v }
	since := func(v primaryView, d time.Duration) primaryView { v.unavailableSince = t0.Add(-d); return v }
	switchTo := func(v primaryView, to string) primaryView { v.switchoverTo = to; return v }
	switching := func(v primaryView, from, to string) primaryView {
		v.switchover = &databasev1.SwitchoverStatus{From: from, To: to, Started: metav1.NewTime(t0.Add(-time.Second))}
		return v
	}

	cases := []struct {
		name string
		view primaryView
		// primary is who holds the role after the decision.
		primary string
		// failover names the pod promoted by a failover ("" none).
		failover string
		// switchedTo names the pod promoted by a switchover.
		switchedTo string
		// switchingTo names the target of a switchover started or in progress.
		switchingTo string
		// retryAfter is the wait for the failover delay.
		retryAfter time.Duration
		// problem is a substring of the Degraded message ("" none).
		problem string
		// refused is a substring of a refused switchover's Event.
		refused string
	}{
		{name: "without the agent pod 0 is the primary for ever",
			view:    primaryView{current: "db-1", members: []member{gone(0), replicaAt(1, 1, "0/5", false)}, delay: delay, now: t0},
			primary: "db-0"},
		{name: "a new Database starts with pod 0",
			view: base("", gone(0), gone(1)), primary: "db-0"},
		{name: "a Database that has never been Ready does not fail over: its primary is initialising",
			view: func() primaryView {
				v := since(base("db-0", notAnswering(primaryAt(0, "0/9")), replicaAt(1, 1, "0/9", false)), time.Hour)
				v.established = false
				return v
			}(),
			primary: "db-0"},
		{name: "where no agent reports (pods that run nothing) nothing is judged",
			view:    since(base("db-0", gone(0), member{name: "db-1", ordinal: 1, exists: true, ready: true}), time.Hour),
			primary: "db-0"},
		{name: "a serving primary keeps the role",
			view: base("db-0", primaryAt(0, "0/9"), replicaAt(1, 1, "0/9", true)), primary: "db-0"},
		{name: "a primary reported unavailable waits for the failover delay",
			view:    base("db-0", notAnswering(primaryAt(0, "0/9")), replicaAt(1, 1, "0/9", false)),
			primary: "db-0", retryAfter: delay},
		{name: "the delay counts from when it was first seen",
			view:    since(base("db-0", gone(0), replicaAt(1, 1, "0/9", false)), 3*time.Second),
			primary: "db-0", retryAfter: 2 * time.Second},
		{name: "after the delay the most advanced replica is promoted",
			view:    since(base("db-0", gone(0), replicaAt(1, 1, "0/8", false), replicaAt(2, 1, "0/9", false)), delay),
			primary: "db-2", failover: "db-2"},
		{name: "a pod being deleted is unavailable",
			view:    since(base("db-0", deleting(primaryAt(0, "0/9")), replicaAt(1, 1, "0/9", false)), delay),
			primary: "db-1", failover: "db-1"},
		{name: "positions are compared as numbers, not text",
			view:    since(base("db-0", gone(0), replicaAt(1, 1, "0/FF", false), replicaAt(2, 1, "1/0", false)), delay),
			primary: "db-2", failover: "db-2"},
		{name: "a later timeline wins over a further position",
			view:    since(base("db-0", gone(0), replicaAt(1, 2, "0/5", false), replicaAt(2, 1, "0/9", false)), delay),
			primary: "db-1", failover: "db-1"},
		{name: "equal positions go to the lower ordinal",
			view:    since(base("db-1", replicaAt(0, 1, "0/9", false), gone(1), replicaAt(2, 1, "0/9", false)), delay),
			primary: "db-0", failover: "db-0"},
		{name: "a replica still streaming is no candidate: its position is not final",
			view:    since(base("db-0", notAnswering(primaryAt(0, "0/9")), replicaAt(1, 1, "0/9", true), replicaAt(2, 1, "0/8", false)), delay),
			primary: "db-2", failover: "db-2"},
		{name: "no candidate: refused, the primary keeps the role",
			view:    since(base("db-0", gone(0), notAnswering(replicaAt(1, 1, "0/9", false))), delay),
			primary: "db-0", problem: "db-1 does not run as a replica"},
		{name: "a single pod has nobody to hand the role to, and is not degraded for it",
			view:    since(base("db-0", notAnswering(primaryAt(0, "0/9"))), delay),
			primary: "db-0"},
		{name: "replicas scaled away leave nobody to promote",
			view:    since(base("db-0", notAnswering(primaryAt(0, "0/9")), gone(1)), delay),
			primary: "db-0", problem: "db-1 does not exist"},
		{name: "async mode promotes the best known replica when another is silent",
			view:    since(base("db-0", gone(0), replicaAt(1, 1, "0/8", false), gone(2)), delay),
			primary: "db-1", failover: "db-1"},
		{name: "sync mode refuses while a replica's position is unknown",
			view:    sync(since(base("db-0", gone(0), replicaAt(1, 1, "0/8", false), gone(2)), delay)),
			primary: "db-0", problem: "sync mode needs every replica's final position"},
		{name: "sync mode promotes the most advanced when every replica has reported",
			view:    sync(since(base("db-0", gone(0), replicaAt(1, 1, "0/8", false), replicaAt(2, 1, "0/9", false)), delay)),
			primary: "db-2", failover: "db-2"},
		{name: "MySQL: the replica whose GTID set contains the others' is promoted",
			view: mysql(since(base("db-0", gone(0),
				mysqlReplica(1, gtidA+":1-7", false), mysqlReplica(2, gtidA+":1-9", false)), delay)),
			primary: "db-2", failover: "db-2"},
		{name: "MySQL: equal GTID sets go to the lower ordinal",
			view: mysql(since(base("db-0", gone(0),
				mysqlReplica(1, gtidA+":1-9", false), mysqlReplica(2, gtidA+":1-9", false)), delay)),
			primary: "db-1", failover: "db-1"},
		{name: "MySQL: refused when no GTID set contains the others' (an errant transaction)",
			view: mysql(since(base("db-0", gone(0),
				mysqlReplica(1, gtidA+":1-9", false), mysqlReplica(2, gtidA+":1-8,"+gtidB+":1", false)), delay)),
			primary: "db-0", problem: "no replica's executed GTID set contains all the others': db-1, the most advanced"},
		{name: "MySQL: a position that is not a GTID set makes no candidate",
			view: mysql(since(base("db-0", gone(0),
				mysqlReplica(1, "0/9", false), mysqlReplica(2, gtidA+":1-3", false)), delay)),
			primary: "db-2", failover: "db-2"},
		{name: "MySQL sync mode: a replica without a valid position blocks the failover",
			view: sync(mysql(since(base("db-0", gone(0),
				mysqlReplica(1, "0/9", false), mysqlReplica(2, gtidA+":1-3", false)), delay))),
			primary: "db-0", problem: "db-1 reports no position"},
		{name: "every replica cut off from a primary that still reports: its node is lost",
			view:    since(base("db-0", primaryAt(0, "0/9"), cutOff(replicaAt(1, 1, "0/9", false)), cutOff(replicaAt(2, 1, "0/7", false))), delay),
			primary: "db-1", failover: "db-1"},
		{name: "one replica cut off is that replica's problem",
			view:    base("db-0", primaryAt(0, "0/9"), cutOff(replicaAt(1, 1, "0/9", false)), replicaAt(2, 1, "0/9", true)),
			primary: "db-0"},
		{name: "replicas not streaming but able to reach the primary are reconnecting",
			view:    base("db-0", primaryAt(0, "0/9"), replicaAt(1, 1, "0/9", false), replicaAt(2, 1, "0/9", false)),
			primary: "db-0"},
		{name: "no flapping: a primary not yet promoted after the delay counts as unavailable only without a recent promotion",
			view:    base("db-1", replicaAt(0, 1, "0/9", false), replicaAt(1, 1, "0/9", false)),
			primary: "db-1", retryAfter: delay},
		{name: "no flapping: a primary promoted a moment ago that still runs as a replica is being promoted",
			view: func() primaryView {
				v := since(base("db-1", replicaAt(0, 1, "0/9", false), replicaAt(1, 1, "0/9", false)), time.Minute)
				v.promotedAt = t0.Add(-10 * time.Second)
				return v
			}(),
			primary: "db-1"},
		{name: "a promotion that never completes is given up after its timeout",
			view: func() primaryView {
				v := since(base("db-1", replicaAt(0, 1, "0/9", false), replicaAt(1, 1, "0/9", false)), time.Minute)
				v.promotedAt = t0.Add(-promotionTimeout)
				return v
			}(),
			primary: "db-0", failover: "db-0"},
		{name: "a switchover demotes the primary first: nobody holds the role",
			view:    switchTo(base("db-0", primaryAt(0, "0/9"), replicaAt(1, 1, "0/9", true), replicaAt(2, 1, "0/9", true)), "db-2"),
			primary: "", switchingTo: "db-2"},
		{name: "a switchover to any picks the most advanced streaming replica",
			view:    switchTo(base("db-0", primaryAt(0, "0/9"), replicaAt(1, 1, "0/8", true), replicaAt(2, 1, "0/9", true)), "any"),
			primary: "", switchingTo: "db-2"},
		{name: "a switchover to the primary itself is done",
			view:    switchTo(base("db-0", primaryAt(0, "0/9"), replicaAt(1, 1, "0/9", true)), "db-0"),
			primary: "db-0"},
		{name: "a switchover to a replica that is not streaming is refused",
			view:    switchTo(base("db-0", primaryAt(0, "0/9"), replicaAt(1, 1, "0/9", false)), "db-1"),
			primary: "db-0", refused: "db-1 is not streaming"},
		{name: "a switchover to a pod that is not the Database's is refused",
			view:    switchTo(base("db-0", primaryAt(0, "0/9"), replicaAt(1, 1, "0/9", true)), "other-1"),
			primary: "db-0", refused: "not a pod of this Database"},
		{name: "a switchover waits while the old primary still serves",
			view:    switching(base("db-0", primaryAt(0, "0/9"), replicaAt(1, 1, "0/9", true)), "db-0", "db-1"),
			primary: "", switchingTo: "db-1", retryAfter: 29 * time.Second},
		{name: "a switchover whose primary does not stop is abandoned: it keeps the role",
			view: func() primaryView {
				v := switching(base("db-0", primaryAt(0, "0/9"), replicaAt(1, 1, "0/9", true)), "db-0", "db-1")
				v.switchover.Started = metav1.NewTime(t0.Add(-switchoverTimeout))
				return v
			}(),
			primary: "db-0", refused: "abandoned"},
		{name: "a switchover waits for an old primary without the agent, which its label cannot stop",
			view:    switching(base("db-0", member{name: "db-0", ordinal: 0, exists: true, ready: true}, replicaAt(1, 1, "0/9", true)), "db-0", "db-1"),
			primary: "", switchingTo: "db-1", retryAfter: 29 * time.Second},
		{name: "a switchover waits while the old primary's server is still shutting down (it sends its last WAL)",
			view: func() primaryView {
				v := switching(base("db-0", notAnswering(primaryAt(0, "0/9")), replicaAt(1, 1, "0/9", true)), "db-0", "db-1")
				v.members[0].report.Stopping = true
				return v
			}(),
			primary: "", switchingTo: "db-1", retryAfter: 29 * time.Second},
		{name: "a switchover promotes the target once the old primary stopped",
			view:    switching(base("db-0", notAnswering(primaryAt(0, "0/9")), replicaAt(1, 1, "0/9", false)), "db-0", "db-1"),
			primary: "db-1", switchedTo: "db-1"},
		{name: "a switchover whose target went back to preparing, with no other replica, gives the role back to the old primary",
			view: func() primaryView {
				v := switching(base("db-0", notAnswering(primaryAt(0, "0/9")), replicaAt(1, 1, "0/9", false)), "db-0", "db-1")
				v.members[0].report.Message = "preparing the data directory as replica"
				v.members[1].report = &instance.Report{Message: "preparing the data directory as replica"}
				return v
			}(),
			primary: "db-0", refused: "db-0 is the primary again"},
		{name: "a switchover whose old primary and target are both gone waits, Degraded",
			view:    switching(base("db-0", gone(0), gone(1), notAnswering(replicaAt(2, 1, "0/9", false))), "db-0", "db-1"),
			primary: "", switchingTo: "db-1", problem: "no replica can take over"},
		{name: "a switchover whose target failed promotes the best other replica",
			view:    switching(base("db-0", notAnswering(primaryAt(0, "0/9")), gone(1), replicaAt(2, 1, "0/9", false)), "db-0", "db-1"),
			primary: "db-2", switchedTo: "db-2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			d := decidePrimary(tc.view)
			g.Expect(d.primary).To(Equal(tc.primary), "primary")
			g.Expect(d.retryAfter).To(Equal(tc.retryAfter), "retryAfter")
			switch {
			case tc.failover != "":
				g.Expect(d.change).NotTo(BeNil())
				g.Expect(d.change.Reason).To(Equal(reasonFailedOver))
				g.Expect(d.change.From).To(Equal(tc.view.current))
				g.Expect(d.change.To).To(Equal(tc.failover))
			case tc.switchedTo != "":
				g.Expect(d.change).NotTo(BeNil())
				g.Expect(d.change.Reason).To(Equal(reasonSwitchedOver))
				g.Expect(d.change.To).To(Equal(tc.switchedTo))
				g.Expect(d.switchoverDone).To(BeTrue())
			default:
				g.Expect(d.change).To(BeNil(), "no move of the role")
			}
			if tc.switchingTo != "" {
				g.Expect(d.switchover).NotTo(BeNil())
				g.Expect(d.switchover.To).To(Equal(tc.switchingTo))
			} else {
				g.Expect(d.switchover).To(BeNil())
			}
			if tc.problem != "" {
				g.Expect(d.problem).NotTo(BeNil())
				g.Expect(d.problem.reason).To(Equal(reasonFailoverRefused))
				g.Expect(d.problem.message).To(ContainSubstring(tc.problem))
			} else {
				g.Expect(d.problem).To(BeNil())
			}
			if tc.refused != "" {
				g.Expect(d.refusedSwitchover).To(ContainSubstring(tc.refused))
				g.Expect(d.switchoverDone).To(BeTrue(), "a refused request is removed")
			} else {
				g.Expect(d.refusedSwitchover).To(BeEmpty())
			}
			if d.change != nil {
				g.Expect(strings.TrimSpace(d.change.Message)).NotTo(BeEmpty())
			}
		})
	}
}

// TestDecidePrimaryDoesNotFlap runs a failover to its end: once the new
// primary serves, the old one rejoining as a replica moves nothing back.
func TestDecidePrimaryDoesNotFlap(t *testing.T) {
	g := NewWithT(t)
	v := primaryView{current: "db-1", managed: true, delay: 5 * time.Second, established: true, now: t0,
		members: []member{replicaAt(0, 1, "0/9", true), primaryAt(1, "0/A"), replicaAt(2, 2, "0/A", true)}}
	v.members[1].report.Timeline = 2
	for i := 0; i < 5; i++ {
		d := decidePrimary(v)
		g.Expect(d.primary).To(Equal("db-1"))
		g.Expect(d.change).To(BeNil())
		g.Expect(d.unavailableSince.IsZero()).To(BeTrue())
		v.now = v.now.Add(time.Minute)
	}
}
