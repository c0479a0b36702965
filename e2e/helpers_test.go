package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

// sample is the path of a file in config/samples.
func sample(name string) string {
	return filepath.Join(repoRoot, "config", "samples", name)
}

// newDatabase is a development Database of the given engine and replicas
// with a 1Gi volume; opts adjust it.
func newDatabase(ns, name string, typ databasev1.DatabaseType, replicas int32, opts ...func(*databasev1.Database)) *databasev1.Database {
	version := "8.0"
	if typ == databasev1.PostgreSQL {
		version = "16"
	}
	db := &databasev1.Database{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: databasev1.DatabaseSpec{
			Type:        typ,
			Version:     version,
			Replicas:    ptr.To(replicas),
			Storage:     databasev1.StorageSpec{Size: resource.MustParse("1Gi")},
			Environment: databasev1.Development,
		},
	}
	for _, o := range opts {
		o(db)
	}
	return db
}

// withBackup enables backups on the given schedule.
func withBackup(schedule string) func(*databasev1.Database) {
	return func(db *databasev1.Database) {
		db.Spec.Backup = &databasev1.BackupSpec{Enabled: true, Schedule: schedule, Retention: "7d"}
	}
}

// withTLS turns on TLS with a certificate the operator issues.
func withTLS(db *databasev1.Database) {
	db.Spec.TLS = &databasev1.TLSSpec{Enabled: true}
}

// withMetrics turns on the exporter sidecar.
func withMetrics(db *databasev1.Database) {
	db.Spec.Monitoring = &databasev1.MonitoringSpec{Enabled: true, Metrics: true}
}

// farSchedule is a daily backup schedule about twelve hours away, so no
// backup Job starts while a test runs.
func farSchedule() string {
	at := time.Now().UTC().Add(12 * time.Hour)
	return fmt.Sprintf("%d %d * * *", at.Minute(), at.Hour())
}

// getDatabase reads a Database.
func getDatabase(g Gomega, ns, name string) *databasev1.Database {
	db := &databasev1.Database{}
	g.Expect(k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: name}, db)).To(Succeed())
	return db
}

// statusSummary describes a Database's status in one line, for messages.
func statusSummary(db *databasev1.Database) string {
	s := fmt.Sprintf("generation %d, observedGeneration %d, phase %q, ready %v, replicas %d",
		db.Generation, db.Status.ObservedGeneration, db.Status.Phase, db.Status.Ready, db.Status.Replicas)
	for _, c := range db.Status.Conditions {
		s += fmt.Sprintf("; %s=%s (%s: %s, observedGeneration %d)", c.Type, c.Status, c.Reason, c.Message, c.ObservedGeneration)
	}
	return s
}

// expectReady checks that db's status describes its current generation and
// says Ready with the given number of ready replicas.
func expectReady(g Gomega, db *databasev1.Database, replicas int32) {
	summary := statusSummary(db)
	g.Expect(db.Status.ObservedGeneration).To(Equal(db.Generation), "status.observedGeneration: %s", summary)
	g.Expect(db.Status.Phase).To(Equal(databasev1.PhaseReady), "status.phase: %s", summary)
	g.Expect(db.Status.Ready).To(BeTrue(), "status.ready: %s", summary)
	g.Expect(db.Status.Replicas).To(Equal(replicas), "status.replicas: %s", summary)
	c := meta.FindStatusCondition(db.Status.Conditions, databasev1.ConditionReady)
	g.Expect(c).NotTo(BeNil(), "no Ready condition: %s", summary)
	g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "Ready condition: %s", summary)
	g.Expect(c.ObservedGeneration).To(Equal(db.Generation), "Ready condition's observedGeneration: %s", summary)
}

// waitReady waits until the Database is Ready with replicas ready pods and
// returns it.
func waitReady(t *testing.T, ns, name string, replicas int32) *databasev1.Database {
	t.Helper()
	var db *databasev1.Database
	NewWithT(t).Eventually(func(g Gomega) {
		db = getDatabase(g, ns, name)
		expectReady(g, db, replicas)
	}).WithTimeout(readyTimeout).WithPolling(poll).Should(Succeed(), "Database %s/%s never became Ready with %d replicas", ns, name, replicas)
	return db
}

// ctx is the context of API calls; the client's own timeout bounds each.
func ctx() context.Context {
	return context.Background()
}

// get reads obj by name into obj; the error is the API's.
func get(ns, name string, obj client.Object) error {
	return k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: name}, obj)
}

// expectControlledBy checks that obj's controller is the Database db.
func expectControlledBy(g Gomega, obj client.Object, db *databasev1.Database) {
	ref := metav1.GetControllerOfNoCopy(obj)
	g.Expect(ref).NotTo(BeNil(), "%T %s has no controller", obj, obj.GetName())
	g.Expect(ref.Kind).To(Equal("Database"), "%T %s's controller", obj, obj.GetName())
	g.Expect(ref.Name).To(Equal(db.Name), "%T %s's controller", obj, obj.GetName())
	g.Expect(ref.UID).To(Equal(db.UID), "%T %s's controller is not the current Database", obj, obj.GetName())
}

// expectNoOwner checks that obj has no owner reference: it outlives the
// Database.
func expectNoOwner(g Gomega, obj client.Object) {
	g.Expect(obj.GetOwnerReferences()).To(BeEmpty(), "%T %s must outlive the Database", obj, obj.GetName())
}

