package bench

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

var databaseGVK = schema.GroupVersionKind{Group: "database.example.com", Version: "v1", Kind: "Database"}

// deleteAll removes the Databases and every object the operator writes
// from the namespaces, and waits until they are gone. envtest runs no
// garbage collector and no PVC protection controller, so the bench deletes
// every kind itself and drops the PVCs' protection finalizer.
func deleteAll(ctx context.Context, c client.Client, namespaces []string, childKinds []schema.GroupVersionKind) error {
	kinds := append([]schema.GroupVersionKind{databaseGVK}, childKinds...)
	for _, ns := range namespaces {
		for _, gvk := range kinds {
			obj := metadataObject(gvk)
			err := c.DeleteAllOf(ctx, obj, client.InNamespace(ns))
			if apierrors.IsMethodNotSupported(err) {
				err = deleteEach(ctx, c, gvk, ns)
			}
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete %ss in %s: %w", gvk.Kind, ns, err)
			}
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		left := 0
		for _, ns := range namespaces {
			for _, gvk := range kinds {
				list := &metav1.PartialObjectMetadataList{}
				list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
				if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
					return err
				}
				for i := range list.Items {
					o := &list.Items[i]
					o.SetGroupVersionKind(gvk)
					left++
					if len(o.Finalizers) > 0 {
						patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`))
						if err := c.Patch(ctx, o, patch); err != nil && !apierrors.IsNotFound(err) {
							return fmt.Errorf("drop finalizers of %s %s/%s: %w", gvk.Kind, ns, o.Name, err)
						}
					}
				}
			}
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d objects still exist in %v", left, namespaces)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func deleteEach(ctx context.Context, c client.Client, gvk schema.GroupVersionKind, ns string) error {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
		return err
	}
	for i := range list.Items {
		o := &list.Items[i]
		o.SetGroupVersionKind(gvk)
		if err := c.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// versions lists the resourceVersion of every Database and every object
// the operator writes, by "Kind/namespace/name".
func versions(ctx context.Context, c client.Client, childKinds []schema.GroupVersionKind) (map[string]string, error) {
	out := map[string]string{}
	for _, gvk := range append([]schema.GroupVersionKind{databaseGVK}, childKinds...) {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := c.List(ctx, list); err != nil {
			return nil, err
		}
		for _, o := range list.Items {
			out[gvk.Kind+"/"+o.Namespace+"/"+o.Name] = o.ResourceVersion
		}
	}
	return out, nil
}

// changed counts the objects whose resourceVersion differs between two
// snapshots, or that exist in only one.
func changed(before, after map[string]string) int {
	n := 0
	for k, v := range before {
		if after[k] != v {
			n++
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			n++
		}
	}
	return n
}
