package bench

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Targets are issue 7's targets.
const (
	// TargetRateRatio is the least convergence rate, as a fraction of the
	// limit's rate.
	TargetRateRatio = 0.8
	// TargetP99 is the most create→StatefulSet p99 for steady arrivals.
	TargetP99 = time.Second
	// TargetRSS is the most operator RSS at N = 1,000.
	TargetRSS = 150 << 20
)

// Check is one target's verdict.
type Check struct {
	Name string
	Met  bool
	// Applies is false when the run cannot judge the target (a smaller N,
	// other flags than the chart's, no arrivals).
	Applies bool
}

// RateRatio is the operator's convergence rate over the limit's.
func (r *Result) RateRatio() float64 {
	if r.Limit.rate() == 0 {
		return 0
	}
	return r.Burst.rate() / r.Limit.rate()
}

// SteadyWrites are the operator's writes in the steady state, Events
// included.
func (r *Result) SteadyWrites() int {
	if r.Steady.Requests == nil {
		return 0
	}
	return r.Steady.Requests.Writes + r.Steady.Requests.EventWrites
}

// memoryAt returns the memory point at n Databases (the first one).
func (r *Result) memoryAt(n int) (MemoryPoint, bool) {
	for _, m := range r.Memory {
		if m.N == n {
			return m, true
		}
	}
	return MemoryPoint{}, false
}

// chartDefaults reports whether the run used the chart's operator flags.
func (r *Result) chartDefaults() bool {
	return r.Config.QPS == 50 && r.Config.Burst == 100 && r.Config.Workers == 4
}

// Checks are the verdicts on every target.
func (r *Result) Checks() []Check {
	p99 := percentile(r.Arrivals.Latencies, 99)
	mN, _ := r.memoryAt(r.Config.N)
	return []Check{
		{"convergence rate ≥ 0.8 × limit", r.RateRatio() >= TargetRateRatio, true},
		{"writes per Database ≤ children + 2", r.Burst.OverBudget == 0 && r.Arrivals.OverBudget == 0, true},
		{"zero writes in steady state", r.SteadyWrites() == 0 && r.Steady.Changed == 0, true},
		{"p99 create→StatefulSet < 1 s", p99 < TargetP99, r.Config.Arrivals > 0 && r.chartDefaults() && r.Config.N >= 1000},
		{"operator RSS < 150 MiB at N = 1,000", mN.RSS < TargetRSS, r.Config.N == 1000},
	}
}

