package e2e

import (
	"encoding/json"
	"os"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/example/database-operator/render"
)

// TestPostgreSQLProduction applies the production PostgreSQL sample
// (replicas 3, no resources): the production profile is applied when the
// StatefulSet is rendered, the stored spec stays exactly what the user
// wrote, the PodDisruptionBudget protects the three pods, and a
// NetworkPolicy isolates them.
func TestPostgreSQLProduction(t *testing.T) {
	useSharedOperator(t)
	g := NewWithT(t)
	ns := newNamespace(t)
	const name = "orders"

	raw, err := os.ReadFile(sample("postgresql-production.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var manifest map[string]any
	g.Expect(yaml.Unmarshal(raw, &manifest)).To(Succeed())
	g.Expect(manifest["spec"]).NotTo(HaveKey("resources"), "the sample relies on the production profile")

	mustKubectl(t, "", "-n", ns, "apply", "-f", sample("postgresql-production.yaml"))
	db := waitReady(t, ns, name, 3)
	g.Eventually(func(g Gomega) { podsReady(g, ns, name, 3) }).WithTimeout(readyTimeout).WithPolling(poll).Should(Succeed())

	// Rendered with the production profile.
	sts := &appsv1.StatefulSet{}
	g.Expect(get(ns, render.StatefulSetName(name), sts)).To(Succeed())
	expectControlledBy(g, sts, db)
	g.Expect(*sts.Spec.Replicas).To(BeEquivalentTo(3))
	c := container(sts.Spec.Template.Spec, "database")
	g.Expect(c).NotTo(BeNil())
	g.Expect(c.Image).To(Equal("postgres:16"))
	expectQuantity(g, "limits.cpu", c.Resources.Limits[corev1.ResourceCPU], "2")
	expectQuantity(g, "limits.memory", c.Resources.Limits[corev1.ResourceMemory], "4Gi")
	expectQuantity(g, "requests.cpu", c.Resources.Requests[corev1.ResourceCPU], "500m")
	expectQuantity(g, "requests.memory", c.Resources.Requests[corev1.ResourceMemory], "1Gi")
	g.Expect(container(sts.Spec.Template.Spec, "exporter")).NotTo(BeNil(), "monitoring.metrics adds the exporter")
	g.Expect(sts.Labels).To(HaveKeyWithValue(render.LabelEnvironment, "production"))

	// The spec is not mutated: no resources, exactly the sample's spec, the
	// first generation, and the operator owns no field of it.
	g.Expect(db.Spec.Resources).To(BeNil(), "spec.resources must stay absent; the profile is applied at render time")
	g.Expect(db.Generation).To(BeEquivalentTo(1), "nothing may write the Database's spec")
	stored := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "database.example.com/v1", "kind": "Database"}}
	g.Expect(get(ns, name, stored)).To(Succeed())
	storedSpec, err := json.Marshal(stored.Object["spec"])
	g.Expect(err).NotTo(HaveOccurred())
	sampleSpec, err := json.Marshal(manifest["spec"])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(storedSpec).To(MatchJSON(sampleSpec), "the stored spec is the sample's")
	for _, mf := range stored.GetManagedFields() {
		if mf.Manager == "database-operator" {
			g.Expect(mf.Subresource).To(Equal("status"), "the operator may only write the status: %+v", mf)
		}
	}

	// The PodDisruptionBudget, the read Service and the backup.
	pdb := &policyv1.PodDisruptionBudget{}
	g.Expect(get(ns, render.PodDisruptionBudgetName(name), pdb)).To(Succeed())
	expectControlledBy(g, pdb, db)
	g.Expect(pdb.Spec.MaxUnavailable).NotTo(BeNil())
	g.Expect(pdb.Spec.MaxUnavailable.IntValue()).To(Equal(1))
	g.Expect(pdb.Spec.Selector).To(Equal(&metav1.LabelSelector{MatchLabels: render.SelectorLabels(name)}))
	g.Eventually(func(g Gomega) {
		g.Expect(get(ns, render.PodDisruptionBudgetName(name), pdb)).To(Succeed())
		g.Expect(pdb.Status.CurrentHealthy).To(BeEquivalentTo(3), "the disruption controller counts the healthy pods")
	}).WithTimeout(appearTimeout).WithPolling(poll).Should(Succeed())
	ro := &corev1.Service{}
	g.Expect(get(ns, render.ReadServiceName(name), ro)).To(Succeed())
	expectControlledBy(g, ro, db)
	// Production isolates the database port by default.
	np := &networkingv1.NetworkPolicy{}
	g.Expect(get(ns, render.NetworkPolicyName(name), np)).To(Succeed())
	expectControlledBy(g, np, db)
	g.Expect(np.Spec.PodSelector).To(Equal(metav1.LabelSelector{MatchLabels: render.SelectorLabels(name)}))
	cronJob := &batchv1.CronJob{}
	g.Expect(get(ns, render.BackupName(name), cronJob)).To(Succeed())
	expectControlledBy(g, cronJob, db)
	g.Expect(cronJob.Spec.Schedule).To(Equal("0 2 * * *"))
}

// expectQuantity compares a quantity with its expected string form by value.
func expectQuantity(g Gomega, what string, got resource.Quantity, want string) {
	g.ExpectWithOffset(1, got.Cmp(resource.MustParse(want))).To(BeZero(), "%s is %s, want %s", what, got.String(), want)
}
