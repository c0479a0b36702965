package realpods

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

// faultConvergeLimit is the bound: every Database converges within
// this long after the fault clears.
const faultConvergeLimit = 30 * time.Second

// TestFaultMatrix injects faults while Databases are created, changed,
// scaled, switched over and deleted, and checks the invariants after each
// run (faultInvariants). It prints one table; make test-faults runs it at
// full size (FAULT_DATABASES=20, FAULT_ROUNDS=20), make test a short run.
//
// Faults: the operator's leader SIGKILLed (its replica takes the Lease
// over); the leader SIGSTOPped past its Lease and resumed, which must
// write nothing after it was taken over; kube-apiserver SIGKILLed and
// restarted; etcd SIGKILLed and restarted; another field manager fighting
// the operator over a StatefulSet's replicas. The fault clears when the
// new leader holds the Lease (the resumed one has exited), the API server
// answers /readyz again, or the other writer stops.
func TestFaultMatrix(t *testing.T) {
	dbs := envInt(t, "FAULT_DATABASES", 2)
	rounds := envInt(t, "FAULT_ROUNDS", 2)
	ns := newNamespace(t, "faults")
	var names []string
	for i := range dbs {
		names = append(names, fmt.Sprintf("f%d", i))
		createDatabase(t, faultDatabase(ns, names[i], 1))
	}
	// A writer per replication mode, on Databases the churn leaves alone:
	// the faults hit the control plane, and a database must not lose an
	// acknowledged row to one (a failover the operator should not have
	// made would).
	modes := []databasev1.ReplicationMode{databasev1.ReplicationAsync, databasev1.ReplicationSync}
	writerDB := map[databasev1.ReplicationMode]string{}
	for _, mode := range modes {
		db := faultDatabase(ns, "w"+string(mode)[:1], 2)
		db.Spec.Replication = &databasev1.ReplicationSpec{Mode: mode}
		createDatabase(t, db)
		writerDB[mode] = db.Name
	}
	// The field-conflict fault's own Database: the churn's changes would
	// hide its condition behind theirs.
	const conflictDB = "fc"
	createDatabase(t, faultDatabase(ns, conflictDB, 1))
	// The full-volume fault's: a volume of exactly its size.
	const fullDB = "fv"
	fv := faultDatabase(ns, fullDB, 1)
	fv.Spec.Storage = databasev1.StorageSpec{Size: resource.MustParse("512Mi"), Class: "sized"}
	createDatabase(t, fv)
	for _, n := range append(names, conflictDB, fullDB) {
		waitDatabaseReady(t, ns, n, createTimeout)
	}
	writers := map[databasev1.ReplicationMode]*writer{}
	clients := map[databasev1.ReplicationMode]*dbClient{}
	for _, mode := range modes {
		waitDatabaseReady(t, ns, writerDB[mode], createTimeout)
		clients[mode] = newClient(t, ns, writerDB[mode], false)
		_, err := clients[mode].viaURI("CREATE TABLE ticks (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())")
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
		writers[mode] = startWriter(t, ns, writerDB[mode])
	}
	lostSoFar := map[databasev1.ReplicationMode]int{}
	// rowsLost measures each writer's acknowledged rows missing from its
	// primary, and returns the increase since the last measurement.
	rowsLost := func() map[databasev1.ReplicationMode]int {
		out := map[databasev1.ReplicationMode]int{}
		for _, mode := range modes {
			_, lost := writers[mode].lost(t, clients[mode])
			out[mode] = lost - lostSoFar[mode]
			lostSoFar[mode] = lost
		}
		return out
	}

	type result struct {
		runs, violations int
		converge         []time.Duration
		lost             map[databasev1.ReplicationMode]int
	}
	results := map[string]*result{}
	partitions := 0
	// inject returns once the fault has cleared, with what it broke that
	// only it can see.
	faults := []struct {
		name   string
		inject func(t *testing.T) []string
	}{
		{"operator leader SIGKILL", killOperatorLeader},
		{"operator leader SIGSTOP", stopOperatorLeader},
		{"kube-apiserver restart", func(t *testing.T) []string { clusterScript(t, "restart", "kube-apiserver"); return nil }},
		{"etcd restart", func(t *testing.T) []string { clusterScript(t, "restart", "etcd"); return nil }},
		{"field conflict", fightOverReplicas(ns, conflictDB)},
		{faultFullVolume, fillDataVolume(ns, fullDB)},
		{faultPartition, func(t *testing.T) []string {
			partitions++
			// The runs alternate between the two writers' primaries.
			return partitionPrimaryNode(t, ns, writerDB[modes[(partitions-1)%len(modes)]], []string{writerDB[modes[0]], writerDB[modes[1]]})
		}},
	}
	defer func() {
		lines := []string{fmt.Sprintf("%-30s %5s %11s %9s %9s %s", "fault", "runs", "violations", "p50", "p95", "rows lost")}
		for _, f := range faults {
			r := results[f.name]
			if r == nil {
				continue
			}
			p50, p95 := percentiles(r.converge)
			lines = append(lines, fmt.Sprintf("%-30s %5d %11d %9s %9s async %d, sync %d", f.name, r.runs, r.violations,
				p50.Round(100*time.Millisecond), p95.Round(100*time.Millisecond), r.lost[databasev1.ReplicationAsync], r.lost[databasev1.ReplicationSync]))
		}
		t.Logf("fault matrix (%d Databases under churn and 2 with a writer each; converge = all Ready for their generation after the fault cleared; rows lost = acknowledged rows missing from the primary):\n%s", dbs, strings.Join(lines, "\n"))
	}()

	// FAULT_ONLY runs only the faults whose name contains it (while
	// working on one).
	only := os.Getenv("FAULT_ONLY")
	round := 0
	for _, f := range faults {
		if !strings.Contains(f.name, only) {
			continue
		}
		runs := rounds
		switch f.name {
		case "operator leader SIGKILL":
		case faultPartition:
			// One per writer, so both modes are cut off.
			runs = max(2, rounds/4)
		case faultFullVolume:
			// Each run grows the volume: a second would fill a larger one.
			runs = 1
		default:
			runs = max(1, rounds/4)
		}
		r := &result{lost: map[databasev1.ReplicationMode]int{}}
		results[f.name] = r
		for range runs {
			round++
			before := takeInventory(t, ns)
			churn := churnRound(t, ns, names, round)
			// The fault lands at a random moment of the churn's reconciles.
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Millisecond)
			problems := f.inject(t)
			cleared := time.Now()
			converged, err := waitConverged(ns, 2*faultConvergeLimit+time.Minute)
			r.runs++
			r.converge = append(r.converge, converged.Sub(cleared))
			problems = append(problems, faultInvariants(t, ns, before, churn)...)
			if err != nil {
				problems = append(problems, err.Error())
			} else if d := converged.Sub(cleared); d > faultConvergeLimit {
				problems = append(problems, fmt.Sprintf("converged %s after the fault cleared (limit %s)", d.Round(time.Second), faultConvergeLimit))
			}
			for mode, n := range rowsLost() {
				r.lost[mode] += n
				// No other fault cuts a primary off, so neither mode may
				// lose a row to it; a partition may cost an asynchronous
				// primary what it acknowledged before it fenced itself.
				if n > 0 && (mode == databasev1.ReplicationSync || f.name != faultPartition) {
					problems = append(problems, fmt.Sprintf("%d acknowledged rows lost in %s mode", n, mode))
				}
			}
			for _, p := range problems {
				t.Errorf("%s, round %d: %s", f.name, round, p)
			}
			r.violations += len(problems)
		}
	}
}

