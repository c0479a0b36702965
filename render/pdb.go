package render

import (
	"k8s.io/apimachinery/pkg/util/intstr"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"
)

// buildPodDisruptionBudget renders <db>: voluntary disruptions (node drains)
// take down at most one database pod at a time.
func buildPodDisruptionBudget(s *spec) *policyv1ac.PodDisruptionBudgetApplyConfiguration {
	return policyv1ac.PodDisruptionBudget(PodDisruptionBudgetName(s.name), s.namespace).
		WithLabels(labels(s.db, "database")).
		WithOwnerReferences(ownerReference(s.db)).
		WithSpec(policyv1ac.PodDisruptionBudgetSpec().
			WithMaxUnavailable(intstr.FromInt32(1)).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(SelectorLabels(s.name))))
}
