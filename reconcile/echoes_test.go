package reconcile

import (
	"errors"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

// echoWorld is one Database, the echoes tracker, and the predicates its
// watches use, driven event by event as the informers would.
type echoWorld struct {
	e   *echoes
	db  *databasev1.Database
	cm  func(obj client.Object) bool // ConfigMap watch (owned, written)
	sec func(obj client.Object) bool // Secret watch (labelled, written)
	job func(obj client.Object) bool // Job watch (labelled, never written)
	del func(obj client.Object) bool // ConfigMap delete
}

func newEchoWorld() *echoWorld { return newEchoWorldOn(&echoes{}) }

// newEchoWorldOn drives the given tracker (a Reconciler's).
func newEchoWorldOn(e *echoes) *echoWorld {
	cm := e.note(kindConfigMap.kind, true, controllingDatabase)
	sec := e.note("Secret", true, labelledDatabase)
	job := e.note("Job", false, labelledDatabase)
	db := &databasev1.Database{ObjectMeta: metav1.ObjectMeta{
		Namespace: "ns", Name: "orders", UID: "uid-1", Generation: 1,
		Annotations: map[string]string{"a": "1"},
	}}
	return &echoWorld{
		e: e, db: db,
		cm:  func(o client.Object) bool { return cm.Update(event.UpdateEvent{ObjectOld: o, ObjectNew: o}) },
		sec: func(o client.Object) bool { return sec.Create(event.CreateEvent{Object: o}) },
		job: func(o client.Object) bool { return job.Create(event.CreateEvent{Object: o}) },
		del: func(o client.Object) bool { return cm.Delete(event.DeleteEvent{Object: o}) },
	}
}

func (w *echoWorld) configMap(rv string) client.Object {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Namespace: "ns", Name: render.ConfigMapName("orders"), ResourceVersion: rv,
		OwnerReferences: []metav1.OwnerReference{{
			APIVersion: databasev1.GroupVersion.String(), Kind: "Database", Name: "orders", UID: "uid-1", Controller: ptr.To(true),
		}},
	}}
}

func labelledFor(db string) map[string]string {
	return map[string]string{render.LabelInstance: db, render.LabelManagedBy: FieldManager}
}

// reconciled plays one successful reconcile that wrote the ConfigMap and
// the credentials Secret at the given resourceVersions.
func (w *echoWorld) reconciled(cmRV, secretRV string) {
	w.e.begin(w.db)
	w.e.wrote(w.db, kindConfigMap.kind, render.ConfigMapName("orders"), cmRV)
	w.e.wrote(w.db, "Secret", render.CredentialsSecretName("orders"), secretRV)
	w.e.end(w.db, nil)
}

func TestEchoes(t *testing.T) {
	secret := func(rv string) client.Object {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
			Namespace: "ns", Name: render.CredentialsSecretName("orders"), ResourceVersion: rv, Labels: labelledFor("orders"),
		}}
	}
	cases := []struct {
		name string
		// then plays what happens after one successful reconcile that
		// wrote ConfigMap rv 10 and Secret rv 11.
		then func(w *echoWorld)
		// skip: the next reconcile may end at once.
		skip bool
	}{
		{"only the echoes of the previous writes", func(w *echoWorld) {
			w.cm(w.configMap("10"))
			w.sec(secret("11"))
		}, true},
		{"no event at all (a requeue after an error, a restart)", func(*echoWorld) {}, false},
		{"someone else wrote a child", func(w *echoWorld) {
			w.cm(w.configMap("10"))
			w.cm(w.configMap("12"))
		}, false},
		{"someone else deleted a child", func(w *echoWorld) {
			w.cm(w.configMap("10"))
			w.del(w.configMap("10"))
		}, false},
		{"a backup Job, which the operator never writes", func(w *echoWorld) {
			w.cm(w.configMap("10"))
			w.job(&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "orders-backup-1", Labels: labelledFor("orders")}})
		}, false},
		{"the spec changed", func(w *echoWorld) {
			w.cm(w.configMap("10"))
			w.db.Generation = 2
		}, false},
		{"an annotation changed (how a user asks for a reconcile)", func(w *echoWorld) {
			w.cm(w.configMap("10"))
			w.db.Annotations = map[string]string{"a": "2"}
		}, false},
		{"a label changed", func(w *echoWorld) {
			w.cm(w.configMap("10"))
			w.db.Labels = map[string]string{"team": "x"}
		}, false},
		{"the Database was recreated under the same name", func(w *echoWorld) {
			w.cm(w.configMap("10"))
			w.db.UID = "uid-2"
		}, false},
		{"the previous reconcile failed", func(w *echoWorld) {
			w.e.begin(w.db)
			w.e.end(w.db, errors.New("conflict"))
			w.cm(w.configMap("10"))
		}, false},
		{"the Database was forgotten (deleted)", func(w *echoWorld) {
			w.e.forget(types.NamespacedName{Namespace: "ns", Name: "orders"})
			w.cm(w.configMap("10"))
		}, false},
		{"another Database's events do not count", func(w *echoWorld) {
			w.cm(w.configMap("10"))
			w.sec(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{
				Namespace: "ns", Name: render.CredentialsSecretName("other"), ResourceVersion: "99", Labels: labelledFor("other"),
			}})
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			w := newEchoWorld()
			w.reconciled("10", "11")
			tc.then(w)
			g.Expect(w.e.begin(w.db)).To(Equal(tc.skip))
		})
	}
}

