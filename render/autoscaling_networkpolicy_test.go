package render_test

import (
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

// TestHorizontalPodAutoscaler: spec.autoscaling renders an autoscaler <db>
// that scales the Database itself, on the database container's utilisation.
func TestHorizontalPodAutoscaler(t *testing.T) {
	for _, typ := range []databasev1.DatabaseType{databasev1.PostgreSQL, databasev1.MySQL} {
		t.Run(string(typ), func(t *testing.T) {
			g := NewWithT(t)
			db := newDatabase(typ, facts[typ].version, environment(databasev1.Production), replicas(2),
				autoscaling(2, 8, ptr(int32(65)), ptr(int32(75)), ptr(int32(900))))
			c, err := render.Render(db, render.DefaultOptions())
			g.Expect(err).NotTo(HaveOccurred())
			hpa := typed[autoscalingv2.HorizontalPodAutoscaler](t, c.HorizontalPodAutoscaler)
			g.Expect(hpa.Kind).To(Equal("HorizontalPodAutoscaler"))
			g.Expect(hpa.APIVersion).To(Equal("autoscaling/v2"))
			g.Expect(hpa.Name).To(Equal("orders"))
			g.Expect(hpa.Namespace).To(Equal("shop"))
			expectControlledBy(g, hpa.ObjectMeta, db)
			for k, v := range render.SelectorLabels(db.Name) {
				g.Expect(hpa.Labels).To(HaveKeyWithValue(k, v))
			}
			g.Expect(hpa.Labels).To(HaveKeyWithValue(render.LabelType, string(typ)))
			g.Expect(hpa.Spec.ScaleTargetRef).To(Equal(autoscalingv2.CrossVersionObjectReference{
				APIVersion: "database.example.com/v1", Kind: "Database", Name: "orders",
			}), "the autoscaler scales the Database, never the StatefulSet")
			g.Expect(hpa.Spec.MinReplicas).To(Equal(ptr(int32(2))))
			g.Expect(hpa.Spec.MaxReplicas).To(Equal(int32(8)))
			target := func(r corev1.ResourceName, percent int32) autoscalingv2.MetricSpec {
				return autoscalingv2.MetricSpec{
					Type: autoscalingv2.ContainerResourceMetricSourceType,
					ContainerResource: &autoscalingv2.ContainerResourceMetricSource{
						Name: r, Container: "database",
						Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr(percent)},
					},
				}
			}
			g.Expect(hpa.Spec.Metrics).To(Equal([]autoscalingv2.MetricSpec{target(corev1.ResourceCPU, 65), target(corev1.ResourceMemory, 75)}))
			g.Expect(hpa.Spec.Behavior).To(Equal(&autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr(int32(900))},
			}))
			// The autoscaler's container is the StatefulSet's engine container.
			g.Expect(c.StatefulSet.Spec.Template.Spec.Containers[0].Name).To(Equal(ptr("database")))
		})
	}

	t.Run("one target, defaults", func(t *testing.T) {
		g := NewWithT(t)
		db := newDatabase(databasev1.MySQL, "8.0", func(db *databasev1.Database) {
			db.Spec.Autoscaling = &databasev1.AutoscalingSpec{MaxReplicas: 3, TargetMemoryUtilizationPercentage: ptr(int32(80))}
		})
		c, err := render.Render(db, render.DefaultOptions())
		g.Expect(err).NotTo(HaveOccurred())
		hpa := typed[autoscalingv2.HorizontalPodAutoscaler](t, c.HorizontalPodAutoscaler)
		g.Expect(hpa.Spec.MinReplicas).To(Equal(ptr(int32(1))))
		g.Expect(hpa.Spec.MaxReplicas).To(Equal(int32(3)))
		g.Expect(hpa.Spec.Metrics).To(ConsistOf(HaveField("ContainerResource.Name", corev1.ResourceMemory)))
		g.Expect(hpa.Spec.Behavior).To(BeNil(), "no behavior: the autoscaler's own defaults")
	})

	t.Run("absent without autoscaling", func(t *testing.T) {
		g := NewWithT(t)
		for _, db := range []*databasev1.Database{
			newDatabase(databasev1.PostgreSQL, "16"),
			newDatabase(databasev1.MySQL, "8.0", environment(databasev1.Production), replicas(3), backup(true), metrics(true)),
		} {
			c, err := render.Render(db, render.DefaultOptions())
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(c.HorizontalPodAutoscaler).To(BeNil())
		}
	})

	t.Run("the StatefulSet follows spec.replicas", func(t *testing.T) {
		g := NewWithT(t)
		// What the autoscaler wrote through /scale is spec.replicas.
		db := newDatabase(databasev1.PostgreSQL, "16", replicas(5), autoscaling(1, 6, ptr(int32(70)), nil, nil))
		c, err := render.Render(db, render.DefaultOptions())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(c.StatefulSet.Spec.Replicas).To(Equal(ptr(int32(5))))
		g.Expect(c.ReadService).NotTo(BeNil())
		g.Expect(c.PodDisruptionBudget).NotTo(BeNil())
	})
}

