// Package bench is the operator's scale benchmark (issue 7). It starts its
// own envtest control plane (kube-apiserver and etcd, the CRD from
// config/crd, the operator's ClusterRole from config/rbac) and measures, in
// one run and so as ratios on the same machine:
//
//  1. the limit: a plain loop that writes exactly what the operator must
//     write for N Databases (the credentials Secret, every rendered child
//     applied as the reconciler applies it, one status apply) with the
//     operator's client settings and parallelism;
//  2. the operator, the built binary run as a child process with the same
//     settings: N Databases created in one burst, the time until every one
//     has all its children and an observed status, and the operator's API
//     requests (from the API server's audit log), so writes per Database;
//     then, with those in place, Databases arriving at a steady rate and
//     the create→StatefulSet latency;
//  3. steady state: the operator's writes and the resourceVersion changes
//     of Databases and children while nothing changes;
//  4. memory: the operator's RSS and heap at 0, a few and N Databases;
//  5. render: the render micro-benchmark.
//
// bench/cmd/dbbench runs it and prints one table; bench_test.go runs a
// small N inside `make test` and asserts the structural targets.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
)

// Config is one benchmark run.
type Config struct {
	// N is the number of Databases created in one burst.
	N int
	// QPS, Burst and Workers are the operator's --kube-api-qps,
	// --kube-api-burst and --max-concurrent-reconciles, and the limit
	// loop's client settings and parallelism.
	QPS     float64
	Burst   int
	Workers int
	// Arrivals Databases are created at ArrivalRate per second once the N
	// are in place.
	Arrivals    int
	ArrivalRate float64
	// Steady is how long nothing changes while the operator's writes are
	// counted.
	Steady time.Duration
	// MemoryN is the size of the small memory point: a fresh operator with
	// MemoryN Databases (0 skips it).
	MemoryN int
	// PerNamespace Databases share a namespace.
	PerNamespace int
	// Creators create the burst's Databases in parallel (the bench's own
	// client, unthrottled).
	Creators int
	// OperatorBinary is the operator to run (go build ./cmd/database-operator).
	OperatorBinary string
	// WorkDir holds the audit log, the operator's kubeconfig and logs; a
	// temporary folder when empty.
	WorkDir string
	// Timeout bounds each wait for convergence.
	Timeout time.Duration
	// RenderBench runs the render micro-benchmark first.
	RenderBench bool
	// Command is the command line that ran the benchmark, for the table.
	Command string
	// Log receives progress; os.Stderr when nil.
	Log io.Writer
}

// DefaultConfig is `make bench`: 1,000 Databases with the chart's default
// operator flags (values.yaml: kubeAPI.qps 50, burst 100,
// maxConcurrentReconciles 4).
func DefaultConfig() Config {
	return Config{
		N: 1000, QPS: 50, Burst: 100, Workers: 4,
		Arrivals: 100, ArrivalRate: 10,
		Steady:  5 * time.Minute,
		MemoryN: 100, PerNamespace: 100, Creators: 4,
		Timeout:     15 * time.Minute,
		RenderBench: true,
	}
}

// Phase is what one phase measured.
type Phase struct {
	// DBs, Children and Budget describe the workload: Budget is the sum of
	// children + 2 over its Databases.
	DBs, Children, Budget int
	// Converged Databases within Duration, from the first create to the
	// last Database having every child and an observed status.
	Converged int
	Duration  time.Duration
	// Requests are the operator's (or the limit loop's) requests.
	Requests *requests
	// Reconciles finished by the operator during the phase.
	Reconciles float64
	// OverBudget counts Databases with more writes than children + 2;
	// MaxWrites and MaxOver are the most writes one Database took and the
	// most over its budget.
	OverBudget, MaxWrites, MaxOver int
}

// rate is Databases per second.
func (p Phase) rate() float64 {
	if p.Duration <= 0 {
		return 0
	}
	return float64(p.Converged) / p.Duration.Seconds()
}

// Arrivals is the steady-arrival phase.
type Arrivals struct {
	Phase
	// Latencies are create→StatefulSet-seen, sorted.
	Latencies []time.Duration
}