// faultDatabase is a small PostgreSQL Database for the matrix.
func faultDatabase(ns, name string, replicas int32) *databasev1.Database {
	return &databasev1.Database{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: databasev1.DatabaseSpec{
			Type: databasev1.PostgreSQL, Version: "17", Replicas: ptr.To(replicas),
			Storage:     databasev1.StorageSpec{Size: resource.MustParse("1Gi")},
			Environment: databasev1.Development,
		},
	}
}

// churn is what a round did, for the invariants: the Database it deleted
// (whose children go, and whose kept objects stay).
type churn struct {
	deleted string
}

// churnRound starts the round's changes without waiting for them: one
// Database created, one changed (backups switched on or off), one scaled
// between 1 and 2 pods (or switched over when it has two), and the
// Database created two rounds before deleted.
func churnRound(t *testing.T, ns string, names []string, round int) churn {
	t.Helper()
	ctx := context.Background()
	g := NewWithT(t)
	createDatabase(t, faultDatabase(ns, fmt.Sprintf("x%d", round), 1))
	var c churn
	if round > 2 {
		c.deleted = fmt.Sprintf("x%d", round-2)
		g.Expect(client.IgnoreNotFound(k8s.Delete(ctx, &databasev1.Database{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: c.deleted}}))).To(Succeed())
	}
	change := names[round%len(names)]
	update(t, ns, change, func(db *databasev1.Database) {
		if db.Spec.Backup == nil {
			db.Spec.Backup = &databasev1.BackupSpec{Enabled: true, Schedule: "0 3 1 1 *", Retention: "7d"}
		} else {
			db.Spec.Backup = nil
		}
	})
	scale := names[(round+1)%len(names)]
	update(t, ns, scale, func(db *databasev1.Database) {
		if db.Status.Replicas == 2 && *db.Spec.Replicas == 2 && db.Annotations[databasev1.SwitchoverAnnotation] == "" {
			db.Annotations = map[string]string{databasev1.SwitchoverAnnotation: "any"}
			return
		}
		n := int32(2)
		if *db.Spec.Replicas == 2 {
			n = 1
		}
		db.Spec.Replicas = &n
	})
	return c
}

