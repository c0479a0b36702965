package e2e

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/instance"
	"github.com/example/database-operator/render"
)

// tutorialDB is the name in config/samples/mysql-development.yaml.
const tutorialDB = "mysql-dev"

// applyTutorialSample applies the tutorial's sample with kubectl, as its
// reader does, and waits until it is Ready.
func applyTutorialSample(t *testing.T, ns string) *databasev1.Database {
	t.Helper()
	out := mustKubectl(t, "", "-n", ns, "apply", "-f", sample("mysql-development.yaml"))
	NewWithT(t).Expect(out).To(ContainSubstring("database.database.example.com/" + tutorialDB + " created"))
	return waitReady(t, ns, tutorialDB, 1)
}

// TestTutorialBasic is the tutorial's basic test: the development MySQL
// sample, applied with kubectl, gets its StatefulSet, Services and
// ConfigMap within 30 s, its pod becomes Ready, and the Database reports
// Ready for its current generation.
func TestTutorialBasic(t *testing.T) {
	useSharedOperator(t)
	g := NewWithT(t)
	ns := newNamespace(t)

	start := time.Now()
	out := mustKubectl(t, "", "-n", ns, "apply", "-f", sample("mysql-development.yaml"))
	g.Expect(out).To(ContainSubstring("database.database.example.com/" + tutorialDB + " created"))

	db := &databasev1.Database{}
	g.Expect(get(ns, tutorialDB, db)).To(Succeed())

	sts := &appsv1.StatefulSet{}
	svc, headless, cm := &corev1.Service{}, &corev1.Service{}, &corev1.ConfigMap{}
	g.Eventually(func(g Gomega) {
		g.Expect(get(ns, render.StatefulSetName(tutorialDB), sts)).To(Succeed())
		g.Expect(get(ns, render.ServiceName(tutorialDB), svc)).To(Succeed())
		g.Expect(get(ns, render.HeadlessServiceName(tutorialDB), headless)).To(Succeed())
		g.Expect(get(ns, render.ConfigMapName(tutorialDB), cm)).To(Succeed())
	}).WithTimeout(appearTimeout).WithPolling(poll).Should(Succeed(), "the children did not appear within %s", appearTimeout)
	t.Logf("StatefulSet, Services and ConfigMap appeared after %s", time.Since(start).Round(time.Millisecond))

	// The object contract (GUIDE.md §1).
	expectControlledBy(g, sts, db)
	expectControlledBy(g, svc, db)
	expectControlledBy(g, headless, db)
	expectControlledBy(g, cm, db)
	g.Expect(sts.Spec.ServiceName).To(Equal(render.HeadlessServiceName(tutorialDB)))
	g.Expect(*sts.Spec.Replicas).To(BeEquivalentTo(1))
	g.Expect(sts.Spec.PersistentVolumeClaimRetentionPolicy).NotTo(BeNil())
	g.Expect(sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted).To(Equal(appsv1.RetainPersistentVolumeClaimRetentionPolicyType))
	g.Expect(sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenScaled).To(Equal(appsv1.RetainPersistentVolumeClaimRetentionPolicyType))
	g.Expect(sts.Spec.Selector.MatchLabels).To(Equal(render.SelectorLabels(tutorialDB)))
	g.Expect(headless.Spec.ClusterIP).To(Equal(corev1.ClusterIPNone))
	g.Expect(headless.Spec.PublishNotReadyAddresses).To(BeTrue())
	g.Expect(svc.Spec.Selector).To(HaveKeyWithValue(instance.LabelRole, string(instance.Primary)), "the read-write Service selects the primary role")
	g.Eventually(func(g Gomega) {
		pod := &corev1.Pod{}
		g.Expect(get(ns, render.PodName(tutorialDB, 0), pod)).To(Succeed())
		g.Expect(pod.Labels).To(HaveKeyWithValue(instance.LabelRole, string(instance.Primary)))
	}).WithTimeout(appearTimeout).WithPolling(poll).Should(Succeed(), "pod 0 holds the primary role")
	g.Expect(container(sts.Spec.Template.Spec, "database")).NotTo(BeNil())
	g.Expect(container(sts.Spec.Template.Spec, "database").Image).To(Equal("mysql:8.0"))

	// The credentials exist and outlive the Database; no read Service, PDB
	// or backup for a single development replica.
	secret := &corev1.Secret{}
	g.Expect(get(ns, render.CredentialsSecretName(tutorialDB), secret)).To(Succeed())
	expectNoOwner(g, secret)
	g.Expect(secret.Data).To(HaveKey(render.SecretKeyPassword))
	g.Expect(get(ns, render.ReadServiceName(tutorialDB), &corev1.Service{})).NotTo(Succeed())
	g.Expect(get(ns, render.PodDisruptionBudgetName(tutorialDB), &policyv1.PodDisruptionBudget{})).NotTo(Succeed())
	g.Expect(get(ns, render.BackupName(tutorialDB), &batchv1.CronJob{})).NotTo(Succeed())

	// The pod is scheduled on a kwok node, its claim bound, and it is Ready.
	g.Eventually(func(g Gomega) {
		podsReady(g, ns, tutorialDB, 1)
		pvc := &corev1.PersistentVolumeClaim{}
		g.Expect(get(ns, "data-"+render.PodName(tutorialDB, 0), pvc)).To(Succeed())
		g.Expect(pvc.Status.Phase).To(Equal(corev1.ClaimBound))
		g.Expect(pvc.Spec.StorageClassName).To(HaveValue(Equal("standard")))
	}).WithTimeout(readyTimeout).WithPolling(poll).Should(Succeed())

	db = waitReady(t, ns, tutorialDB, 1)
	t.Logf("Database Ready after %s", time.Since(start).Round(time.Millisecond))
	g.Expect(db.Generation).To(BeEquivalentTo(1), "nothing may write the Database's spec")
	g.Expect(meta.IsStatusConditionFalse(db.Status.Conditions, databasev1.ConditionDegraded)).To(BeTrue(), statusSummary(db))
	g.Expect(meta.IsStatusConditionFalse(db.Status.Conditions, databasev1.ConditionProgressing)).To(BeTrue(), statusSummary(db))

	// What the user sees.
	out = mustKubectl(t, "", "-n", ns, "get", "db", tutorialDB)
	g.Expect(strings.Fields(lastLine(out))).To(HaveExactElements(tutorialDB, "mysql", "8.0", "1", "development", render.PodName(tutorialDB, 0), "true", "Ready", Not(BeEmpty())),
		"kubectl get db:\n%s", out)
}