// TestNetworkPolicy checks the exact peers and ports of the NetworkPolicy for
// both engines, with metrics on and off, and when it is rendered.
func TestNetworkPolicy(t *testing.T) {
	ports := map[databasev1.DatabaseType][2]int{
		databasev1.PostgreSQL: {5432, 9187},
		databasev1.MySQL:      {3306, 9104},
	}
	selector := func(m map[string]string) *metav1.LabelSelector { return &metav1.LabelSelector{MatchLabels: m} }
	ownPods := networkingv1.NetworkPolicyPeer{PodSelector: selector(map[string]string{
		"app.kubernetes.io/name": "database", "app.kubernetes.io/instance": "orders", "app.kubernetes.io/managed-by": "database-operator",
	})}
	backupPods := networkingv1.NetworkPolicyPeer{PodSelector: selector(map[string]string{
		"app.kubernetes.io/name": "database-backup", "app.kubernetes.io/instance": "orders", "app.kubernetes.io/managed-by": "database-operator",
		"app.kubernetes.io/component": "backup",
	})}
	tcp := corev1.ProtocolTCP
	port := func(n int) []networkingv1.NetworkPolicyPort {
		p := intstr.FromInt(n)
		return []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &p}}
	}

	for _, typ := range []databasev1.DatabaseType{databasev1.PostgreSQL, databasev1.MySQL} {
		for _, withMetrics := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/metrics=%t", typ, withMetrics), func(t *testing.T) {
				g := NewWithT(t)
				db := newDatabase(typ, facts[typ].version, replicas(3), backup(true), metrics(withMetrics),
					networkPolicy(ptr(true), "", appPeer("shop-api"), teamNamespacePeer("analytics"),
						databasev1.NetworkPeer{
							NamespaceSelector: selector(map[string]string{"kubernetes.io/metadata.name": "reporting"}),
							PodSelector:       selector(map[string]string{"app": "reports"}),
						}))
				before := db.DeepCopy()
				c, err := render.Render(db, render.DefaultOptions())
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(db).To(Equal(before), "render must not modify the Database")

				np := typed[networkingv1.NetworkPolicy](t, c.NetworkPolicy)
				g.Expect(np.Kind).To(Equal("NetworkPolicy"))
				g.Expect(np.APIVersion).To(Equal("networking.k8s.io/v1"))
				g.Expect(np.Name).To(Equal("orders"))
				g.Expect(np.Namespace).To(Equal("shop"))
				expectControlledBy(g, np.ObjectMeta, db)
				g.Expect(np.Labels).To(HaveKeyWithValue(render.LabelManagedBy, "database-operator"))
				g.Expect(np.Labels).To(HaveKeyWithValue(render.LabelInstance, "orders"))
				g.Expect(np.Spec.PodSelector).To(Equal(metav1.LabelSelector{MatchLabels: render.SelectorLabels("orders")}))
				g.Expect(np.Spec.PolicyTypes).To(Equal([]networkingv1.PolicyType{networkingv1.PolicyTypeIngress}))
				g.Expect(np.Spec.Egress).To(BeEmpty())

				want := []networkingv1.NetworkPolicyIngressRule{{
					Ports: port(ports[typ][0]),
					From: []networkingv1.NetworkPolicyPeer{
						{PodSelector: selector(map[string]string{"app": "shop-api"})},
						{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
							{Key: "team", Operator: metav1.LabelSelectorOpIn, Values: []string{"analytics"}},
						}}},
						{
							NamespaceSelector: selector(map[string]string{"kubernetes.io/metadata.name": "reporting"}),
							PodSelector:       selector(map[string]string{"app": "reports"}),
						},
						ownPods,
						backupPods,
					},
				}}
				if withMetrics {
					want = append(want, networkingv1.NetworkPolicyIngressRule{
						Ports: port(ports[typ][1]),
						From: []networkingv1.NetworkPolicyPeer{
							{NamespaceSelector: selector(map[string]string{"kubernetes.io/metadata.name": "monitoring"})},
						},
					})
				}
				g.Expect(np.Spec.Ingress).To(Equal(want))

				// The peers select what the other children really carry.
				sts := c.StatefulSet
				g.Expect(ownPods.PodSelector.MatchLabels).To(Equal(sts.Spec.Selector.MatchLabels))
				jobLabels := c.BackupCronJob.Spec.JobTemplate.Spec.Template.Labels
				g.Expect(backupPods.PodSelector.MatchLabels).To(Equal(jobLabels))
				var containerPorts []int32
				for _, ctr := range sts.Spec.Template.Spec.Containers {
					for _, p := range ctr.Ports {
						containerPorts = append(containerPorts, *p.ContainerPort)
					}
				}
				if withMetrics {
					g.Expect(containerPorts).To(ConsistOf(int32(ports[typ][0]), int32(ports[typ][1])))
				} else {
					g.Expect(containerPorts).To(ConsistOf(int32(ports[typ][0])))
				}
			})
		}
	}

	t.Run("monitoring namespace", func(t *testing.T) {
		g := NewWithT(t)
		db := newDatabase(databasev1.PostgreSQL, "16", metrics(true), networkPolicy(ptr(true), "observability"))
		c, err := render.Render(db, render.DefaultOptions())
		g.Expect(err).NotTo(HaveOccurred())
		np := typed[networkingv1.NetworkPolicy](t, c.NetworkPolicy)
		g.Expect(np.Spec.Ingress).To(HaveLen(2))
		g.Expect(np.Spec.Ingress[0].From).To(Equal([]networkingv1.NetworkPolicyPeer{ownPods, backupPods}),
			"without allowFrom only the Database's own pods and backups reach the database port")
		g.Expect(np.Spec.Ingress[1].From).To(Equal([]networkingv1.NetworkPolicyPeer{
			{NamespaceSelector: selector(map[string]string{"kubernetes.io/metadata.name": "observability"})},
		}))
	})

	t.Run("default by environment and explicit override", func(t *testing.T) {
		on, off := ptr(true), ptr(false)
		cases := []struct {
			env     databasev1.Environment
			enabled *bool
			spec    bool // spec.networkPolicy given at all
			want    bool
		}{
			{databasev1.Development, nil, false, false},
			{databasev1.Staging, nil, false, false},
			{databasev1.Production, nil, false, true},
			{databasev1.Development, nil, true, false},
			{databasev1.Production, nil, true, true},
			{databasev1.Development, on, true, true},
			{databasev1.Staging, on, true, true},
			{databasev1.Production, off, true, false},
			{databasev1.Production, on, true, true},
			{databasev1.Development, off, true, false},
		}
		for _, tc := range cases {
			name := fmt.Sprintf("%s/spec=%t/enabled=%v", tc.env, tc.spec, ptrString(tc.enabled))
			t.Run(name, func(t *testing.T) {
				g := NewWithT(t)
				opts := []dbOption{environment(tc.env), replicas(2)}
				if tc.spec {
					opts = append(opts, networkPolicy(tc.enabled, "", appPeer("shop-api")))
				}
				for _, typ := range []databasev1.DatabaseType{databasev1.PostgreSQL, databasev1.MySQL} {
					db := newDatabase(typ, facts[typ].version, opts...)
					before := db.DeepCopy()
					c, err := render.Render(db, render.DefaultOptions())
					g.Expect(err).NotTo(HaveOccurred())
					g.Expect(db).To(Equal(before), "the default is decided at render time; the spec is never changed")
					if tc.want {
						g.Expect(c.NetworkPolicy).NotTo(BeNil())
					} else {
						g.Expect(c.NetworkPolicy).To(BeNil())
					}
				}
			})
		}
	})
}

func ptrString(b *bool) string {
	if b == nil {
		return "unset"
	}
	return fmt.Sprint(*b)
}
