package render

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	autoscalingv2ac "k8s.io/client-go/applyconfigurations/autoscaling/v2"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// buildHorizontalPodAutoscaler renders <db>: an autoscaler whose target is
// the Database itself, through its scale subresource. The autoscaler moves
// spec.replicas of the Database and the operator follows it like any other
// change, so the two never fight over the StatefulSet. Utilisation is
// measured on the database container only (the exporter sidecar's load says
// nothing about read capacity).
func buildHorizontalPodAutoscaler(s *spec) *autoscalingv2ac.HorizontalPodAutoscalerApplyConfiguration {
	a := s.autoscaling
	minReplicas := int32(1)
	if a.MinReplicas != nil {
		minReplicas = *a.MinReplicas
	}
	hpaSpec := autoscalingv2ac.HorizontalPodAutoscalerSpec().
		WithScaleTargetRef(autoscalingv2ac.CrossVersionObjectReference().
			WithAPIVersion(databasev1.GroupVersion.String()).
			WithKind("Database").
			WithName(s.name)).
		WithMinReplicas(minReplicas).
		WithMaxReplicas(a.MaxReplicas)
	if a.TargetCPUUtilizationPercentage != nil {
		hpaSpec.WithMetrics(utilizationMetric(corev1.ResourceCPU, *a.TargetCPUUtilizationPercentage))
	}
	if a.TargetMemoryUtilizationPercentage != nil {
		hpaSpec.WithMetrics(utilizationMetric(corev1.ResourceMemory, *a.TargetMemoryUtilizationPercentage))
	}
	if a.ScaleDownStabilizationSeconds != nil {
		hpaSpec.WithBehavior(autoscalingv2ac.HorizontalPodAutoscalerBehavior().
			WithScaleDown(autoscalingv2ac.HPAScalingRules().
				WithStabilizationWindowSeconds(*a.ScaleDownStabilizationSeconds)))
	}
	return autoscalingv2ac.HorizontalPodAutoscaler(HorizontalPodAutoscalerName(s.name), s.namespace).
		WithLabels(labels(s.db, "database")).
		WithOwnerReferences(ownerReference(s.db)).
		WithSpec(hpaSpec)
}

// utilizationMetric targets the average utilisation of one resource of the
// database container, in percent of its request.
func utilizationMetric(name corev1.ResourceName, percent int32) *autoscalingv2ac.MetricSpecApplyConfiguration {
	return autoscalingv2ac.MetricSpec().
		WithType(autoscalingv2.ContainerResourceMetricSourceType).
		WithContainerResource(autoscalingv2ac.ContainerResourceMetricSource().
			WithName(name).
			WithContainer(DatabaseContainerName).
			WithTarget(autoscalingv2ac.MetricTarget().
				WithType(autoscalingv2.UtilizationMetricType).
				WithAverageUtilization(percent)))
}
