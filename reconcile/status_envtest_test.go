package reconcile_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// transitionTimes returns each condition's LastTransitionTime.
func transitionTimes(db *databasev1.Database) map[string]time.Time {
	out := map[string]time.Time{}
	for _, c := range db.Status.Conditions {
		out[c.Type] = c.LastTransitionTime.UTC()
	}
	return out
}

// TestStatus: phase and conditions follow the StatefulSet's (simulated)
// status; a condition's LastTransitionTime moves only when its status does;
// observedGeneration follows the generation; the selector is the stable
// selector labels'; lastBackup is the CronJob's lastSuccessfulTime.
func TestStatus(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)
	db := createDatabase(ctx, g, newDatabase(ns, "pg", withReplicas(3)))
	key := client.ObjectKeyFromObject(db)
	const selector = "app.kubernetes.io/instance=pg,app.kubernetes.io/managed-by=database-operator,app.kubernetes.io/name=database"

	// The StatefulSet exists, no pod is ready: Creating. (Pending, no
	// StatefulSet, is never written: the same reconcile creates it.)
	creating := waitObserved(ctx, g, key, phaseIs(databasev1.PhaseCreating),
		conditionIs(databasev1.ConditionReady, metav1.ConditionFalse),
		conditionIs(databasev1.ConditionProgressing, metav1.ConditionTrue),
		conditionIs(databasev1.ConditionDegraded, metav1.ConditionFalse))
	g.Expect(creating.Status.Ready).To(BeFalse())
	g.Expect(creating.Status.Replicas).To(BeZero())
	g.Expect(creating.Status.Selector).To(Equal(selector))
	g.Expect(creating.Status.Conditions).NotTo(ContainElement(HaveField("Type", databasev1.ConditionBackupReady)))
	for _, c := range creating.Status.Conditions {
		g.Expect(c.ObservedGeneration).To(Equal(creating.Generation), "condition %s observedGeneration", c.Type)
	}
	// The scale subresource reads the selector from the status.
	scale := &autoscalingv1.Scale{}
	g.Expect(env.Client.SubResource("scale").Get(ctx, creating, scale)).To(Succeed())
	g.Expect(scale.Status.Selector).To(Equal(selector))
	creatingTimes := transitionTimes(creating)

	// Transition times have second precision: make a wrongly moved one show.
	time.Sleep(1100 * time.Millisecond)

	// One of three pods ready: PartiallyReady; Ready stays False, so its
	// transition time stays.
	setStatefulSetStatus(ctx, g, ns, "pg", 1)
	partial := waitObserved(ctx, g, key, phaseIs(databasev1.PhasePartiallyReady),
		conditionIs(databasev1.ConditionReady, metav1.ConditionFalse),
		conditionIs(databasev1.ConditionDegraded, metav1.ConditionFalse))
	g.Expect(partial.Status.Ready).To(BeFalse())
	g.Expect(partial.Status.Replicas).To(Equal(int32(1)))
	partialTimes := transitionTimes(partial)
	g.Expect(partialTimes[databasev1.ConditionReady]).To(Equal(creatingTimes[databasev1.ConditionReady]), "Ready stayed False")
	g.Expect(partialTimes[databasev1.ConditionDegraded]).To(Equal(creatingTimes[databasev1.ConditionDegraded]), "Degraded stayed False")
	g.Expect(partialTimes[databasev1.ConditionProgressing]).To(Equal(creatingTimes[databasev1.ConditionProgressing]), "Progressing stayed True")

	time.Sleep(1100 * time.Millisecond)

	// Every pod ready, the rollout settled: Ready.
	setStatefulSetStatus(ctx, g, ns, "pg", 3)
	ready := waitObserved(ctx, g, key, phaseIs(databasev1.PhaseReady),
		conditionIs(databasev1.ConditionReady, metav1.ConditionTrue),
		conditionIs(databasev1.ConditionProgressing, metav1.ConditionFalse),
		conditionIs(databasev1.ConditionDegraded, metav1.ConditionFalse))
	g.Expect(ready.Status.Ready).To(BeTrue())
	g.Expect(ready.Status.Replicas).To(Equal(int32(3)))
	readyTimes := transitionTimes(ready)
	g.Expect(readyTimes[databasev1.ConditionReady]).To(BeTemporally(">", partialTimes[databasev1.ConditionReady]), "Ready became True")
	g.Expect(readyTimes[databasev1.ConditionProgressing]).To(BeTemporally(">", partialTimes[databasev1.ConditionProgressing]), "Progressing became False")
	g.Expect(readyTimes[databasev1.ConditionDegraded]).To(Equal(creatingTimes[databasev1.ConditionDegraded]), "Degraded stayed False")

	time.Sleep(1100 * time.Millisecond)

	// A label change reconciles again; nothing changed, so nothing moves.
	before := reconciles(g)
	updateDatabase(ctx, g, key, func(db *databasev1.Database) { db.Labels = map[string]string{"team": "a"} })
	g.Eventually(func(g Gomega) float64 { return reconciles(g) }).Should(BeNumerically(">", before))
	time.Sleep(time.Second)
	relabelled := waitObserved(ctx, g, key, phaseIs(databasev1.PhaseReady))
	g.Expect(transitionTimes(relabelled)).To(Equal(readyTimes), "transition times moved on a label change")

	// A spec change that leaves the StatefulSet as it is: the status
	// describes the new generation, and no condition moves.
	updated := updateDatabase(ctx, g, key, func(db *databasev1.Database) { db.Spec.Backup.Retention = "14d" })
	g.Expect(updated.Generation).To(BeNumerically(">", ready.Generation))
	observed := waitObserved(ctx, g, key, phaseIs(databasev1.PhaseReady))
	g.Expect(observed.Status.ObservedGeneration).To(Equal(updated.Generation))
	for _, c := range observed.Status.Conditions {
		g.Expect(c.ObservedGeneration).To(Equal(updated.Generation), "condition %s observedGeneration", c.Type)
	}
	g.Expect(transitionTimes(observed)).To(Equal(readyTimes), "transition times moved though no condition's status did")

	// Backups: BackupReady is Unknown until the CronJob reports a success,
	// then True with lastBackup from the CronJob.
	updateDatabase(ctx, g, key, withBackup(true))
	waitObserved(ctx, g, key, conditionIs(databasev1.ConditionBackupReady, metav1.ConditionUnknown))
	get(ctx, g, ns, "pg-backup", &batchv1.CronJob{})
	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	setLastSuccessfulBackup(ctx, g, ns, "pg-backup", at)
	backedUp := waitObserved(ctx, g, key, conditionIs(databasev1.ConditionBackupReady, metav1.ConditionTrue),
		func(g Gomega, db *databasev1.Database) {
			g.Expect(db.Status.LastBackup).NotTo(BeNil(), "status.lastBackup")
			g.Expect(db.Status.LastBackup.Time).To(BeTemporally("==", at))
		})
	g.Expect(backedUp.Status.Phase).To(Equal(databasev1.PhaseReady))

	// Backup disabled: BackupReady goes.
	updateDatabase(ctx, g, key, withBackup(false))
	waitObserved(ctx, g, key, func(g Gomega, db *databasev1.Database) {
		g.Expect(db.Status.Conditions).NotTo(ContainElement(HaveField("Type", databasev1.ConditionBackupReady)))
	})
}