// update changes a Database, retrying on conflicts.
func update(t *testing.T, ns, name string, change func(*databasev1.Database)) {
	t.Helper()
	NewWithT(t).Eventually(func() error {
		var db databasev1.Database
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &db); err != nil {
			return err
		}
		change(&db)
		return k8s.Update(context.Background(), &db)
	}).WithTimeout(time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())
}

var leaseKey = client.ObjectKey{Namespace: operatorNamespace, Name: "database-operator.database.example.com"}

// operatorLeader is the Lease's holder identity and the host PID of its
// process.
func operatorLeader(t *testing.T) (string, int) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	var lease coordinationv1.Lease
	g.Expect(k8s.Get(ctx, leaseKey, &lease)).To(Succeed())
	holder := ptr.Deref(lease.Spec.HolderIdentity, "")
	var pods corev1.PodList
	g.Expect(k8s.List(ctx, &pods, client.InNamespace(operatorNamespace), client.MatchingLabels{"app.kubernetes.io/name": "database-operator"})).To(Succeed())
	pid := 0
	for _, p := range pods.Items {
		if strings.HasPrefix(holder, p.Name+"_") && len(p.Status.ContainerStatuses) > 0 {
			pid = hostProcessOf(p.Status.ContainerStatuses[0].ContainerID)
		}
	}
	g.Expect(pid).NotTo(BeZero(), "the leader %s's process", holder)
	return holder, pid
}

// awaitNewLeader waits until a holder other than old renewed the Lease,
// and returns the Lease.
func awaitNewLeader(t *testing.T, old string) coordinationv1.Lease {
	t.Helper()
	var l coordinationv1.Lease
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(k8s.Get(context.Background(), leaseKey, &l)).To(Succeed())
		g.Expect(ptr.Deref(l.Spec.HolderIdentity, "")).NotTo(Or(BeEmpty(), Equal(old)))
	}).WithTimeout(time.Minute).WithPolling(200*time.Millisecond).Should(Succeed(), "another replica takes the Lease")
	return l
}

// killOperatorLeader SIGKILLs the process of the operator replica holding
// the Lease and returns once another holder renewed it.
func killOperatorLeader(t *testing.T) []string {
	t.Helper()
	holder, pid := operatorLeader(t)
	NewWithT(t).Expect(syscall.Kill(pid, syscall.SIGKILL)).To(Succeed())
	awaitNewLeader(t, holder)
	return nil
}

// stopOperatorLeader freezes the leader (SIGSTOP) until another replica
// has taken the Lease and the churn has queued events for the frozen one,
// then resumes it (SIGCONT): it wakes with reconciles to run, and must
// write nothing, for another replica leads. What it sent is read from the
// API server's audit log (each replica names its process in its
// User-Agent). The fault clears when the resumed process has exited (it
// lost the leadership; its container starts again as a standby).
func stopOperatorLeader(t *testing.T) []string {
	t.Helper()
	g := NewWithT(t)
	holder, pid := operatorLeader(t)
	g.Expect(syscall.Kill(pid, syscall.SIGSTOP)).To(Succeed())
	lease := awaitNewLeader(t, holder)
	taken := lease.Spec.AcquireTime.Time
	// Events for the frozen replica pile up meanwhile.
	time.Sleep(3 * time.Second)
	g.Expect(syscall.Kill(pid, syscall.SIGCONT)).To(Succeed())
	g.Eventually(func() bool { return syscall.Kill(pid, 0) != nil }).WithTimeout(time.Minute).WithPolling(200*time.Millisecond).
		Should(BeTrue(), "the resumed leader %s exits: it lost the Lease", holder)
	var problems []string
	writes, refused := auditedWritesSince(t, holder, taken)
	for _, w := range writes {
		problems = append(problems, "the replica that lost the Lease wrote after it was taken over: "+w)
	}
	t.Logf("operator leader SIGSTOP: %s frozen; %s took the Lease at %s; after SIGCONT it sent %d writes, %d failed-over Lease writes",
		holder, ptr.Deref(lease.Spec.HolderIdentity, ""), taken.Format("15:04:05.000"), len(writes), refused)
	return problems
}

