package e2e

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/instance"
	"github.com/example/database-operator/render"
)

// TestDeletionKeepsDataAndRecreateReattaches deletes a Database with two
// replicas, backups and TLS: the real garbage collector removes its
// children, while the data volumes, the backup volume, the credentials and
// the TLS certificate stay. A Database of the same name then reattaches to
// them and becomes Ready with the same passwords and certificate.
func TestDeletionKeepsDataAndRecreateReattaches(t *testing.T) {
	useSharedOperator(t)
	g := NewWithT(t)
	ns := newNamespace(t)
	const name = "billing"
	spec := func() *databasev1.Database {
		return newDatabase(ns, name, databasev1.PostgreSQL, 2, withBackup(farSchedule()), withTLS)
	}

	g.Expect(k8s.Create(ctx(), spec())).To(Succeed())
	db := waitReady(t, ns, name, 2)
	g.Eventually(func(g Gomega) { podsReady(g, ns, name, 2) }).WithTimeout(readyTimeout).WithPolling(poll).Should(Succeed())

	// Every child exists, controlled by the Database.
	children := []client.Object{
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: render.StatefulSetName(name)}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: render.ServiceName(name)}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: render.HeadlessServiceName(name)}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: render.ReadServiceName(name)}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: render.ConfigMapName(name)}},
		&batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: render.BackupName(name)}},
		&policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: render.PodDisruptionBudgetName(name)}},
	}
	for _, c := range children {
		g.Expect(get(ns, c.GetName(), c)).To(Succeed(), "%T %s", c, c.GetName())
		expectControlledBy(g, c, db)
	}
	// What must outlive the Database.
	kept := map[string]client.Object{
		"data PVC 0":  &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data-" + render.PodName(name, 0)}},
		"data PVC 1":  &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data-" + render.PodName(name, 1)}},
		"backup PVC":  &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: render.BackupName(name)}},
		"credentials": &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: render.CredentialsSecretName(name)}},
		"TLS Secret":  &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: render.TLSSecretName(name)}},
	}
	uids := map[string]types.UID{}
	for what, o := range kept {
		g.Expect(get(ns, o.GetName(), o)).To(Succeed(), what)
		uids[what] = o.GetUID()
	}
	secretBefore := kept["credentials"].(*corev1.Secret).DeepCopy()
	g.Expect(secretBefore.Data).To(HaveKey(render.SecretKeyRootPassword))
	tlsBefore := kept["TLS Secret"].(*corev1.Secret).DeepCopy()
	g.Expect(tlsBefore.OwnerReferences).To(BeEmpty(), "the TLS Secret outlives the Database")
	g.Expect(tlsBefore.Data).To(HaveKey(render.TLSCAKey))
	sts := &appsv1.StatefulSet{}
	g.Expect(get(ns, render.StatefulSetName(name), sts)).To(Succeed())
	g.Expect(sts.Spec.Template.Spec.Volumes).To(ContainElement(HaveField("VolumeSource.Secret.SecretName", render.TLSSecretName(name))),
		"the pods mount the certificate")

	t.Log("delete the Database")
	out := mustKubectl(t, "", "-n", ns, "delete", "db", name, "--wait=true", "--timeout=60s")
	g.Expect(out).To(ContainSubstring(`database.database.example.com "` + name + `" deleted`))
	deleted := time.Now()
	expectGone(t, ns, children...)
	// TestMain waited until the garbage collector knows Databases
	// (waitForGarbageCollector), so this takes well under a second.
	t.Logf("the garbage collector removed the children after %s", time.Since(deleted).Round(time.Millisecond))
	// The pods go with the StatefulSet.
	expectGone(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: render.PodName(name, 0)}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: render.PodName(name, 1)}})

	g.Consistently(func(g Gomega) {
		for what, o := range kept {
			g.Expect(get(ns, o.GetName(), o)).To(Succeed(), "the %s must outlive the Database", what)
			g.Expect(o.GetUID()).To(Equal(uids[what]), what)
			g.Expect(o.GetDeletionTimestamp()).To(BeNil(), what)
		}
	}).WithTimeout(settle).WithPolling(poll).Should(Succeed())

	t.Log("re-create the Database")
	g.Expect(k8s.Create(ctx(), spec())).To(Succeed())
	db = waitReady(t, ns, name, 2)
	g.Eventually(func(g Gomega) { podsReady(g, ns, name, 2) }).WithTimeout(readyTimeout).WithPolling(poll).Should(Succeed())
	for what, o := range kept {
		g.Expect(get(ns, o.GetName(), o)).To(Succeed(), what)
		g.Expect(o.GetUID()).To(Equal(uids[what]), "the re-created Database must reattach to the same %s", what)
	}
	secretAfter := kept["credentials"].(*corev1.Secret)
	g.Expect(secretAfter.Data).To(Equal(secretBefore.Data), "the credentials must not change")
	g.Expect(secretAfter.ResourceVersion).To(Equal(secretBefore.ResourceVersion), "nothing may write the credentials Secret")
	tlsAfter := kept["TLS Secret"].(*corev1.Secret)
	g.Expect(tlsAfter.Data).To(Equal(tlsBefore.Data), "the certificate must not change")
	g.Expect(tlsAfter.ResourceVersion).To(Equal(tlsBefore.ResourceVersion), "nothing may write the TLS Secret")
	// The new StatefulSet's pods use the kept claims.
	pod := &corev1.Pod{}
	g.Expect(get(ns, render.PodName(name, 0), pod)).To(Succeed())
	g.Expect(pod.Spec.Volumes).To(ContainElement(HaveField("VolumeSource.PersistentVolumeClaim.ClaimName", "data-"+render.PodName(name, 0))))
	for _, c := range children {
		g.Expect(get(ns, c.GetName(), c)).To(Succeed(), "%T %s", c, c.GetName())
		expectControlledBy(g, c, db)
	}
	// No Degraded(CredentialsMissing) on the way: the Secret was there.
	g.Expect(statusSummary(db)).NotTo(ContainSubstring("CredentialsMissing"))
}

