package reconcile

import (
	"fmt"
	"sort"
	"strings"
	"time"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/instance"
)

// Reasons of primary changes, their Events and refusals.
const (
	reasonFailedOver        = "FailedOver"
	reasonSwitchedOver      = "SwitchedOver"
	reasonFailoverRefused   = "FailoverRefused"
	reasonSwitchoverRefused = "SwitchoverRefused"
	// switchoverAny as the switchover annotation's value picks the most
	// advanced replica.
	switchoverAny = "any"
	// switchoverTimeout bounds the wait for a demoted primary to stop (a
	// clean shutdown takes about a second); after it the switchover is
	// abandoned and the primary keeps the role.
	switchoverTimeout = 30 * time.Second
	// promotionTimeout is how long a newly promoted primary may still run
	// as a replica (its agent has yet to see its label, or pg_promote is
	// finishing) before that counts against it: a promotion measured 1-4 s
	// on a loaded machine, and moving the role on after the failover delay
	// alone would make failovers chase each other.
	promotionTimeout = 30 * time.Second
)

// member is one database pod as the operator observed it.
type member struct {
	name    string
	ordinal int
	// exists: the pod exists in the cache.
	exists bool
	// deleting: the pod has a deletion timestamp.
	deleting bool
	// ready is the pod's Ready condition.
	ready bool
	// report is its agent's last report; nil when there is none (or it
	// cannot be read).
	report *instance.Report
}

// serving says the member's server runs as the primary: what a primary
// must be to keep the role.
func (m member) serving() bool {
	return m.exists && !m.deleting && m.report != nil && m.report.Role == instance.Primary
}

// replicaReport is the report of a member that runs as a replica; nil
// otherwise.
func (m member) replicaReport() *instance.Report {
	if !m.exists || m.deleting || m.report == nil || m.report.Role != instance.Replica {
		return nil
	}
	return m.report
}

// primaryView is what the primary decision looks at.
type primaryView struct {
	// current is status.currentPrimary; empty before the first decision.
	current string
	// members are the Database's pods, by ordinal: every pod the
	// StatefulSet should have, and any other that exists.
	members []member
	// managed: the engine runs under the agent, so the role can move.
	// Without it pod 0 is the primary for ever.
	managed bool
	// engine says how positions compare: PostgreSQL WAL locations, or
	// MySQL GTID sets.
	engine databasev1.DatabaseType
	mode   databasev1.ReplicationMode
	delay  time.Duration
	// unavailableSince is when the current primary was first seen
	// unavailable (zero: it was not).
	unavailableSince time.Time
	// switchoverTo is the switchover annotation's value; empty when none.
	switchoverTo string
	// switchover is the switchover in progress (status.switchover).
	switchover *databasev1.SwitchoverStatus
	// promotedAt is when the current primary was given the role
	// (status.lastPrimaryChange, when it names it); zero otherwise.
	promotedAt time.Time
	// established: the Database has been Ready. While it is created there
	// is nothing to fail over from (replicas are copies of a primary that
	// served), and a primary still initialising is not a failed one.
	established bool
	now         time.Time
}

// primaryDecision is who holds the primary role after this reconcile, and
// why.
type primaryDecision struct {
	// primary is the pod that holds the role; "" while none may (a
	// switchover between the demotion and the promotion).
	primary string
	// change is set when the role moves to another pod.
	change *databasev1.PrimaryChange
	// switchover is the switchover in progress after this reconcile.
	switchover *databasev1.SwitchoverStatus
	// switchoverDone: the annotation has been handled (done or refused)
	// and is removed.
	switchoverDone bool
	// unavailableSince is what to remember of the primary's availability.
	unavailableSince time.Time
	// retryAfter asks for another look after that long (the failover
	// delay running out); zero: only events matter.
	retryAfter time.Duration
	// problem is why no replica can take over from an unavailable
	// primary, or why a switchover was refused.
	problem *degradation
	// refusedSwitchover is the refusal to record as an Event.
	refusedSwitchover string
}

