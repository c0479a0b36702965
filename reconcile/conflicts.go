package reconcile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/typed"
)

// A field conflict is another field manager holding a field the operator
// applies: someone (a script, a second controller, a GitOps tool pointed at
// the child) force-applied or updated it. Forced ownership would take the
// field back on every reconcile and the two writers would fight for ever,
// each write waking the other. The operator takes a field back once at
// once, then, if the other manager takes it again, waits longer each time
// (conflictBackoff) and reports Degraded naming the manager meanwhile.

// fieldConflict is one other manager and the operator's fields it holds.
type fieldConflict struct {
	manager string
	fields  []string
}

// foreignOwners lists the managers other than FieldManager whose managed
// fields of the object's main resource (not its status) overlap the
// fields desired sets. desired is an apply configuration. Lists are
// compared as wholes (the desired side's schema is deduced), so an overlap
// inside a list of keyed items is not seen: this finds conflicts on scalar
// fields and maps, such as spec.replicas or a label.
func foreignOwners(managed []metav1.ManagedFieldsEntry, desired any) ([]fieldConflict, error) {
	// The desired field set is built only when someone else writes the
	// main resource: on most reconciles nobody does.
	var want *fieldpath.Set
	var out []fieldConflict
	for _, e := range managed {
		if e.Manager == FieldManager || e.Subresource != "" || e.FieldsV1 == nil {
			continue
		}
		if want == nil {
			var err error
			if want, err = fieldSetOf(desired); err != nil {
				return nil, err
			}
		}
		theirs := &fieldpath.Set{}
		if err := theirs.FromJSON(bytes.NewReader(e.FieldsV1.Raw)); err != nil {
			return nil, fmt.Errorf("managed fields of %s: %w", e.Manager, err)
		}
		both := want.Intersection(theirs)
		if both.Empty() {
			continue
		}
		var fields []string
		both.Iterate(func(p fieldpath.Path) { fields = append(fields, strings.TrimPrefix(p.String(), ".")) })
		sort.Strings(fields)
		out = append(out, fieldConflict{manager: e.Manager, fields: fields})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].manager < out[j].manager })
	return out, nil
}

// fieldSetOf is the set of leaf fields an apply configuration sets.
func fieldSetOf(ac any) (*fieldpath.Set, error) {
	b, err := json.Marshal(ac)
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := json.Unmarshal(b, &obj); err != nil {
		return nil, err
	}
	// Identity and metadata the server sets are nobody's conflict.
	delete(obj, "apiVersion")
	delete(obj, "kind")
	delete(obj, "status")
	if m, ok := obj["metadata"].(map[string]any); ok {
		for _, k := range []string{"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "ownerReferences"} {
			delete(m, k)
		}
	}
	tv, err := typed.DeducedParseableType.FromUnstructured(obj)
	if err != nil {
		return nil, err
	}
	set, err := tv.ToFieldSet()
	if err != nil {
		return nil, err
	}
	return set.Leaves(), nil
}

// conflictBackoff is how long the operator waits before taking the fields
// back for the strikes-th time in a row: at once the first time, then 2 s,
// 4 s, ... up to conflictBackoffMax, so the fight slows to one write per
// conflictBackoffMax and the Database still converges within it once the
// other manager stops.
func conflictBackoff(strikes int) time.Duration {
	if strikes <= 1 {
		return 0
	}
	d := time.Second << min(strikes-1, 10)
	return min(d, conflictBackoffMax)
}

const (
	conflictBackoffMax = 20 * time.Second
	// conflictMemory is how long without a conflict before the strikes
	// are forgotten.
	conflictMemory = 5 * time.Minute
)

// conflictState is what the operator remembers of one child's conflicts.
type conflictState struct {
	// strikes counts the conflicts found in a row (none for conflictMemory
	// resets it).
	strikes int
	// last is when the last conflict was found.
	last time.Time
	// until is when the fields may be taken back again.
	until time.Time
	// message is the last Degraded report, repeated while the cache shows
	// no conflict before until.
	message string
}

