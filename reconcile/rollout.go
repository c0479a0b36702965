package reconcile

import (
	"fmt"
	"sort"
)

// A Database whose engine runs under the agent rolls its pods itself (the
// StatefulSet's update strategy is OnDelete): the StatefulSet controller
// would restart them from the highest ordinal down, the primary wherever
// it falls, so every rollout could cost a failover-sized write outage, or
// several. Instead the replicas restart first, one at a time; then one
// switchover hands the role to an updated replica; then the old primary,
// now a replica, restarts last. Exactly one switchover per rollout, and
// none when the primary is already up to date.

// rolloutStep is what a rollout does next; the zero value does nothing.
type rolloutStep struct {
	// deletePod is an outdated pod to restart now (the StatefulSet
	// controller re-creates it from the new template).
	deletePod string
	// switchTo is the updated replica to hand the primary role to.
	switchTo string
	// waiting says why nothing happens now, for the logs ("" when the
	// rollout is done or there is none).
	waiting string
}

// rolloutView is what the rollout decision looks at.
type rolloutView struct {
	members []member
	// updated says which existing pods run the StatefulSet's current
	// template (their controller-revision-hash is its updateRevision).
	updated map[string]bool
	// known: the StatefulSet controller has observed the current template,
	// so its updateRevision can be trusted.
	known   bool
	primary string
	// switchingOver: a switchover is in progress; nothing else moves.
	switchingOver bool
	// creating: the Database has never been Ready. Nothing switches over
	// then (decidePrimary), and nobody's writes depend on it yet: its
	// primary restarts in place, as a restored Database's does once its
	// template drops the restore.
	creating bool
}

// nextRolloutStep is the rollout policy (pure; see above).
func nextRolloutStep(v rolloutView) rolloutStep {
	if !v.known {
		return rolloutStep{waiting: "the StatefulSet controller has not observed the new template yet"}
	}
	var outdated []member
	for _, m := range v.members {
		if m.exists && !v.updated[m.name] {
			outdated = append(outdated, m)
		}
	}
	if len(outdated) == 0 {
		return rolloutStep{}
	}
	if v.switchingOver {
		return rolloutStep{waiting: "a switchover is in progress"}
	}
	for _, m := range v.members {
		switch {
		case !m.exists:
			return rolloutStep{waiting: fmt.Sprintf("pod %s does not exist yet", m.name)}
		case m.deleting:
			return rolloutStep{waiting: fmt.Sprintf("pod %s is being deleted", m.name)}
		case !m.ready:
			return rolloutStep{waiting: fmt.Sprintf("pod %s is not ready", m.name)}
		}
	}
	// Replicas first, the highest ordinal first.
	sort.Slice(outdated, func(i, j int) bool { return outdated[i].ordinal > outdated[j].ordinal })
	for _, m := range outdated {
		if m.name != v.primary {
			return rolloutStep{deletePod: m.name}
		}
	}
	// Only the primary is left.
	primary := memberNamed(v.members, v.primary)
	if len(v.members) == 1 || v.creating {
		return rolloutStep{deletePod: v.primary}
	}
	if primary != nil && primary.report == nil {
		// A primary without the agent (from before it existed) cannot be
		// demoted by its label: it is restarted, and the failover delay
		// decides between its return and a replica's promotion.
		return rolloutStep{deletePod: v.primary}
	}
	best := mostAdvancedStreaming(v.members, func(m member) bool { return m.name != v.primary && v.updated[m.name] })
	if best == "" {
		return rolloutStep{waiting: "no updated replica streams from the primary yet"}
	}
	return rolloutStep{switchTo: best}
}
