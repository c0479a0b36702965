package reconcile

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

// prunedChild names a deleted child.
type prunedChild struct{ kind, name string }

// prune deletes the children of db that render no longer returns. Only
// objects with db as their controller are candidates, so a user's object
// with the same labels, the credentials Secret and every PVC (none of which
// db controls) are never deleted. keep holds "kind/name" of the rendered set.
func prune(ctx context.Context, c client.Client, db *databasev1.Database, kinds []ownedKind, keep map[string]bool) ([]prunedChild, error) {
	var pruned []prunedChild
	for _, k := range kinds {
		list := k.list()
		if err := c.List(ctx, list, client.InNamespace(db.Namespace), client.MatchingLabels{
			render.LabelInstance:  db.Name,
			render.LabelManagedBy: FieldManager,
		}); err != nil {
			return pruned, fmt.Errorf("list %ss to prune: %w", k.kind, err)
		}
		err := meta.EachListItem(list, func(o runtime.Object) error {
			obj, ok := o.(client.Object)
			if !ok || !metav1.IsControlledBy(obj, db) || keep[k.kind+"/"+obj.GetName()] || obj.GetDeletionTimestamp() != nil {
				return nil
			}
			uid := obj.GetUID()
			err := c.Delete(ctx, obj, client.Preconditions{UID: &uid}, client.PropagationPolicy(metav1.DeletePropagationBackground))
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("prune %s %s: %w", k.kind, obj.GetName(), err)
			}
			pruned = append(pruned, prunedChild{kind: k.kind, name: obj.GetName()})
			return nil
		})
		if err != nil {
			return pruned, err
		}
	}
	return pruned, nil
}
