package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/instance"
	"github.com/example/database-operator/render"
)

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;patch;delete
// +kubebuilder:rbac:groups=database.example.com,resources=databases,verbs=patch
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;list;watch;create;patch;delete

// unavailability remembers, per Database, since when its primary has been
// seen unavailable. It lives in memory: a new leader starts the failover
// delay again, which only ever delays a failover by that much.
type unavailability struct {
	mu    sync.Mutex
	since map[types.UID]unavailableEntry
}

type unavailableEntry struct {
	primary string
	since   time.Time
}

func (u *unavailability) get(db *databasev1.Database) time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	e, ok := u.since[db.UID]
	if !ok || e.primary != db.Status.CurrentPrimary {
		return time.Time{}
	}
	return e.since
}

func (u *unavailability) set(db *databasev1.Database, primary string, since time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.since == nil {
		u.since = map[types.UID]unavailableEntry{}
	}
	if since.IsZero() {
		delete(u.since, db.UID)
		return
	}
	u.since[db.UID] = unavailableEntry{primary: primary, since: since}
}

// databasePods lists the Database's pods from the cache, by name.
func (r *Reconciler) databasePods(ctx context.Context, db *databasev1.Database) (map[string]*corev1.Pod, error) {
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(db.Namespace), client.MatchingLabels(render.SelectorLabels(db.Name))); err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	out := map[string]*corev1.Pod{}
	for i := range pods.Items {
		out[pods.Items[i].Name] = &pods.Items[i]
	}
	return out, nil
}

// members builds the primary decision's view of the pods: every pod the
// StatefulSet should have (0 to count-1) and every other that exists.
func members(db *databasev1.Database, pods map[string]*corev1.Pod, count int32) []member {
	byName := map[string]member{}
	for i := int32(0); i < count; i++ {
		name := render.PodName(db.Name, int(i))
		byName[name] = member{name: name, ordinal: int(i)}
	}
	for name, p := range pods {
		ordinal, ok := podOrdinal(db.Name, name)
		if !ok {
			continue
		}
		m := member{name: name, ordinal: ordinal, exists: true, deleting: p.DeletionTimestamp != nil, ready: podReady(p)}
		if raw, ok := p.Annotations[instance.AnnotationReport]; ok {
			if rep, err := instance.ParseReport(raw); err == nil {
				m.report = &rep
			}
		}
		byName[name] = m
	}
	out := make([]member, 0, len(byName))
	for _, m := range byName {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ordinal < out[j].ordinal })
	return out
}

// podOrdinal reads the ordinal of a StatefulSet pod <db>-<n>.
func podOrdinal(db, pod string) (int, bool) {
	rest, ok := strings.CutPrefix(pod, db+"-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || strconv.Itoa(n) != rest {
		return 0, false
	}
	return n, true
}

// primaryOutcome is what the reconcile decided about the primary role.
type primaryOutcome struct {
	decision primaryDecision
	members  []member
	rollout  rolloutStep
}

// decidePrimaryRole observes the pods and decides who holds the primary
// role, and what a rollout of the pods does next.
func (r *Reconciler) decidePrimaryRole(ctx context.Context, db *databasev1.Database, sts *appsv1.StatefulSet, managed bool, count int32) (*primaryOutcome, error) {
	pods, err := r.databasePods(ctx, db)
	if err != nil {
		return nil, err
	}
	now := r.now()
	ms := members(db, pods, count)
	var step rolloutStep
	if managed && sts != nil {
		step = nextRolloutStep(rolloutView{
			members:       ms,
			updated:       updatedPods(pods, sts),
			known:         sts.Status.ObservedGeneration >= sts.Generation && sts.Status.UpdateRevision != "",
			primary:       db.Status.CurrentPrimary,
			switchingOver: db.Status.Switchover != nil,
			creating:      !wasReady(db.Status),
		})
	}
	switchTo := db.Annotations[databasev1.SwitchoverAnnotation]
	if switchTo == "" {
		switchTo = step.switchTo
	}
	if switchTo == "" && managed && keepPods(db) > 0 {
		// A scale-down would remove the primary's pod: hand the role to
		// the most advanced replica that stays, then scale.
		switchTo = bestStayingReplica(ms, count)
	}
	d := decidePrimary(primaryView{
		current:          db.Status.CurrentPrimary,
		members:          ms,
		managed:          managed,
		engine:           db.Spec.Type,
		mode:             render.ReplicationModeOf(db),
		delay:            render.FailoverDelayOf(db),
		unavailableSince: r.unavailable.get(db),
		switchoverTo:     switchTo,
		switchover:       db.Status.Switchover,
		established:      wasReady(db.Status),
		promotedAt:       promotedAt(db),
		now:              now,
	})
	if d.switchover != nil && d.switchover.Started.IsZero() {
		d.switchover.Started.Time = now
	}
	if d.change != nil {
		d.change.Time.Time = now
	}
	r.unavailable.set(db, db.Status.CurrentPrimary, d.unavailableSince)
	return &primaryOutcome{decision: d, members: ms, rollout: step}, nil
}

