package reconcile

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

// FieldManager is the one field manager every write of the operator uses,
// with forced ownership: the operator owns the fields it applies.
const FieldManager = "database-operator"

// apply is the operator's single write path for children and status: a
// server-side apply under FieldManager with forced ownership. The server
// writes its answer back into obj, so callers can read the applied object's
// status from it; obj must be a fresh apply configuration each time.
func apply(ctx context.Context, c client.Client, obj runtime.ApplyConfiguration) error {
	return c.Apply(ctx, obj, client.FieldOwner(FieldManager), client.ForceOwnership)
}

// applyUnforced applies without forcing ownership: the one exception,
// while the operator backs off a field conflict (conflicts.go), where a
// conflict error is the answer sought.
func applyUnforced(ctx context.Context, c client.Client, obj runtime.ApplyConfiguration) error {
	return c.Apply(ctx, obj, client.FieldOwner(FieldManager))
}

// applyStatus applies a Database status through the status subresource.
func applyStatus(ctx context.Context, c client.Client, obj runtime.ApplyConfiguration) error {
	return c.Status().Apply(ctx, obj, client.FieldOwner(FieldManager), client.ForceOwnership)
}

// child is one rendered object, with what prune needs to know about it.
type child struct {
	kind string
	name string
	// ac is the apply configuration to apply.
	ac runtime.ApplyConfiguration
}

// ownedKind is a kind of child the Database controls, and so may prune.
type ownedKind struct {
	kind string
	// list returns an empty list object of the kind, for the cache.
	list func() client.ObjectList
}

var (
	kindStatefulSet             = ownedKind{"StatefulSet", func() client.ObjectList { return &appsv1.StatefulSetList{} }}
	kindService                 = ownedKind{"Service", func() client.ObjectList { return &corev1.ServiceList{} }}
	kindConfigMap               = ownedKind{"ConfigMap", func() client.ObjectList { return &corev1.ConfigMapList{} }}
	kindPodDisruptionBudget     = ownedKind{"PodDisruptionBudget", func() client.ObjectList { return &policyv1.PodDisruptionBudgetList{} }}
	kindCronJob                 = ownedKind{"CronJob", func() client.ObjectList { return &batchv1.CronJobList{} }}
	kindHorizontalPodAutoscaler = ownedKind{"HorizontalPodAutoscaler", func() client.ObjectList { return &autoscalingv2.HorizontalPodAutoscalerList{} }}
	kindNetworkPolicy           = ownedKind{"NetworkPolicy", func() client.ObjectList { return &networkingv1.NetworkPolicyList{} }}
	kindServiceAccount          = ownedKind{"ServiceAccount", func() client.ObjectList { return &corev1.ServiceAccountList{} }}
	kindRole                    = ownedKind{"Role", func() client.ObjectList { return &rbacv1.RoleList{} }}
	kindRoleBinding             = ownedKind{"RoleBinding", func() client.ObjectList { return &rbacv1.RoleBindingList{} }}
	kindServiceMonitor          = unstructuredKind(render.ServiceMonitorGVK)
	kindPrometheusRule          = unstructuredKind(render.PrometheusRuleGVK)
)

// unstructuredKind is an owned kind without Go types (the Prometheus
// Operator's), listed as unstructured objects of gvk.
func unstructuredKind(gvk schema.GroupVersionKind) ownedKind {
	return ownedKind{gvk.Kind, func() client.ObjectList {
		l := &unstructured.UnstructuredList{}
		l.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		return l
	}}
}

// children lists the rendered objects in apply order: configuration, the
// NetworkPolicy and Services before the pods that use them. The StatefulSet
// is left out: the reconciler applies it separately because storage growth
// may hold it back.
// The backup PVC comes before the CronJob that mounts it. The ServiceMonitor
// and the PrometheusRule are only listed when their kinds are served.
func children(c *render.Children, served MonitoringAPIs) []child {
	var out []child
	add := func(kind, name string, ac runtime.ApplyConfiguration) {
		out = append(out, child{kind: kind, name: name, ac: ac})
	}
	add(kindConfigMap.kind, *c.ConfigMap.Name, c.ConfigMap)
	// The pods' identity before the pods.
	if c.ServiceAccount != nil {
		add(kindServiceAccount.kind, *c.ServiceAccount.Name, c.ServiceAccount)
		add(kindRole.kind, *c.Role.Name, c.Role)
		add(kindRoleBinding.kind, *c.RoleBinding.Name, c.RoleBinding)
	}
	add(kindService.kind, *c.HeadlessService.Name, c.HeadlessService)
	add(kindService.kind, *c.Service.Name, c.Service)
	if c.NetworkPolicy != nil {
		add(kindNetworkPolicy.kind, *c.NetworkPolicy.Name, c.NetworkPolicy)
	}
	if c.ReadService != nil {
		add(kindService.kind, *c.ReadService.Name, c.ReadService)
	}
	if c.PodDisruptionBudget != nil {
		add(kindPodDisruptionBudget.kind, *c.PodDisruptionBudget.Name, c.PodDisruptionBudget)
	}
	if c.BackupPVC != nil {
		add("PersistentVolumeClaim", *c.BackupPVC.Name, c.BackupPVC)
	}
	if c.BackupCronJob != nil {
		add(kindCronJob.kind, *c.BackupCronJob.Name, c.BackupCronJob)
	}
	if c.RestoreCheckCronJob != nil {
		add(kindCronJob.kind, *c.RestoreCheckCronJob.Name, c.RestoreCheckCronJob)
	}
	if c.HorizontalPodAutoscaler != nil {
		add(kindHorizontalPodAutoscaler.kind, *c.HorizontalPodAutoscaler.Name, c.HorizontalPodAutoscaler)
	}
	if c.ServiceMonitor != nil && served.ServiceMonitors {
		add(kindServiceMonitor.kind, c.ServiceMonitor.GetName(), client.ApplyConfigurationFromUnstructured(c.ServiceMonitor))
	}
	if c.PrometheusRule != nil && served.PrometheusRules {
		add(kindPrometheusRule.kind, c.PrometheusRule.GetName(), client.ApplyConfigurationFromUnstructured(c.PrometheusRule))
	}
	return out
}

func (r *Reconciler) applyChildren(ctx context.Context, db *databasev1.Database, list []child) error {
	for _, ch := range list {
		if err := r.apply(ctx, db, ch.kind, ch.name, ch.ac); err != nil {
			return fmt.Errorf("apply %s %s: %w", ch.kind, ch.name, err)
		}
	}
	return nil
}

// apply applies a child of db and notes the resourceVersion it answered,
// so the watch event of this write is known for an echo.
func (r *Reconciler) apply(ctx context.Context, db *databasev1.Database, kind, name string, ac runtime.ApplyConfiguration) error {
	return r.applyAs(ctx, db, kind, name, ac, apply)
}

// applyAs is apply with the given way of applying (forced or not).
func (r *Reconciler) applyAs(ctx context.Context, db *databasev1.Database, kind, name string, ac runtime.ApplyConfiguration,
	how func(context.Context, client.Client, runtime.ApplyConfiguration) error) error {
	if err := how(ctx, r.Client, ac); err != nil {
		return err
	}
	r.echoes.wrote(db, kind, name, resourceVersionOf(ac))
	return nil
}