// auditedWritesSince lists the writes the API server's audit log records
// from the process identity at or after since, other than its attempts
// on the Lease that failed (a standby's and a deposed leader's are
// refused by the Lease's resourceVersion); failedLease counts those.
func auditedWritesSince(t *testing.T, identity string, since time.Time) (writes []string, failedLease int) {
	t.Helper()
	path := filepath.Join(os.Getenv("STATE"), "audit.log")
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("the API server's audit log: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	seen := 0
	for sc.Scan() {
		var e struct {
			Verb      string `json:"verb"`
			UserAgent string `json:"userAgent"`
			ObjectRef struct {
				Resource, Namespace, Name string
			} `json:"objectRef"`
			ResponseStatus struct {
				Code int `json:"code"`
			} `json:"responseStatus"`
			RequestReceived time.Time `json:"requestReceivedTimestamp"`
		}
		if json.Unmarshal(sc.Bytes(), &e) != nil || !strings.Contains(e.UserAgent, identity) {
			continue
		}
		seen++
		if e.RequestReceived.Before(since) {
			continue
		}
		if e.ObjectRef.Resource == "leases" && e.ResponseStatus.Code >= 300 {
			failedLease++
			continue
		}
		writes = append(writes, fmt.Sprintf("%s %s %s/%s at %s (HTTP %d)", e.Verb, e.ObjectRef.Resource, e.ObjectRef.Namespace,
			e.ObjectRef.Name, e.RequestReceived.Format("15:04:05.000000"), e.ResponseStatus.Code))
	}
	NewWithT(t).Expect(sc.Err()).NotTo(HaveOccurred())
	// A log without this process's writes before the fault would prove
	// nothing about the ones after it.
	NewWithT(t).Expect(seen).NotTo(BeZero(), "the audit log records the leader %s's writes (User-Agent)", identity)
	return writes, failedLease
}

// faultFullVolume names the full data volume fault.
const faultFullVolume = "full data volume"

// fillDataVolume fills the data volume of Database name (one pod on a
// sized volume) through its Service, 20 MB per statement, until the
// server refuses. Then the Database must say so (Degraded VolumeNearlyFull
// and a Warning Event of that reason), the kubelet's volume statistics
// must make the DatabaseVolumeNearlyFull alert's expression true (the
// alert itself needs a Prometheus this cluster does not run), and
// growing spec.storage.size must recover it with every acknowledged
// statement's rows. The fault clears when the size is grown.
func fillDataVolume(ns, name string) func(t *testing.T) []string {
	return func(t *testing.T) []string {
		t.Helper()
		g := NewWithT(t)
		c := newClient(t, ns, name, false)
		_, err := c.viaURI("CREATE TABLE IF NOT EXISTS filler (id int, pad text)")
		g.Expect(err).NotTo(HaveOccurred())
		const perStatement = 20000 // rows of about 1 kB
		acked, lastErr := 0, ""
		for i := 0; i < 200; i++ {
			_, err := c.viaURIWithin(fmt.Sprintf("INSERT INTO filler SELECT %d, repeat(md5(g::text), 32) FROM generate_series(1, %d) g", i, perStatement), 2*time.Minute)
			if err != nil {
				lastErr = err.Error()
				break
			}
			acked++
		}
		g.Expect(lastErr).NotTo(BeEmpty(), "the volume never filled")
		t.Logf("full data volume: %d statements of %d rows acknowledged, then: %s", acked, perStatement, firstLine(lastErr))
		var problems []string
		var sawDegraded bool
		var degradedMsg string
		waitErr := wait(90*time.Second, func() bool {
			var db databasev1.Database
			if k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &db) != nil {
				return false
			}
			c := meta.FindStatusCondition(db.Status.Conditions, databasev1.ConditionDegraded)
			sawDegraded = c != nil && c.Status == metav1.ConditionTrue && c.Reason == "VolumeNearlyFull"
			if sawDegraded {
				degradedMsg = c.Message
			}
			return sawDegraded
		})
		if waitErr != nil {
			problems = append(problems, name+": no Degraded VolumeNearlyFull within 90 s of the volume filling")
		}
		var events corev1.EventList
		g.Expect(k8s.List(context.Background(), &events, client.InNamespace(ns))).To(Succeed())
		event := false
		for _, e := range events.Items {
			event = event || (e.InvolvedObject.Name == name && e.Reason == "VolumeNearlyFull" && e.Type == corev1.EventTypeWarning)
		}
		if !event {
			problems = append(problems, name+": no VolumeNearlyFull Warning Event")
		}
		// The kubelet measures volumes once a minute.
		var free, capacity float64
		if wait(150*time.Second, func() bool {
			free, capacity = kubeletVolumeStats(t, ns, "data-"+name+"-0")
			return capacity > 0 && free/capacity < 0.15
		}) != nil {
			problems = append(problems, fmt.Sprintf("the kubelet reports %.0f of %.0f bytes free on data-%s-0 after 150 s: the alert's warning expression (under 15%% free) is not true", free, capacity, name))
		}
		t.Logf("full data volume: %s; the kubelet says %.1f MiB free of %.1f MiB", degradedMsg, free/(1<<20), capacity/(1<<20))

		grown := time.Now()
		update(t, ns, name, func(db *databasev1.Database) { db.Spec.Storage.Size = resource.MustParse("1Gi") })
		waitDatabaseReady(t, ns, name, 3*time.Minute)
		t.Logf("full data volume: spec.storage.size grown to 1Gi; Ready again %s later", time.Since(grown).Round(100*time.Millisecond))
		out, err := c.viaURI("SELECT count(DISTINCT id) FROM filler")
		g.Expect(err).NotTo(HaveOccurred())
		if n, _ := strconv.Atoi(out); n < acked {
			problems = append(problems, fmt.Sprintf("%s: %d of the %d acknowledged statements' rows are left after the volume grew", name, n, acked))
		}
		if _, err := c.viaURI("INSERT INTO filler VALUES (-1, 'after')"); err != nil {
			problems = append(problems, fmt.Sprintf("%s: no write after the volume grew: %v", name, err))
		}
		return problems
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// kubeletVolumeStats is what the kubelet of the claim's node reports of
// the volume (kubelet_volume_stats_available_bytes and _capacity_bytes,
// the alert's inputs), read through the API server's node proxy.
func kubeletVolumeStats(t *testing.T, ns, pvc string) (available, capacity float64) {
	t.Helper()
	var claim corev1.PersistentVolumeClaim
	NewWithT(t).Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: pvc}, &claim)).To(Succeed())
	node := claim.Annotations["volume.kubernetes.io/selected-node"]
	out, _, err := kubectl(context.Background(), "", "get", "--raw", "/api/v1/nodes/"+node+"/proxy/metrics")
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	labels := fmt.Sprintf(`namespace="%s",persistentvolumeclaim="%s"`, ns, pvc)
	for _, line := range strings.Split(out, "\n") {
		name, rest, ok := strings.Cut(line, "{")
		if !ok || !strings.Contains(rest, labels) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
		if err != nil {
			continue
		}
		switch name {
		case "kubelet_volume_stats_available_bytes":
			available = v
		case "kubelet_volume_stats_capacity_bytes":
			capacity = v
		}
	}
	return available, capacity
}

