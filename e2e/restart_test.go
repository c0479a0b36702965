package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

// Log lines of controller-runtime and client-go that tell what an operator
// process is doing.
const (
	logWorkersStarted = "Starting workers"
	logControllerUp   = "Starting Controller"
	logLeaseAttempt   = "Attempting to acquire leader lease"
	logLeaseAcquired  = "Successfully acquired lease"
)

// The leader election Lease, out of cluster (README, "Run it").
const (
	leaseNamespace = "default"
	leaseName      = "database-operator.database.example.com"
	// leaseDuration is the operator's LeaseDuration (cmd/database-operator: 8s, so a
	// standby takes over a failover within it).
	leaseDuration = 8 * time.Second
)

// fleetDatabase is the i-th of the Databases the restart and steady-state
// tests create: both engines, one to three replicas, backups on some and
// metrics on others.
func fleetDatabase(ns string, i int) *databasev1.Database {
	typ := databasev1.MySQL
	if i%2 == 1 {
		typ = databasev1.PostgreSQL
	}
	replicas := int32(1 + i%3)
	var opts []func(*databasev1.Database)
	if i%4 == 0 {
		opts = append(opts, withBackup(farSchedule()))
	}
	if i%5 == 2 {
		opts = append(opts, withMetrics)
	}
	return newDatabase(ns, fmt.Sprintf("db-%02d", i), typ, replicas, opts...)
}

// TestRestartMidway kills the operator (SIGKILL) while it creates the
// children of the first of 10 Databases, creates the rest while it is down,
// and starts it again: every Database converges to Ready, with exactly the
// expected children and nothing duplicated or orphaned.
func TestRestartMidway(t *testing.T) {
	pauseSharedOperator(t)
	g := NewWithT(t)
	ns := newNamespace(t)
	const total, beforeKill = 10, 5

	first := ownOperator(t, "first")
	g.Expect(waitForLog(t.Context(), first, 0, logWorkersStarted, 60*time.Second)).To(Succeed())

	dbs := make([]*databasev1.Database, total)
	for i := range dbs {
		dbs[i] = fleetDatabase(ns, i)
	}
	for _, db := range dbs[:beforeKill] {
		g.Expect(k8s.Create(ctx(), db)).To(Succeed())
	}
	// Kill as soon as the operator is visibly at work.
	g.Eventually(func() error {
		return get(ns, render.StatefulSetName(dbs[0].Name), &appsv1.StatefulSet{})
	}).WithTimeout(appearTimeout).WithPolling(20 * time.Millisecond).Should(Succeed())
	first.kill()
	t.Logf("killed the first operator (%v)", first.waitErr)
	var done []string
	for _, db := range dbs[:beforeKill] {
		if get(ns, render.StatefulSetName(db.Name), &appsv1.StatefulSet{}) == nil {
			done = append(done, db.Name)
		}
	}
	t.Logf("StatefulSets existing when the operator was killed: %v of %d", done, beforeKill)

	for _, db := range dbs[beforeKill:] {
		g.Expect(k8s.Create(ctx(), db)).To(Succeed())
	}
	// Nobody reconciles while the operator is down.
	g.Consistently(func(g Gomega) {
		for _, db := range dbs[beforeKill:] {
			got := getDatabase(g, ns, db.Name)
			g.Expect(got.Status.ObservedGeneration).To(BeZero(), "%s reconciled with no operator running", db.Name)
			g.Expect(get(ns, render.StatefulSetName(db.Name), &appsv1.StatefulSet{})).NotTo(Succeed())
		}
	}).WithTimeout(settle).WithPolling(poll).Should(Succeed())

	second := ownOperator(t, "second")
	start := time.Now()
	for _, db := range dbs {
		waitReady(t, ns, db.Name, *db.Spec.Replicas)
	}
	t.Logf("all %d Databases Ready %s after the restart", total, time.Since(start).Round(time.Millisecond))
	expectExactChildren(g, ns, total)
	// And it stays that way: no late duplicate or prune.
	g.Consistently(func(g Gomega) { expectExactChildren(g, ns, total) }).WithTimeout(settle).WithPolling(time.Second).Should(Succeed())

	g.Expect(second.terminate(35*time.Second)).To(Succeed(), "the operator must exit 0 on SIGTERM")
}

// leaseHolder reads the leader election Lease.
func leaseHolder(g Gomega) *coordinationv1.Lease {
	lease := &coordinationv1.Lease{}
	g.Expect(get(leaseNamespace, leaseName, lease)).To(Succeed())
	return lease
}