// decidePrimary is the whole failover and switchover policy. It is pure:
// the reconciler applies the result (status first, then the pods' role
// labels, which the agents follow).
//
// The current primary keeps the role while its server runs as primary. It
// is unavailable when its pod is gone or being deleted, when its agent
// reports that the server does not answer or runs as a replica, or when
// every replica reports that it is cut off from it (not streaming, and the
// primary's address refuses or drops connections: the node is lost, which
// the node controller would say only 40 s later). Once unavailable for
// the failover delay, the most advanced replica is promoted: the highest
// (timeline, received WAL position), ties to the lowest ordinal. Only
// replicas whose stream has ended count: their positions are final, so the
// comparison cannot be overtaken by WAL still arriving. In sync mode every
// replica must have reported so: the one that is silent may be the only
// one holding an acknowledged commit, and promoting another would lose it.
func decidePrimary(v primaryView) primaryDecision {
	if !v.managed {
		return primaryDecision{primary: podNameOf(v.members, 0)}
	}
	if v.current == "" {
		// A new Database (or one from before the role existed): pod 0
		// created the data, or was the only primary there ever was.
		return primaryDecision{primary: podNameOf(v.members, 0)}
	}
	if !v.established || !anyReport(v.members) || len(v.members) < 2 {
		// Nobody has reported: the agents do not run here (a cluster whose
		// pods run nothing), or have not started. Nothing to judge by. And
		// a single pod has nobody to hand the role to: its Ready condition
		// says it is down.
		return primaryDecision{primary: v.current}
	}
	current := memberNamed(v.members, v.current)
	if v.switchover != nil {
		return continueSwitchover(v, current)
	}
	why := unavailable(v, current)
	if why == "" {
		d := primaryDecision{primary: v.current}
		if v.switchoverTo != "" {
			return startSwitchover(v, current)
		}
		return d
	}
	since := v.unavailableSince
	if since.IsZero() {
		since = v.now
	}
	if waited := v.now.Sub(since); waited < v.delay {
		return primaryDecision{primary: v.current, unavailableSince: since, retryAfter: v.delay - waited}
	}
	candidate, refusal := bestReplica(v, v.current, true)
	if candidate == nil {
		return primaryDecision{primary: v.current, unavailableSince: since,
			problem: &degradation{reason: reasonFailoverRefused, message: fmt.Sprintf(
				"primary %s is unavailable (%s) since %s, and no replica can take over: %s",
				v.current, why, since.UTC().Format(time.RFC3339), refusal)}}
	}
	return primaryDecision{primary: candidate.name, change: &databasev1.PrimaryChange{
		Reason:  reasonFailedOver,
		From:    v.current,
		To:      candidate.name,
		Message: fmt.Sprintf("%s was unavailable for %s (%s); %s", v.current, v.now.Sub(since).Round(time.Millisecond), why, describeCandidates(v, candidate)),
	}}
}

// unavailable says why the member cannot hold the primary role; "" when
// it can.
func unavailable(v primaryView, m *member) string {
	switch {
	case m == nil || !m.exists:
		return "its pod does not exist"
	case m.deleting:
		return "its pod is being deleted"
	case m.report == nil:
		return "its agent has not reported"
	case m.report.Role == "":
		msg := "its server does not answer"
		if m.report.Message != "" {
			msg += ": " + m.report.Message
		}
		return msg
	case m.report.Role != instance.Primary:
		if !v.promotedAt.IsZero() && v.now.Sub(v.promotedAt) < promotionTimeout {
			// Being promoted: not unavailable yet.
			return ""
		}
		return "its server runs as a " + string(m.report.Role)
	}
	replicas, cutOff := 0, 0
	for _, o := range v.members {
		r := o.replicaReport()
		if o.name == m.name || r == nil {
			continue
		}
		replicas++
		if !r.Streaming && r.PrimaryUnreachable {
			cutOff++
		}
	}
	if replicas > 0 && cutOff == replicas {
		return "no replica can reach it"
	}
	return ""
}