// conflictDecision is what to do with a child this reconcile.
type conflictDecision struct {
	// apply is false while the operator waits before taking the fields back.
	apply bool
	// unforced is true when the apply must not force ownership: the
	// fields may have been taken again since the cache's view. The
	// apply's conflict error then means the wait goes on (retryAfter,
	// problem); its success means the fight is over (neither applies).
	unforced bool
	// retryAfter is when to look again (the end of the wait); 0 for none.
	retryAfter time.Duration
	// problem is the Degraded report while the conflict repeats.
	problem *degradation
	// started is true the reconcile the conflict is first reported.
	started bool
}

// decideConflict is the pure rule: found are the other managers holding
// the child's fields now, what names the child in messages.
func decideConflict(prev conflictState, found []fieldConflict, now time.Time, what string) (conflictState, conflictDecision) {
	if len(found) == 0 {
		if now.Before(prev.until) {
			// The cache may show the operator's own take-back, written
			// before the other manager's next write reached it: a forced
			// apply now would take the fields back unseen, once per echo
			// against a fast writer. An unforced apply asks the server
			// instead: it fails naming the manager if the fields were taken
			// again (the wait goes on), and succeeds if the fight is over.
			d := conflictDecision{apply: true, unforced: true, retryAfter: prev.until.Sub(now)}
			if prev.message != "" {
				d.problem = &degradation{reason: conflictReason, message: prev.message}
			}
			return prev, d
		}
		if !prev.last.IsZero() && now.Sub(prev.last) > conflictMemory {
			prev = conflictState{}
		}
		return prev, conflictDecision{apply: true}
	}
	if now.Before(prev.until) {
		return prev, conflictDecision{retryAfter: prev.until.Sub(now), problem: conflictProblem(what, found, prev.until.Sub(now))}
	}
	next := conflictState{strikes: prev.strikes + 1, last: now}
	wait := conflictBackoff(next.strikes + 1)
	next.until = now.Add(wait)
	d := conflictDecision{apply: true}
	if next.strikes >= 2 {
		// Taken back now; if the other manager takes it again, the next
		// take-back waits.
		d.problem = conflictProblem(what, found, wait)
		d.started = next.strikes == 2
		d.retryAfter = wait
		next.message = d.problem.message
	}
	return next, d
}

// conflictReason is the Degraded reason of a field conflict.
const conflictReason = "FieldConflict"

// unforcedConflictProblem is the Degraded report when an unforced apply
// found the fields taken again and no earlier report names the manager:
// the server's conflict message does.
func unforcedConflictProblem(what string, err error, wait time.Duration) *degradation {
	return &degradation{
		reason: conflictReason,
		message: fmt.Sprintf("%s: %v; the operator takes the fields back at most every %s instead of fighting (next in %s). "+
			"Stop the other writer, or remove these fields from what it applies.", what, err, conflictBackoffMax, wait.Round(time.Second)),
	}
}

func conflictProblem(what string, found []fieldConflict, wait time.Duration) *degradation {
	var parts []string
	for _, c := range found {
		parts = append(parts, fmt.Sprintf("manager %q holds %s", c.manager, strings.Join(c.fields, ", ")))
	}
	return &degradation{
		reason: conflictReason,
		message: fmt.Sprintf("%s: %s, which the operator applies; it takes them back at most every %s instead of fighting "+
			"(next in %s). Stop the other writer, or remove these fields from what it applies.",
			what, strings.Join(parts, "; "), conflictBackoffMax, wait.Round(time.Second)),
	}
}

// conflicts remembers conflictState per child, keyed by the child's UID.
type conflicts struct {
	mu    sync.Mutex
	state map[types.UID]conflictState
}

// decide applies decideConflict to the child uid and remembers the result.
func (c *conflicts) decide(uid types.UID, found []fieldConflict, now time.Time, what string) conflictDecision {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == nil {
		c.state = map[types.UID]conflictState{}
	}
	next, d := decideConflict(c.state[uid], found, now, what)
	if next == (conflictState{}) {
		delete(c.state, uid)
	} else {
		c.state[uid] = next
	}
	return d
}
