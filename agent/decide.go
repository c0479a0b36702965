package agent

import "github.com/example/database-operator/instance"

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
