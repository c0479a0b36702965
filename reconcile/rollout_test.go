package reconcile

import (
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

func TestNextRolloutStep(t *testing.T) {
	all := func(names ...string) map[string]bool {
		m := map[string]bool{}
		for _, n := range names {
			m[n] = true
		}
		return m
	}
	three := func() []member {
		return []member{primaryAt(0, "0/9"), replicaAt(1, 1, "0/9", true), replicaAt(2, 1, "0/8", true)}
	}
	notReady := func(ms []member, i int) []member { ms[i].ready = false; return ms }
	cases := []struct {
		name string
		view rolloutView
		want rolloutStep
	}{
		{name: "nothing outdated: done",
			view: rolloutView{members: three(), updated: all("db-0", "db-1", "db-2"), known: true, primary: "db-0"},
			want: rolloutStep{}},
		{name: "an unobserved template waits",
			view: rolloutView{members: three(), updated: all(), primary: "db-0"},
			want: rolloutStep{waiting: "the StatefulSet controller has not observed the new template yet"}},
		{name: "replicas first, the highest ordinal first",
			view: rolloutView{members: three(), updated: all(), known: true, primary: "db-0"},
			want: rolloutStep{deletePod: "db-2"}},
		{name: "a Database never Ready restarts its primary in place: no switchover before it served (a restore's last step)",
			view: rolloutView{members: three(), updated: all("db-1", "db-2"), known: true, primary: "db-0", creating: true},
			want: rolloutStep{deletePod: "db-0"}},
		{name: "one at a time: a pod not ready holds the rollout",
			view: rolloutView{members: notReady(three(), 2), updated: all("db-2"), known: true, primary: "db-0"},
			want: rolloutStep{waiting: "pod db-2 is not ready"}},
		{name: "then the next replica",
			view: rolloutView{members: three(), updated: all("db-2"), known: true, primary: "db-0"},
			want: rolloutStep{deletePod: "db-1"}},
		{name: "the primary last, after one switchover to the most advanced updated replica",
			view: rolloutView{members: three(), updated: all("db-1", "db-2"), known: true, primary: "db-0"},
			want: rolloutStep{switchTo: "db-1"}},
		{name: "the primary wherever it is: replicas on both sides go first",
			view: rolloutView{members: []member{replicaAt(0, 1, "0/9", true), primaryAt(1, "0/9"), replicaAt(2, 1, "0/9", true)},
				updated: all("db-2"), known: true, primary: "db-1"},
			want: rolloutStep{deletePod: "db-0"}},
		{name: "nothing moves during a switchover",
			view: rolloutView{members: three(), updated: all("db-1", "db-2"), known: true, primary: "db-0", switchingOver: true},
			want: rolloutStep{waiting: "a switchover is in progress"}},
		{name: "after the switchover the old primary, now a replica, restarts",
			view: rolloutView{members: []member{replicaAt(0, 2, "0/9", true), primaryAt(1, "0/9"), replicaAt(2, 2, "0/9", true)},
				updated: all("db-1", "db-2"), known: true, primary: "db-1"},
			want: rolloutStep{deletePod: "db-0"}},
		{name: "no updated replica streaming: the primary waits",
			view: rolloutView{members: []member{primaryAt(0, "0/9"), replicaAt(1, 1, "0/9", false)}, updated: all("db-1"), known: true, primary: "db-0"},
			want: rolloutStep{waiting: "no updated replica streams from the primary yet"}},
		{name: "a single pod restarts: there is nobody to hand the role to",
			view: rolloutView{members: []member{primaryAt(0, "0/9")}, updated: all(), known: true, primary: "db-0"},
			want: rolloutStep{deletePod: "db-0"}},
		{name: "a primary without the agent is restarted, not switched over",
			view: rolloutView{members: []member{{name: "db-0", ordinal: 0, exists: true, ready: true}, replicaAt(1, 1, "0/9", true)},
				updated: all("db-1"), known: true, primary: "db-0"},
			want: rolloutStep{deletePod: "db-0"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(nextRolloutStep(tc.view)).To(Equal(tc.want))
		})
	}
}

// TestScaleDownKeepsThePrimary: a scale-down that would remove the pod
// holding the primary role keeps it (and the pods below it) until a
// switchover to the most advanced streaming replica that stays.
func TestScaleDownKeepsThePrimary(t *testing.T) {
	g := NewWithT(t)
	db := func(replicas int32, primary string) *databasev1.Database {
		d := &databasev1.Database{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "ns"},
			Spec: databasev1.DatabaseSpec{Type: databasev1.PostgreSQL, Version: "17", Replicas: &replicas}}
		d.Status.CurrentPrimary = primary
		return d
	}
	g.Expect(keepPods(db(3, "db-2"))).To(BeZero(), "no scale-down")
	g.Expect(keepPods(db(2, "db-1"))).To(BeZero(), "the primary's pod stays")
	g.Expect(keepPods(db(2, "db-2"))).To(Equal(int32(3)), "pod 2 holds the role: keep 3 pods")
	g.Expect(keepPods(db(1, "db-4"))).To(Equal(int32(5)))
	g.Expect(keepPods(db(1, ""))).To(BeZero(), "no primary yet")
	my := db(1, "db-2")
	my.Spec.Type = databasev1.MySQL
	g.Expect(keepPods(my)).To(Equal(int32(3)), "MySQL's primary role moves too")
	my.Spec.Type = "oracle"
	g.Expect(keepPods(my)).To(BeZero(), "an engine without the agent keeps pod 0 the primary")

	ms := []member{replicaAt(0, 1, "0/8", true), replicaAt(1, 1, "0/9", true), primaryAt(2, "0/9"), replicaAt(3, 1, "0/A", true)}
	g.Expect(bestStayingReplica(ms, 2)).To(Equal("db-1"), "the most advanced of the pods that stay")
	ms[1].report.Streaming = false
	g.Expect(bestStayingReplica(ms, 2)).To(Equal("db-0"), "only a streaming replica")
	ms[0].ready = false
	g.Expect(bestStayingReplica(ms, 2)).To(BeEmpty(), "none yet: the primary's pod stays until one streams")
}
