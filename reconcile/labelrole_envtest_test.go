package reconcile_test

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/instance"
	"github.com/example/database-operator/reconcile"
	"github.com/example/database-operator/render"
)

// TestRoleLabelOfAPodGoneMeanwhile: the role label is applied to the pods
// the cache holds; a pod deleted since is no error (the apply's create is
// refused, and nothing is created), so a failover is not put off by the
// backoff of a failed reconcile. Seen on real pods: "label pod ha-0
// primary: Pod "ha-0" is invalid: spec.containers: Required value".
func TestRoleLabelOfAPodGoneMeanwhile(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)
	db := &databasev1.Database{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ha", UID: "uid-1"}}
	r := &reconcile.Reconciler{Client: env.Client, APIReader: env.Client, Render: render.DefaultOptions()}

	g.Expect(r.LabelRole(ctx, db, "ha-0", instance.Primary)).To(Succeed(), "a pod that is gone is skipped")
	err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ha-0"}, &corev1.Pod{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "and not created: %v", err)

	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ha-1"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "database", Image: "postgres:17"}}}}
	g.Expect(env.Client.Create(ctx, pod)).To(Succeed())
	g.Expect(r.LabelRole(ctx, db, "ha-1", instance.Replica)).To(Succeed())
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(pod), pod)).To(Succeed())
	g.Expect(pod.Labels).To(HaveKeyWithValue(instance.LabelRole, string(instance.Replica)))
}