// An echo may arrive before the apply that caused it returns: it is noted
// then and judged only when the next reconcile begins.
func TestEchoBeforeItsWriteReturns(t *testing.T) {
	g := NewWithT(t)
	w := newEchoWorld()
	w.e.begin(w.db)
	w.cm(w.configMap("10"))
	w.e.wrote(w.db, kindConfigMap.kind, render.ConfigMapName("orders"), "10")
	w.e.end(w.db, nil)
	g.Expect(w.e.begin(w.db)).To(BeTrue())
}

func TestEchoesAreJudgedOnce(t *testing.T) {
	g := NewWithT(t)
	w := newEchoWorld()
	w.reconciled("10", "11")
	w.cm(w.configMap("10"))
	g.Expect(w.e.begin(w.db)).To(BeTrue(), "the echo ends the next reconcile")
	// The skipped reconcile leaves the last one's record as it was; a
	// reconcile with no new events (a requeue) does the work again.
	g.Expect(w.e.begin(w.db)).To(BeFalse(), "no events left: reconcile")
}

func TestEchoPredicatesPassEveryEvent(t *testing.T) {
	g := NewWithT(t)
	w := newEchoWorld()
	unrelated := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "x"}}
	g.Expect(w.cm(w.configMap("1"))).To(BeTrue())
	g.Expect(w.cm(unrelated)).To(BeTrue())
	g.Expect(w.del(w.configMap("1"))).To(BeTrue())
	g.Expect(w.job(&batchv1.Job{})).To(BeTrue())
	g.Expect(w.e.dbs).NotTo(HaveKey(types.NamespacedName{Namespace: "ns", Name: "x"}), "an object with no Database is not tracked")
}

func TestResourceVersionOfReadsTheAnswer(t *testing.T) {
	g := NewWithT(t)
	rendered, err := render.Render(&databasev1.Database{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "orders", UID: "u"},
		Spec: databasev1.DatabaseSpec{Type: databasev1.PostgreSQL, Version: "16", Replicas: ptr.To[int32](3),
			Backup:     &databasev1.BackupSpec{Enabled: true},
			Monitoring: &databasev1.MonitoringSpec{Enabled: true, Metrics: true}},
	}, render.DefaultOptions())
	g.Expect(err).NotTo(HaveOccurred())
	served := MonitoringAPIs{ServiceMonitors: true, PrometheusRules: true}
	list := children(rendered, served)
	g.Expect(list).NotTo(BeEmpty())
	for _, ch := range list {
		g.Expect(resourceVersionOf(ch.ac)).To(BeEmpty(), "%s %s before the answer", ch.kind, ch.name)
	}
	rendered.StatefulSet.WithResourceVersion("7")
	rendered.ConfigMap.WithResourceVersion("8")
	rendered.ServiceMonitor.SetResourceVersion("9")
	rendered.PrometheusRule.SetResourceVersion("10")
	g.Expect(resourceVersionOf(rendered.StatefulSet)).To(Equal("7"))
	g.Expect(resourceVersionOf(rendered.ConfigMap)).To(Equal("8"))
	unstructuredRVs := map[string]string{}
	for _, ch := range children(rendered, served) {
		if ch.kind == kindServiceMonitor.kind || ch.kind == kindPrometheusRule.kind {
			unstructuredRVs[ch.kind] = resourceVersionOf(ch.ac)
		}
	}
	g.Expect(unstructuredRVs).To(Equal(map[string]string{kindServiceMonitor.kind: "9", kindPrometheusRule.kind: "10"}))
}

// TestEchoesKeepATimedLook: the controller's queue holds one entry per
// Database, so an echo that arrives while a timed look (a failover delay)
// is pending replaces it. The reconcile the echo causes may end at once,
// but must ask for the look again, and once the look is due it must do
// the whole work: on real pods a failover otherwise waited for an
// unrelated event (1m45s instead of 5 s).
func TestEchoesKeepATimedLook(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 12, 2, 6, 29, 22, 0, time.UTC)
	r := &Reconciler{Now: func() time.Time { return now }}
	w := newEchoWorldOn(&r.echoes)
	key := client.ObjectKeyFromObject(w.db)

	w.reconciled("10", "11")
	w.cm(w.configMap("10"))
	result, skip := r.onlyEchoes(w.db)
	g.Expect(skip).To(BeTrue(), "no look pending: an echo alone ends the reconcile")
	g.Expect(result.RequeueAfter).To(BeZero())

	r.looks.set(key, now.Add(5*time.Second))
	w.reconciled("12", "13")
	w.cm(w.configMap("12"))
	now = now.Add(2 * time.Second)
	result, skip = r.onlyEchoes(w.db)
	g.Expect(skip).To(BeTrue())
	g.Expect(result.RequeueAfter).To(Equal(3*time.Second), "the pending look is asked for again")

	w.reconciled("14", "15")
	w.cm(w.configMap("14"))
	now = now.Add(3 * time.Second)
	_, skip = r.onlyEchoes(w.db)
	g.Expect(skip).To(BeFalse(), "the look is due: the reconcile does the whole work, echo or not")

	r.looks.set(key, time.Time{})
	w.reconciled("16", "17")
	w.cm(w.configMap("16"))
	result, skip = r.onlyEchoes(w.db)
	g.Expect(skip).To(BeTrue(), "a look done is forgotten")
	g.Expect(result.RequeueAfter).To(BeZero())
}
