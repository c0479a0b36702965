package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

// quiet is how long the steady-state test watches for writes.
const quiet = 60 * time.Second

// objectState is what a snapshot keeps of an object.
type objectState struct {
	resourceVersion string
	// writers lists the managedFields entries, to name who wrote a change.
	writers string
}

// snapshot records the resourceVersion of every Database in ns and of
// every object the operator manages there (by its managed-by label).
func snapshot(g Gomega, ns string) map[string]objectState {
	out := map[string]objectState{}
	record := func(kind string, obj client.Object) {
		var w []string
		for _, mf := range obj.GetManagedFields() {
			s := fmt.Sprintf("%s %s", mf.Manager, mf.Operation)
			if mf.Subresource != "" {
				s += " /" + mf.Subresource
			}
			if mf.Time != nil {
				s += " at " + mf.Time.UTC().Format(time.RFC3339)
			}
			w = append(w, s)
		}
		out[kind+"/"+obj.GetName()] = objectState{resourceVersion: obj.GetResourceVersion(), writers: strings.Join(w, ", ")}
	}
	var dbs databasev1.DatabaseList
	g.Expect(k8s.List(ctx(), &dbs, client.InNamespace(ns))).To(Succeed())
	for i := range dbs.Items {
		record("Database", &dbs.Items[i])
	}
	for kind, list := range kindLists() {
		g.Expect(k8s.List(ctx(), list, client.InNamespace(ns),
			client.MatchingLabels{render.LabelManagedBy: "database-operator"})).To(Succeed())
		g.Expect(meta.EachListItem(list, func(o runtime.Object) error {
			record(kind, o.(client.Object))
			return nil
		})).To(Succeed())
	}
	return out
}

// changes lists what differs between two snapshots.
func changes(before, after map[string]objectState) []string {
	var out []string
	for key, b := range before {
		a, ok := after[key]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s deleted", key))
		case a.resourceVersion != b.resourceVersion:
			out = append(out, fmt.Sprintf("%s changed: resourceVersion %s -> %s; managedFields now: %s",
				key, b.resourceVersion, a.resourceVersion, a.writers))
		}
	}
	for key, a := range after {
		if _, ok := before[key]; !ok {
			out = append(out, fmt.Sprintf("%s created (managedFields: %s)", key, a.writers))
		}
	}
	slices.Sort(out)
	return out
}

// TestSteadyState runs 10 Ready Databases for a minute with nobody
// touching them: neither the operator nor anything it set in motion may
// write a Database or any of their children (no resourceVersion changes).
func TestSteadyState(t *testing.T) {
	useSharedOperator(t)
	g := NewWithT(t)
	ns := newNamespace(t)
	const total = 10

	var dbs []*databasev1.Database
	for i := range total {
		db := fleetDatabase(ns, i)
		g.Expect(k8s.Create(ctx(), db)).To(Succeed())
		dbs = append(dbs, db)
	}
	for _, db := range dbs {
		waitReady(t, ns, db.Name, ptr.Deref(db.Spec.Replicas, 1))
	}
	g.Eventually(func(g Gomega) {
		for _, db := range dbs {
			podsReady(g, ns, db.Name, int(ptr.Deref(db.Spec.Replicas, 1)))
		}
	}).WithTimeout(readyTimeout).WithPolling(poll).Should(Succeed())
	expectExactChildren(g, ns, total)

	before := snapshot(g, ns)
	var kinds []string
	for key := range before {
		kinds = append(kinds, strings.SplitN(key, "/", 2)[0])
	}
	for _, kind := range []string{"Database", "StatefulSet", "Service", "ConfigMap", "Secret", "PodDisruptionBudget", "CronJob", "PersistentVolumeClaim"} {
		g.Expect(kinds).To(ContainElement(kind), "the snapshot must cover %ss", kind)
	}
	t.Logf("watching %d objects for %s", len(before), quiet)
	start := time.Now()
	g.Consistently(func(g Gomega) {
		diff := changes(before, snapshot(g, ns))
		g.Expect(diff).To(BeEmpty(), "written %s into the quiet period:\n%s",
			time.Since(start).Round(time.Second), strings.Join(diff, "\n"))
	}).WithTimeout(quiet).WithPolling(5 * time.Second).Should(Succeed())

	for _, db := range dbs {
		expectReady(g, getDatabase(g, ns, db.Name), ptr.Deref(db.Spec.Replicas, 1))
	}
}
