package reconcile_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/reconcile"
	"github.com/example/database-operator/render"
)

// prometheusRuleCRDFile is a minimal PrometheusRule CRD (monitoring.coreos.com/v1,
// namespaced, spec kept as given).
var prometheusRuleCRDFile = filepath.Join("testdata", "prometheusrule-crd.yaml")

// TestPrometheusRule: without the PrometheusRule kind the operator applies
// no rule and says so in the Ready condition. Once the CRD is installed and
// the operator restarted (as the binary would find it by discovery), a
// Database with metrics gets a PrometheusRule <db> controlled by it, with the
// alerts render computes for its spec; a deleted rule comes back, a spec
// change (backups on) reaches the rule, and turning metrics off prunes it.
//
// Only the PrometheusRule CRD is installed: the ServiceMonitor kind stays
// absent, which also proves the two kinds are detected separately. Cleanup
// restores the operator and removes the CRD, so other tests see no
// monitoring.coreos.com API.
func TestPrometheusRule(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)

	// No CRD: nothing is served, the Database still becomes Ready, and its
	// Ready condition says which monitoring objects were not created.
	served, err := reconcile.MonitoringServed(env.Config)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(served).To(Equal(reconcile.MonitoringAPIs{}))
	db := readyDatabase(ctx, g, newDatabase(ns, "pg", withReplicas(2), func(db *databasev1.Database) {
		db.Spec.Monitoring = &databasev1.MonitoringSpec{Enabled: true, Metrics: true}
	}))
	key := client.ObjectKeyFromObject(db)
	before := waitObserved(ctx, g, key, conditionIs(databasev1.ConditionDegraded, metav1.ConditionFalse))
	g.Expect(condition(g, before, databasev1.ConditionReady).Message).To(
		ContainSubstring("no ServiceMonitor or PrometheusRule created: the monitoring.coreos.com API is not installed"))

	// The Prometheus Operator's PrometheusRule CRD gets installed, and the
	// operator restarted: it finds that kind served, and only that kind.
	installMonitoringCRD(t, g, prometheusRuleCRDFile, render.PrometheusRuleGVK)
	served, err = reconcile.MonitoringServed(env.Config)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(served).To(Equal(reconcile.MonitoringAPIs{PrometheusRules: true}))
	restartOperatorMonitoring(t, served)

	name := render.PrometheusRuleName(db.Name)
	pr := get(ctx, g, ns, name, newPrometheusRule())
	controllerRefTo(g, pr, db)
	g.Expect(pr.GetLabels()).To(HaveKeyWithValue(render.LabelManagedBy, reconcile.FieldManager))
	g.Expect(pr.GetLabels()).To(HaveKeyWithValue(render.LabelInstance, db.Name))
	g.Expect(managedBy(pr, reconcile.FieldManager)).To(ConsistOf(And(
		HaveField("Operation", metav1.ManagedFieldsOperationApply),
		HaveField("Subresource", ""),
	)), "managedFields of %s", reconcile.FieldManager)
	g.Expect(ruleAlerts(g, pr)).To(Equal([]string{"DatabaseInstanceDown", "DatabasePodsNotReady", "DatabasePodsNotReady", "DatabaseReplicationNotStreaming",
		"DatabaseReplicationLagHigh", "DatabaseVolumeNearlyFull", "DatabaseVolumeNearlyFull", "DatabaseConnectionsNearLimit"}))
	expectRenderedRules(ctx, g, key, pr)

	// Only the ServiceMonitor is still missing, and the message says so.
	after := waitObserved(ctx, g, key, func(g Gomega, db *databasev1.Database) {
		g.Expect(condition(g, db, databasev1.ConditionReady).Message).NotTo(ContainSubstring("PrometheusRule"))
	})
	g.Expect(condition(g, after, databasev1.ConditionReady).Message).To(ContainSubstring("no ServiceMonitor created"))

	// Drift: someone deletes the rule; the operator, watching it, re-creates it.
	deleted := get(ctx, g, ns, name, newPrometheusRule())
	g.Expect(env.Client.Delete(ctx, deleted)).To(Succeed())
	g.Eventually(func(g Gomega) {
		pr := newPrometheusRule()
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, pr)).To(Succeed())
		g.Expect(pr.GetUID()).NotTo(Equal(deleted.GetUID()), "the deleted PrometheusRule is still there")
		controllerRefTo(g, pr, db)
	}).Should(Succeed())

	// Backups on: the backup alert joins, with the schedule's threshold.
	updateDatabase(ctx, g, key, withBackup(true))
	g.Eventually(func(g Gomega) {
		pr := newPrometheusRule()
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, pr)).To(Succeed())
		g.Expect(ruleAlerts(g, pr)).To(ContainElement("DatabaseBackupTooOld"))
	}).Should(Succeed())
	expectRenderedRules(ctx, g, key, get(ctx, g, ns, name, newPrometheusRule()))

	// Metrics off: the rule is pruned.
	updateDatabase(ctx, g, key, func(db *databasev1.Database) { db.Spec.Monitoring.Metrics = false })
	gone(ctx, g, ns, name, newPrometheusRule())
	g.Consistently(func() error {
		return env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, newPrometheusRule())
	}).Should(Satisfy(apierrors.IsNotFound), "the pruned PrometheusRule came back")
}

// expectRenderedRules checks that the applied rule's spec is what render
// returns for the Database as it is now.
func expectRenderedRules(ctx context.Context, g *WithT, key client.ObjectKey, pr *unstructured.Unstructured) {
	g.THelper()
	db := &databasev1.Database{}
	g.Expect(env.Client.Get(ctx, key, db)).To(Succeed())
	rendered, err := render.Render(db, render.DefaultOptions())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rendered.PrometheusRule).NotTo(BeNil())
	// Compare as JSON: the server's answer and render's map differ only in
	// Go types (int64 against float64), not in content.
	want, err := json.Marshal(rendered.PrometheusRule.Object["spec"])
	g.Expect(err).NotTo(HaveOccurred())
	got, err := json.Marshal(pr.Object["spec"])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(got)).To(MatchJSON(string(want)))
}

// newPrometheusRule returns an empty PrometheusRule to read into.
func newPrometheusRule() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(render.PrometheusRuleGVK)
	return u
}

// ruleAlerts returns the alert names of a PrometheusRule, in order.
func ruleAlerts(g Gomega, pr *unstructured.Unstructured) []string {
	groups, found, err := unstructured.NestedSlice(pr.Object, "spec", "groups")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(found).To(BeTrue(), "spec.groups: %v", pr.Object["spec"])
	var out []string
	for _, grp := range groups {
		rules, _, err := unstructured.NestedSlice(grp.(map[string]any), "rules")
		g.Expect(err).NotTo(HaveOccurred())
		for _, r := range rules {
			out = append(out, r.(map[string]any)["alert"].(string))
		}
	}
	return out
}