// bestReplica is the replica to promote instead of exclude, or why there
// is none. final requires the replicas' streams to have ended (a
// failover); a switchover promotes a streaming replica, after the primary
// has stopped and sent it everything.
func bestReplica(v primaryView, exclude string, final bool) (*member, string) {
	var candidates []*member
	var why []string
	for i := range v.members {
		m := &v.members[i]
		if m.name == exclude {
			continue
		}
		r := m.replicaReport()
		switch {
		case !m.exists:
			why = append(why, m.name+" does not exist")
			continue
		case m.deleting:
			why = append(why, m.name+" is being deleted")
			continue
		case r == nil:
			why = append(why, m.name+" does not run as a replica")
			continue
		case final && r.Streaming:
			why = append(why, m.name+" still streams from the primary (its position is not final)")
			continue
		}
		if err := validPosition(v.engine, r.Position); err != nil {
			why = append(why, fmt.Sprintf("%s reports no position (%v)", m.name, err))
			continue
		}
		candidates = append(candidates, m)
	}
	if v.mode == databasev1.ReplicationSync && final && len(why) > 0 {
		return nil, "sync mode needs every replica's final position, and " + strings.Join(why, "; ") +
			": it may hold the only copy of an acknowledged commit"
	}
	if len(candidates) == 0 {
		if len(why) == 0 {
			return nil, "the Database has no replica"
		}
		return nil, strings.Join(why, "; ")
	}
	sort.SliceStable(candidates, func(i, j int) bool { return ahead(candidates[i], candidates[j]) })
	if v.engine == databasev1.MySQL {
		if why := lacking(candidates); why != "" {
			return nil, why
		}
	}
	return candidates[0], ""
}

// validPosition checks a replica's reported position: a WAL location for
// PostgreSQL, an executed GTID set for MySQL.
func validPosition(engine databasev1.DatabaseType, position string) error {
	if engine == databasev1.MySQL {
		_, err := instance.ParseGTIDSet(position)
		return err
	}
	_, err := instance.ParseLSN(position)
	return err
}

// ahead orders replicas: the later timeline, then the further position
// (for MySQL: the larger GTID set), then the lower ordinal.
func ahead(a, b *member) bool {
	ra, rb := a.report, b.report
	if ra.Timeline != rb.Timeline {
		return ra.Timeline > rb.Timeline
	}
	if ga, errA := instance.ParseGTIDSet(ra.Position); errA == nil {
		if gb, errB := instance.ParseGTIDSet(rb.Position); errB == nil {
			if ca, cb := ga.Count(), gb.Count(); ca != cb {
				return ca > cb
			}
			return a.ordinal < b.ordinal
		}
	}
	la, _ := instance.ParseLSN(ra.Position)
	lb, _ := instance.ParseLSN(rb.Position)
	if la != lb {
		return la > lb
	}
	return a.ordinal < b.ordinal
}

