package reconcile_test

import (
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/reconcile"
	"github.com/example/database-operator/render"
)

// serviceMonitorCRDFile is a minimal ServiceMonitor CRD (monitoring.coreos.com/v1,
// namespaced, spec kept as given).
var serviceMonitorCRDFile = filepath.Join("testdata", "servicemonitor-crd.yaml")

// TestServiceMonitor: with the monitoring.coreos.com API installed and the
// operator started knowing it (as the binary does from discovery), a
// Database with metrics gets a ServiceMonitor that selects its headless
// Service and scrapes the exporter's "metrics" port, owned and applied by the
// operator; drift is taken back, and turning metrics off prunes it.
//
// The test installs the CRD into the shared control plane and restarts the
// shared operator with ServiceMonitors on; its cleanup restores the operator
// as it was and removes the CRD, so the other tests see no ServiceMonitor API.
func TestServiceMonitor(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)

	// The Prometheus Operator gets installed ...
	installMonitoringCRD(t, g, serviceMonitorCRDFile, render.ServiceMonitorGVK)
	// ... and the operator restarted: it finds the kind served.
	served, err := reconcile.KindServed(env.Config, render.ServiceMonitorGVK)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(served).To(BeTrue(), "ServiceMonitor served after installing the CRD")
	restartOperatorMonitoring(t, reconcile.MonitoringAPIs{ServiceMonitors: served})

	db := readyDatabase(ctx, g, newDatabase(ns, "pg", func(db *databasev1.Database) {
		db.Spec.Monitoring = &databasev1.MonitoringSpec{Enabled: true, Metrics: true}
	}))
	key := client.ObjectKeyFromObject(db)
	smName := render.ServiceMonitorName(db.Name)

	// The ServiceMonitor: controlled by the Database, selecting exactly the
	// headless Service, one endpoint on its "metrics" port.
	sm := get(ctx, g, ns, smName, newServiceMonitor())
	controllerRefTo(g, sm, db)
	g.Expect(sm.GetLabels()).To(HaveKeyWithValue(render.LabelManagedBy, reconcile.FieldManager))
	g.Expect(sm.GetLabels()).To(HaveKeyWithValue(render.LabelInstance, db.Name))

	matchLabels, found, err := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(found).To(BeTrue(), "spec.selector.matchLabels: %v", sm.Object["spec"])
	g.Expect(matchLabels).To(HaveKeyWithValue(render.LabelServiceRole, "headless"))
	var services corev1.ServiceList
	g.Expect(env.Client.List(ctx, &services, client.InNamespace(ns), client.MatchingLabels(matchLabels))).To(Succeed())
	g.Expect(services.Items).To(ConsistOf(HaveField("ObjectMeta.Name", render.HeadlessServiceName(db.Name))),
		"spec.selector.matchLabels %v should select the headless Service only", matchLabels)
	headless := services.Items[0]
	g.Expect(headless.Spec.ClusterIP).To(Equal(corev1.ClusterIPNone))
	g.Expect(headless.Spec.Ports).To(ContainElement(HaveField("Name", "metrics")))

	endpoints := serviceMonitorEndpoints(g, sm)
	g.Expect(endpoints).To(HaveLen(1), "spec.endpoints")
	g.Expect(endpoints[0]).To(HaveKeyWithValue("port", "metrics"))
	interval, ok := endpoints[0]["interval"].(string)
	g.Expect(ok).To(BeTrue(), "spec.endpoints[0].interval: %v", endpoints[0])
	g.Expect(interval).NotTo(BeEmpty())

	// Applied, not created or updated, under the operator's field manager.
	g.Expect(managedBy(sm, reconcile.FieldManager)).To(ConsistOf(And(
		HaveField("Operation", metav1.ManagedFieldsOperationApply),
		HaveField("Subresource", ""),
	)), "managedFields of %s", reconcile.FieldManager)
	for _, f := range []string{`"f:selector"`, `"f:endpoints"`, `"f:ownerReferences"`} {
		g.Expect(ownsField(sm, reconcile.FieldManager, f)).To(BeTrue(), "%s owns %s", reconcile.FieldManager, f)
	}

	// With the API installed, the Ready condition does not say otherwise.
	ready := waitObserved(ctx, g, key, conditionIs(databasev1.ConditionDegraded, metav1.ConditionFalse))
	noMissingAPIMessage(g, ready)

	// Drift: another manager changes the scrape interval; the operator takes
	// it back, and the field with it.
	const drifter = "kubectl-edit"
	drifted := ""
	g.Eventually(func(g Gomega) {
		sm := newServiceMonitor()
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: smName}, sm)).To(Succeed())
		eps, _, err := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(eps).To(HaveLen(1))
		eps[0].(map[string]any)["interval"] = "5s"
		g.Expect(unstructured.SetNestedSlice(sm.Object, eps, "spec", "endpoints")).To(Succeed())
		g.Expect(env.Client.Update(ctx, sm, client.FieldOwner(drifter))).To(Succeed())
		g.Expect(serviceMonitorEndpoints(g, sm)[0]).To(HaveKeyWithValue("interval", "5s"), "the server's answer")
		g.Expect(ownsField(sm, drifter, `"f:endpoints"`)).To(BeTrue(), "%s owns spec.endpoints after its update", drifter)
		drifted = sm.GetResourceVersion()
	}).Should(Succeed())
	g.Eventually(func(g Gomega) {
		sm := newServiceMonitor()
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: smName}, sm)).To(Succeed())
		g.Expect(sm.GetResourceVersion()).NotTo(Equal(drifted), "the drifted ServiceMonitor was not written again")
		g.Expect(serviceMonitorEndpoints(g, sm)).To(ConsistOf(And(
			HaveKeyWithValue("port", "metrics"),
			HaveKeyWithValue("interval", interval),
		)), "spec.endpoints not restored")
		g.Expect(ownsField(sm, reconcile.FieldManager, `"f:endpoints"`)).To(BeTrue(), "the operator owns spec.endpoints again")
		g.Expect(ownsField(sm, drifter, `"f:endpoints"`)).To(BeFalse(), "%s still owns spec.endpoints", drifter)
	}).Should(Succeed())

	// Drift: someone deletes it; the operator re-creates it.
	deleted := get(ctx, g, ns, smName, newServiceMonitor())
	g.Expect(env.Client.Delete(ctx, deleted)).To(Succeed())
	g.Eventually(func(g Gomega) {
		sm := newServiceMonitor()
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: smName}, sm)).To(Succeed())
		g.Expect(sm.GetUID()).NotTo(Equal(deleted.GetUID()), "the deleted ServiceMonitor is still there")
		controllerRefTo(g, sm, db)
	}).Should(Succeed())

	// Metrics off: the ServiceMonitor is pruned.
	updateDatabase(ctx, g, key, func(db *databasev1.Database) { db.Spec.Monitoring.Metrics = false })
	gone(ctx, g, ns, smName, newServiceMonitor())
	// The exporter leaves the pods: play the StatefulSet controller rolling
	// them, and the Database is Ready again, still without a word about a
	// missing monitoring API.
	g.Eventually(func(g Gomega) {
		sts := &appsv1.StatefulSet{}
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: render.StatefulSetName(db.Name)}, sts)).To(Succeed())
		g.Expect(sts.Spec.Template.Spec.Containers).NotTo(ContainElement(HaveField("Name", "exporter")))
	}).Should(Succeed())
	setStatefulSetStatus(ctx, g, ns, render.StatefulSetName(db.Name), 1)
	after := waitObserved(ctx, g, key, phaseIs(databasev1.PhaseReady),
		conditionIs(databasev1.ConditionReady, metav1.ConditionTrue),
		conditionIs(databasev1.ConditionDegraded, metav1.ConditionFalse))
	noMissingAPIMessage(g, after)
	// With metrics off nothing monitoring-related is wanted, so nothing is
	// reported missing either.
	g.Expect(condition(g, after, databasev1.ConditionReady).Message).NotTo(ContainSubstring("monitoring.coreos.com"))
	absent(ctx, g, ns, smName, newServiceMonitor())
}

// newServiceMonitor returns an empty ServiceMonitor to read into.
func newServiceMonitor() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(render.ServiceMonitorGVK)
	return u
}

// serviceMonitorEndpoints returns spec.endpoints as maps.
func serviceMonitorEndpoints(g Gomega, sm *unstructured.Unstructured) []map[string]any {
	raw, found, err := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(found).To(BeTrue(), "spec.endpoints: %v", sm.Object["spec"])
	out := make([]map[string]any, 0, len(raw))
	for _, e := range raw {
		m, ok := e.(map[string]any)
		g.Expect(ok).To(BeTrue(), "spec.endpoints item %v", e)
		out = append(out, m)
	}
	return out
}

// noMissingAPIMessage checks that the Ready condition does not report the
// ServiceMonitor API as missing. (It may report the PrometheusRule API as
// missing: this test installs only the ServiceMonitor CRD.)
func noMissingAPIMessage(g Gomega, db *databasev1.Database) {
	c := condition(g, db, databasev1.ConditionReady)
	g.Expect(c.Message).NotTo(ContainSubstring("ServiceMonitor"), "Ready: %+v", c)
}
