package reconcile_test

import (
	"context"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

// storageFixture is a Database on a StorageClass with one bound data volume
// and one database pod, as the StatefulSet controller and a provisioner
// would have left them.
type storageFixture struct {
	db  *databasev1.Database
	sts *appsv1.StatefulSet
	pvc *corev1.PersistentVolumeClaim
	pod *corev1.Pod
}

// newStorageFixture creates a StorageClass (expandable or not), a one-replica
// Database of 1Gi on it, and plays the StatefulSet controller and the
// provisioner: a bound PV and PVC data-pg-0, and the pod pg-0.
func newStorageFixture(ctx context.Context, t *testing.T, g *WithT, ns string, expandable bool) storageFixture {
	t.Helper()
	class := &storagev1.StorageClass{
		ObjectMeta:           metav1.ObjectMeta{Name: ns},
		Provisioner:          "fake.csi.example.com",
		AllowVolumeExpansion: ptr.To(expandable),
	}
	if !expandable {
		class.AllowVolumeExpansion = nil
	}
	g.Expect(env.Client.Create(ctx, class)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), class) })

	db := readyDatabase(ctx, g, newDatabase(ns, "pg", func(db *databasev1.Database) {
		db.Spec.Storage.Class = class.Name
	}))
	sts := get(ctx, g, ns, "pg", &appsv1.StatefulSet{})
	g.Expect(sts.Spec.VolumeClaimTemplates).To(HaveLen(1))
	template := sts.Spec.VolumeClaimTemplates[0]
	g.Expect(template.Name).To(Equal("data"))
	g.Expect(template.Spec.Resources.Requests.Storage().String()).To(Equal("1Gi"))
	g.Expect(template.Spec.StorageClassName).To(Equal(ptr.To(class.Name)))

	// The PVC the StatefulSet controller would create from the template:
	// data-<sts>-<ordinal>, the template's labels, the selector's labels.
	pvName := ns + "-data-pg-0"
	claimLabels := map[string]string{}
	for k, v := range sts.Spec.Selector.MatchLabels {
		claimLabels[k] = v
	}
	for k, v := range template.Labels {
		claimLabels[k] = v
	}
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "data-pg-0", Labels: claimLabels},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      template.Spec.AccessModes,
			VolumeMode:       template.Spec.VolumeMode,
			StorageClassName: template.Spec.StorageClassName,
			Resources:        template.Spec.Resources,
			VolumeName:       pvName,
		},
	}
	g.Expect(env.Client.Create(ctx, pvc)).To(Succeed())
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: pvName},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			StorageClassName:              class.Name,
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				CSI: &corev1.CSIPersistentVolumeSource{Driver: "fake.csi.example.com", VolumeHandle: pvName},
			},
			ClaimRef: &corev1.ObjectReference{
				APIVersion: "v1", Kind: "PersistentVolumeClaim", Namespace: ns, Name: pvc.Name, UID: pvc.UID,
			},
		},
	}
	g.Expect(env.Client.Create(ctx, pv)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), pv) })
	pv.Status.Phase = corev1.VolumeBound
	g.Expect(env.Client.Status().Update(ctx, pv)).To(Succeed())
	pvc.Status = corev1.PersistentVolumeClaimStatus{
		Phase:       corev1.ClaimBound,
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
	}
	g.Expect(env.Client.Status().Update(ctx, pvc)).To(Succeed())

	// The pod pg-0, controlled by the StatefulSet.
	podLabels := map[string]string{"statefulset.kubernetes.io/pod-name": "pg-0"}
	for k, v := range sts.Spec.Template.Labels {
		podLabels[k] = v
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: "pg-0", Labels: podLabels,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "StatefulSet", Name: sts.Name, UID: sts.UID,
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "database", Image: "postgres:16"}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: pvc.Name},
			}}},
		},
	}
	g.Expect(env.Client.Create(ctx, pod)).To(Succeed())

	// Let the operator see the bound volume before the spec changes.
	g.Eventually(func() int { return len(listDataPVCs(ctx, g, ns, "pg")) }).Should(Equal(1))
	time.Sleep(500 * time.Millisecond)
	return storageFixture{db: db, sts: sts, pvc: pvc, pod: pod}
}

// listDataPVCs lists the PVCs carrying a Database's selector labels.
func listDataPVCs(ctx context.Context, g Gomega, ns, db string) []corev1.PersistentVolumeClaim {
	var list corev1.PersistentVolumeClaimList
	g.Expect(env.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels(render.SelectorLabels(db)))).To(Succeed())
	return list.Items
}

// stillThere checks that an object exists with the same UID and is not
// being deleted.
func stillThere(ctx context.Context, g Gomega, obj client.Object) {
	now := obj.DeepCopyObject().(client.Object)
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(obj), now)).To(Succeed(), "%T %s was deleted", obj, obj.GetName())
	g.Expect(now.GetUID()).To(Equal(obj.GetUID()), "%T %s was re-created", obj, obj.GetName())
	g.Expect(now.GetDeletionTimestamp()).To(BeNil(), "%T %s is being deleted", obj, obj.GetName())
}

