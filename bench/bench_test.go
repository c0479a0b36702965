package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/example/database-operator/internal/testenv"
)

// TestSmallBenchmark runs the whole benchmark with a small N inside
// `make test`, so it cannot rot, and asserts the targets that do not depend
// on timing: every Database converges, the operator writes at most
// children + 2 times per Database, and nothing is written in the steady
// state. Rates, latencies and memory are printed, not asserted:
// on a shared two-core machine they are noise at this size.
func TestSmallBenchmark(t *testing.T) {
	ctrllog.SetLogger(logr.Discard())
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	// The shipped build (make build, the Dockerfile), unless
	// DBBENCH_OPERATOR names another binary to measure.
	bin := os.Getenv("DBBENCH_OPERATOR")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "database-operator")
		build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./cmd/database-operator")
		build.Dir = root
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build ./cmd/database-operator: %v\n%s", err, out)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cfg := Config{
		N: 20, QPS: 50, Burst: 100, Workers: 4,
		Arrivals: 10, ArrivalRate: 10,
		Steady:  5 * time.Second,
		MemoryN: 5, PerNamespace: 10, Creators: 4,
		OperatorBinary: bin,
		WorkDir:        t.TempDir(),
		Timeout:        2 * time.Minute,
		Log:            logWriter{t},
	}
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	res.WriteTable(&table)
	t.Log("\n" + table.String())

	if res.Limit.Converged != cfg.N || res.Burst.Converged != cfg.N || res.Arrivals.Converged != cfg.Arrivals {
		t.Errorf("converged: limit %d, burst %d of %d, arrivals %d of %d", res.Limit.Converged, res.Burst.Converged, cfg.N, res.Arrivals.Converged, cfg.Arrivals)
	}
	// The counting itself: the limit loop writes exactly children + 2 per
	// Database, and the audit log must say so.
	if got := res.Limit.Requests.Writes; got != res.Limit.Budget || res.Limit.OverBudget != 0 || res.Limit.Requests.Unattributed != 0 {
		t.Errorf("the audit log counted %d writes of the limit loop (%d unattributed), want exactly %d", got, res.Limit.Requests.Unattributed, res.Limit.Budget)
	}
	for _, p := range []struct {
		name string
		p    Phase
	}{{"burst", res.Burst}, {"arrivals", res.Arrivals.Phase}} {
		// The target: at most children + 2 writes per Database. The echoes
		// of the operator's own writes must not cost a second round of
		// applies (reconcile/echoes.go).
		if p.p.OverBudget != 0 || p.p.Requests.Writes > p.p.Budget {
			t.Errorf("%s: the operator wrote %d times for %d Databases, budget children + 2 = %d; %d Databases over it (worst %d writes, +%d); requests: %s",
				p.name, p.p.Requests.Writes, p.p.DBs, p.p.Budget, p.p.OverBudget, p.p.MaxWrites, p.p.MaxOver, p.p.Requests.summary())
		}
		if p.p.Requests.Failed != 0 || p.p.Requests.Unattributed != 0 {
			t.Errorf("%s: %d failed and %d unattributed operator writes; requests: %s", p.name, p.p.Requests.Failed, p.p.Requests.Unattributed, p.p.Requests.summary())
		}
	}
	if w := res.SteadyWrites(); w != 0 || res.Steady.Changed != 0 {
		t.Errorf("steady state: %d operator writes (%s) and %d resourceVersion changes, want none", w, res.Steady.Requests.summary(), res.Steady.Changed)
	}
	if len(res.Memory) != 4 {
		t.Errorf("memory points: %+v, want 0, %d, %d and %d Databases", res.Memory, cfg.MemoryN, cfg.N, cfg.N+cfg.Arrivals)
	}
	for _, m := range res.Memory {
		if m.RSS == 0 || m.HeapInuse == 0 {
			t.Errorf("memory at N = %d not measured: %+v", m.N, m)
		}
	}
}

// logWriter sends the benchmark's progress to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