// TestSteadyState: once converged, reconciling an unchanged Database writes
// nothing: no resourceVersion of the Database or any child moves.
func TestSteadyState(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)
	db := readyDatabase(ctx, g, newDatabase(ns, "pg", withReplicas(3), withBackup(true)))
	key := client.ObjectKeyFromObject(db)
	get(ctx, g, ns, "pg-backup", &batchv1.CronJob{})
	setLastSuccessfulBackup(ctx, g, ns, "pg-backup", time.Now().Add(-time.Hour))
	waitObserved(ctx, g, key, phaseIs(databasev1.PhaseReady),
		conditionIs(databasev1.ConditionBackupReady, metav1.ConditionTrue))

	children := []struct {
		name string
		obj  func() client.Object
	}{
		{"pg", func() client.Object { return &appsv1.StatefulSet{} }},
		{"pg", func() client.Object { return &corev1.Service{} }},
		{"pg-headless", func() client.Object { return &corev1.Service{} }},
		{"pg-ro", func() client.Object { return &corev1.Service{} }},
		{"pg-config", func() client.Object { return &corev1.ConfigMap{} }},
		{"pg-credentials", func() client.Object { return &corev1.Secret{} }},
		{"pg", func() client.Object { return &policyv1.PodDisruptionBudget{} }},
		{"pg-backup", func() client.Object { return &batchv1.CronJob{} }},
		{"pg-backup", func() client.Object { return &corev1.PersistentVolumeClaim{} }},
	}
	versions := func(g Gomega) map[string]string {
		out := map[string]string{}
		for _, c := range children {
			obj := c.obj()
			g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: c.name}, obj)).To(Succeed())
			out[fmt.Sprintf("%T %s", obj, c.name)] = obj.GetResourceVersion()
		}
		return out
	}
	// Let any reconcile still in flight finish before taking the snapshot.
	time.Sleep(time.Second)
	childVersions := versions(g)

	for i := range 3 {
		touched := touchAnnotation(ctx, g, key, fmt.Sprint(i))
		time.Sleep(settle)
		now := &databasev1.Database{}
		g.Expect(env.Client.Get(ctx, key, now)).To(Succeed())
		g.Expect(now.ResourceVersion).To(Equal(touched.ResourceVersion),
			"the Database was written after an annotation change (status %+v)", now.Status)
		g.Expect(versions(g)).To(Equal(childVersions), "a child was written in the steady state")
	}
}

// TestNoServiceMonitorAPI: without the monitoring.coreos.com API, a Database
// with metrics converges anyway, and its Ready condition says the
// ServiceMonitor was not created.
func TestNoServiceMonitorAPI(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)
	db := readyDatabase(ctx, g, newDatabase(ns, "pg", func(db *databasev1.Database) {
		db.Spec.Monitoring = &databasev1.MonitoringSpec{Enabled: true, Metrics: true}
	}))
	key := client.ObjectKeyFromObject(db)

	sts := get(ctx, g, ns, "pg", &appsv1.StatefulSet{})
	g.Expect(sts.Spec.Template.Spec.Containers).To(ContainElement(HaveField("Name", "exporter")))
	svc := get(ctx, g, ns, "pg-headless", &corev1.Service{})
	g.Expect(svc.Spec.Ports).To(ContainElement(HaveField("Name", "metrics")))

	readyCond := condition(g, db, databasev1.ConditionReady)
	g.Expect(readyCond.Status).To(Equal(metav1.ConditionTrue))
	g.Expect(readyCond.Message).To(ContainSubstring("ServiceMonitor"))
	g.Expect(readyCond.Message).To(ContainSubstring("not"))
	g.Expect(condition(g, db, databasev1.ConditionDegraded).Status).To(Equal(metav1.ConditionFalse))

	// Not a hot loop: the Database stays as it is.
	rv := db.ResourceVersion
	g.Consistently(func(g Gomega) string {
		now := &databasev1.Database{}
		g.Expect(env.Client.Get(context.Background(), key, now)).To(Succeed())
		return now.ResourceVersion
	}).WithTimeout(2 * time.Second).Should(Equal(rv))
}