// TestStorageGrowth: growing spec.storage.size resizes each data PVC and
// re-creates the StatefulSet with orphan deletion, so its template carries
// the new size; pods and PVCs are untouched.
func TestStorageGrowth(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)
	f := newStorageFixture(ctx, t, g, ns, true)
	key := client.ObjectKeyFromObject(f.db)

	updateDatabase(ctx, g, key, func(db *databasev1.Database) { db.Spec.Storage.Size = resource.MustParse("2Gi") })

	// The PVC asks for the new size.
	g.Eventually(func(g Gomega) string {
		pvc := &corev1.PersistentVolumeClaim{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(f.pvc), pvc)).To(Succeed())
		return pvc.Spec.Resources.Requests.Storage().String()
	}).Should(Equal("2Gi"))

	// The StatefulSet is deleted with orphan propagation: the API server
	// marks it and leaves the orphan finalizer for the garbage collector.
	var deleting *appsv1.StatefulSet
	g.Eventually(func(g Gomega) {
		sts := &appsv1.StatefulSet{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(f.sts), sts)).To(Succeed())
		g.Expect(sts.UID).To(Equal(f.sts.UID))
		g.Expect(sts.DeletionTimestamp).NotTo(BeNil(), "StatefulSet not being deleted")
		g.Expect(sts.Finalizers).To(ContainElement(metav1.FinalizerOrphanDependents))
		deleting = sts
	}).Should(Succeed())
	waitObserved(ctx, g, key, conditionIs(databasev1.ConditionProgressing, metav1.ConditionTrue, "Resizing"),
		conditionIs(databasev1.ConditionDegraded, metav1.ConditionFalse),
		conditionIs(databasev1.ConditionReady, metav1.ConditionFalse))
	// While the old StatefulSet is going, the operator does not touch it.
	g.Consistently(func(g Gomega) {
		sts := &appsv1.StatefulSet{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(f.sts), sts)).To(Succeed())
		g.Expect(sts.UID).To(Equal(f.sts.UID))
		g.Expect(sts.ResourceVersion).To(Equal(deleting.ResourceVersion))
	}).WithTimeout(time.Second).Should(Succeed())

	// Play the garbage collector: orphan the pod, then drop the finalizer.
	g.Eventually(func(g Gomega) {
		pod := &corev1.Pod{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(f.pod), pod)).To(Succeed())
		pod.OwnerReferences = nil
		g.Expect(env.Client.Update(ctx, pod)).To(Succeed())
	}).Should(Succeed())
	g.Eventually(func(g Gomega) {
		sts := &appsv1.StatefulSet{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(f.sts), sts)).To(Succeed())
		sts.Finalizers = slices.DeleteFunc(sts.Finalizers, func(s string) bool { return s == metav1.FinalizerOrphanDependents })
		g.Expect(env.Client.Update(ctx, sts)).To(Succeed())
	}).Should(Succeed())

	// A new StatefulSet with the new template size.
	var recreated *appsv1.StatefulSet
	g.Eventually(func(g Gomega) {
		sts := &appsv1.StatefulSet{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(f.sts), sts)).To(Succeed())
		g.Expect(sts.UID).NotTo(Equal(f.sts.UID), "StatefulSet not re-created")
		g.Expect(sts.Spec.VolumeClaimTemplates).To(HaveLen(1))
		g.Expect(sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests.Storage().String()).To(Equal("2Gi"))
		recreated = sts
	}).Should(Succeed())
	g.Expect(recreated.Spec.Selector).To(Equal(f.sts.Spec.Selector))
	controllerRefTo(g, recreated, f.db)
	waitEvent(ctx, g, f.db, "StorageResized")

	// The new StatefulSet settles; the Database is Ready again.
	setStatefulSetStatus(ctx, g, ns, "pg", 1)
	waitObserved(ctx, g, key, phaseIs(databasev1.PhaseReady),
		conditionIs(databasev1.ConditionDegraded, metav1.ConditionFalse),
		conditionIs(databasev1.ConditionProgressing, metav1.ConditionFalse))

	// Pods and PVCs were never deleted, and the StatefulSet is not
	// re-created again.
	g.Consistently(func(g Gomega) {
		stillThere(ctx, g, f.pod)
		stillThere(ctx, g, f.pvc)
		stillThere(ctx, g, recreated)
	}).WithTimeout(2 * time.Second).Should(Succeed())
}

// TestStorageGrowthNotExpandable: when the StorageClass cannot expand,
// growing reports Degraded (StorageResizeFailed) and leaves the StatefulSet
// and the volumes alone.
func TestStorageGrowthNotExpandable(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)
	f := newStorageFixture(ctx, t, g, ns, false)
	key := client.ObjectKeyFromObject(f.db)

	updateDatabase(ctx, g, key, func(db *databasev1.Database) { db.Spec.Storage.Size = resource.MustParse("2Gi") })
	degraded := waitObserved(ctx, g, key, phaseIs(databasev1.PhaseFailed),
		conditionIs(databasev1.ConditionDegraded, metav1.ConditionTrue, "StorageResizeFailed"),
		conditionIs(databasev1.ConditionReady, metav1.ConditionFalse))
	t.Logf("Degraded: %s", condition(g, degraded, databasev1.ConditionDegraded).Message)
	g.Expect(condition(g, degraded, databasev1.ConditionDegraded).Message).To(ContainSubstring("data-pg-0"))
	waitEvent(ctx, g, f.db, "StorageResizeFailed")

	g.Consistently(func(g Gomega) {
		stillThere(ctx, g, f.sts)
		stillThere(ctx, g, f.pod)
		stillThere(ctx, g, f.pvc)
		sts := &appsv1.StatefulSet{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(f.sts), sts)).To(Succeed())
		g.Expect(sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests.Storage().String()).To(Equal("1Gi"))
		pvc := &corev1.PersistentVolumeClaim{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(f.pvc), pvc)).To(Succeed())
		g.Expect(pvc.Spec.Resources.Requests.Storage().String()).To(Equal("1Gi"))
	}).Should(Succeed())
}
