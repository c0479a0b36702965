package reconcile_test

import (
	"testing"

	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/reconcile"
	"github.com/example/database-operator/render"
)

// TestNetworkPolicy: a production Database gets its NetworkPolicy without
// asking, the API server accepts what render builds, turning it off prunes
// it, and turning it on again in another environment brings it back.
func TestNetworkPolicy(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)

	db := readyDatabase(ctx, g, newDatabase(ns, "pg", withReplicas(2), func(db *databasev1.Database) {
		db.Spec.Environment = databasev1.Production
		db.Spec.Monitoring = &databasev1.MonitoringSpec{Enabled: true, Metrics: true}
	}))
	key := client.ObjectKeyFromObject(db)
	name := render.NetworkPolicyName(db.Name)
	g.Expect(db.Spec.NetworkPolicy).To(BeNil(), "the default is never written into the spec")

	np := get(ctx, g, ns, name, &networkingv1.NetworkPolicy{})
	controllerRefTo(g, np, db)
	g.Expect(np.Labels).To(HaveKeyWithValue(render.LabelManagedBy, reconcile.FieldManager))
	g.Expect(np.Spec.PodSelector.MatchLabels).To(Equal(render.SelectorLabels(db.Name)))
	g.Expect(np.Spec.PolicyTypes).To(Equal([]networkingv1.PolicyType{networkingv1.PolicyTypeIngress}))
	g.Expect(np.Spec.Ingress).To(HaveLen(2))
	g.Expect(np.Spec.Ingress[0].Ports).To(ConsistOf(HaveField("Port", ptr.To(intstr.FromInt32(5432)))))
	g.Expect(np.Spec.Ingress[0].From).To(HaveLen(2), "own pods and backup Jobs")
	g.Expect(np.Spec.Ingress[1].Ports).To(ConsistOf(HaveField("Port", ptr.To(intstr.FromInt32(9187)))))
	g.Expect(np.Spec.Ingress[1].From).To(ConsistOf(HaveField("NamespaceSelector.MatchLabels",
		map[string]string{"kubernetes.io/metadata.name": "monitoring"})))

	// Clients listed in allowFrom are added to the database port.
	updateDatabase(ctx, g, key, func(db *databasev1.Database) {
		db.Spec.NetworkPolicy = &databasev1.NetworkPolicySpec{AllowFrom: []databasev1.NetworkPeer{{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "shop"}},
			PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}},
		}}, MonitoringNamespace: "observability"}
	})
	g.Eventually(func(g Gomega) {
		np := &networkingv1.NetworkPolicy{}
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, np)).To(Succeed())
		g.Expect(np.Spec.Ingress).To(HaveLen(2))
		g.Expect(np.Spec.Ingress[0].From).To(HaveLen(3))
		g.Expect(np.Spec.Ingress[0].From[0].PodSelector.MatchLabels).To(Equal(map[string]string{"app": "api"}))
		g.Expect(np.Spec.Ingress[0].From[0].NamespaceSelector.MatchLabels).To(Equal(map[string]string{"team": "shop"}))
		g.Expect(np.Spec.Ingress[1].From[0].NamespaceSelector.MatchLabels).To(Equal(map[string]string{"kubernetes.io/metadata.name": "observability"}))
	}).Should(Succeed())

	// Explicitly off, even in production: pruned.
	updateDatabase(ctx, g, key, func(db *databasev1.Database) { db.Spec.NetworkPolicy.Enabled = ptr.To(false) })
	gone(ctx, g, ns, name, &networkingv1.NetworkPolicy{})
	waitObserved(ctx, g, key, phaseIs(databasev1.PhaseReady))

	// A development Database has none unless asked.
	dev := readyDatabase(ctx, g, newDatabase(ns, "dev"))
	absent(ctx, g, ns, render.NetworkPolicyName(dev.Name), &networkingv1.NetworkPolicy{})
	updateDatabase(ctx, g, client.ObjectKeyFromObject(dev), func(db *databasev1.Database) {
		db.Spec.NetworkPolicy = &databasev1.NetworkPolicySpec{Enabled: ptr.To(true)}
	})
	devNP := get(ctx, g, ns, render.NetworkPolicyName(dev.Name), &networkingv1.NetworkPolicy{})
	g.Expect(devNP.Spec.Ingress).To(HaveLen(1), "no metrics port without metrics")
}
