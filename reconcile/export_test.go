package reconcile

import (
	"context"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/instance"
)

// LabelRole exposes labelRole to the envtest tests of package
// reconcile_test.
func (r *Reconciler) LabelRole(ctx context.Context, db *databasev1.Database, pod string, role instance.Role) error {
	return r.labelRole(ctx, db, pod, role)
}