// faultPartition names the network partition fault.
const faultPartition = "partition of a primary's node"

// partitionPrimaryNode cuts the node of target's primary off from the
// rest (cluster.sh partition: its pods from the other nodes' pods and
// from the API server, its kubelet from the API server) until the
// operator has promoted another pod of target and 5 s more, at most 60 s,
// then heals it. Meanwhile every pod of the Databases watched is asked
// from the host, every 300 ms, whether it is a primary
// (pg_is_in_recovery() false): once the failover delay has passed since
// the partition began, two at once is a split brain. The isolated primary
// must fence itself: it cannot hear that it was replaced. The fault clears
// when the partition heals.
func partitionPrimaryNode(t *testing.T, ns, target string, watched []string) []string {
	t.Helper()
	g := NewWithT(t)
	old := currentPrimary(t, ns, target)
	node := nodeOrdinal(t, ns, old)
	mon := startPrimaryMonitor(t, ns, watched)
	start := time.Now()
	clusterScript(t, "partition", node)
	healed := false
	heal := func() {
		if !healed {
			clusterScript(t, "heal")
			healed = true
		}
	}
	defer heal()
	var problems []string
	var promoted time.Duration
	err := wait(60*time.Second, func() bool {
		var d databasev1.Database
		if k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: target}, &d) != nil {
			return false
		}
		return d.Status.CurrentPrimary != "" && d.Status.CurrentPrimary != old
	})
	if err != nil {
		problems = append(problems, fmt.Sprintf("%s: no other pod promoted within 60 s of partitioning node-%s (the primary %s's)", target, node, old))
	} else {
		promoted = time.Since(start)
		time.Sleep(5 * time.Second)
	}
	heal()
	samples := mon.stop()
	t.Logf("partition of node-%s: the pods' roles as seen from the host:\n%s", node, strings.Join(mon.changes, "\n"))
	agentLog, _, _ := kubectl(context.Background(), "", "-n", ns, "logs", old, "-c", "database", "--since=2m")
	var agentLines []string
	for _, l := range strings.Split(agentLog, "\n") {
		if strings.Contains(l, "database-agent") && (strings.Contains(l, "role") || strings.Contains(l, "isolat") || strings.Contains(l, "demot") ||
			strings.Contains(l, "replica streams") || strings.Contains(l, "reading the pod") || strings.Contains(l, "stopp")) {
			agentLines = append(agentLines, l)
		}
	}
	t.Logf("partition of node-%s: the old primary %s's agent said:\n%s", node, old, strings.Join(agentLines, "\n"))
	delay := render.DefaultFailoverDelay
	problems = append(problems, splitBrains(samples, start.Add(delay))...)
	newPrimary := currentPrimaryOr(ns, target)
	lastOld, firstNew := time.Duration(-1), time.Duration(-1)
	for _, smp := range samples {
		if smp.db != target {
			continue
		}
		for _, p := range smp.primaries {
			if p == old {
				lastOld = smp.at.Sub(start)
			}
			if p == newPrimary && p != old && firstNew < 0 {
				firstNew = smp.at.Sub(start)
			}
		}
	}
	t.Logf("partition of node-%s (%s's primary %s): the old primary last answered as one %s in, %s was promoted after %s and first answered as primary %s in; %d samples, healed after %s",
		node, target, old, lastOld.Round(100*time.Millisecond), newPrimary, promoted.Round(100*time.Millisecond),
		firstNew.Round(100*time.Millisecond), len(samples), time.Since(start).Round(time.Second))
	g.Expect(healed).To(BeTrue())
	return problems
}

