package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// writeOnce is what an ideal controller writes for one Database, with no
// cache, no watch and no second look: create the credentials Secret, apply
// every rendered child in the reconciler's order (configuration and
// Services first, the StatefulSet last) under the operator's field manager
// with forced ownership, and apply the first status.
func writeOnce(ctx context.Context, c client.Client, db *databasev1.Database) error {
	if err := c.Create(ctx, credentialsSecret(db), client.FieldOwner(fieldManager)); err != nil {
		return fmt.Errorf("create Secret: %w", err)
	}
	children, err := renderChildren(db)
	if err != nil {
		return err
	}
	for _, ch := range children {
		if err := c.Apply(ctx, ch.ac, client.FieldOwner(fieldManager), client.ForceOwnership); err != nil {
			return fmt.Errorf("apply %s %s: %w", ch.gvk.Kind, ch.name, err)
		}
	}
	status := firstStatus(db, metav1.NewTime(time.Now().Truncate(time.Second)))
	if err := c.Status().Apply(ctx, status, client.FieldOwner(fieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply status: %w", err)
	}
	return nil
}

// runLimit is the limit: the bench creates the Databases as in the
// operator's burst, and workers goroutines, sharing one controller-runtime
// client built like the operator's (same user rights, QPS and burst; its
// rate limiters are per kind, as the operator's are), write each Database
// with writeOnce as soon as it is created. It returns when every Database
// is written.
func runLimit(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, admin client.Client, w *workload, kinds []schema.GroupVersionKind, f operatorFlags, creators int) error {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = float32(f.QPS), f.Burst
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	// Warm the client up as the operator's is by the time it reconciles:
	// the REST mapping and a connection for every kind it writes.
	for _, gvk := range append([]schema.GroupVersionKind{databaseGVK}, kinds...) {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := c.List(ctx, list, client.InNamespace(w.DBs[0].Namespace), client.Limit(1)); err != nil {
			return fmt.Errorf("limit: warm-up list %s: %w", gvk.Kind, err)
		}
		if _, err := c.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			return err
		}
	}
	work := make(chan *databasev1.Database, len(w.DBs))
	errs := make(chan error, f.Workers+1)
	var wg sync.WaitGroup
	for range f.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for db := range work {
				if err := writeOnce(ctx, c, db); err != nil {
					errs <- fmt.Errorf("limit: Database %s/%s: %w", db.Namespace, db.Name, err)
					return
				}
			}
		}()
	}
	err = createAll(ctx, admin, w, creators, func(_ int, db *databasev1.Database) { work <- db })
	close(work)
	wg.Wait()
	if err != nil {
		return err
	}
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}
