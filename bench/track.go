package bench

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

// secretGVK is the credentials Secret's kind; the other kinds the operator
// writes come from render (workload.kinds).
var secretGVK = schema.GroupVersionKind{Version: "v1", Kind: "Secret"}

func metadataObject(gvk schema.GroupVersionKind) *metav1.PartialObjectMetadata {
	o := &metav1.PartialObjectMetadata{}
	o.SetGroupVersionKind(gvk)
	return o
}

// dbState is what the tracker has seen of one Database.
type dbState struct {
	ref dbRef
	// missing counts the children and the credentials Secret not seen yet.
	missing  int
	seen     map[string]bool
	observed bool
	// converged is when the last of the children and an observed status
	// was seen; statefulSet when the StatefulSet was.
	converged, statefulSet time.Time
}

// tracker watches Databases and their children from the bench process
// (its own informers, as the admin user) and notes when each Database of
// a registered workload has every child and status.observedGeneration ==
// metadata.generation.
type tracker struct {
	cache cache.Cache

	mu sync.Mutex
	// dbs by namespace/name; objects by "Kind/namespace/name".
	dbs     map[string]*dbState
	objects map[string]*dbState
}

// startTracker starts the informers and waits for them to sync.
// kinds are the kinds of children to watch (metadata only), the
// credentials Secret's included.
func startTracker(ctx context.Context, cfg *rest.Config, cp *controlPlane, kinds []schema.GroupVersionKind) (*tracker, error) {
	managed := cache.ByObject{Label: labels.SelectorFromSet(labels.Set{render.LabelManagedBy: fieldManager})}
	byObject := map[client.Object]cache.ByObject{}
	for _, gvk := range kinds {
		byObject[metadataObject(gvk)] = managed
	}
	c, err := cache.New(cfg, cache.Options{Scheme: cp.scheme, ByObject: byObject, DefaultTransform: cache.TransformStripManagedFields()})
	if err != nil {
		return nil, err
	}
	t := &tracker{cache: c, dbs: map[string]*dbState{}, objects: map[string]*dbState{}}
	for _, gvk := range kinds {
		inf, err := c.GetInformer(ctx, metadataObject(gvk))
		if err != nil {
			return nil, err
		}
		kind := gvk.Kind
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { t.child(kind, o) },
			UpdateFunc: func(_, o any) { t.child(kind, o) },
		}); err != nil {
			return nil, err
		}
	}
	inf, err := c.GetInformer(ctx, &databasev1.Database{})
	if err != nil {
		return nil, err
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { t.database(o) },
		UpdateFunc: func(_, o any) { t.database(o) },
	}); err != nil {
		return nil, err
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("the bench's informers did not sync")
	}
	return t, nil
}

// register starts tracking the Databases; call it before creating them.
func (t *tracker) register(dbs []dbRef) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, d := range dbs {
		st := &dbState{ref: d, seen: map[string]bool{}}
		for _, c := range d.Children {
			kind, name, _ := strings.Cut(c, "/")
			t.objects[kind+"/"+d.Namespace+"/"+name] = st
		}
		t.objects["Secret/"+d.Namespace+"/"+render.CredentialsSecretName(d.Name)] = st
		st.missing = len(d.Children) + 1
		t.dbs[d.key()] = st
	}
}

func (t *tracker) child(kind string, o any) {
	obj, ok := o.(client.Object)
	if !ok {
		return
	}
	now := time.Now()
	key := kind + "/" + obj.GetNamespace() + "/" + obj.GetName()
	t.mu.Lock()
	defer t.mu.Unlock()
	st, ok := t.objects[key]
	if !ok || st.seen[key] {
		return
	}
	st.seen[key] = true
	st.missing--
	if kind == "StatefulSet" {
		st.statefulSet = now
	}
	t.check(st, now)
}

func (t *tracker) database(o any) {
	db, ok := o.(*databasev1.Database)
	if !ok {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	st, ok := t.dbs[db.Namespace+"/"+db.Name]
	if !ok || st.observed {
		return
	}
	if db.Generation > 0 && db.Status.ObservedGeneration == db.Generation {
		st.observed = true
		t.check(st, now)
	}
}

func (t *tracker) check(st *dbState, now time.Time) {
	if st.converged.IsZero() && st.observed && st.missing == 0 {
		st.converged = now
	}
}

// progress counts the converged Databases of dbs and returns the latest
// convergence time among them.
func (t *tracker) progress(dbs []dbRef) (converged int, last time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, d := range dbs {
		if st := t.dbs[d.key()]; st != nil && !st.converged.IsZero() {
			converged++
			if st.converged.After(last) {
				last = st.converged
			}
		}
	}
	return converged, last
}

// statefulSetSeen returns when the Database's StatefulSet was first seen.
func (t *tracker) statefulSetSeen(d dbRef) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	if st := t.dbs[d.key()]; st != nil {
		return st.statefulSet
	}
	return time.Time{}
}

// waitConverged waits until every Database of dbs has converged, or the
// timeout passes; it reports progress to log every 10 s, and returns how
// many converged and when the last one did.
func (t *tracker) waitConverged(ctx context.Context, dbs []dbRef, timeout time.Duration, what string, log io.Writer) (int, time.Time, error) {
	start := time.Now()
	lastReport := start
	for {
		n, last := t.progress(dbs)
		if n == len(dbs) {
			return n, last, nil
		}
		if time.Since(start) > timeout {
			return n, last, fmt.Errorf("%s: only %d of %d Databases converged within %s", what, n, len(dbs), timeout)
		}
		if time.Since(lastReport) >= 10*time.Second {
			fmt.Fprintf(log, "  %s: %d/%d converged after %s\n", what, n, len(dbs), time.Since(start).Round(time.Second))
			lastReport = time.Now()
		}
		select {
		case <-ctx.Done():
			return n, last, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
