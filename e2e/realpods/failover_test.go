package realpods

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/instance"
	"github.com/example/database-operator/render"
)

// Targets of the issue, for PostgreSQL on real pods: the time from a fault
// to the first successful write through <db>, at the 95th percentile.
const (
	targetServerOrPod = 10 * time.Second
	targetNode        = 30 * time.Second
	targetSwitchover  = 3 * time.Second
	// settleTimeout bounds the return to one primary and every replica
	// streaming after a fault (the old primary rejoins).
	settleTimeout = 3 * time.Minute
)

// failoverRuns is how often each fault is run: FAILOVER_RUNS (make
// bench-failover sets 10), else 1: make test's short version, which keeps
// the suite's cold run in CI's time (make bench-failover measures the
// percentiles).
func failoverRuns(t *testing.T) int {
	if v := os.Getenv("FAILOVER_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("FAILOVER_RUNS=%q: want a positive number", v)
		}
		return n
	}
	return 1
}

// A fault breaks the current primary; node says it is its node. arrange,
// when set, runs first, outside the measurement, and returns the primary
// the fault then breaks.
type fault struct {
	name    string
	target  time.Duration
	node    bool
	arrange func(t *testing.T, ns, db string, w *writer) string
	inject  func(t *testing.T, ns, primary string)
}

// stopNode stops the node the pod runs on; a run that fails half-way must
// not leave it stopped for the tests after it (node-start of a running
// node is a no-op).
func stopNode(t *testing.T, ns, pod string) {
	n := nodeOrdinal(t, ns, pod)
	t.Cleanup(func() { clusterScript(t, "node-start", n) })
	clusterScript(t, "node-stop", n)
}

var faults = []fault{
	{name: "server killed", target: targetServerOrPod, inject: func(t *testing.T, ns, primary string) {
		// The postmaster, the agent's child, killed from the host: the
		// agent starts it again, or the operator fails over.
		killServer(t, ns, primary)
	}},
	{name: "pod deleted", target: targetServerOrPod, inject: func(t *testing.T, ns, primary string) {
		NewWithT(t).Expect(k8s.Delete(context.Background(), getPod(t, ns, primary))).To(Succeed())
	}},
	{name: "node lost", target: targetNode, node: true, inject: stopNode},
	{name: "node+leader lost", target: targetNode, node: true, arrange: primaryWithTheLeader, inject: stopNode},
}