// expectGone waits until none of objs exists.
func expectGone(t *testing.T, ns string, objs ...client.Object) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		for _, o := range objs {
			err := get(ns, o.GetName(), o)
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%T %s still exists (err %v)", o, o.GetName(), err)
		}
	}).WithTimeout(goneTimeout).WithPolling(poll).Should(Succeed())
}

// mergePatchSpec merge-patches the Database's spec with the JSON of spec.
func mergePatchSpec(t *testing.T, ns, name string, spec map[string]any) {
	t.Helper()
	patch, err := json.Marshal(map[string]any{"spec": spec})
	if err != nil {
		t.Fatal(err)
	}
	db := &databasev1.Database{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := k8s.Patch(ctx(), db, client.RawPatch(types.MergePatchType, patch)); err != nil {
		t.Fatalf("patch Database %s with %s: %v", name, patch, err)
	}
}

// podsReady checks that the pods <db>-0..replicas-1 exist and are Ready.
func podsReady(g Gomega, ns, db string, replicas int) {
	for i := range replicas {
		pod := &corev1.Pod{}
		g.Expect(get(ns, render.PodName(db, i), pod)).To(Succeed())
		ready := false
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		g.Expect(ready).To(BeTrue(), "pod %s is not Ready: phase %s", pod.Name, pod.Status.Phase)
	}
}

// servicePortNames are the names of a Service's ports.
func servicePortNames(svc *corev1.Service) []string {
	var names []string
	for _, p := range svc.Spec.Ports {
		names = append(names, p.Name)
	}
	return names
}

// container finds a container of a pod spec by name.
func container(spec corev1.PodSpec, name string) *corev1.Container {
	for i := range spec.Containers {
		if spec.Containers[i].Name == name {
			return &spec.Containers[i]
		}
	}
	return nil
}

// kindLists are the kinds a Database's children are made of, with a list
// to read them into.
func kindLists() map[string]client.ObjectList {
	return map[string]client.ObjectList{
		"StatefulSet":           &appsv1.StatefulSetList{},
		"Service":               &corev1.ServiceList{},
		"ConfigMap":             &corev1.ConfigMapList{},
		"Secret":                &corev1.SecretList{},
		"PodDisruptionBudget":   &policyv1.PodDisruptionBudgetList{},
		"CronJob":               &batchv1.CronJobList{},
		"PersistentVolumeClaim": &corev1.PersistentVolumeClaimList{},
	}
}

// controlledKinds are the kinds whose objects a Database controls; the
// credentials Secret and the PVCs have no owner.
var controlledKinds = map[string]bool{
	"StatefulSet": true, "Service": true, "ConfigMap": true, "PodDisruptionBudget": true, "CronJob": true,
}

// expectedChildren is, per kind, the names of the objects dbs must have
// (GUIDE.md §1), PVCs included, assuming no Database was ever scaled down.
func expectedChildren(dbs []databasev1.Database) map[string][]string {
	want := map[string][]string{}
	add := func(kind, name string) { want[kind] = append(want[kind], name) }
	for _, db := range dbs {
		n := db.Name
		replicas := int(ptr.Deref(db.Spec.Replicas, 1))
		add("StatefulSet", render.StatefulSetName(n))
		add("Service", render.ServiceName(n))
		add("Service", render.HeadlessServiceName(n))
		add("ConfigMap", render.ConfigMapName(n))
		add("Secret", render.CredentialsSecretName(n))
		for i := range replicas {
			add("PersistentVolumeClaim", "data-"+render.PodName(n, i))
		}
		if replicas > 1 {
			add("Service", render.ReadServiceName(n))
			add("PodDisruptionBudget", render.PodDisruptionBudgetName(n))
		}
		if db.Spec.Backup != nil && db.Spec.Backup.Enabled {
			add("CronJob", render.BackupName(n))
			add("PersistentVolumeClaim", render.BackupName(n))
		}
	}
	return want
}

// expectExactChildren checks that the namespace holds exactly the children
// its Databases call for: no duplicate, no orphan, each controlled child
// controlled by an existing Database, and the others (credentials, PVCs)
// labelled with one. The cluster's own kube-root-ca.crt is left out.
func expectExactChildren(g Gomega, ns string, wantDatabases int) {
	var dbs databasev1.DatabaseList
	g.Expect(k8s.List(ctx(), &dbs, client.InNamespace(ns))).To(Succeed())
	g.Expect(dbs.Items).To(HaveLen(wantDatabases), "Databases in %s", ns)
	byName := map[string]*databasev1.Database{}
	for i := range dbs.Items {
		byName[dbs.Items[i].Name] = &dbs.Items[i]
	}
	want := expectedChildren(dbs.Items)
	for kind, list := range kindLists() {
		g.Expect(k8s.List(ctx(), list, client.InNamespace(ns))).To(Succeed())
		var names []string
		err := meta.EachListItem(list, func(o runtime.Object) error {
			obj := o.(client.Object)
			if kind == "ConfigMap" && obj.GetName() == "kube-root-ca.crt" {
				return nil
			}
			names = append(names, obj.GetName())
			instance := obj.GetLabels()[render.LabelInstance]
			db, ok := byName[instance]
			g.Expect(ok).To(BeTrue(), "%s %s is labelled for Database %q, which does not exist", kind, obj.GetName(), instance)
			if controlledKinds[kind] {
				expectControlledBy(g, obj, db)
			}
			return nil
		})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(names).To(ConsistOf(want[kind]), "%ss in %s", kind, ns)
	}
}
