package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	databasev1ac "github.com/example/database-operator/apis/database/v1/applyconfiguration/database/v1"
	"github.com/example/database-operator/render"
)

// fieldManager is the operator's field manager; the limit loop applies
// under the same one, so the API server does the same work.
const fieldManager = "database-operator"

// newDatabase returns the i-th Database of a workload. The mix cycles
// through both engines and all three environments (development: 1
// replica, staging: 2, production: 3); every 5th has backups, every 7th
// monitoring (metrics and logging; no ServiceMonitor, as envtest serves no
// monitoring.coreos.com API).
func newDatabase(ns, name string, i int) *databasev1.Database {
	db := &databasev1.Database{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: databasev1.DatabaseSpec{
			Storage: databasev1.StorageSpec{Size: resource.MustParse("10Gi")},
		},
	}
	if i%2 == 0 {
		db.Spec.Type, db.Spec.Version = databasev1.PostgreSQL, "16"
	} else {
		db.Spec.Type, db.Spec.Version = databasev1.MySQL, "8.0"
	}
	switch (i / 2) % 3 {
	case 0:
		db.Spec.Environment, db.Spec.Replicas = databasev1.Development, ptr.To[int32](1)
	case 1:
		db.Spec.Environment, db.Spec.Replicas = databasev1.Staging, ptr.To[int32](2)
	default:
		db.Spec.Environment, db.Spec.Replicas = databasev1.Production, ptr.To[int32](3)
	}
	if i%5 == 0 {
		db.Spec.Backup = &databasev1.BackupSpec{Enabled: true, Schedule: "0 2 * * *", Retention: "7d"}
	}
	if i%7 == 0 {
		db.Spec.Monitoring = &databasev1.MonitoringSpec{Enabled: true, Metrics: true, Logging: true}
	}
	return db
}

// dbRef names one Database of the workload and what it becomes.
type dbRef struct {
	Namespace, Name string
	// Children are the objects the operator writes for it besides the
	// credentials Secret and the status, as "kind/name".
	Children []string
}

// key is namespace/name.
func (d dbRef) key() string { return d.Namespace + "/" + d.Name }

// budget is the target's write budget: each child once, the credentials
// Secret and the status.
func (d dbRef) budget() int { return len(d.Children) + 2 }

// renderedChild is one object render returns for a Database.
type renderedChild struct {
	gvk  schema.GroupVersionKind
	name string
	ac   runtime.ApplyConfiguration
}

// namedApplyConfiguration is what every typed apply configuration offers.
type namedApplyConfiguration interface {
	runtime.ApplyConfiguration
	GetName() *string
	GetKind() *string
	GetAPIVersion() *string
}

// renderChildren returns every child render returns for db, in the
// reconciler's apply order as far as it matters (the StatefulSet last). It
// walks render.Children's fields, so a new kind of child is measured
// without changing the bench. The ServiceMonitor is left out: envtest
// serves no monitoring.coreos.com API, so the operator does not apply it.
func renderChildren(db *databasev1.Database) ([]renderedChild, error) {
	c, err := render.Render(db, render.DefaultOptions())
	if err != nil {
		return nil, err
	}
	var out []renderedChild
	var sts *renderedChild
	v := reflect.ValueOf(c).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		if f.Kind() != reflect.Pointer || f.IsNil() {
			continue
		}
		ac, ok := f.Interface().(namedApplyConfiguration)
		if !ok {
			continue // the unstructured ServiceMonitor
		}
		gv, err := schema.ParseGroupVersion(*ac.GetAPIVersion())
		if err != nil {
			return nil, err
		}
		ch := renderedChild{gvk: gv.WithKind(*ac.GetKind()), name: *ac.GetName(), ac: ac}
		if ch.gvk.Kind == "StatefulSet" {
			sts = &ch
			continue
		}
		out = append(out, ch)
	}
	if sts == nil {
		return nil, fmt.Errorf("render returned no StatefulSet for %s", db.Name)
	}
	return append(out, *sts), nil
}

// childNames lists the children of db as "Kind/name", sorted, and their
// kinds.
func childNames(db *databasev1.Database) ([]string, []schema.GroupVersionKind, error) {
	children, err := renderChildren(db)
	if err != nil {
		return nil, nil, err
	}
	var names []string
	var kinds []schema.GroupVersionKind
	for _, c := range children {
		names = append(names, c.gvk.Kind+"/"+c.name)
		kinds = append(kinds, c.gvk)
	}
	sort.Strings(names)
	return names, kinds, nil
}

// workload is a set of Databases spread over namespaces.
type workload struct {
	DBs []dbRef
	// kinds are the kinds of the children.
	kinds []schema.GroupVersionKind
	// specs holds the Database of each ref, by index.
	specs []*databasev1.Database
}

// newWorkload names n Databases, perNamespace per namespace, with
// namespaces <prefix>-00, <prefix>-01, …; first is the index of the first
// Database in the spec mix.
func newWorkload(prefix string, n, perNamespace, first int) (*workload, error) {
	w := &workload{}
	for i := range n {
		ns := fmt.Sprintf("%s-%02d", prefix, i/perNamespace)
		name := fmt.Sprintf("db-%04d", first+i)
		db := newDatabase(ns, name, first+i)
		children, kinds, err := childNames(db)
		if err != nil {
			return nil, err
		}
		w.kinds = addKinds(w.kinds, kinds...)
		w.DBs = append(w.DBs, dbRef{Namespace: ns, Name: name, Children: children})
		w.specs = append(w.specs, db)
	}
	return w, nil
}