// TestPostgresFailover breaks the primary of a three-pod Database, in
// async and in sync mode, while a client pod writes a row every 100 ms
// through <db>: its server killed, its pod deleted, its node lost. Each
// run measures the time from the fault to the first acknowledged write,
// then waits until there is exactly one writable primary, the one
// status.currentPrimary names, and every other pod streams from it (the old
// primary rejoined). At the end every acknowledged row must be on the
// primary in sync mode; async mode reports what it lost. A planned
// switchover measures its write gap too.
func TestPostgresFailover(t *testing.T) {
	runs := failoverRuns(t)
	var table []string
	defer func() {
		// make bench-failover prints this table from the log.
		t.Logf("failover results (%d runs per fault; first write through <db> after the fault):\n%s", runs,
			strings.Join(append([]string{fmt.Sprintf("%-6s %-16s %5s %8s %8s %8s", "mode", "fault", "runs", "p50", "p95", "target")}, table...), "\n"))
	}()
	for _, mode := range []databasev1.ReplicationMode{databasev1.ReplicationAsync, databasev1.ReplicationSync} {
		t.Run(string(mode), func(t *testing.T) {
			ns := newNamespace(t, "failover-"+string(mode))
			const name = "ha"
			db := &databasev1.Database{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec: databasev1.DatabaseSpec{
					Type: databasev1.PostgreSQL, Version: "17", Replicas: ptr.To[int32](3),
					Storage:     databasev1.StorageSpec{Size: resource.MustParse("1Gi")},
					Environment: databasev1.Development,
					Replication: &databasev1.ReplicationSpec{Mode: mode},
				},
			}
			createDatabase(t, db)
			waitDatabaseReady(t, ns, name, createTimeout)
			settle(t, ns, name)
			// Losing a node must lose one instance: in sync mode the
			// operator rightly refuses to fail over when a replica that
			// may hold the only copy of a commit went down with the
			// primary.
			nodes := map[string]bool{}
			for i := 0; i < 3; i++ {
				nodes[nodeOrdinal(t, ns, fmt.Sprintf("%s-%d", name, i))] = true
			}
			NewWithT(t).Expect(nodes).To(HaveLen(3), "the three pods run on three nodes")
			c := newClient(t, ns, name, false)
			_, err := c.viaURI("CREATE TABLE ticks (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())")
			NewWithT(t).Expect(err).NotTo(HaveOccurred())
			w := startWriter(t, ns, name)

			gaps := map[string][]time.Duration{}
			for _, f := range faults {
				for run := 1; run <= runs; run++ {
					primary := currentPrimary(t, ns, name)
					if f.arrange != nil {
						primary = f.arrange(t, ns, name, w)
					}
					start := time.Now()
					f.inject(t, ns, primary)
					gap := w.gapAfter(t, start, 2*time.Minute)
					if f.node {
						clusterScript(t, "node-start", nodeOrdinal(t, ns, primary))
					}
					now := settle(t, ns, name)
					gaps[f.name] = append(gaps[f.name], gap)
					moved := "no failover"
					if at, ok := failedOverAt(t, ns, start); ok {
						moved = "promoted after " + at.Sub(start).Round(100*time.Millisecond).String()
					}
					measured(t, "%s mode: %s (run %d, primary %s): first write after %s (%s); primary now %s",
						mode, f.name, run, primary, gap.Round(100*time.Millisecond), moved, now)
				}
			}
			for run := 1; run <= runs; run++ {
				gap := switchover(t, ns, name, w)
				gaps["switchover"] = append(gaps["switchover"], gap)
			}

			rolloutGap := rollout(t, ns, name, w)
			scaleDownGap := scaleDown(t, ns, name, w)

			acked, lost := w.lost(t, c)
			for _, f := range faults {
				p50, p95 := percentiles(gaps[f.name])
				measured(t, "%s mode: %s: first write p50 %s, p95 %s over %d runs (target p95 <= %s)",
					mode, f.name, p50.Round(100*time.Millisecond), p95.Round(100*time.Millisecond), len(gaps[f.name]), f.target)
				table = append(table, fmt.Sprintf("%-6s %-16s %5d %8s %8s %8s", mode, f.name, len(gaps[f.name]),
					p50.Round(100*time.Millisecond), p95.Round(100*time.Millisecond), f.target))
				NewWithT(t).Expect(p95).To(BeNumerically("<=", f.target), "%s: p95 of the time to the first write", f.name)
			}
			p50, p95 := percentiles(gaps["switchover"])
			measured(t, "%s mode: switchover: write gap p50 %s, p95 %s over %d runs (target <= %s)",
				mode, p50.Round(100*time.Millisecond), p95.Round(100*time.Millisecond), runs, targetSwitchover)
			table = append(table, fmt.Sprintf("%-6s %-16s %5d %8s %8s %8s", mode, "switchover", runs,
				p50.Round(100*time.Millisecond), p95.Round(100*time.Millisecond), targetSwitchover))
			NewWithT(t).Expect(p95).To(BeNumerically("<=", targetSwitchover), "switchover write gap")
			table = append(table, fmt.Sprintf("%-6s %-16s %5d %8s %8s %8s", mode, "rollout", 1,
				rolloutGap.Round(100*time.Millisecond), rolloutGap.Round(100*time.Millisecond), targetSwitchover))
			NewWithT(t).Expect(rolloutGap).To(BeNumerically("<=", targetSwitchover), "a rollout's longest write gap is its one switchover's")
			// The issue sets no target for a scale-down's gap: its switchover
			// is one, and in sync mode the removed pod may have been the
			// one standby connected to the new primary (3.7 s seen), so it
			// is held to a restarted pod's bound.
			table = append(table, fmt.Sprintf("%-6s %-16s %5d %8s %8s %8s", mode, "scale-down", 1,
				scaleDownGap.Round(100*time.Millisecond), scaleDownGap.Round(100*time.Millisecond), targetServerOrPod))
			NewWithT(t).Expect(scaleDownGap).To(BeNumerically("<=", targetServerOrPod), "a scale-down's longest write gap")
			measured(t, "%s mode: acknowledged rows lost: %d of %d", mode, lost, acked)
			table = append(table, fmt.Sprintf("%-6s acknowledged rows lost: %d of %d", mode, lost, acked))
			if mode == databasev1.ReplicationSync {
				NewWithT(t).Expect(lost).To(BeZero(), "sync mode loses no acknowledged commit")
			}
		})
	}
}