// Steady is the no-change phase.
type Steady struct {
	Duration time.Duration
	Requests *requests
	// Objects is how many Databases and children were listed; Changed how
	// many had another resourceVersion (or appeared or vanished) after.
	Objects, Changed int
}

// Result is one run.
type Result struct {
	Config    Config
	Started   time.Time
	CPUs      int
	GoVersion string
	// KubeVersion is the envtest kube-apiserver's version.
	KubeVersion string
	Limit       Phase
	Burst       Phase
	Arrivals    Arrivals
	Steady      Steady
	// Memory holds the points at 0, MemoryN and N Databases (right after
	// they converged), then N+Arrivals at the end of the steady state.
	Memory []MemoryPoint
	Render []RenderResult
	// WorkDir keeps the audit log and the operator's log.
	WorkDir string
}

// Run runs the benchmark.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Log == nil {
		cfg.Log = os.Stderr
	}
	if cfg.PerNamespace <= 0 {
		cfg.PerNamespace = 100
	}
	if cfg.Creators <= 0 {
		cfg.Creators = 4
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Minute
	}
	if cfg.OperatorBinary == "" {
		return nil, fmt.Errorf("bench: Config.OperatorBinary is required")
	}
	dir := cfg.WorkDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "dbbench-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	res := &Result{Config: cfg, Started: time.Now(), CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), WorkDir: dir}
	logf := func(format string, args ...any) {
		fmt.Fprintf(cfg.Log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}

	if cfg.RenderBench {
		logf("render micro-benchmark")
		res.Render = RunRenderBenchmarks()
	}

	logf("starting envtest (kube-apiserver with an audit log, etcd) in %s", dir)
	cp, err := startControlPlane(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer cp.stop()
	// Stop the bench's informers before the control plane.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if dc, err := discovery.NewDiscoveryClientForConfig(cp.admin); err == nil {
		if v, err := dc.ServerVersion(); err == nil {
			res.KubeVersion = v.GitVersion
		}
	}
	logf("envtest ready; the first Database write took %s", cp.warmUp.Round(time.Millisecond))
	// Every workload up front: the kinds of children to watch come from
	// render.
	lw, err := newWorkload("limit", cfg.N, cfg.PerNamespace, 0)
	if err != nil {
		return nil, err
	}
	mw, err := newWorkload("mem", cfg.MemoryN, cfg.PerNamespace, 0)
	if err != nil {
		return nil, err
	}
	bw, err := newWorkload("bench", cfg.N, cfg.PerNamespace, 0)
	if err != nil {
		return nil, err
	}
	aw, err := newWorkload("arrive", cfg.Arrivals, max(cfg.Arrivals, 1), cfg.N)
	if err != nil {
		return nil, err
	}
	kinds := addKinds([]schema.GroupVersionKind{secretGVK}, lw.kinds...)
	kinds = addKinds(kinds, mw.kinds...)
	kinds = addKinds(kinds, bw.kinds...)
	kinds = addKinds(kinds, aw.kinds...)
	tr, err := startTracker(ctx, cp.admin, cp, kinds)
	if err != nil {
		return nil, err
	}
	flags := operatorFlags{QPS: cfg.QPS, Burst: cfg.Burst, Workers: cfg.Workers}

	// 1. The limit.
	if err := ensureNamespaces(ctx, cp.adminCli, lw.namespaces()); err != nil {
		return nil, err
	}
	tr.register(lw.DBs)
	cp.audit.own(lw.DBs)
	if _, err := cp.audit.next(); err != nil {
		return nil, err
	}
	logf("limit: writing %d Databases (%d children) directly, %d workers, qps %v burst %d", cfg.N, lw.children(), cfg.Workers, cfg.QPS, cfg.Burst)
	t0 := time.Now()
	if err := runLimit(ctx, cp.limit, cp.scheme, cp.adminCli, lw, kinds, flags, cfg.Creators); err != nil {
		return nil, err
	}
	loopEnd := time.Now()
	n, last, err := tr.waitConverged(ctx, lw.DBs, cfg.Timeout, "limit", cfg.Log)
	if err != nil {
		return nil, err
	}
	if last.Before(loopEnd) {
		last = loopEnd
	}
	res.Limit = phaseOf(lw, n, last.Sub(t0))
	reqs, err := cp.audit.next()
	if err != nil {
		return nil, err
	}
	res.Limit.Requests = reqs[limitUser]
	res.Limit.budgetCheck(lw)
	logf("limit: %d Databases in %s (%.1f/s)", n, res.Limit.Duration.Round(time.Millisecond), res.Limit.rate())
	if err := deleteAll(ctx, cp.adminCli, lw.namespaces(), kinds); err != nil {
		return nil, err
	}

	opLog := filepath.Join(dir, "operator.log")
	// 4a. Memory of a fresh operator with a few Databases.
	if cfg.MemoryN > 0 {
		logf("memory: a fresh operator with %d Databases", cfg.MemoryN)
		op, err := startOperator(ctx, cfg.OperatorBinary, cp.operatorKubeconfig, opLog, flags)
		if err != nil {
			return nil, err
		}
		err = ensureNamespaces(ctx, cp.adminCli, mw.namespaces())
		if err == nil {
			tr.register(mw.DBs)
			err = createAll(ctx, cp.adminCli, mw, cfg.Creators, nil)
		}
		if err == nil {
			_, _, err = tr.waitConverged(ctx, mw.DBs, cfg.Timeout, "memory", cfg.Log)
		}
		if err == nil {
			err = op.waitIdle(ctx, cfg.Timeout)
		}
		var mp MemoryPoint
		if err == nil {
			time.Sleep(2 * time.Second)
			mp, err = op.memory(cfg.MemoryN)
		}
		if stopErr := op.stop(); err == nil && stopErr != nil {
			err = fmt.Errorf("stop the operator: %w", stopErr)
		}
		if err != nil {
			return nil, err
		}
		res.Memory = append(res.Memory, mp)
		if err := deleteAll(ctx, cp.adminCli, mw.namespaces(), kinds); err != nil {
			return nil, err
		}
	}

	// 2. The operator: N in one burst.
	logf("operator: starting %s", cfg.OperatorBinary)
	op, err := startOperator(ctx, cfg.OperatorBinary, cp.operatorKubeconfig, opLog, flags)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := op.stop(); err != nil {
			logf("stop the operator: %v", err)
		}
	}()
	time.Sleep(2 * time.Second)
	m0, err := op.memory(0)
	if err != nil {
		return nil, err
	}
	res.Memory = append([]MemoryPoint{m0}, res.Memory...)

	if err := ensureNamespaces(ctx, cp.adminCli, bw.namespaces()); err != nil {
		return nil, err
	}
	tr.register(bw.DBs)
	cp.audit.own(bw.DBs)
	if _, err := cp.audit.next(); err != nil { // the operator's start
		return nil, err
	}
	rec0, err := op.reconciles()
	if err != nil {
		return nil, err
	}
	logf("operator: creating %d Databases in one burst", cfg.N)
	t0 = time.Now()
	if err := createAll(ctx, cp.adminCli, bw, cfg.Creators, nil); err != nil {
		return nil, err
	}
	logf("operator: created in %s", time.Since(t0).Round(time.Millisecond))
	n, last, err = tr.waitConverged(ctx, bw.DBs, cfg.Timeout, "operator", cfg.Log)
	if err != nil {
		return nil, err
	}
	res.Burst = phaseOf(bw, n, last.Sub(t0))
	logf("operator: %d Databases converged in %s (%.1f/s); waiting for its queue to drain", n, res.Burst.Duration.Round(time.Millisecond), res.Burst.rate())
	if err := op.waitIdle(ctx, cfg.Timeout); err != nil {
		return nil, err
	}
	if reqs, err = cp.audit.next(); err != nil {
		return nil, err
	}
	res.Burst.Requests = reqs[operatorUser]
	res.Burst.budgetCheck(bw)
	rec1, err := op.reconciles()
	if err != nil {
		return nil, err
	}
	res.Burst.Reconciles = rec1 - rec0
	time.Sleep(2 * time.Second)
	mN, err := op.memory(cfg.N)
	if err != nil {
		return nil, err
	}
	res.Memory = append(res.Memory, mN)

	// 2b. Steady arrivals with N in place.
	if cfg.Arrivals > 0 {
		if err := ensureNamespaces(ctx, cp.adminCli, aw.namespaces()); err != nil {
			return nil, err
		}
		tr.register(aw.DBs)
		cp.audit.own(aw.DBs)
		logf("arrivals: %d Databases at %v/s", cfg.Arrivals, cfg.ArrivalRate)
		created := make([]time.Time, len(aw.DBs))
		errs := make(chan error, len(aw.DBs))
		var wg sync.WaitGroup
		interval := time.Duration(float64(time.Second) / cfg.ArrivalRate)
		t0 = time.Now()
		for i := range aw.DBs {
			if d := time.Until(t0.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				db := aw.specs[i].DeepCopy()
				if err := cp.adminCli.Create(ctx, db); err != nil {
					errs <- err
					return
				}
				created[i] = time.Now()
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return nil, fmt.Errorf("arrivals: %w", err)
		}
		n, last, err := tr.waitConverged(ctx, aw.DBs, cfg.Timeout, "arrivals", cfg.Log)
		if err != nil {
			return nil, err
		}
		res.Arrivals.Phase = phaseOf(aw, n, last.Sub(t0))
		for i, d := range aw.DBs {
			res.Arrivals.Latencies = append(res.Arrivals.Latencies, tr.statefulSetSeen(d).Sub(created[i]))
		}
		sort.Slice(res.Arrivals.Latencies, func(i, j int) bool { return res.Arrivals.Latencies[i] < res.Arrivals.Latencies[j] })
		if err := op.waitIdle(ctx, cfg.Timeout); err != nil {
			return nil, err
		}
		if reqs, err = cp.audit.next(); err != nil {
			return nil, err
		}
		res.Arrivals.Requests = reqs[operatorUser]
		res.Arrivals.budgetCheck(aw)
		rec2, err := op.reconciles()
		if err != nil {
			return nil, err
		}
		res.Arrivals.Reconciles = rec2 - rec1
		logf("arrivals: p50 %s p99 %s", percentile(res.Arrivals.Latencies, 50), percentile(res.Arrivals.Latencies, 99))
	}

	// 3. Steady state.
	logf("steady state: %s with no changes", cfg.Steady)
	before, err := versions(ctx, cp.adminCli, kinds)
	if err != nil {
		return nil, err
	}
	if _, err := cp.audit.next(); err != nil {
		return nil, err
	}
	ts := time.Now()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(cfg.Steady):
	}
	after, err := versions(ctx, cp.adminCli, kinds)
	if err != nil {
		return nil, err
	}
	if reqs, err = cp.audit.next(); err != nil {
		return nil, err
	}
	res.Steady = Steady{Duration: time.Since(ts), Requests: reqs[operatorUser], Objects: len(before), Changed: changed(before, after)}
	mEnd, err := op.memory(cfg.N + cfg.Arrivals)
	if err != nil {
		return nil, err
	}
	res.Memory = append(res.Memory, mEnd)
	logf("done")
	return res, nil
}

func phaseOf(w *workload, converged int, d time.Duration) Phase {
	return Phase{DBs: len(w.DBs), Children: w.children(), Budget: w.budget(), Converged: converged, Duration: d}
}

// budgetCheck compares each Database's writes with children + 2.
func (p *Phase) budgetCheck(w *workload) {
	if p.Requests == nil {
		return
	}
	for _, d := range w.DBs {
		n := p.Requests.ByDatabase[d.key()]
		if n > p.MaxWrites {
			p.MaxWrites = n
		}
		if over := n - d.budget(); over > 0 {
			p.OverBudget++
			if over > p.MaxOver {
				p.MaxOver = over
			}
		}
	}
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (p*len(sorted)+99)/100 - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}