// TestSelfHealing checks drift correction on a running Database: a deleted
// Service comes back, a StatefulSet scaled by hand is scaled back, and an
// annotation a human added (a field the operator does not own) stays.
func TestSelfHealing(t *testing.T) {
	useSharedOperator(t)
	g := NewWithT(t)
	ns := newNamespace(t)
	const name = "payments"

	g.Expect(k8s.Create(ctx(), newDatabase(ns, name, databasev1.MySQL, 1))).To(Succeed())
	db := waitReady(t, ns, name, 1)

	t.Log("delete the read-write Service")
	svc := &corev1.Service{}
	g.Expect(get(ns, render.ServiceName(name), svc)).To(Succeed())
	oldUID := svc.UID
	mustKubectl(t, "", "-n", ns, "delete", "service", render.ServiceName(name))
	g.Eventually(func(g Gomega) {
		g.Expect(get(ns, render.ServiceName(name), svc)).To(Succeed())
		g.Expect(svc.UID).NotTo(Equal(oldUID), "still the deleted Service")
	}).WithTimeout(appearTimeout).WithPolling(poll).Should(Succeed(), "the Service was not re-created")
	expectControlledBy(g, svc, db)
	g.Expect(svc.Spec.Selector).To(HaveKeyWithValue(instance.LabelRole, string(instance.Primary)), "the read-write Service selects the primary role")
	g.Eventually(func(g Gomega) {
		pod := &corev1.Pod{}
		g.Expect(get(ns, render.PodName(name, 0), pod)).To(Succeed())
		g.Expect(pod.Labels).To(HaveKeyWithValue(instance.LabelRole, string(instance.Primary)))
	}).WithTimeout(appearTimeout).WithPolling(poll).Should(Succeed(), "pod 0 holds the primary role")
	waitReady(t, ns, name, 1)

	t.Log("kubectl scale sts --replicas=3")
	out := mustKubectl(t, "", "-n", ns, "scale", "sts", render.StatefulSetName(name), "--replicas=3")
	g.Expect(out).To(ContainSubstring("statefulset.apps/" + name + " scaled"))
	sts := &appsv1.StatefulSet{}
	g.Eventually(func(g Gomega) {
		g.Expect(get(ns, render.StatefulSetName(name), sts)).To(Succeed())
		g.Expect(*sts.Spec.Replicas).To(BeEquivalentTo(1))
	}).WithTimeout(appearTimeout).WithPolling(poll).Should(Succeed(), "the StatefulSet was not scaled back")
	g.Expect(*getDatabase(g, ns, name).Spec.Replicas).To(BeEquivalentTo(1), "the Database's spec is the truth")
	waitReady(t, ns, name, 1)
	g.Eventually(func(g Gomega) {
		g.Expect(get(ns, render.StatefulSetName(name), sts)).To(Succeed())
		g.Expect(sts.Status.Replicas).To(BeEquivalentTo(1), "pods of the manual scale-up are removed")
	}).WithTimeout(readyTimeout).WithPolling(poll).Should(Succeed())

	t.Log("kubectl annotate sts team=payments")
	mustKubectl(t, "", "-n", ns, "annotate", "sts", render.StatefulSetName(name), "team=payments")
	// The annotation is an update of the StatefulSet, which the operator
	// watches: it reconciles, and must leave the annotation alone. Another
	// round of drift makes sure a later reconcile does too.
	g.Consistently(func(g Gomega) {
		g.Expect(get(ns, render.StatefulSetName(name), sts)).To(Succeed())
		g.Expect(sts.Annotations).To(HaveKeyWithValue("team", "payments"))
	}).WithTimeout(settle).WithPolling(poll).Should(Succeed())
	mustKubectl(t, "", "-n", ns, "scale", "sts", render.StatefulSetName(name), "--replicas=2")
	g.Eventually(func(g Gomega) {
		g.Expect(get(ns, render.StatefulSetName(name), sts)).To(Succeed())
		g.Expect(*sts.Spec.Replicas).To(BeEquivalentTo(1))
	}).WithTimeout(appearTimeout).WithPolling(poll).Should(Succeed(), "the StatefulSet was not scaled back")
	g.Expect(sts.Annotations).To(HaveKeyWithValue("team", "payments"), "the operator removed a human's annotation")
	waitReady(t, ns, name, 1)
	g.Expect(get(ns, render.StatefulSetName(name), sts)).To(Succeed())
	g.Expect(sts.Annotations).To(HaveKeyWithValue("team", "payments"), "the operator removed a human's annotation")
}
