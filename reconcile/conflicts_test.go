package reconcile

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
)

func TestForeignOwners(t *testing.T) {
	desired := appsv1ac.StatefulSet("orders", "shop").
		WithLabels(map[string]string{"app": "orders"}).
		WithSpec(appsv1ac.StatefulSetSpec().WithReplicas(3).WithServiceName("orders-headless"))
	entry := func(manager, fields string, sub string) metav1.ManagedFieldsEntry {
		return metav1.ManagedFieldsEntry{Manager: manager, Operation: metav1.ManagedFieldsOperationApply,
			Subresource: sub, FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(fields)}}
	}
	for name, tc := range map[string]struct {
		managed []metav1.ManagedFieldsEntry
		want    []fieldConflict
	}{
		"nobody else": {managed: []metav1.ManagedFieldsEntry{
			entry(FieldManager, `{"f:spec":{"f:replicas":{}}}`, ""),
		}},
		"another manager's own fields": {managed: []metav1.ManagedFieldsEntry{
			entry("kubectl-rollout", `{"f:spec":{"f:template":{"f:metadata":{"f:annotations":{"f:kubectl.kubernetes.io/restartedAt":{}}}}}}`, ""),
		}},
		"status writers are not conflicts": {managed: []metav1.ManagedFieldsEntry{
			entry("kube-controller-manager", `{"f:status":{"f:replicas":{}}}`, "status"),
		}},
		"replicas and a label taken": {
			managed: []metav1.ManagedFieldsEntry{
				entry(FieldManager, `{"f:spec":{"f:serviceName":{}}}`, ""),
				entry("fighter", `{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{}}}`, ""),
			},
			want: []fieldConflict{{manager: "fighter", fields: []string{"metadata.labels.app", "spec.replicas"}}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := foreignOwners(tc.managed, desired)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tc.want))
		})
	}
}

func TestDecideConflict(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	fight := []fieldConflict{{manager: "fighter", fields: []string{"spec.replicas"}}}
	type step struct {
		at    time.Duration
		found []fieldConflict
		// want
		apply    bool
		unforced bool
		retry    time.Duration
		degraded bool
		started  bool
	}
	for name, steps := range map[string][]step{
		"no conflict applies": {{at: 0, apply: true}},
		"a one-off edit is taken back at once, silently": {
			{at: 0, found: fight, apply: true},
			{at: time.Minute, apply: true},
		},
		"a fight backs off, doubling to the cap, and reports Degraded": {
			{at: 0, found: fight, apply: true},
			{at: 100 * time.Millisecond, found: fight, retry: 1900 * time.Millisecond, degraded: true},
			{at: 2 * time.Second, found: fight, apply: true, retry: 4 * time.Second, degraded: true, started: true},
			{at: 3 * time.Second, found: fight, retry: 3 * time.Second, degraded: true},
			{at: 6 * time.Second, found: fight, apply: true, retry: 8 * time.Second, degraded: true},
			{at: 14 * time.Second, found: fight, apply: true, retry: 16 * time.Second, degraded: true},
			{at: 30 * time.Second, found: fight, apply: true, retry: 20 * time.Second, degraded: true},
			{at: 50 * time.Second, found: fight, apply: true, retry: 20 * time.Second, degraded: true},
		},
		"while backing off, a cache that shows no conflict gets an unforced apply, not a take-back": {
			{at: 0, found: fight, apply: true},
			// The echo of the take-back: no conflict in the cache, but the
			// other manager may have written since.
			{at: 50 * time.Millisecond, apply: true, unforced: true, retry: 1950 * time.Millisecond},
			{at: 2 * time.Second, found: fight, apply: true, retry: 4 * time.Second, degraded: true, started: true},
			{at: 2100 * time.Millisecond, apply: true, unforced: true, retry: 3900 * time.Millisecond, degraded: true},
			{at: 6 * time.Second, found: fight, apply: true, retry: 8 * time.Second, degraded: true},
			{at: 14 * time.Second, apply: true},
		},
		"the fight ends: the next reconcile is fine, and the strikes are forgotten later": {
			{at: 0, found: fight, apply: true},
			{at: 2 * time.Second, found: fight, apply: true, retry: 4 * time.Second, degraded: true, started: true},
			{at: 7 * time.Second, apply: true},
			{at: 10 * time.Minute, apply: true},
			{at: 10*time.Minute + time.Second, found: fight, apply: true},
		},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			var state conflictState
			for i, s := range steps {
				var d conflictDecision
				state, d = decideConflict(state, s.found, t0.Add(s.at), "StatefulSet orders")
				g.Expect(d.apply).To(Equal(s.apply), "step %d: apply", i)
				g.Expect(d.unforced).To(Equal(s.unforced), "step %d: unforced", i)
				g.Expect(d.retryAfter).To(Equal(s.retry), "step %d: retryAfter", i)
				g.Expect(d.problem != nil).To(Equal(s.degraded), "step %d: degraded", i)
				g.Expect(d.started).To(Equal(s.started), "step %d: started", i)
				if d.problem != nil {
					g.Expect(d.problem.reason).To(Equal("FieldConflict"))
					g.Expect(d.problem.message).To(ContainSubstring(`StatefulSet orders: manager "fighter" holds spec.replicas`))
				}
			}
		})
	}
}