// lacking says why the first of the MySQL candidates (the largest GTID
// set) may not be promoted: GTID sets are only partly ordered, and a
// replica whose set does not contain every other's would lose the
// transactions only another one applied; "" when it contains them all.
// Then no other candidate can either (a set containing the largest one's
// is at least as large, so it is equal to it).
func lacking(candidates []*member) string {
	best, _ := instance.ParseGTIDSet(candidates[0].report.Position)
	var missing []string
	for _, o := range candidates[1:] {
		set, _ := instance.ParseGTIDSet(o.report.Position)
		if !best.Contains(set) {
			missing = append(missing, fmt.Sprintf("%s (%s)", o.name, o.report.Position))
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return fmt.Sprintf("no replica's executed GTID set contains all the others': %s, the most advanced (%s), lacks transactions of %s; promoting any of them would lose what only the others applied",
		candidates[0].name, candidates[0].report.Position, strings.Join(missing, ", "))
}

func describeCandidates(v primaryView, chosen *member) string {
	var parts []string
	for _, m := range v.members {
		if r := m.replicaReport(); r != nil {
			if v.engine == databasev1.MySQL {
				parts = append(parts, fmt.Sprintf("%s at %s", m.name, r.Position))
			} else {
				parts = append(parts, fmt.Sprintf("%s at %d/%s", m.name, r.Timeline, r.Position))
			}
		}
	}
	return fmt.Sprintf("promoted %s, the most advanced replica (%s)", chosen.name, strings.Join(parts, ", "))
}

// startSwitchover checks the requested target and, when it can take over,
// demotes the primary: it stops cleanly, which sends every replica that
// streams all it wrote, and the target is promoted once it has stopped.
func startSwitchover(v primaryView, current *member) primaryDecision {
	refuse := func(why string) primaryDecision {
		return primaryDecision{primary: v.current, switchoverDone: true,
			refusedSwitchover: fmt.Sprintf("switchover from %s to %s refused: %s", v.current, v.switchoverTo, why)}
	}
	var target *member
	if v.switchoverTo == switchoverAny {
		var why string
		if target, why = bestReplica(v, v.current, false); target == nil {
			return refuse(why)
		}
	} else {
		target = memberNamed(v.members, v.switchoverTo)
		if target == nil {
			return refuse(fmt.Sprintf("%s is not a pod of this Database", v.switchoverTo))
		}
	}
	switch r := target.replicaReport(); {
	case target.name == v.current:
		return primaryDecision{primary: v.current, switchoverDone: true}
	case r == nil:
		return refuse(target.name + " does not run as a replica")
	case !r.Streaming:
		return refuse(target.name + " is not streaming from the primary")
	case !target.ready:
		return refuse(target.name + " is not ready")
	}
	return primaryDecision{switchover: &databasev1.SwitchoverStatus{From: current.name, To: target.name}}
}

// continueSwitchover promotes the target once the old primary no longer
// runs as primary. Should the target fail meanwhile, the most advanced
// replica is promoted instead, as in a failover.
func continueSwitchover(v primaryView, old *member) primaryDecision {
	sw := v.switchover
	// An old primary without a report may run without the agent (from
	// before it existed), which its label cannot stop.
	// A primary shutting down still sends its last WAL to the replicas:
	// the target is promoted only once the old server has exited, so no
	// replica holds WAL beyond the point where the new timeline forks.
	stillPrimary := old != nil && (old.serving() || (old.exists && old.report == nil && !old.deleting) ||
		(old.exists && old.report != nil && old.report.Stopping))
	if stillPrimary {
		if waited := v.now.Sub(sw.Started.Time); waited >= switchoverTimeout {
			return primaryDecision{primary: sw.From, switchoverDone: true, refusedSwitchover: fmt.Sprintf(
				"switchover from %s to %s abandoned: %s did not stop within %s; it stays the primary", sw.From, sw.To, sw.From, switchoverTimeout)}
		}
		return primaryDecision{switchover: sw, retryAfter: switchoverTimeout - v.now.Sub(sw.Started.Time)}
	}
	target := memberNamed(v.members, sw.To)
	message := fmt.Sprintf("%s stopped after %s; promoted %s", sw.From, v.now.Sub(sw.Started.Time).Round(time.Millisecond), sw.To)
	if target == nil || target.replicaReport() == nil {
		var why string
		if target, why = bestReplica(v, sw.From, false); target == nil {
			// Nobody was promoted, so the old primary holds every write:
			// it takes the role back. Waiting for the target instead can
			// wait for ever: a replica whose server restarted meanwhile
			// prepares by waiting for a primary (seen when a
			// kube-apiserver restart cut a switchover), and so does the
			// old primary, now labelled a replica.
			if old != nil && old.exists && !old.deleting {
				return primaryDecision{primary: sw.From, switchoverDone: true, refusedSwitchover: fmt.Sprintf(
					"switchover from %s to %s abandoned: %s stopped, and no replica can take over (%s); %s is the primary again",
					sw.From, sw.To, sw.From, why, sw.From)}
			}
			return primaryDecision{switchover: sw, problem: &degradation{reason: reasonFailoverRefused,
				message: fmt.Sprintf("switchover from %s to %s: %s stopped, and no replica can take over: %s", sw.From, sw.To, sw.From, why)}}
		}
		message = fmt.Sprintf("%s stopped after %s; %s could not take over, promoted %s", sw.From, v.now.Sub(sw.Started.Time).Round(time.Millisecond), sw.To, target.name)
	}
	return primaryDecision{primary: target.name, switchoverDone: true, change: &databasev1.PrimaryChange{
		Reason: reasonSwitchedOver, From: sw.From, To: target.name, Message: message,
	}}
}

func anyReport(ms []member) bool {
	for _, m := range ms {
		if m.report != nil {
			return true
		}
	}
	return false
}

func memberNamed(ms []member, name string) *member {
	for i := range ms {
		if ms[i].name == name {
			return &ms[i]
		}
	}
	return nil
}

func podNameOf(ms []member, ordinal int) string {
	for _, m := range ms {
		if m.ordinal == ordinal {
			return m.name
		}
	}
	return ""
}