func holderOf(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// expectStandby checks that p, while another process leads, has not
// started the controller: it reconciles nothing.
func expectStandby(g Gomega, p *operatorProcess) {
	log := p.logText()
	g.Expect(log).To(ContainSubstring(logLeaseAttempt), "%s never tried for the lease", p.name)
	for _, line := range []string{logLeaseAcquired, logControllerUp, logWorkersStarted} {
		g.Expect(log).NotTo(ContainSubstring(line), "%s, a standby, logged %q:\n%s", p.name, line, tail(log, 20))
	}
}

// TestLeaderElection runs operators with --leader-elect: only the Lease
// holder reconciles; on SIGTERM the leader gives the Lease up and the
// standby takes over within the lease duration; when a leader dies without
// giving it up (SIGKILL), nothing is reconciled until the Lease expires and
// the standby acquires it.
func TestLeaderElection(t *testing.T) {
	pauseSharedOperator(t)
	g := NewWithT(t)
	ns := newNamespace(t)

	// A stale Lease from an earlier run may need to expire first.
	a := ownOperator(t, "a", "--leader-elect")
	g.Expect(waitForLog(t.Context(), a, 0, logLeaseAcquired, leaseDuration+15*time.Second)).To(Succeed())
	g.Expect(waitForLog(t.Context(), a, 0, logWorkersStarted, 30*time.Second)).To(Succeed())
	b := ownOperator(t, "b", "--leader-elect")
	g.Expect(waitForLog(t.Context(), b, 0, logLeaseAttempt, 30*time.Second)).To(Succeed())

	lease := leaseHolder(g)
	holderA := holderOf(lease)
	g.Expect(holderA).NotTo(BeEmpty())
	g.Expect(lease.Spec.LeaseDurationSeconds).To(HaveValue(BeEquivalentTo(leaseDuration.Seconds())))
	t.Logf("a holds the Lease as %s", holderA)

	t.Log("the leader reconciles; the standby does not")
	g.Expect(k8s.Create(ctx(), newDatabase(ns, "while-a-leads", databasev1.MySQL, 1))).To(Succeed())
	waitReady(t, ns, "while-a-leads", 1)
	g.Expect(holderOf(leaseHolder(g))).To(Equal(holderA))
	expectStandby(g, b)

	t.Log("SIGTERM the leader")
	stopped := time.Now()
	g.Expect(a.terminate(35*time.Second)).To(Succeed(), "the leader must exit 0 on SIGTERM")
	g.Expect(waitForLog(t.Context(), b, 0, logLeaseAcquired, leaseDuration-time.Since(stopped))).To(Succeed(),
		"the standby must take over within the lease duration (%s) of the leader's SIGTERM", leaseDuration)
	t.Logf("b took over %s after the leader's SIGTERM", time.Since(stopped).Round(time.Millisecond))
	holderB := holderOf(leaseHolder(g))
	g.Expect(holderB).NotTo(BeEmpty())
	g.Expect(holderB).NotTo(Equal(holderA))
	g.Expect(k8s.Create(ctx(), newDatabase(ns, "after-a-stopped", databasev1.PostgreSQL, 2))).To(Succeed())
	waitReady(t, ns, "after-a-stopped", 2)

	t.Log("SIGKILL the new leader: the Lease stays held until it expires")
	c := ownOperator(t, "c", "--leader-elect")
	g.Expect(waitForLog(t.Context(), c, 0, logLeaseAttempt, 30*time.Second)).To(Succeed())
	expectStandby(g, c)
	b.kill()
	killed := time.Now()
	lease = leaseHolder(g)
	g.Expect(holderOf(lease)).To(Equal(holderB))
	expires := lease.Spec.RenewTime.Add(time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second)
	g.Expect(k8s.Create(ctx(), newDatabase(ns, "while-leaderless", databasev1.MySQL, 1))).To(Succeed())
	if quiet := time.Until(expires) - time.Second; quiet > 0 {
		g.Consistently(func(g Gomega) {
			db := getDatabase(g, ns, "while-leaderless")
			g.Expect(db.Status.ObservedGeneration).To(BeZero(), "reconciled while the dead leader still held the Lease")
			g.Expect(get(ns, render.StatefulSetName("while-leaderless"), &appsv1.StatefulSet{})).NotTo(Succeed())
			g.Expect(c.logText()).NotTo(ContainSubstring(logLeaseAcquired))
		}).WithTimeout(quiet).WithPolling(poll).Should(Succeed())
	}
	// client-go's candidate takes an unrenewed Lease one lease duration
	// after it last saw it change, at its next retry (2 s, with jitter).
	g.Expect(waitForLog(t.Context(), c, 0, logLeaseAcquired, leaseDuration+10*time.Second-time.Since(killed))).To(Succeed())
	t.Logf("c took over %s after the leader was killed", time.Since(killed).Round(time.Millisecond))
	holderC := holderOf(leaseHolder(g))
	g.Expect(holderC).NotTo(BeEmpty())
	g.Expect(holderC).NotTo(Or(Equal(holderA), Equal(holderB)))
	waitReady(t, ns, "while-leaderless", 1)
	waitReady(t, ns, "after-a-stopped", 2)
	waitReady(t, ns, "while-a-leads", 1)

	g.Expect(c.terminate(35*time.Second)).To(Succeed(), "the leader must exit 0 on SIGTERM")
	g.Expect(strings.Count(a.logText(), logLeaseAcquired)).To(Equal(1))
}
