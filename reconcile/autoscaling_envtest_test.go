package reconcile_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/reconcile"
	"github.com/example/database-operator/render"
)

// TestAutoscaling: spec.autoscaling gives a HorizontalPodAutoscaler <db>
// whose target is the Database; a replicas change through the Database's
// scale subresource (what the autoscaler does) reaches the StatefulSet and
// the status; turning autoscaling off prunes the autoscaler and leaves
// spec.replicas where it was.
func TestAutoscaling(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)

	db := readyDatabase(ctx, g, newDatabase(ns, "pg", func(db *databasev1.Database) {
		db.Spec.Autoscaling = &databasev1.AutoscalingSpec{
			MinReplicas:                    ptr.To[int32](1),
			MaxReplicas:                    4,
			TargetCPUUtilizationPercentage: ptr.To[int32](70),
			ScaleDownStabilizationSeconds:  ptr.To[int32](600),
		}
	}))
	key := client.ObjectKeyFromObject(db)
	name := render.HorizontalPodAutoscalerName(db.Name)

	// The autoscaler: controlled by the Database, labelled like every child,
	// scaling the Database itself.
	hpa := get(ctx, g, ns, name, &autoscalingv2.HorizontalPodAutoscaler{})
	controllerRefTo(g, hpa, db)
	g.Expect(hpa.Labels).To(HaveKeyWithValue(render.LabelManagedBy, reconcile.FieldManager))
	g.Expect(hpa.Labels).To(HaveKeyWithValue(render.LabelInstance, db.Name))
	g.Expect(hpa.Spec.ScaleTargetRef).To(Equal(autoscalingv2.CrossVersionObjectReference{
		APIVersion: "database.example.com/v1", Kind: "Database", Name: db.Name,
	}))
	g.Expect(hpa.Spec.MinReplicas).To(Equal(ptr.To[int32](1)))
	g.Expect(hpa.Spec.MaxReplicas).To(Equal(int32(4)))
	g.Expect(hpa.Spec.Metrics).To(ConsistOf(And(
		HaveField("Type", autoscalingv2.ContainerResourceMetricSourceType),
		HaveField("ContainerResource.Name", corev1.ResourceCPU),
		HaveField("ContainerResource.Container", "database"),
		HaveField("ContainerResource.Target.AverageUtilization", ptr.To[int32](70)),
	)))
	g.Expect(hpa.Spec.Behavior.ScaleDown.StabilizationWindowSeconds).To(Equal(ptr.To[int32](600)))
	g.Expect(managedBy(hpa, reconcile.FieldManager)).To(ConsistOf(HaveField("Operation", metav1.ManagedFieldsOperationApply)))

	// What the autoscaler reads: the Database's scale subresource, with the
	// selector of the database pods.
	scale := &autoscalingv1.Scale{}
	g.Expect(env.Client.SubResource("scale").Get(ctx, db, scale)).To(Succeed())
	g.Expect(scale.Spec.Replicas).To(Equal(int32(1)))
	g.Expect(scale.Status.Replicas).To(Equal(int32(1)))
	g.Expect(scale.Status.Selector).NotTo(BeEmpty())
	sts := get(ctx, g, ns, render.StatefulSetName(db.Name), &appsv1.StatefulSet{})
	selector, err := metav1.LabelSelectorAsSelector(sts.Spec.Selector)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(scale.Status.Selector).To(Equal(selector.String()), "the scale selector is the StatefulSet's")

	// What the autoscaler writes: spec.replicas through /scale.
	scale.Spec.Replicas = 3
	g.Expect(env.Client.SubResource("scale").Update(ctx, db, client.WithSubResourceBody(scale))).To(Succeed())

	g.Eventually(func(g Gomega) {
		sts := &appsv1.StatefulSet{}
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: render.StatefulSetName(db.Name)}, sts)).To(Succeed())
		g.Expect(sts.Spec.Replicas).To(Equal(ptr.To[int32](3)), "StatefulSet spec.replicas")
	}).Should(Succeed())
	// The read replicas get what replicas > 1 brings.
	get(ctx, g, ns, render.ReadServiceName(db.Name), &corev1.Service{})
	get(ctx, g, ns, render.PodDisruptionBudgetName(db.Name), &policyv1.PodDisruptionBudget{})

	// The StatefulSet controller brings the new pods up; the status follows.
	setStatefulSetStatus(ctx, g, ns, render.StatefulSetName(db.Name), 3)
	scaled := waitObserved(ctx, g, key, phaseIs(databasev1.PhaseReady), func(g Gomega, db *databasev1.Database) {
		g.Expect(db.Status.Replicas).To(Equal(int32(3)), "status.replicas")
	})
	g.Expect(scaled.Spec.Replicas).To(Equal(ptr.To[int32](3)))
	waitEvent(ctx, g, scaled, "Scaled")
	g.Expect(env.Client.SubResource("scale").Get(ctx, db, scale)).To(Succeed())
	g.Expect(scale.Status.Replicas).To(Equal(int32(3)), "the autoscaler sees the new replicas")

	// Drift: another manager raises maxReplicas; the operator takes it back.
	g.Eventually(func(g Gomega) {
		hpa := &autoscalingv2.HorizontalPodAutoscaler{}
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, hpa)).To(Succeed())
		hpa.Spec.MaxReplicas = 9
		g.Expect(env.Client.Update(ctx, hpa, client.FieldOwner("kubectl-edit"))).To(Succeed())
	}).Should(Succeed())
	g.Eventually(func(g Gomega) {
		hpa := &autoscalingv2.HorizontalPodAutoscaler{}
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, hpa)).To(Succeed())
		g.Expect(hpa.Spec.MaxReplicas).To(Equal(int32(4)), "spec.maxReplicas not restored")
	}).Should(Succeed())

	// A status write (what the autoscaler controller does at every sync)
	// causes no reconcile.
	// First let the reconciles the drift caused finish.
	var before float64
	g.Eventually(func(g Gomega) {
		before = reconciles(g)
		time.Sleep(time.Second)
		g.Expect(reconciles(g)).To(Equal(before))
	}).Should(Succeed())
	g.Eventually(func(g Gomega) {
		hpa := &autoscalingv2.HorizontalPodAutoscaler{}
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, hpa)).To(Succeed())
		hpa.Status.CurrentReplicas = 3
		hpa.Status.DesiredReplicas = 3
		hpa.Status.LastScaleTime = &metav1.Time{Time: time.Now().Truncate(time.Second)}
		g.Expect(env.Client.Status().Update(ctx, hpa)).To(Succeed())
	}).Should(Succeed())
	g.Consistently(func(g Gomega) float64 { return reconciles(g) }).Should(Equal(before),
		"an autoscaler status write caused a reconcile")

	// Drift: someone deletes the autoscaler; the operator re-creates it.
	deleted := get(ctx, g, ns, name, &autoscalingv2.HorizontalPodAutoscaler{})
	g.Expect(env.Client.Delete(ctx, deleted)).To(Succeed())
	g.Eventually(func(g Gomega) {
		again := &autoscalingv2.HorizontalPodAutoscaler{}
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, again)).To(Succeed())
		g.Expect(again.UID).NotTo(Equal(deleted.UID), "the deleted autoscaler is still there")
	}).Should(Succeed())

	// Autoscaling off: the autoscaler is pruned; the replicas it chose stay.
	updateDatabase(ctx, g, key, func(db *databasev1.Database) { db.Spec.Autoscaling = nil })
	gone(ctx, g, ns, name, &autoscalingv2.HorizontalPodAutoscaler{})
	after := waitObserved(ctx, g, key, phaseIs(databasev1.PhaseReady))
	g.Expect(after.Spec.Replicas).To(Equal(ptr.To[int32](3)))
	g.Expect(get(ctx, g, ns, render.StatefulSetName(db.Name), &appsv1.StatefulSet{}).Spec.Replicas).To(Equal(ptr.To[int32](3)))
}
