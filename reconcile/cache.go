package reconcile

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/example/database-operator/render"
)

// CacheOptions limits the manager's cache to what the operator manages, so
// a cluster with many unrelated Secrets, ConfigMaps or StatefulSets does not
// inflate its memory: every kind it creates is cached only with the
// app.kubernetes.io/managed-by=database-operator label, and managed fields
// are stripped. namespaces limits the cache (and so the operator) to those
// namespaces; empty means all.
func CacheOptions(namespaces []string, serviceMonitors bool) cache.Options {
	managed := cache.ByObject{Label: labels.SelectorFromSet(labels.Set{render.LabelManagedBy: FieldManager})}
	byObject := map[client.Object]cache.ByObject{
		&appsv1.StatefulSet{}:                    managed,
		&corev1.Service{}:                        managed,
		&corev1.ConfigMap{}:                      managed,
		&corev1.Secret{}:                         managed,
		&corev1.PersistentVolumeClaim{}:          managed,
		&batchv1.CronJob{}:                       managed,
		&batchv1.Job{}:                           managed,
		&policyv1.PodDisruptionBudget{}:          managed,
		&autoscalingv2.HorizontalPodAutoscaler{}: managed,
		&networkingv1.NetworkPolicy{}:            managed,
	}
	if serviceMonitors {
		sm := &unstructured.Unstructured{}
		sm.SetGroupVersionKind(render.ServiceMonitorGVK)
		byObject[sm] = managed
	}
	opts := cache.Options{
		ByObject:         byObject,
		DefaultTransform: cache.TransformStripManagedFields(),
	}
	if len(namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}

// ClientOptions makes the manager's client read unstructured objects (the
// ServiceMonitors) from the cache too, not from the API server.
func ClientOptions() client.Options {
	return client.Options{Cache: &client.CacheOptions{Unstructured: true}}
}

// ServiceMonitorsServed asks the API server whether the Prometheus
// Operator's ServiceMonitor kind exists. The answer holds for the process's
// life: installing the Prometheus Operator later needs an operator restart.
func ServiceMonitorsServed(cfg *rest.Config) (bool, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return false, fmt.Errorf("discovery client: %w", err)
	}
	resources, err := dc.ServerResourcesForGroupVersion(render.ServiceMonitorGVK.GroupVersion().String())
	if err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("discover %s: %w", render.ServiceMonitorGVK.GroupVersion(), err)
	}
	for _, r := range resources.APIResources {
		if r.Kind == render.ServiceMonitorGVK.Kind {
			return true, nil
		}
	}
	return false, nil
}
