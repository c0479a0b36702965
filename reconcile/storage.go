package reconcile

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

// dataVolumes lists the data PVCs of db's StatefulSet (data-<db>-<ordinal>).
func (r *Reconciler) dataVolumes(ctx context.Context, db *databasev1.Database) ([]corev1.PersistentVolumeClaim, error) {
	var list corev1.PersistentVolumeClaimList
	if err := r.Client.List(ctx, &list, client.InNamespace(db.Namespace), client.MatchingLabels(render.SelectorLabels(db.Name))); err != nil {
		return nil, fmt.Errorf("list data PVCs: %w", err)
	}
	prefix := "data-" + render.StatefulSetName(db.Name) + "-"
	var out []corev1.PersistentVolumeClaim
	for _, pvc := range list.Items {
		if strings.HasPrefix(pvc.Name, prefix) {
			out = append(out, pvc)
		}
	}
	return out, nil
}

// templateSize is the data volume size in a StatefulSet's claim template.
func templateSize(sts *appsv1.StatefulSet) resource.Quantity {
	for _, t := range sts.Spec.VolumeClaimTemplates {
		if t.Name == "data" {
			return t.Spec.Resources.Requests[corev1.ResourceStorage]
		}
	}
	return resource.Quantity{}
}

// growStorage handles spec.storage.size growing past the StatefulSet's
// claim template, which the API server will not change in place: it asks for
// the new size on every data PVC, then deletes the StatefulSet with orphan
// propagation, so pods and PVCs stay while the next reconcile re-creates the
// StatefulSet with the new template. It reports resizing while the old
// StatefulSet is still being deleted; the StatefulSet must not be applied
// then. A PVC the storage class cannot expand is a degradation: nothing is
// deleted and the StatefulSet stays as it is.
func (r *Reconciler) growStorage(ctx context.Context, db *databasev1.Database, sts *appsv1.StatefulSet) (resizing bool, problem *degradation, err error) {
	if sts == nil {
		return false, nil, nil
	}
	if sts.DeletionTimestamp != nil {
		return true, nil, nil
	}
	want := db.Spec.Storage.Size
	if want.Cmp(templateSize(sts)) <= 0 {
		return false, nil, nil
	}

	pvcs, err := r.dataVolumes(ctx, db)
	if err != nil {
		return false, nil, err
	}
	for _, pvc := range pvcs {
		if want.Cmp(pvc.Spec.Resources.Requests[corev1.ResourceStorage]) <= 0 {
			continue
		}
		ac := corev1ac.PersistentVolumeClaim(pvc.Name, pvc.Namespace).
			WithSpec(corev1ac.PersistentVolumeClaimSpec().
				WithResources(corev1ac.VolumeResourceRequirements().
					WithRequests(corev1.ResourceList{corev1.ResourceStorage: want})))
		if err := r.apply(ctx, db, "PersistentVolumeClaim", pvc.Name, ac); err != nil {
			if needsHuman(err) {
				return false, &degradation{
					reason:  "StorageResizeFailed",
					message: fmt.Sprintf("cannot grow PVC %s to %s (does its StorageClass allow volume expansion?): %v", pvc.Name, ptrQ(want), err),
				}, nil
			}
			return false, nil, fmt.Errorf("resize PVC %s: %w", pvc.Name, err)
		}
	}

	uid := sts.UID
	if err := r.Client.Delete(ctx, sts, client.Preconditions{UID: &uid}, client.PropagationPolicy(metav1.DeletePropagationOrphan)); client.IgnoreNotFound(err) != nil {
		return false, nil, fmt.Errorf("re-create StatefulSet %s for the new volume size: %w", sts.Name, err)
	}
	r.event(db, corev1.EventTypeNormal, "StorageResized", "Resize",
		fmt.Sprintf("data volumes grow from %s to %s; StatefulSet re-created, pods and volumes kept", ptrQ(templateSize(sts)), ptrQ(want)))
	return true, nil, nil
}

// ptrQ formats a quantity (String has a pointer receiver).
func ptrQ(q resource.Quantity) string { return q.String() }
