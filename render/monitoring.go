package render

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// ServiceMonitorGVK is the Prometheus Operator's ServiceMonitor kind. The
// reconciler applies the ServiceMonitor only when this kind is served.
var ServiceMonitorGVK = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"}

// buildServiceMonitor renders <db> as a plain object holding exactly the
// fields the operator owns. It selects the headless Service, which lists
// every pod, so each exporter is scraped once.
func buildServiceMonitor(s *spec) *unstructured.Unstructured {
	selector := anyMap(with(SelectorLabels(s.name), LabelServiceRole, serviceRoleHeadless))
	return monitoringObject(s, ServiceMonitorGVK, ServiceMonitorName(s.name), map[string]any{
		"selector": map[string]any{"matchLabels": selector},
		"endpoints": []any{map[string]any{
			"port":     metricsPortName,
			"interval": "30s",
		}},
	})
}

// monitoringObject is a Prometheus Operator object of the Database: the
// monitoring.coreos.com API has no typed apply configurations, so it is a
// plain object with the child's metadata (labels, controller owner
// reference) and the given spec.
func monitoringObject(s *spec, gvk schema.GroupVersionKind, name string, objSpec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{
			"name":      name,
			"namespace": s.namespace,
			"labels":    anyMap(labels(s.db, "monitoring")),
			"ownerReferences": []any{map[string]any{
				"apiVersion":         *ownerReference(s.db).APIVersion,
				"kind":               "Database",
				"name":               s.name,
				"uid":                string(s.db.UID),
				"controller":         true,
				"blockOwnerDeletion": true,
			}},
		},
		"spec": objSpec,
	}}
	u.SetGroupVersionKind(gvk)
	return u
}

func anyMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