// primaryWithTheLeader makes the primary the pod on the node of the
// operator's leader (a switchover, unless it already is), so that losing
// that node loses both: the other operator replica, on another node, must
// take the lease over and then fail over.
func primaryWithTheLeader(t *testing.T, ns, db string, w *writer) string {
	t.Helper()
	var lease coordinationv1.Lease
	NewWithT(t).Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: operatorNamespace, Name: "database-operator.database.example.com"}, &lease)).To(Succeed())
	NewWithT(t).Expect(lease.Spec.HolderIdentity).NotTo(BeNil())
	var operators corev1.PodList
	NewWithT(t).Expect(k8s.List(context.Background(), &operators, client.InNamespace(operatorNamespace), client.MatchingLabels{"app.kubernetes.io/name": "database-operator"})).To(Succeed())
	var leaderNode string
	nodes := map[string]bool{}
	for _, p := range operators.Items {
		nodes[p.Spec.NodeName] = true
		if strings.HasPrefix(*lease.Spec.HolderIdentity, p.Name) {
			leaderNode = p.Spec.NodeName
		}
	}
	NewWithT(t).Expect(leaderNode).NotTo(BeEmpty(), "the leader %s is one of the operator's pods", *lease.Spec.HolderIdentity)
	NewWithT(t).Expect(nodes).To(HaveLen(2), "the operator's two replicas run on two nodes (the chart's default anti-affinity)")
	for i := 0; i < 3; i++ {
		pod := fmt.Sprintf("%s-%d", db, i)
		if getPod(t, ns, pod).Spec.NodeName != leaderNode {
			continue
		}
		if pod != currentPrimary(t, ns, db) {
			switchoverTo(t, ns, db, w, pod)
		}
		measured(t, "the primary %s and the operator's leader %s run on %s", pod, *lease.Spec.HolderIdentity, leaderNode)
		return pod
	}
	t.Fatalf("no pod of %s runs on the leader's node %s", db, leaderNode)
	return ""
}

// switchover asks for one to the most advanced replica and returns the
// write gap it caused.
func switchover(t *testing.T, ns, db string, w *writer) time.Duration {
	return switchoverTo(t, ns, db, w, "any")
}

// switchoverTo asks for one to the target ("any": the most advanced
// replica) and returns the write gap it caused.
func switchoverTo(t *testing.T, ns, db string, w *writer, target string) time.Duration {
	t.Helper()
	before := currentPrimary(t, ns, db)
	start := time.Now()
	mustKubectl(t, "-n", ns, "annotate", "database", db, databasev1.SwitchoverAnnotation+"="+target)
	var after string
	NewWithT(t).Eventually(func(g Gomega) {
		var d databasev1.Database
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: db}, &d)).To(Succeed())
		g.Expect(d.Annotations).NotTo(HaveKey(databasev1.SwitchoverAnnotation), "the request is handled")
		g.Expect(d.Status.CurrentPrimary).NotTo(Equal(before))
		if target != "any" {
			g.Expect(d.Status.CurrentPrimary).To(Equal(target), "the switchover went to the pod asked for")
		}
		after = d.Status.CurrentPrimary
	}).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
	gap := w.gapAfter(t, start, time.Minute)
	settle(t, ns, db)
	measured(t, "switchover from %s to %s: write gap %s", before, after, gap.Round(100*time.Millisecond))
	return gap
}