// TestTutorialAdvanced is the tutorial's advanced tests, one after the
// other on the sample: enable backup, scale to 3, enable monitoring,
// disable backup, and kubectl scale through the scale subresource.
func TestTutorialAdvanced(t *testing.T) {
	useSharedOperator(t)
	g := NewWithT(t)
	ns := newNamespace(t)
	db := applyTutorialSample(t, ns)

	t.Log("enable backup")
	mergePatchSpec(t, ns, tutorialDB, map[string]any{"backup": map[string]any{"enabled": true}})
	cronJob, backupPVC := &batchv1.CronJob{}, &corev1.PersistentVolumeClaim{}
	g.Eventually(func(g Gomega) {
		g.Expect(get(ns, render.BackupName(tutorialDB), cronJob)).To(Succeed())
		g.Expect(get(ns, render.BackupName(tutorialDB), backupPVC)).To(Succeed())
	}).WithTimeout(appearTimeout).WithPolling(poll).Should(Succeed(), "no backup CronJob and PVC")
	expectControlledBy(g, cronJob, db)
	expectNoOwner(g, backupPVC)
	g.Expect(cronJob.Spec.Schedule).To(Equal("0 2 * * *"), "the CRD's default schedule")
	db = waitReady(t, ns, tutorialDB, 1)
	g.Expect(meta.FindStatusCondition(db.Status.Conditions, databasev1.ConditionBackupReady)).NotTo(BeNil(), statusSummary(db))

	t.Log("scale to 3")
	mergePatchSpec(t, ns, tutorialDB, map[string]any{"replicas": 3})
	sts := &appsv1.StatefulSet{}
	g.Eventually(func(g Gomega) {
		g.Expect(get(ns, render.StatefulSetName(tutorialDB), sts)).To(Succeed())
		g.Expect(*sts.Spec.Replicas).To(BeEquivalentTo(3))
		ro, pdb := &corev1.Service{}, &policyv1.PodDisruptionBudget{}
		g.Expect(get(ns, render.ReadServiceName(tutorialDB), ro)).To(Succeed())
		g.Expect(get(ns, render.PodDisruptionBudgetName(tutorialDB), pdb)).To(Succeed())
		expectControlledBy(g, ro, db)
		expectControlledBy(g, pdb, db)
		g.Expect(ro.Spec.Selector).To(Equal(render.SelectorLabels(tutorialDB)), "-ro selects every pod")
	}).WithTimeout(appearTimeout).WithPolling(poll).Should(Succeed())
	waitReady(t, ns, tutorialDB, 3)
	NewWithT(t).Eventually(func(g Gomega) { podsReady(g, ns, tutorialDB, 3) }).WithTimeout(readyTimeout).Should(Succeed())

	t.Log("enable monitoring")
	mergePatchSpec(t, ns, tutorialDB, map[string]any{"monitoring": map[string]any{"enabled": true, "metrics": true}})
	g.Eventually(func(g Gomega) {
		g.Expect(get(ns, render.StatefulSetName(tutorialDB), sts)).To(Succeed())
		exporter := container(sts.Spec.Template.Spec, "exporter")
		g.Expect(exporter).NotTo(BeNil(), "no exporter sidecar in the pod template")
		g.Expect(exporter.Ports).To(ContainElement(HaveField("Name", "metrics")))
		for _, name := range []string{render.ServiceName(tutorialDB), render.ReadServiceName(tutorialDB), render.HeadlessServiceName(tutorialDB)} {
			svc := &corev1.Service{}
			g.Expect(get(ns, name, svc)).To(Succeed())
			g.Expect(servicePortNames(svc)).To(ContainElement("metrics"), "Service %s", name)
		}
	}).WithTimeout(appearTimeout).WithPolling(poll).Should(Succeed())
	db = waitReady(t, ns, tutorialDB, 3)
	// No Prometheus Operator in this cluster: the Ready condition says so.
	g.Expect(meta.FindStatusCondition(db.Status.Conditions, databasev1.ConditionReady).Message).
		To(ContainSubstring("no ServiceMonitor"), statusSummary(db))

	t.Log("disable backup")
	mergePatchSpec(t, ns, tutorialDB, map[string]any{"backup": map[string]any{"enabled": false}})
	expectGone(t, ns, &batchv1.CronJob{ObjectMeta: cronJob.ObjectMeta})
	db = waitReady(t, ns, tutorialDB, 3)
	g.Expect(meta.FindStatusCondition(db.Status.Conditions, databasev1.ConditionBackupReady)).To(BeNil(), statusSummary(db))
	g.Consistently(func(g Gomega) {
		kept := &corev1.PersistentVolumeClaim{}
		g.Expect(get(ns, render.BackupName(tutorialDB), kept)).To(Succeed(), "the backup PVC must be kept")
		g.Expect(kept.UID).To(Equal(backupPVC.UID))
		g.Expect(kept.DeletionTimestamp).To(BeNil())
	}).WithTimeout(settle).WithPolling(poll).Should(Succeed())

	t.Log("kubectl scale db --replicas=2")
	out := mustKubectl(t, "", "-n", ns, "scale", "db", tutorialDB, "--replicas=2")
	g.Expect(out).To(ContainSubstring("database.database.example.com/" + tutorialDB + " scaled"))
	g.Expect(*getDatabase(g, ns, tutorialDB).Spec.Replicas).To(BeEquivalentTo(2))
	g.Eventually(func(g Gomega) {
		g.Expect(get(ns, render.StatefulSetName(tutorialDB), sts)).To(Succeed())
		g.Expect(*sts.Spec.Replicas).To(BeEquivalentTo(2))
	}).WithTimeout(appearTimeout).WithPolling(poll).Should(Succeed())
	db = waitReady(t, ns, tutorialDB, 2)
	g.Expect(db.Status.Selector).NotTo(BeEmpty(), "the scale subresource's selector")
	// Still more than one replica: the read Service and the PDB stay.
	g.Expect(get(ns, render.ReadServiceName(tutorialDB), &corev1.Service{})).To(Succeed())
	g.Expect(get(ns, render.PodDisruptionBudgetName(tutorialDB), &policyv1.PodDisruptionBudget{})).To(Succeed())
	// The scale subresource reads status.replicas back.
	out = mustKubectl(t, "", "-n", ns, "get", "--raw",
		"/apis/database.example.com/v1/namespaces/"+ns+"/databases/"+tutorialDB+"/scale")
	g.Expect(out).To(And(ContainSubstring(`"replicas":2`), ContainSubstring(`"selector":"`+db.Status.Selector+`"`)))
	// The scale-down kept pod 2's volume.
	g.Expect(get(ns, "data-"+render.PodName(tutorialDB, 2), &corev1.PersistentVolumeClaim{})).To(Succeed())
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
