package reconcile

import (
	"encoding/json"
	"hash/fnv"
	"slices"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	autoscalingv2ac "k8s.io/client-go/applyconfigurations/autoscaling/v2"
	batchv1ac "k8s.io/client-go/applyconfigurations/batch/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

// echoes tells the watch events of the operator's own writes ("echoes")
// from changes made by anyone else, so that a reconcile whose only cause is
// the echoes of the previous reconcile's writes ends at once: every child
// it creates comes back as a watch event, and without this each new
// Database was reconciled twice, the second time re-applying every child
// for nothing.
//
// Every create and apply answers with the object's new resourceVersion;
// the reconciler notes it per child. The watches note each child event per
// Database as it arrives (an event may arrive before its write's answer,
// so events are judged when the next reconcile starts, not on arrival).
// A reconcile ends at once when every event noted since the previous one
// carries the resourceVersion of the operator's own last write of that
// child, the previous reconcile succeeded, and the Database's identity,
// generation, labels and annotations are unchanged. Anything else — a
// write or delete by someone else (drift), a Job, a requeue after an
// error, no event at all, a changed Database, a restart — reconciles as
// before.
type echoes struct {
	mu  sync.Mutex
	dbs map[types.NamespacedName]*echoState
}

type echoState struct {
	// written holds the resourceVersion of the operator's last write of
	// each child, by "Kind/name".
	written map[string]string
	// events are the child events noted since the last reconcile began;
	// foreign is set by one that cannot be an echo.
	events  []echoEvent
	foreign bool
	// reconciled is the fingerprint of the Database the last successful
	// reconcile began with; empty when there was none or it failed.
	reconciled string
}

type echoEvent struct{ child, resourceVersion string }

func (e *echoes) state(key types.NamespacedName) *echoState {
	if e.dbs == nil {
		e.dbs = map[types.NamespacedName]*echoState{}
	}
	s := e.dbs[key]
	if s == nil {
		s = &echoState{written: map[string]string{}}
		e.dbs[key] = s
	}
	return s
}

// wrote notes the resourceVersion a write of a child of db answered.
func (e *echoes) wrote(db *databasev1.Database, kind, name, resourceVersion string) {
	if resourceVersion == "" {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.state(client.ObjectKeyFromObject(db)).written[kind+"/"+name] = resourceVersion
}

// begin takes the events noted for db and reports whether they are all
// echoes of the previous reconcile, with db unchanged since: then there is
// nothing to do.
func (e *echoes) begin(db *databasev1.Database) (onlyEchoes bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.state(client.ObjectKeyFromObject(db))
	events, foreign := s.events, s.foreign
	s.events, s.foreign = nil, false
	if foreign || len(events) == 0 || s.reconciled == "" || s.reconciled != fingerprint(db) {
		return false
	}
	return !slices.ContainsFunc(events, func(ev echoEvent) bool { return s.written[ev.child] != ev.resourceVersion })
}

// end records how a reconcile that began with db ended.
func (e *echoes) end(db *databasev1.Database, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.state(client.ObjectKeyFromObject(db))
	s.reconciled = ""
	if err == nil {
		s.reconciled = fingerprint(db)
	}
}

// forget drops what is known of a Database that is gone.
func (e *echoes) forget(key types.NamespacedName) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.dbs, key)
}

// note is a predicate that lets every event through and notes it for the
// Database the object maps to: creates and updates of a kind the operator
// writes as possible echoes, everything else as foreign.
func (e *echoes) note(kind string, written bool, database func(client.Object) (types.NamespacedName, bool)) predicate.Predicate {
	change := func(obj client.Object) bool {
		key, ok := database(obj)
		if !ok {
			return true
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		s := e.state(key)
		if written {
			s.events = append(s.events, echoEvent{kind + "/" + obj.GetName(), obj.GetResourceVersion()})
		} else {
			s.foreign = true
		}
		return true
	}
	foreign := func(obj client.Object) bool {
		if key, ok := database(obj); ok {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.state(key).foreign = true
		}
		return true
	}
	return predicate.Funcs{
		CreateFunc:  func(ev event.CreateEvent) bool { return change(ev.Object) },
		UpdateFunc:  func(ev event.UpdateEvent) bool { return change(ev.ObjectNew) },
		DeleteFunc:  func(ev event.DeleteEvent) bool { return foreign(ev.Object) },
		GenericFunc: func(ev event.GenericEvent) bool { return foreign(ev.Object) },
	}
}

// controllingDatabase maps a child to the Database that controls it, as
// Owns does.
func controllingDatabase(obj client.Object) (types.NamespacedName, bool) {
	ref := metav1.GetControllerOfNoCopy(obj)
	if ref == nil || ref.Kind != "Database" || ref.APIVersion != databasev1.GroupVersion.String() {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: obj.GetNamespace(), Name: ref.Name}, true
}

// labelledDatabase maps an object to the Database its labels name, as the
// Secret, PVC and Job watches do.
func labelledDatabase(obj client.Object) (types.NamespacedName, bool) {
	name, ok := obj.GetLabels()[render.LabelInstance]
	if !ok || obj.GetLabels()[render.LabelManagedBy] != FieldManager {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: obj.GetNamespace(), Name: name}, true
}

// fingerprint is what of a Database, besides its children, a reconcile
// depends on: its identity, spec generation, labels and annotations (an
// annotation is how a user asks for a reconcile).
func fingerprint(db *databasev1.Database) string {
	h := fnv.New64a()
	for _, m := range []map[string]string{db.Labels, db.Annotations} {
		raw, _ := json.Marshal(m) // map keys are sorted
		h.Write(raw)
		h.Write([]byte{0})
	}
	raw, _ := json.Marshal([]any{db.UID, db.Generation, h.Sum64()})
	return string(raw)
}

// resourceVersionOf reads the resourceVersion the API server answered into
// an applied apply configuration.
func resourceVersionOf(ac runtime.ApplyConfiguration) string {
	var m *metav1ac.ObjectMetaApplyConfiguration
	switch a := ac.(type) {
	case *appsv1ac.StatefulSetApplyConfiguration:
		m = a.ObjectMetaApplyConfiguration
	case *corev1ac.ServiceApplyConfiguration:
		m = a.ObjectMetaApplyConfiguration
	case *corev1ac.ConfigMapApplyConfiguration:
		m = a.ObjectMetaApplyConfiguration
	case *corev1ac.PersistentVolumeClaimApplyConfiguration:
		m = a.ObjectMetaApplyConfiguration
	case *batchv1ac.CronJobApplyConfiguration:
		m = a.ObjectMetaApplyConfiguration
	case *policyv1ac.PodDisruptionBudgetApplyConfiguration:
		m = a.ObjectMetaApplyConfiguration
	case *networkingv1ac.NetworkPolicyApplyConfiguration:
		m = a.ObjectMetaApplyConfiguration
	case *autoscalingv2ac.HorizontalPodAutoscalerApplyConfiguration:
		m = a.ObjectMetaApplyConfiguration
	default: // the ServiceMonitor
		var out struct {
			Metadata struct {
				ResourceVersion string `json:"resourceVersion"`
			} `json:"metadata"`
		}
		if raw, err := json.Marshal(ac); err == nil && json.Unmarshal(raw, &out) == nil {
			return out.Metadata.ResourceVersion
		}
		return ""
	}
	if m == nil || m.ResourceVersion == nil {
		return ""
	}
	return *m.ResourceVersion
}