// rollout changes the pod template (the CPU request) and waits until every
// pod runs it; it checks that exactly one switchover happened, the primary
// restarted last, and returns the longest write gap.
func rollout(t *testing.T, ns, db string, w *writer) time.Duration {
	t.Helper()
	before := currentPrimary(t, ns, db)
	start := time.Now()
	patch := []byte(`{"spec":{"resources":{"requests":{"cpu":"110m","memory":"256Mi"},"limits":{"cpu":"500m","memory":"512Mi"}}}}`)
	d := &databasev1.Database{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: db}}
	NewWithT(t).Expect(k8s.Patch(context.Background(), d, client.RawPatch(types.MergePatchType, patch))).To(Succeed())
	NewWithT(t).Eventually(func(g Gomega) {
		var sts appsv1.StatefulSet
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: db}, &sts)).To(Succeed())
		g.Expect(sts.Spec.Template.Spec.Containers[0].Resources.Requests.Cpu().String()).To(Equal("110m"), "the operator applied the new template")
		g.Expect(sts.Status.ObservedGeneration).To(Equal(sts.Generation))
		for i := 0; i < 3; i++ {
			p := getPod(t, ns, fmt.Sprintf("%s-%d", db, i))
			g.Expect(p).NotTo(BeNil())
			g.Expect(p.Labels[appsv1.ControllerRevisionHashLabelKey]).To(Equal(sts.Status.UpdateRevision), "pod %s runs the new template", p.Name)
			g.Expect(podReady(p)).To(BeTrue(), "pod %s", p.Name)
		}
	}).WithTimeout(settleTimeout).WithPolling(time.Second).Should(Succeed())
	after := settle(t, ns, db)
	end := time.Now()
	moves := movesSince(t, ns, start)
	NewWithT(t).Expect(moves).To(HaveLen(1), "exactly one switchover per rollout")
	NewWithT(t).Expect(moves[0]).To(HavePrefix("SwitchedOver"))
	NewWithT(t).Expect(after).NotTo(Equal(before), "the old primary handed the role over and restarted last")
	gap := w.longestGap(start, end)
	measured(t, "rollout of 3 pods (primary %s to %s): %s, longest write gap %s", before, after, end.Sub(start).Round(time.Second), gap.Round(100*time.Millisecond))
	return gap
}

// scaleDown moves the primary to the highest ordinal, then scales the
// Database from 3 to 2 pods through its scale subresource, as kubectl
// scale and a HorizontalPodAutoscaler do: the operator must switch over to
// a pod that stays before the StatefulSet removes the primary's. It
// returns the longest write gap from the scale to the settled 2 pods.
func scaleDown(t *testing.T, ns, db string, w *writer) time.Duration {
	t.Helper()
	last := fmt.Sprintf("%s-2", db)
	if currentPrimary(t, ns, db) != last {
		switchoverTo(t, ns, db, w, last)
	}
	start := time.Now()
	mustKubectl(t, "-n", ns, "scale", "database", db, "--replicas=2")
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(getPod(t, ns, last)).To(BeNil(), "pod %s is removed", last)
	}).WithTimeout(settleTimeout).WithPolling(time.Second).Should(Succeed())
	after := settle(t, ns, db)
	end := time.Now()
	NewWithT(t).Expect(after).To(BeElementOf(db+"-0", db+"-1"))
	moves := movesSince(t, ns, start)
	NewWithT(t).Expect(moves).To(HaveLen(1), "one switchover before the primary's pod went")
	NewWithT(t).Expect(moves[0]).To(HavePrefix("SwitchedOver"))
	gap := w.longestGap(start, end)
	measured(t, "scale-down from 3 to 2 pods (primary %s to %s): %s, longest write gap %s", last, after, end.Sub(start).Round(time.Second), gap.Round(100*time.Millisecond))
	return gap
}

// move is a SwitchedOver or FailedOver Event of a Database.
type move struct {
	reason, message string
	at              time.Time
}

// primaryMoves lists the namespace's SwitchedOver and FailedOver Events of
// Databases, each at its event time (events.k8s.io Events, as the operator
// records them, carry microseconds) or else its last timestamp.
func primaryMoves(t *testing.T, ns string) []move {
	t.Helper()
	var events corev1.EventList
	NewWithT(t).Expect(k8s.List(context.Background(), &events, client.InNamespace(ns))).To(Succeed())
	var moves []move
	for _, e := range events.Items {
		if e.InvolvedObject.Kind != "Database" || (e.Reason != "SwitchedOver" && e.Reason != "FailedOver") {
			continue
		}
		at := e.EventTime.Time
		if at.IsZero() {
			at = e.LastTimestamp.Time
		}
		moves = append(moves, move{reason: e.Reason, message: e.Message, at: at})
	}
	return moves
}