// wait polls cond every 200 ms for at most timeout.
func wait(timeout time.Duration, cond func() bool) error {
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if cond() {
			return nil
		}
	}
	return fmt.Errorf("not within %s", timeout)
}

func currentPrimaryOr(ns, db string) string {
	var d databasev1.Database
	if k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: db}, &d) != nil {
		return "?"
	}
	return d.Status.CurrentPrimary
}

// roleSample is which pods of one Database answered as a primary at one
// moment.
type roleSample struct {
	db        string
	at        time.Time
	primaries []string
}

// splitBrains lists the samples from after on where two pods of one
// Database were primaries at once.
func splitBrains(samples []roleSample, after time.Time) []string {
	var out []string
	for _, s := range samples {
		if len(s.primaries) > 1 && !s.at.Before(after) {
			out = append(out, fmt.Sprintf("%s: %s were all primaries at %s", s.db, strings.Join(s.primaries, " and "), s.at.Format("15:04:05.000")))
		}
	}
	return out
}

type primaryMonitor struct {
	cancel  context.CancelFunc
	done    chan struct{}
	samples []roleSample
	// changes says when each pod stopped or started answering as a
	// primary, and why not, for the log.
	mu      sync.Mutex
	changes []string
	was     map[string]bool
}

// startPrimaryMonitor asks every pod of the Databases, by its IP from the
// host, every 300 ms, whether it is a primary (the application user's
// connection, 1 s to answer; a pod that does not answer is not one).
func startPrimaryMonitor(t *testing.T, ns string, dbs []string) *primaryMonitor {
	t.Helper()
	type target struct {
		db, pod string
		cfg     *pgx.ConnConfig
	}
	var targets []target
	for _, db := range dbs {
		var secret corev1.Secret
		NewWithT(t).Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: render.CredentialsSecretName(db)}, &secret)).To(Succeed())
		var pods corev1.PodList
		NewWithT(t).Expect(k8s.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels{render.LabelInstance: db})).To(Succeed())
		for _, p := range pods.Items {
			cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=5432 dbname=%s sslmode=prefer connect_timeout=1",
				p.Status.PodIP, secret.Data[render.SecretKeyDatabase]))
			NewWithT(t).Expect(err).NotTo(HaveOccurred())
			cfg.User, cfg.Password = string(secret.Data[render.SecretKeyUsername]), string(secret.Data[render.SecretKeyPassword])
			targets = append(targets, target{db: db, pod: p.Name, cfg: cfg})
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &primaryMonitor{cancel: cancel, done: make(chan struct{}), was: map[string]bool{}}
	begin := time.Now()
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			at := time.Now()
			byDB := map[string][]string{}
			var mu sync.Mutex
			var wg sync.WaitGroup
			for _, tg := range targets {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ok, why := isPrimary(ctx, tg.cfg)
					if ok {
						mu.Lock()
						byDB[tg.db] = append(byDB[tg.db], tg.pod)
						mu.Unlock()
					}
					m.mu.Lock()
					if ok != m.was[tg.pod] && ctx.Err() == nil {
						m.changes = append(m.changes, fmt.Sprintf("%.1fs %s primary=%v %s", at.Sub(begin).Seconds(), tg.pod, ok, why))
						m.was[tg.pod] = ok
					}
					m.mu.Unlock()
				}()
			}
			wg.Wait()
			for _, db := range dbs {
				sort.Strings(byDB[db])
				m.samples = append(m.samples, roleSample{db: db, at: at, primaries: byDB[db]})
			}
			select {
			case <-ctx.Done():
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	return m
}

