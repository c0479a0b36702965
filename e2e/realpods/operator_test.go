package realpods

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestOperatorInCluster: the chart's operator runs in the cluster from its
// own image, two replicas, both Ready, one of them holding the leader Lease.
func TestOperatorInCluster(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	NewWithT(t).Eventually(func(g Gomega) {
		var deploy appsv1.Deployment
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: "database-operator"}, &deploy)).To(Succeed())
		g.Expect(deploy.Status.ReadyReplicas).To(Equal(int32(2)))
	}).WithTimeout(time.Minute).WithPolling(time.Second).Should(Succeed())
	var pods corev1.PodList
	g.Expect(k8s.List(ctx, &pods, client.InNamespace(operatorNamespace), client.MatchingLabels{"app.kubernetes.io/name": "database-operator"})).To(Succeed())
	names := []string{}
	for _, p := range pods.Items {
		g.Expect(podReady(&p)).To(BeTrue(), "operator pod %s", p.Name)
		g.Expect(p.Spec.Containers[0].Image).To(HavePrefix("ghcr.io/example/database-operator:"), "the chart's default image")
		names = append(names, p.Name)
	}
	var lease coordinationv1.Lease
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: "database-operator.database.example.com"}, &lease)).To(Succeed())
	g.Expect(lease.Spec.HolderIdentity).NotTo(BeNil())
	holder := *lease.Spec.HolderIdentity
	g.Expect(names).To(ContainElement(Satisfy(func(n string) bool { return strings.HasPrefix(holder, n) })),
		"the leader (%s) is one of the operator's pods %v", holder, names)
}

// killProcess sends SIGKILL to a host process.
func killProcess(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }
