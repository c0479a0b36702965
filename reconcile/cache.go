package reconcile

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
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
// are stripped (but for StatefulSets). namespaces limits the cache (and so
// the operator) to those namespaces; empty means all. served says which monitoring.coreos.com kinds
// exist, and so may be cached.
func CacheOptions(namespaces []string, served MonitoringAPIs) cache.Options {
	managed := cache.ByObject{Label: labels.SelectorFromSet(labels.Set{render.LabelManagedBy: FieldManager})}
	byObject := map[client.Object]cache.ByObject{
		// The database pods: their roles, readiness and agents' reports.
		&corev1.Pod{}:            managed,
		&corev1.ServiceAccount{}: managed,
		&rbacv1.Role{}:           managed,
		&rbacv1.RoleBinding{}:    managed,
		// With its managed fields: they tell another writer of the
		// operator's fields (see conflicts.go).
		&appsv1.StatefulSet{}:                    {Label: managed.Label, Transform: keepManagedFields},
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
	for _, gvk := range served.kinds() {
		byObject[unstructuredObject(gvk)] = managed
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

// keepManagedFields is a cache transform that changes nothing, for the
// kinds whose managed fields the reconciler reads.
func keepManagedFields(obj any) (any, error) { return obj, nil }

// ClientOptions makes the manager's client read unstructured objects (the
// ServiceMonitors and PrometheusRules) from the cache too, not from the API
// server.
func ClientOptions() client.Options {
	return client.Options{Cache: &client.CacheOptions{Unstructured: true}}
}

// MonitoringAPIs says which of the Prometheus Operator's kinds the API
// server serves. The operator asks once at start (MonitoringServed): the
// answer holds for the process's life, so installing the Prometheus
// Operator later needs an operator restart.
type MonitoringAPIs struct {
	// ServiceMonitors is true when monitoring.coreos.com/v1 ServiceMonitor
	// is served.
	ServiceMonitors bool
	// PrometheusRules is true when monitoring.coreos.com/v1 PrometheusRule
	// is served.
	PrometheusRules bool
}

// unstructuredObject is an empty object of gvk, for caches and watches.
func unstructuredObject(gvk schema.GroupVersionKind) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	return u
}

// kinds lists the served kinds.
func (m MonitoringAPIs) kinds() []schema.GroupVersionKind {
	var out []schema.GroupVersionKind
	if m.ServiceMonitors {
		out = append(out, render.ServiceMonitorGVK)
	}
	if m.PrometheusRules {
		out = append(out, render.PrometheusRuleGVK)
	}
	return out
}

// MonitoringServed asks the API server which monitoring.coreos.com kinds
// exist; each is detected on its own (an installation may carry one CRD and
// not the other), from one discovery request.
func MonitoringServed(cfg *rest.Config) (MonitoringAPIs, error) {
	kinds, err := servedKinds(cfg, render.ServiceMonitorGVK.GroupVersion())
	if err != nil {
		return MonitoringAPIs{}, err
	}
	return MonitoringAPIs{
		ServiceMonitors: kinds[render.ServiceMonitorGVK.Kind],
		PrometheusRules: kinds[render.PrometheusRuleGVK.Kind],
	}, nil
}

// KindServed asks discovery whether the API server serves gvk.
func KindServed(cfg *rest.Config, gvk schema.GroupVersionKind) (bool, error) {
	kinds, err := servedKinds(cfg, gvk.GroupVersion())
	return kinds[gvk.Kind], err
}

// servedKinds asks discovery which kinds of gv the API server serves; none
// when it does not serve gv at all.
func servedKinds(cfg *rest.Config, gv schema.GroupVersion) (map[string]bool, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("discovery client: %w", err)
	}
	resources, err := dc.ServerResourcesForGroupVersion(gv.String())
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("discover %s: %w", gv, err)
	}
	kinds := map[string]bool{}
	for _, r := range resources.APIResources {
		kinds[r.Kind] = true
	}
	return kinds, nil
}
