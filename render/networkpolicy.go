package render

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// namespaceNameLabel is set by the API server on every namespace (since
// Kubernetes 1.22) to the namespace's name.
const namespaceNameLabel = "kubernetes.io/metadata.name"

// buildNetworkPolicy renders <db>: ingress to the database pods is allowed
// only on the database port, from the listed clients, the Database's own
// pods (replication) and its backup Jobs, and, with metrics on, on the
// metrics port from the monitoring namespace. The policy is Ingress-only:
// egress is left alone.
func buildNetworkPolicy(s *spec) *networkingv1ac.NetworkPolicyApplyConfiguration {
	tcp := corev1.ProtocolTCP
	database := networkingv1ac.NetworkPolicyIngressRule().
		WithPorts(networkingv1ac.NetworkPolicyPort().
			WithProtocol(tcp).
			WithPort(intstr.FromInt32(s.eng.port())))
	for _, p := range s.allowFrom {
		database.WithFrom(networkPeer(p))
	}
	database.WithFrom(
		networkingv1ac.NetworkPolicyPeer().
			WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(SelectorLabels(s.name))),
		networkingv1ac.NetworkPolicyPeer().
			WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(backupPodLabels(s.name))))

	policy := networkingv1ac.NetworkPolicySpec().
		WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(SelectorLabels(s.name))).
		WithPolicyTypes(networkingv1.PolicyTypeIngress).
		WithIngress(database)
	if s.metrics {
		policy.WithIngress(networkingv1ac.NetworkPolicyIngressRule().
			WithPorts(networkingv1ac.NetworkPolicyPort().
				WithProtocol(tcp).
				WithPort(intstr.FromInt32(s.eng.metricsPort()))).
			WithFrom(networkingv1ac.NetworkPolicyPeer().
				WithNamespaceSelector(metav1ac.LabelSelector().
					WithMatchLabels(map[string]string{namespaceNameLabel: s.monitoringNamespace}))))
	}
	return networkingv1ac.NetworkPolicy(NetworkPolicyName(s.name), s.namespace).
		WithLabels(labels(s.db, "database")).
		WithOwnerReferences(ownerReference(s.db)).
		WithSpec(policy)
}

// networkPeer turns an allowFrom entry into a NetworkPolicyPeer.
func networkPeer(p databasev1.NetworkPeer) *networkingv1ac.NetworkPolicyPeerApplyConfiguration {
	peer := networkingv1ac.NetworkPolicyPeer()
	if p.NamespaceSelector != nil {
		peer.WithNamespaceSelector(labelSelector(p.NamespaceSelector))
	}
	if p.PodSelector != nil {
		peer.WithPodSelector(labelSelector(p.PodSelector))
	}
	return peer
}

// labelSelector copies a label selector into an apply configuration. An
// empty selector stays an empty object (it selects everything).
func labelSelector(in *metav1.LabelSelector) *metav1ac.LabelSelectorApplyConfiguration {
	out := metav1ac.LabelSelector()
	if len(in.MatchLabels) > 0 {
		out.WithMatchLabels(in.MatchLabels)
	}
	for _, e := range in.MatchExpressions {
		req := metav1ac.LabelSelectorRequirement().WithKey(e.Key).WithOperator(e.Operator)
		if len(e.Values) > 0 {
			req.WithValues(e.Values...)
		}
		out.WithMatchExpressions(req)
	}
	return out
}
