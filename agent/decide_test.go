package agent

import (
	"testing"

	. "github.com/onsi/gomega"

	"github.com/example/database-operator/instance"
)

func TestDecide(t *testing.T) {
	primary := &instance.Report{Role: instance.Primary}
	replica := &instance.Report{Role: instance.Replica}
	for _, c := range []struct {
		name string
		s    situation
		want action
	}{
		{name: "no role yet: the server is not started",
			s: situation{phase: idle}, want: wait},
		{name: "a role: prepare, then start",
			s: situation{phase: idle, desired: instance.Replica}, want: prepare},
		{name: "a failed start waits for its backoff",
			s: situation{phase: idle, desired: instance.Primary, backingOff: true}, want: wait},
		{name: "a pod being deleted starts nothing",
			s: situation{phase: idle, desired: instance.Primary, terminating: true}, want: wait},
		{name: "a replica asked to be the primary is promoted",
			s: situation{phase: running, desired: instance.Primary, server: replica}, want: promote},
		{name: "a primary asked to be a replica is stopped at once (fencing)",
			s: situation{phase: running, desired: instance.Replica, server: primary}, want: demote},
		{name: "a server in its role is left alone",
			s: situation{phase: running, desired: instance.Primary, server: primary}, want: wait},
		{name: "a server that does not answer is neither promoted nor demoted",
			s: situation{phase: running, desired: instance.Replica}, want: wait},
		{name: "a terminating pod's primary is not demoted: it is stopping anyway",
			s: situation{phase: running, desired: instance.Replica, server: primary, terminating: true}, want: wait},
		{name: "nothing while the prepare script runs",
			s: situation{phase: preparing, desired: instance.Primary}, want: wait},
		{name: "nothing while the server stops",
			s: situation{phase: stopping, desired: instance.Replica, server: primary}, want: wait},
	} {
		t.Run(c.name, func(t *testing.T) {
			NewWithT(t).Expect(decide(c.s)).To(Equal(c.want), "%s", decide(c.s))
		})
	}
}
