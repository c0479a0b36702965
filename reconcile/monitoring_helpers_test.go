package reconcile_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/example/database-operator/reconcile"
)

// installMonitoringCRD creates the CRD of file, which must define gvk, and
// waits until it is Established and discovery serves the kind. Cleanup
// deletes it (the API server deletes its objects with it) and waits until
// it is gone and discovery no longer serves the kind, as the rest of the
// suite expects.
func installMonitoringCRD(t *testing.T, g *WithT, file string, gvk schema.GroupVersionKind) {
	t.Helper()
	raw, err := os.ReadFile(file)
	g.Expect(err).NotTo(HaveOccurred())
	crd := &apiextensionsv1.CustomResourceDefinition{}
	g.Expect(yaml.UnmarshalStrict(raw, crd)).To(Succeed(), "%s", file)
	g.Expect(crd.Spec.Group).To(Equal(gvk.Group))
	g.Expect(crd.Spec.Names.Kind).To(Equal(gvk.Kind))

	ctx := context.Background()
	g.Expect(env.Client.Create(ctx, crd)).To(Succeed())
	t.Cleanup(func() { uninstallMonitoringCRD(t, crd.Name, gvk) })

	g.Eventually(func(g Gomega) {
		got := &apiextensionsv1.CustomResourceDefinition{}
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: crd.Name}, got)).To(Succeed())
		g.Expect(got.Status.Conditions).To(ContainElement(And(
			HaveField("Type", apiextensionsv1.Established),
			HaveField("Status", apiextensionsv1.ConditionTrue),
		)), "CRD %s conditions", crd.Name)
	}).Should(Succeed())
	g.Eventually(func() (bool, error) {
		return reconcile.KindServed(env.Config, gvk)
	}).Should(BeTrue(), "%s served after CRD %s is Established", gvk.Kind, crd.Name)
}

// uninstallMonitoringCRD deletes the CRD and waits until it and its kind
// are gone.
func uninstallMonitoringCRD(t *testing.T, name string, gvk schema.GroupVersionKind) {
	t.Helper()
	g := newG(t)
	ctx := context.Background()
	crd := &apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := env.Client.Delete(ctx, crd); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("deleting CRD %s: %v", name, err)
		return
	}
	g.Eventually(func() error {
		return env.Client.Get(ctx, client.ObjectKey{Name: name}, &apiextensionsv1.CustomResourceDefinition{})
	}).Should(Satisfy(apierrors.IsNotFound), "CRD %s should be deleted", name)
	g.Eventually(func() (bool, error) {
		return reconcile.KindServed(env.Config, gvk)
	}).Should(BeFalse(), "%s served after deleting CRD %s", gvk.Kind, name)
}

// restartOperatorMonitoring restarts the shared operator the way the
// binary would start with served as discovery's answer, and restores the
// operator as it was when t ends. The suite's startOperator reads the
// answer from monitoring, so that is what changes for the new operator.
func restartOperatorMonitoring(t *testing.T, served reconcile.MonitoringAPIs) {
	t.Helper()
	operatorMu.Lock()
	original := monitoring
	operatorMu.Unlock()
	if err := replaceOperator(served); err != nil {
		t.Fatalf("restarting the operator with %+v: %v", served, err)
	}
	t.Cleanup(func() {
		if err := replaceOperator(original); err != nil {
			t.Errorf("restoring the operator with %+v: %v", original, err)
		}
	})
}

// replaceOperator stops the running operator and starts one that found
// served (and the cache options for it).
func replaceOperator(served reconcile.MonitoringAPIs) error {
	operatorMu.Lock()
	defer operatorMu.Unlock()
	if err := current.stop(); err != nil {
		return fmt.Errorf("stopping the operator: %w", err)
	}
	monitoring = served
	op, err := startOperator()
	if err != nil {
		return err
	}
	current = op
	return nil
}