// keepPods is render.Observed.KeepPods: while spec.replicas would remove
// the pod that holds the primary role, the StatefulSet keeps it (and the
// pods below it) until a switchover moved the role to a pod that stays.
func keepPods(db *databasev1.Database) int32 {
	if !render.RunsUnderAgent(db) {
		return 0
	}
	ordinal, ok := podOrdinal(db.Name, db.Status.CurrentPrimary)
	count := int32(1)
	if db.Spec.Replicas != nil {
		count = *db.Spec.Replicas
	}
	if !ok || int32(ordinal) < count {
		return 0
	}
	return int32(ordinal) + 1
}

// bestStayingReplica is the most advanced streaming replica among the pods
// a scale-down to count keeps; "" when there is none yet.
func bestStayingReplica(ms []member, count int32) string {
	return mostAdvancedStreaming(ms, func(m member) bool { return int32(m.ordinal) < count && m.ready })
}

// mostAdvancedStreaming is the most advanced streaming replica that
// eligible accepts (ahead decides); "" when none does. The rollout's
// switchover target and the scale-down's share it.
func mostAdvancedStreaming(ms []member, eligible func(member) bool) string {
	var best *member
	for i := range ms {
		m := &ms[i]
		if !eligible(*m) {
			continue
		}
		if r := m.replicaReport(); r == nil || !r.Streaming {
			continue
		}
		if best == nil || ahead(m, best) {
			best = m
		}
	}
	if best == nil {
		return ""
	}
	return best.name
}

// promotedAt is when the current primary got the role, from
// status.lastPrimaryChange; zero when that names another pod.
func promotedAt(db *databasev1.Database) time.Time {
	if c := db.Status.LastPrimaryChange; c != nil && c.To == db.Status.CurrentPrimary {
		return c.Time.Time
	}
	return time.Time{}
}

// updatedPods says which pods run the StatefulSet's current template.
func updatedPods(pods map[string]*corev1.Pod, sts *appsv1.StatefulSet) map[string]bool {
	out := map[string]bool{}
	for name, p := range pods {
		out[name] = p.Labels[appsv1.ControllerRevisionHashLabelKey] == sts.Status.UpdateRevision
	}
	return out
}

// restartOutdated deletes the pod the rollout restarts next, by UID, so a
// pod re-created meanwhile is never deleted in its place.
func (r *Reconciler) restartOutdated(ctx context.Context, db *databasev1.Database, name string) error {
	var pod corev1.Pod
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: db.Namespace, Name: name}, &pod); err != nil {
		return client.IgnoreNotFound(err)
	}
	uid := pod.UID
	if err := r.Client.Delete(ctx, &pod, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("restart pod %s for the rollout: %w", name, err)
	}
	role := "replica"
	if name == db.Status.CurrentPrimary {
		role = "primary"
	}
	r.event(db, corev1.EventTypeNormal, "RollingUpdate", "Restart", fmt.Sprintf("restarting %s %s on the new pod template", role, name))
	ctrl.LoggerFrom(ctx).Info("rollout: restarting pod", "pod", name, "role", role)
	return nil
}

// applyRoles labels every existing pod with its role: primary for the
// decided primary, replica for the others. The old primary loses the label
// before the new one gets it, so the read-write Service never selects two
// pods.
func (r *Reconciler) applyRoles(ctx context.Context, db *databasev1.Database, out *primaryOutcome) error {
	var primary *member
	for i := range out.members {
		m := &out.members[i]
		if !m.exists {
			continue
		}
		if m.name == out.decision.primary {
			primary = m
			continue
		}
		if err := r.labelRole(ctx, db, m.name, instance.Replica); err != nil {
			return err
		}
	}
	if primary != nil {
		return r.labelRole(ctx, db, primary.name, instance.Primary)
	}
	return nil
}