func (m *primaryMonitor) stop() []roleSample {
	m.cancel()
	<-m.done
	return m.samples
}

// isPrimary says the server at cfg answers, within 1 s, that it is not in
// recovery; and if not, why.
func isPrimary(ctx context.Context, cfg *pgx.ConnConfig) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, err.Error()
	}
	defer conn.Close(context.Background())
	var inRecovery bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
		return false, err.Error()
	}
	if inRecovery {
		return false, "in recovery"
	}
	return true, ""
}

// fightOverReplicas is another field manager force-applying the
// StatefulSet's replicas of Database name every 100 ms for 12 s. The
// operator must notice it from managedFields, report Degraded
// FieldConflict naming the manager, and back off instead of taking the
// field back on every change. The fault clears when the writer stops.
func fightOverReplicas(ns, name string) func(t *testing.T) []string {
	return func(t *testing.T) []string {
		t.Helper()
		g := NewWithT(t)
		ctx := context.Background()
		const manager, fightFor = "fault-matrix-fighter", 12 * time.Second
		var sts appsv1.StatefulSet
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &sts)).To(Succeed())
		theirs := *sts.Spec.Replicas + 1
		startGeneration := sts.Generation
		sawDegraded := false
		// The Degraded conditions seen, in order, for the failure message.
		var seen []string
		start := time.Now()
		for end := start.Add(fightFor); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			ac := appsv1ac.StatefulSet(name, ns).WithSpec(appsv1ac.StatefulSetSpec().WithReplicas(theirs))
			g.Expect(k8s.Apply(ctx, ac, client.FieldOwner(manager), client.ForceOwnership)).To(Succeed())
			var db databasev1.Database
			if k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &db) == nil {
				c := meta.FindStatusCondition(db.Status.Conditions, databasev1.ConditionDegraded)
				if c == nil {
					continue
				}
				sawDegraded = sawDegraded || (c.Status == metav1.ConditionTrue && c.Reason == "FieldConflict" && strings.Contains(c.Message, manager))
				if now := fmt.Sprintf("%s %s", c.Status, c.Reason); len(seen) == 0 || !strings.HasSuffix(seen[len(seen)-1], now) {
					seen = append(seen, fmt.Sprintf("%.1fs: %s", time.Since(start).Seconds(), now))
				}
			}
		}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &sts)).To(Succeed())
		// Each write that changes replicas is a generation: theirs, then
		// the operator's take-back.
		takeBacks := int(sts.Generation-startGeneration) / 2
		t.Logf("field conflict on %s/%s: the operator took spec.replicas back %d times in %s of a writer every 100 ms", ns, name, takeBacks, fightFor)
		var problems []string
		if !sawDegraded {
			problems = append(problems, fmt.Sprintf("%s never reported Degraded FieldConflict naming %q (Degraded seen: %s)", name, manager, strings.Join(seen, ", ")))
		}
		// Backing off 2, 4, 8 s after the first take-back gives 4 in 12 s
		// (one more if a reconcile lands at a window's edge); without the
		// backoff, one per write (about 100), and with a forced apply on
		// each echo of its own take-back, about 9.
		if takeBacks > 5 {
			problems = append(problems, fmt.Sprintf("the operator took spec.replicas back %d times in %s: it fights", takeBacks, fightFor))
		}
		return problems
	}
}

// waitConverged waits until every Database in ns is Ready for its
// generation, and says when that was first seen.
func waitConverged(ns string, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		var list databasev1.DatabaseList
		err := k8s.List(context.Background(), &list, client.InNamespace(ns))
		if err == nil {
			last = ""
			for _, db := range list.Items {
				if db.DeletionTimestamp != nil {
					continue
				}
				if db.Status.ObservedGeneration != db.Generation || !meta.IsStatusConditionTrue(db.Status.Conditions, databasev1.ConditionReady) {
					last = fmt.Sprintf("%s: phase %s, observed generation %d of %d", db.Name, db.Status.Phase, db.Status.ObservedGeneration, db.Generation)
					break
				}
			}
			if last == "" {
				return time.Now(), nil
			}
		} else {
			last = err.Error()
		}
		time.Sleep(500 * time.Millisecond)
	}
	return time.Now(), fmt.Errorf("not converged within %s: %s", timeout, last)
}

// inventory is what must survive every fault: the data and backup volumes
// and the credentials, by UID and content.
type inventory struct {
	pvcs    map[string]string // name → UID
	secrets map[string]string // name → UID and a digest of the data
}

