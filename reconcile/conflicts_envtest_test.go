package reconcile_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/reconcile"
)

// Another field manager force-applies the StatefulSet's replicas in a
// loop. The operator does not fight for ever: it takes the field back at
// once the first time, then ever more rarely, reports Degraded naming the
// other manager and the field, and once the other stops, takes the field
// back within the backoff's cap and is fine again.
func TestFieldConflictBacksOff(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)
	db := createDatabase(ctx, g, newDatabase(ns, "pg", withReplicas(2)))
	key := client.ObjectKeyFromObject(db)
	waitObserved(ctx, g, key, conditionIs(databasev1.ConditionDegraded, metav1.ConditionFalse))

	stsKey := client.ObjectKey{Namespace: ns, Name: "pg"}
	takenBack := 0
	fightFor := 12 * time.Second
	deadline := time.Now().Add(fightFor)
	for time.Now().Before(deadline) {
		var sts appsv1.StatefulSet
		g.Expect(env.Client.Get(ctx, stsKey, &sts)).To(Succeed())
		if *sts.Spec.Replicas != 5 {
			takenBack++
		}
		ac := appsv1ac.StatefulSet("pg", ns).WithSpec(appsv1ac.StatefulSetSpec().WithReplicas(5))
		g.Expect(env.Client.Apply(ctx, ac, client.FieldOwner("fighter"), client.ForceOwnership)).To(Succeed())
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the operator took spec.replicas back %d times in %s of a fight every 100ms", takenBack, fightFor)
	// Unbounded, it would be about every round (~100); backing off 0, 2,
	// 4, 8 s it is 4 or 5 (the first Get sees the operator's value).
	g.Expect(takenBack).To(BeNumerically(">=", 2), "the operator does take the field back")
	g.Expect(takenBack).To(BeNumerically("<=", 6), "the operator backs off instead of fighting")

	db = waitObserved(ctx, g, key, conditionIs(databasev1.ConditionDegraded, metav1.ConditionTrue, "FieldConflict"))
	msg := condition(g, db, databasev1.ConditionDegraded).Message
	g.Expect(msg).To(ContainSubstring(`StatefulSet pg: manager "fighter" holds spec.replicas`))

	// The other writer stops: within the cap (20 s) the field is the
	// operator's again and the Database is fine.
	stopped := time.Now()
	g.Eventually(func(g Gomega) {
		var sts appsv1.StatefulSet
		g.Expect(env.Client.Get(ctx, stsKey, &sts)).To(Succeed())
		g.Expect(*sts.Spec.Replicas).To(BeEquivalentTo(2))
		var d databasev1.Database
		g.Expect(env.Client.Get(ctx, key, &d)).To(Succeed())
		g.Expect(condition(g, &d, databasev1.ConditionDegraded).Status).To(Equal(metav1.ConditionFalse))
	}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	t.Logf("converged %s after the other writer stopped", time.Since(stopped).Round(100*time.Millisecond))
	var sts appsv1.StatefulSet
	g.Expect(env.Client.Get(ctx, stsKey, &sts)).To(Succeed())
	for _, mf := range sts.ManagedFields {
		if mf.Manager == reconcile.FieldManager && mf.Subresource == "" {
			g.Expect(string(mf.FieldsV1.Raw)).To(ContainSubstring(`"f:replicas"`), "the operator owns replicas again")
		}
	}
}