// labelRole applies a pod's role label. An apply creates what does not
// exist: for a pod deleted since the cache saw it, that create is refused
// (a pod needs containers). The pod is then gone, which is no error: its
// replacement is labelled when it appears, and an error here would put off
// the next reconcile with backoff, and a failover with it.
func (r *Reconciler) labelRole(ctx context.Context, db *databasev1.Database, pod string, role instance.Role) error {
	err := r.apply(ctx, db, "Pod", pod, render.PodRole(db.Namespace, pod, role))
	if err == nil {
		return nil
	}
	if apierrors.IsInvalid(err) || apierrors.IsNotFound(err) {
		var p corev1.Pod
		if getErr := r.APIReader.Get(ctx, client.ObjectKey{Namespace: db.Namespace, Name: pod}, &p); apierrors.IsNotFound(getErr) {
			ctrl.LoggerFrom(ctx).V(1).Info("pod gone before its role label; skipped", "pod", pod, "role", string(role))
			return nil
		}
	}
	return fmt.Errorf("label pod %s %s: %w", pod, role, err)
}

// removeSwitchoverAnnotation drops the handled request, with a JSON merge
// patch of that one annotation: the annotation is the user's, written with
// kubectl, and no field manager of the operator owns it.
func (r *Reconciler) removeSwitchoverAnnotation(ctx context.Context, db *databasev1.Database) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"annotations": map[string]any{databasev1.SwitchoverAnnotation: nil},
	}})
	if err != nil {
		return err
	}
	if err := r.Client.Patch(ctx, db, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldManager)); err != nil {
		return fmt.Errorf("remove annotation %s: %w", databasev1.SwitchoverAnnotation, err)
	}
	return nil
}

// recordPrimaryEvents records the Events of a decision.
func (r *Reconciler) recordPrimaryEvents(ctx context.Context, db *databasev1.Database, d primaryDecision) {
	log := ctrl.LoggerFrom(ctx)
	if c := d.change; c != nil {
		typ := corev1.EventTypeWarning
		if c.Reason == reasonSwitchedOver {
			typ = corev1.EventTypeNormal
		}
		note := fmt.Sprintf("primary moved from %s to %s: %s", c.From, c.To, c.Message)
		r.event(db, typ, c.Reason, "Promote", note)
		log.Info("primary moved", "reason", c.Reason, "from", c.From, "to", c.To, "message", c.Message)
	}
	if d.switchover != nil && db.Status.Switchover == nil {
		note := fmt.Sprintf("switchover from %s to %s: stopping %s", d.switchover.From, d.switchover.To, d.switchover.From)
		r.event(db, corev1.EventTypeNormal, "SwitchoverStarted", "Demote", note)
		log.Info("switchover started", "from", d.switchover.From, "to", d.switchover.To)
	}
	if d.refusedSwitchover != "" {
		r.event(db, corev1.EventTypeWarning, reasonSwitchoverRefused, "Switchover", d.refusedSwitchover)
		log.Info("switchover refused", "message", d.refusedSwitchover)
	}
}

// instanceStatuses is status.instances: each existing pod as its agent
// reported it, with a replica's lag behind the primary's last reported
// position.
func instanceStatuses(ms []member, primary string) []databasev1.InstanceStatus {
	var primaryLSN instance.LSN
	havePrimary := false
	if p := memberNamed(ms, primary); p != nil && p.report != nil && p.report.Role == instance.Primary {
		if l, err := instance.ParseLSN(p.report.Position); err == nil {
			primaryLSN, havePrimary = l, true
		}
	}
	var out []databasev1.InstanceStatus
	for _, m := range ms {
		if !m.exists {
			continue
		}
		s := databasev1.InstanceStatus{Name: m.name, Ready: m.ready}
		if r := m.report; r != nil {
			s.Role, s.Timeline, s.Position, s.Message = string(r.Role), r.Timeline, r.Position, r.Message
			if l, err := instance.ParseLSN(r.Position); err == nil && havePrimary && r.Role == instance.Replica {
				lag := int64(0)
				if primaryLSN > l {
					lag = int64(primaryLSN - l)
				}
				s.LagBytes = &lag
			}
		}
		out = append(out, s)
	}
	return out
}