// failedOverAt is when the first FailedOver Event since start was recorded.
func failedOverAt(t *testing.T, ns string, start time.Time) (time.Time, bool) {
	t.Helper()
	var first time.Time
	for _, m := range primaryMoves(t, ns) {
		if m.reason == "FailedOver" && !m.at.Before(start) && (first.IsZero() || m.at.Before(first)) {
			first = m.at
		}
	}
	return first, !first.IsZero()
}

// movesSince are the primary's moves since start (to the second, the
// precision of a last timestamp), as "Reason: message".
func movesSince(t *testing.T, ns string, start time.Time) []string {
	t.Helper()
	var out []string
	for _, m := range primaryMoves(t, ns) {
		if !m.at.Before(start.Truncate(time.Second)) {
			out = append(out, m.reason+": "+m.message)
		}
	}
	return out
}

// currentPrimary is status.currentPrimary.
func currentPrimary(t *testing.T, ns, db string) string {
	t.Helper()
	var d databasev1.Database
	NewWithT(t).Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: db}, &d)).To(Succeed())
	NewWithT(t).Expect(d.Status.CurrentPrimary).NotTo(BeEmpty())
	return d.Status.CurrentPrimary
}

// settle waits until exactly one pod accepts writes, status.currentPrimary
// names it and the read-write Service selects it alone, and every other
// pod is Ready and streams from it; it returns the primary.
func settle(t *testing.T, ns, db string) string {
	t.Helper()
	var primary string
	NewWithT(t).Eventually(func(g Gomega) {
		var d databasev1.Database
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: db}, &d)).To(Succeed())
		primary = d.Status.CurrentPrimary
		pods := int(ptr.Deref(d.Spec.Replicas, 1))
		var writable, streaming []string
		for i := 0; i < pods; i++ {
			pod := fmt.Sprintf("%s-%d", db, i)
			p := getPod(t, ns, pod)
			g.Expect(p).NotTo(BeNil(), "pod %s", pod)
			g.Expect(podReady(p)).To(BeTrue(), "pod %s is Ready", pod)
			g.Expect(p.Labels[instance.LabelRole]).To(Equal(map[bool]string{true: "primary", false: "replica"}[pod == primary]), "pod %s's role label", pod)
			out, err := superuserSQL(ns, pod, "SELECT pg_is_in_recovery(), (SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming')")
			g.Expect(err).NotTo(HaveOccurred(), "pod %s: %s", pod, out)
			switch out {
			case "f|0":
				writable = append(writable, pod)
			case "t|1":
				streaming = append(streaming, pod)
			}
		}
		g.Expect(writable).To(Equal([]string{primary}), "exactly one writable primary, status.currentPrimary")
		g.Expect(streaming).To(HaveLen(pods-1), "every other pod streams")
		var slices discoveryv1.EndpointSliceList
		g.Expect(k8s.List(context.Background(), &slices, client.InNamespace(ns),
			client.MatchingLabels{discoveryv1.LabelServiceName: render.ServiceName(db)})).To(Succeed())
		var ips []string
		for _, s := range slices.Items {
			for _, e := range s.Endpoints {
				ips = append(ips, e.Addresses...)
			}
		}
		g.Expect(ips).To(Equal([]string{getPod(t, ns, primary).Status.PodIP}), "the read-write Service selects the primary alone")
	}).WithTimeout(settleTimeout).WithPolling(time.Second).Should(Succeed())
	return primary
}

// nodeOrdinal is N of the node-N the pod runs on.
func nodeOrdinal(t *testing.T, ns, pod string) string {
	t.Helper()
	node := getPod(t, ns, pod).Spec.NodeName
	n, ok := strings.CutPrefix(node, "node-")
	if !ok {
		t.Fatalf("pod %s runs on %q, not a node-N", pod, node)
	}
	return n
}

// killServer kills the postmaster of a database pod from the host: the
// postgres process whose parent is the agent.
func killServer(t *testing.T, ns, pod string) {
	t.Helper()
	uid := string(getPod(t, ns, pod).UID)
	procs := podProcesses(uid)
	comm := map[int]string{}
	for _, p := range procs {
		comm[p.pid] = p.comm
	}
	for _, p := range procs {
		if p.comm == "postgres" && comm[p.ppid] == "database-agent" {
			NewWithT(t).Expect(killProcess(p.pid)).To(Succeed())
			return
		}
	}
	t.Fatalf("pod %s: no postmaster under the agent among %+v", pod, procs)
}