func takeInventory(t *testing.T, ns string) inventory {
	t.Helper()
	g := NewWithT(t)
	inv := inventory{pvcs: map[string]string{}, secrets: map[string]string{}}
	var pvcs corev1.PersistentVolumeClaimList
	g.Expect(k8s.List(context.Background(), &pvcs, client.InNamespace(ns))).To(Succeed())
	for _, p := range pvcs.Items {
		inv.pvcs[p.Name] = string(p.UID)
	}
	var secrets corev1.SecretList
	g.Expect(k8s.List(context.Background(), &secrets, client.InNamespace(ns))).To(Succeed())
	for _, s := range secrets.Items {
		inv.secrets[s.Name] = string(s.UID) + "/" + secretDigest(s.Data)
	}
	return inv
}

func secretDigest(data map[string][]byte) string {
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%x;", k, data[k])
	}
	return fmt.Sprintf("%x", h.Sum(nil))[:16]
}

// faultInvariants lists what a run broke: a volume or Secret deleted or
// changed; a Database with more than one StatefulSet, or a child whose
// Database is gone; a Database Ready whose primary does not answer; a
// password in the operator's logs or in an Event.
func faultInvariants(t *testing.T, ns string, before inventory, c churn) []string {
	t.Helper()
	var out []string
	after := takeInventory(t, ns)
	for name, uid := range before.pvcs {
		if after.pvcs[name] != uid {
			out = append(out, fmt.Sprintf("PVC %s deleted or replaced", name))
		}
	}
	for name, v := range before.secrets {
		if after.secrets[name] != v {
			out = append(out, fmt.Sprintf("Secret %s deleted or changed", name))
		}
	}

	ctx := context.Background()
	var list databasev1.DatabaseList
	if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return append(out, err.Error())
	}
	live := map[string]bool{}
	for _, db := range list.Items {
		live[db.Name] = true
		if meta.IsStatusConditionTrue(db.Status.Conditions, databasev1.ConditionReady) {
			if got, err := superuserSQL(ns, db.Status.CurrentPrimary, "SELECT 1"); err != nil || strings.TrimSpace(got) != "1" {
				out = append(out, fmt.Sprintf("Database %s is Ready but its primary %s does not answer: %v %s", db.Name, db.Status.CurrentPrimary, err, got))
			}
		}
	}
	// The garbage collector removes a deleted Database's children in its
	// own time: give it that before calling any an orphan.
	orphans := func() []string {
		var stss appsv1.StatefulSetList
		_ = k8s.List(ctx, &stss, client.InNamespace(ns), client.MatchingLabels{render.LabelManagedBy: "database-operator"})
		var found []string
		count := map[string]int{}
		for _, s := range stss.Items {
			owner := s.Labels[render.LabelInstance]
			count[owner]++
			if !live[owner] {
				found = append(found, fmt.Sprintf("StatefulSet %s outlives its Database", s.Name))
			}
		}
		for owner, n := range count {
			if n > 1 {
				found = append(found, fmt.Sprintf("Database %s has %d StatefulSets", owner, n))
			}
		}
		return found
	}
	var left []string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		if left = orphans(); len(left) == 0 {
			break
		}
	}
	out = append(out, left...)

	out = append(out, passwordsLeaked(t, ns)...)
	return out
}

// passwordsLeaked looks for every credentials password of ns in the
// operator replicas' logs and in the namespace's Events.
func passwordsLeaked(t *testing.T, ns string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var secrets corev1.SecretList
	if err := k8s.List(ctx, &secrets, client.InNamespace(ns)); err != nil {
		return []string{err.Error()}
	}
	var passwords []string
	for _, s := range secrets.Items {
		for _, key := range []string{render.SecretKeyRootPassword, render.SecretKeyPassword, render.SecretKeyReplicationPassword} {
			if p := string(s.Data[key]); len(p) >= 8 {
				passwords = append(passwords, p)
			}
		}
	}
	logs, _, _ := kubectl(ctx, "", "-n", operatorNamespace, "logs", "-l", "app.kubernetes.io/name=database-operator", "--all-containers", "--tail=-1")
	logsBefore, _, _ := kubectl(ctx, "", "-n", operatorNamespace, "logs", "-l", "app.kubernetes.io/name=database-operator", "--all-containers", "--tail=-1", "--previous")
	events, _, _ := kubectl(ctx, "", "-n", ns, "get", "events", "-o", "yaml")
	var out []string
	for _, p := range passwords {
		for what, text := range map[string]string{"the operator's log": logs + logsBefore, "an Event": events} {
			if strings.Contains(text, p) {
				out = append(out, "a password appears in "+what)
			}
		}
	}
	return out
}

// envInt reads a positive integer knob from the environment.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