func verdict(c Check) string {
	switch {
	case !c.Applies && c.Met:
		return "(met; N or flags differ from the target's)"
	case !c.Applies:
		return "(not met; N or flags differ from the target's)"
	case c.Met:
		return "**met**"
	default:
		return "**not met**"
	}
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func secs(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	default:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
}

// writesPerDB is the mean of the phase's attributed writes per Database.
func writesPerDB(p Phase) float64 {
	if p.Requests == nil || p.DBs == 0 {
		return 0
	}
	n := 0
	for _, v := range p.Requests.ByDatabase {
		n += v
	}
	return float64(n) / float64(p.DBs)
}

// WriteTable prints the result as one markdown table.
func (r *Result) WriteTable(w io.Writer) {
	c := r.Config
	checks := r.Checks()
	row := func(what, value, target string) {
		fmt.Fprintf(w, "| %s | %s | %s |\n", what, strings.ReplaceAll(value, "|", "\\|"), target)
	}
	fmt.Fprintln(w, "| measure | result | target |")
	fmt.Fprintln(w, "|---|---|---|")
	row("settings", fmt.Sprintf("N = %d Databases (%d children: both engines, development/staging/production with 1/2/3 replicas, every 5th with backup, every 7th with monitoring), %d per namespace; "+
		"operator and limit: `--kube-api-qps %v --kube-api-burst %d --max-concurrent-reconciles %d`; envtest kube-apiserver %s + etcd; %d CPUs; %s",
		c.N, r.Burst.Children, c.PerNamespace, c.QPS, c.Burst, c.Workers, r.KubeVersion, r.CPUs, r.GoVersion), "")
	if c.Command != "" {
		row("command", "`"+c.Command+"`", "")
	}
	l := r.Limit
	row("1. limit: direct writes (Secret create + each child applied + status apply per Database)",
		fmt.Sprintf("%d Databases in %s = **%.1f Databases/s** (%.0f objects/s); %d writes, %d failed",
			l.Converged, secs(l.Duration), l.rate(), float64(l.Budget)/l.Duration.Seconds(), reqWrites(l.Requests), reqFailed(l.Requests)),
		"the ceiling")
	b := r.Burst
	row("2. operator: burst convergence (create → every child + observed status)",
		fmt.Sprintf("%d/%d Databases in %s = **%.1f Databases/s** = **%.2f × limit**", b.Converged, b.DBs, secs(b.Duration), b.rate(), r.RateRatio()),
		"≥ 0.8 × limit: "+verdict(checks[0]))
	row("   writes per Database (burst; Events not counted)",
		fmt.Sprintf("mean **%.2f** vs budget %.2f (children + 2); %d of %d Databases over budget, worst %d writes (+%d); %d unattributed writes",
			writesPerDB(b), float64(b.Budget)/float64(max(b.DBs, 1)), b.OverBudget, b.DBs, b.MaxWrites, b.MaxOver, reqUnattributed(b.Requests)),
		"≤ children + 2: "+verdict(checks[1]))
	row("   operator requests (burst, by verb and resource)",
		fmt.Sprintf("%s; Event writes %d; 404s %d (the credentials check), other failures %d; reconciles %.0f (%.2f per Database)",
			reqSummary(b.Requests), reqEvents(b.Requests), reqNotFound(b.Requests), reqFailed(b.Requests), b.Reconciles, b.Reconciles/float64(max(b.DBs, 1))), "")
	a := r.Arrivals
	if c.Arrivals > 0 {
		row(fmt.Sprintf("   %d arrivals at %v/s with %d in place: create → StatefulSet", c.Arrivals, c.ArrivalRate, c.N),
			fmt.Sprintf("p50 **%s**, p99 **%s**, max %s; writes per Database %.2f (budget %.2f), %d over budget; reconciles %.2f per Database",
				secs(percentile(a.Latencies, 50)), secs(percentile(a.Latencies, 99)), secs(percentile(a.Latencies, 100)),
				writesPerDB(a.Phase), float64(a.Budget)/float64(max(a.DBs, 1)), a.OverBudget, a.Reconciles/float64(max(a.DBs, 1))),
			"p99 < 1 s: "+verdict(checks[3]))
	}
	s := r.Steady
	row(fmt.Sprintf("3. steady state, %s without changes", secs(s.Duration.Round(time.Second))),
		fmt.Sprintf("operator writes **%d** (Event writes %d), reads %d (%s); resourceVersion changes **%d** of %d Databases and children",
			reqWrites(s.Requests), reqEvents(s.Requests), reqReads(s.Requests), reqSummary(s.Requests), s.Changed, s.Objects),
		"zero writes: "+verdict(checks[2]))
	var mem []string
	for i, m := range r.Memory {
		label := fmt.Sprintf("N = %d", m.N)
		if i == len(r.Memory)-1 {
			label += fmt.Sprintf(" after the steady state")
		}
		mem = append(mem, fmt.Sprintf("%s: RSS **%s**, heap in use %s, live heap after last GC %s", label, mib(m.RSS), mib(m.HeapInuse), mib(m.LiveHeap)))
	}
	m0, _ := r.memoryAt(0)
	mN, _ := r.memoryAt(c.N)
	per := ""
	if c.N > 0 && mN.RSS > 0 {
		per = fmt.Sprintf("; per Database: RSS %.1f KiB, live heap %.1f KiB",
			(float64(mN.RSS)-float64(m0.RSS))/float64(c.N)/1024, (float64(mN.LiveHeap)-float64(m0.LiveHeap))/float64(c.N)/1024)
	}
	row("4. operator memory (the binary as a child process: VmRSS, /metrics, GODEBUG=gctrace=1)", strings.Join(mem, "; ")+per,
		"RSS < 150 MiB at N = 1,000: "+verdict(checks[4]))
	if len(r.Render) > 0 {
		var parts []string
		for _, rr := range r.Render {
			parts = append(parts, fmt.Sprintf("%s: %.1f µs/op, %d allocs/op, %.1f KiB/op", rr.Name, float64(rr.NsPerOp)/1000, rr.AllocsPerOp, float64(rr.BytesPerOp)/1024))
		}
		row("5. render (`go test -bench . -benchmem ./render/`)", strings.Join(parts, "; "), "")
	}
}

func reqWrites(r *requests) int {
	if r == nil {
		return 0
	}
	return r.Writes
}

func reqReads(r *requests) int {
	if r == nil {
		return 0
	}
	return r.Reads
}

func reqEvents(r *requests) int {
	if r == nil {
		return 0
	}
	return r.EventWrites
}

func reqFailed(r *requests) int {
	if r == nil {
		return 0
	}
	return r.Failed
}

func reqNotFound(r *requests) int {
	if r == nil {
		return 0
	}
	return r.NotFound
}

func reqUnattributed(r *requests) int {
	if r == nil {
		return 0
	}
	return r.Unattributed
}

func reqSummary(r *requests) string {
	if r == nil {
		return "none"
	}
	return r.summary()
}
