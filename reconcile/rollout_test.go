package reconcile

import (
	"testing"

	. "github.com/onsi/gomega"
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
