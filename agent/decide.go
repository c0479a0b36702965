package agent

import (
	"time"

	"github.com/example/database-operator/instance"
)

// phase is where the agent is in the server's life.
type phase int

const (
	// idle: no server and no prepare script running.
	idle phase = iota
	// preparing: the prepare script runs (a copy, a rewind).
	preparing
	// running: the server process runs (it may not answer yet).
	running
	// stopping: the server was asked to stop, to start again in another
	// role, or because the pod is stopping.
	stopping
)

func (p phase) String() string {
	return [...]string{"idle", "preparing", "running", "stopping"}[p]
}

// action is what the agent does next.
type action int

const (
	// wait: nothing to do until something changes.
	wait action = iota
	// prepare: run the prepare script for the desired role, then start.
	prepare
	// promote: make the running replica the primary.
	promote
	// demote: stop the running primary; it starts again as a replica.
	demote
)

func (a action) String() string {
	return [...]string{"wait", "prepare", "promote", "demote"}[a]
}

// situation is everything decide looks at.
type situation struct {
	// desired is the role the operator asks for; empty until it has.
	desired instance.Role
	// terminating: the pod is being deleted or the agent was told to stop.
	terminating bool
	phase       phase
	// backingOff: the last start or prepare failed a moment ago.
	backingOff bool
	// server is what the running server answered; nil when it did not.
	server *instance.Report
}

// decide is the agent's whole policy. A server never runs in a role the
// operator has not given: without a role it is not started, and a primary
// that is asked to be a replica stops at once (fencing), to start again
// as a replica of the new primary.
func decide(s situation) action {
	if s.terminating {
		return wait
	}
	switch s.phase {
	case idle:
		if s.desired == "" || s.backingOff {
			return wait
		}
		return prepare
	case running:
		if s.server == nil {
			return wait
		}
		switch {
		case s.desired == instance.Primary && s.server.Role == instance.Replica:
			return promote
		case s.desired == instance.Replica && s.server.Role == instance.Primary:
			return demote
		}
	}
	return wait
}

// isolation is what the agent of a primary knows of being cut off from
// its replicas and from the API server at once: a network partition of its
// node, on whose far side the operator is about to promote a replica that
// the old primary cannot hear about (its label cannot reach it).
type isolation struct {
	// hadReplica: a replica streamed from the server since it last
	// started or was promoted. A primary that never had one (a Database
	// of one pod) has nobody to be replaced by, and never fences.
	hadReplica bool
	// replicasLostAt is when the last streaming replica went; zero while
	// one streams.
	replicasLostAt time.Time
	// apiFailingSince is when the first of the failed API reads in a row
	// was; zero after one succeeds.
	apiFailingSince time.Time
}

// isolationWindow bounds how long after losing its replicas the agent
// reads the API to find out whether it is isolated: an API outage that
// begins long after the replicas went is not a partition with them, and
// stopping the primary for it would only add an outage.
const isolationWindow = time.Minute

// probing says the agent should read the API now to tell a partition
// from replicas that merely went.
func (i isolation) probing(now time.Time) bool {
	return i.hadReplica && !i.replicasLostAt.IsZero() && now.Sub(i.replicasLostAt) <= isolationWindow
}

// fenceDue says the primary has been without a streaming replica and
// without the API server for timeout: it stops its server, so that a
// replica promoted on the other side of a partition is the only primary
// that takes writes. 0 never fences.
func (i isolation) fenceDue(now time.Time, timeout time.Duration) bool {
	return timeout > 0 && i.probing(now) && !i.apiFailingSince.IsZero() &&
		now.Sub(i.replicasLostAt) >= timeout && now.Sub(i.apiFailingSince) >= timeout
}