// addKinds adds the kinds not in list yet.
func addKinds(list []schema.GroupVersionKind, kinds ...schema.GroupVersionKind) []schema.GroupVersionKind {
	for _, k := range kinds {
		if !slices.Contains(list, k) {
			list = append(list, k)
		}
	}
	return list
}

// namespaces returns the workload's namespaces in order.
func (w *workload) namespaces() []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range w.DBs {
		if !seen[d.Namespace] {
			seen[d.Namespace] = true
			out = append(out, d.Namespace)
		}
	}
	return out
}

// children counts every child of the workload.
func (w *workload) children() int {
	n := 0
	for _, d := range w.DBs {
		n += len(d.Children)
	}
	return n
}

// budget is the sum of the Databases' write budgets.
func (w *workload) budget() int {
	n := 0
	for _, d := range w.DBs {
		n += d.budget()
	}
	return n
}

// ensureNamespaces creates the namespaces (envtest has no namespace
// controller; they are never deleted during a run).
func ensureNamespaces(ctx context.Context, c client.Client, names []string) error {
	for _, ns := range names {
		err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		if err != nil && !isAlreadyExists(err) {
			return fmt.Errorf("create namespace %s: %w", ns, err)
		}
	}
	return nil
}

// createAll creates the Databases of w with parallel creators and calls
// created (if not nil) with each Database as stored.
func createAll(ctx context.Context, c client.Client, w *workload, parallel int, created func(i int, db *databasev1.Database)) error {
	idx := make(chan int)
	errs := make(chan error, parallel)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				db := w.specs[i].DeepCopy()
				if err := c.Create(ctx, db); err != nil {
					errs <- fmt.Errorf("create Database %s/%s: %w", db.Namespace, db.Name, err)
					return
				}
				if created != nil {
					created(i, db)
				}
			}
		}()
	}
	var err error
feed:
	for i := range w.DBs {
		select {
		case idx <- i:
		case err = <-errs:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(idx)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return err
}

// credentialsSecret is a Secret shaped like the operator's generated one:
// the same name, labels and eight keys, with random 32-character passwords.
func credentialsSecret(db *databasev1.Database) *corev1.Secret {
	labels := render.SelectorLabels(db.Name)
	labels[render.LabelComponent] = "credentials"
	pw := func() string { return rand.Text()[:26] + rand.Text()[:6] }
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: render.CredentialsSecretName(db.Name), Namespace: db.Namespace, Labels: labels},
		Type:       corev1.SecretTypeOpaque,
		StringData: map[string]string{
			render.SecretKeyRootPassword:        pw(),
			render.SecretKeyUsername:            "app",
			render.SecretKeyPassword:            pw(),
			render.SecretKeyDatabase:            db.Name,
			render.SecretKeyReplicationPassword: pw(),
			render.SecretKeyHost:                render.ServiceName(db.Name) + "." + db.Namespace + ".svc",
			render.SecretKeyPort:                "5432",
			render.SecretKeyURI:                 "postgresql://app:" + pw() + "@" + db.Name + "." + db.Namespace + ".svc:5432/" + db.Name,
		},
	}
}

// firstStatus is the status apply the operator makes after creating a
// Database's children, before any pod exists: every field it owns, with
// its conditions (Creating, Progressing, not Degraded, no backup yet).
func firstStatus(db *databasev1.Database, now metav1.Time) *databasev1ac.DatabaseApplyConfiguration {
	desired := ptr.Deref(db.Spec.Replicas, 1)
	cond := func(typ string, status metav1.ConditionStatus, reason, msg string) *metav1ac.ConditionApplyConfiguration {
		return metav1ac.Condition().WithType(typ).WithStatus(status).WithReason(reason).WithMessage(msg).
			WithObservedGeneration(db.Generation).WithLastTransitionTime(now)
	}
	st := databasev1ac.DatabaseStatus().
		WithPhase(databasev1.PhaseCreating).
		WithReady(false).
		WithReplicas(0).
		WithSelector(fmt.Sprintf("%s=database,%s=%s,%s=%s", render.LabelName, render.LabelInstance, db.Name, render.LabelManagedBy, fieldManager)).
		WithObservedGeneration(db.Generation).
		WithConditions(
			cond(databasev1.ConditionReady, metav1.ConditionFalse, string(databasev1.PhaseCreating), fmt.Sprintf("0/%d replicas ready", desired)),
			cond(databasev1.ConditionProgressing, metav1.ConditionTrue, "RollingUpdate", fmt.Sprintf("0/%d replicas updated", desired)),
			cond(databasev1.ConditionDegraded, metav1.ConditionFalse, "AsExpected", "no problem found"),
		)
	if db.Spec.Backup != nil && db.Spec.Backup.Enabled {
		st.WithConditions(cond(databasev1.ConditionBackupReady, metav1.ConditionUnknown, "NoBackupYet", "no backup has completed yet"))
	}
	return databasev1ac.Database(db.Name, db.Namespace).WithStatus(st)
}
