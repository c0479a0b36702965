package reconcile_test

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/example/database-operator/reconcile"
	"github.com/example/database-operator/render"
)

// The operator's cache holds only the Secrets it labels: an application's
// Secret in the same namespace cannot be read (or listed) through it, so
// the operator's memory never holds other teams' credentials. Secrets the
// user supplies are read by name from the API server instead.
func TestCacheHoldsOnlyTheOperatorsSecrets(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)
	unrelated := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "payments-api-key"},
		StringData: map[string]string{"key": "not-for-the-operator"},
	}
	ours := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg-credentials",
			Labels: map[string]string{render.LabelManagedBy: reconcile.FieldManager}},
		StringData: map[string]string{"password": "x"},
	}
	g.Expect(env.Client.Create(ctx, unrelated)).To(Succeed())
	g.Expect(env.Client.Create(ctx, ours)).To(Succeed())

	c, err := cache.New(env.Config, func() cache.Options {
		o := reconcile.CacheOptions([]string{ns}, reconcile.MonitoringAPIs{})
		o.Scheme = env.Scheme
		return o
	}())
	g.Expect(err).NotTo(HaveOccurred())
	cacheCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = c.Start(cacheCtx) }()
	g.Expect(c.WaitForCacheSync(ctx)).To(BeTrue())

	g.Eventually(func() error {
		return c.Get(ctx, client.ObjectKeyFromObject(ours), &corev1.Secret{})
	}).Should(Succeed(), "the operator's own Secret is in the cache")
	err = c.Get(ctx, client.ObjectKeyFromObject(unrelated), &corev1.Secret{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "an unlabelled Secret must not be readable through the cache: %v", err)
	var list corev1.SecretList
	g.Expect(c.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	g.Expect(list.Items).To(HaveLen(1))
	g.Expect(list.Items[0].Name).To(Equal(ours.Name))
}