// writer writes one row every 100 ms through <db>'s ClusterIP, a new
// connection each time, and records each attempt. It runs in the test
// process, on the host: kube-proxy's rules route the host's own traffic
// too, and a writer on a node would die with the node it measures.
type writer struct {
	mu       sync.Mutex
	attempts []attempt
}

type attempt struct {
	ok         bool
	id         int
	start, end time.Time
}

func startWriter(t *testing.T, ns, db string) *writer {
	t.Helper()
	var svc corev1.Service
	NewWithT(t).Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: render.ServiceName(db)}, &svc)).To(Succeed())
	var secret corev1.Secret
	NewWithT(t).Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: render.CredentialsSecretName(db)}, &secret)).To(Succeed())
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=5432 dbname=%s sslmode=prefer connect_timeout=1",
		svc.Spec.ClusterIP, secret.Data[render.SecretKeyDatabase]))
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	cfg.User, cfg.Password = string(secret.Data[render.SecretKeyUsername]), string(secret.Data[render.SecretKeyPassword])
	w := &writer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for id := 1; ctx.Err() == nil; id++ {
			a := attempt{id: id, start: time.Now()}
			a.ok = insertTick(ctx, cfg, id) == nil
			a.end = time.Now()
			w.mu.Lock()
			w.attempts = append(w.attempts, a)
			w.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	NewWithT(t).Eventually(func() int { return len(w.all()) }).WithTimeout(time.Minute).Should(BeNumerically(">", 5))
	return w
}

// insertTick writes one row in its own connection, within 2 s.
func insertTick(ctx context.Context, cfg *pgx.ConnConfig, id int) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "INSERT INTO ticks (id) VALUES ($1)", id)
	return err
}

func (w *writer) all() []attempt {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]attempt(nil), w.attempts...)
}

// gapAfter is the time from start (the fault) to the end of the first
// acknowledged write after the writes the fault broke; 0 when it broke
// none.
func (w *writer) gapAfter(t *testing.T, start time.Time, timeout time.Duration) time.Duration {
	t.Helper()
	var gap time.Duration
	NewWithT(t).Eventually(func() bool {
		failed := false
		for _, a := range w.all() {
			if a.start.Before(start) && (!a.ok || a.end.Before(start)) {
				continue
			}
			if !a.ok {
				failed = true
				continue
			}
			if failed {
				gap = a.end.Sub(start)
				return true
			}
			if a.start.After(start.Add(5 * time.Second)) {
				// Five seconds of writes without a failure: the fault
				// broke nothing.
				gap = 0
				return true
			}
		}
		return false
	}).WithTimeout(timeout).WithPolling(500*time.Millisecond).Should(BeTrue(), "a write succeeds after the fault")
	return gap
}

// longestGap is the longest time between two acknowledged writes that
// ended within [from, to].
func (w *writer) longestGap(from, to time.Time) time.Duration {
	var longest time.Duration
	var last time.Time
	for _, a := range w.all() {
		if !a.ok || a.end.Before(from) || a.end.After(to) {
			continue
		}
		if !last.IsZero() && a.end.Sub(last) > longest {
			longest = a.end.Sub(last)
		}
		last = a.end
	}
	return longest
}

// lost compares the acknowledged writes with the rows on the primary.
func (w *writer) lost(t *testing.T, c *dbClient) (acked, lost int) {
	t.Helper()
	// The attempts before the query: a write acknowledged after the query
	// read the table is not missing from it.
	attempts := w.all()
	out, err := c.viaURI("SELECT string_agg(id::text, ',') FROM ticks")
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	have := map[int]bool{}
	for _, s := range strings.Split(out, ",") {
		if n, err := strconv.Atoi(s); err == nil {
			have[n] = true
		}
	}
	for _, a := range attempts {
		if a.ok {
			acked++
			if !have[a.id] {
				lost++
			}
		}
	}
	return acked, lost
}

// percentiles are the 50th and 95th percentiles (nearest rank).
func percentiles(ds []time.Duration) (p50, p95 time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.999999) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return rank(0.50), rank(0.95)
}
