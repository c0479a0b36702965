// Command dbbench is the operator's scale benchmark (issue 7): it starts
// its own envtest control plane, measures the limit (direct writes), the
// operator binary converging a burst of Databases, steady arrivals, the
// steady state, the operator's memory and render, and prints one markdown
// table. See package bench.
//
//	go run ./bench/cmd/dbbench -n 1000 -qps 50 -burst 100 -workers 4
//
// The operator is built from ./cmd/database-operator into the work folder
// unless -operator names a binary. kube-apiserver and etcd come from
// $KUBEBUILDER_ASSETS, else the one bin/envtest-* folder.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/example/database-operator/bench"
	"github.com/example/database-operator/internal/testenv"
)

func main() {
	d := bench.DefaultConfig()
	c := d
	flag.IntVar(&c.N, "n", d.N, "Databases created in one burst")
	flag.Float64Var(&c.QPS, "qps", d.QPS, "operator --kube-api-qps (and the limit loop's)")
	flag.IntVar(&c.Burst, "burst", d.Burst, "operator --kube-api-burst (and the limit loop's)")
	flag.IntVar(&c.Workers, "workers", d.Workers, "operator --max-concurrent-reconciles (and the limit loop's parallelism)")
	flag.IntVar(&c.Arrivals, "arrivals", d.Arrivals, "Databases created at a steady rate once the N are in place (0 skips)")
	flag.Float64Var(&c.ArrivalRate, "arrival-rate", d.ArrivalRate, "arrivals per second")
	flag.DurationVar(&c.Steady, "steady", d.Steady, "steady state: how long nothing changes")
	flag.IntVar(&c.MemoryN, "memory-n", d.MemoryN, "Databases of the small memory point, on a fresh operator (0 skips)")
	flag.IntVar(&c.PerNamespace, "per-namespace", d.PerNamespace, "Databases per namespace")
	flag.IntVar(&c.Creators, "creators", d.Creators, "parallel creates of the burst (the bench's own client, unthrottled)")
	flag.DurationVar(&c.Timeout, "timeout", d.Timeout, "the longest wait for a phase to converge")
	flag.BoolVar(&c.RenderBench, "render", d.RenderBench, "run the render micro-benchmark first")
	flag.StringVar(&c.OperatorBinary, "operator", "", "operator binary to run; empty builds ./cmd/database-operator (as `make build` does) into the work folder")
	flag.StringVar(&c.WorkDir, "workdir", "", "folder for the audit log, the operator's log and kubeconfig (default: a new temporary folder, kept)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "dbbench: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	c.Command = "go run ./bench/cmd/dbbench " + strings.Join(os.Args[1:], " ")

	// The bench's own controller-runtime informers log nothing useful.
	ctrllog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "dbbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c bench.Config) error {
	if c.WorkDir == "" {
		dir, err := os.MkdirTemp("", "dbbench-")
		if err != nil {
			return err
		}
		c.WorkDir = dir
	}
	if c.OperatorBinary == "" {
		root, err := testenv.RepoRoot()
		if err != nil {
			return err
		}
		c.OperatorBinary = filepath.Join(c.WorkDir, "database-operator")
		fmt.Fprintf(os.Stderr, "building ./cmd/database-operator into %s\n", c.OperatorBinary)
		// The same build as `make build` and the Dockerfile.
		build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", c.OperatorBinary, "./cmd/database-operator")
		build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if err := build.Run(); err != nil {
			return fmt.Errorf("go build ./cmd/database-operator: %w", err)
		}
	}
	res, err := bench.Run(ctx, c)
	if err != nil {
		return fmt.Errorf("%w (logs in %s)", err, c.WorkDir)
	}
	res.WriteTable(os.Stdout)
	fmt.Fprintf(os.Stderr, "audit log and operator log: %s\n", res.WorkDir)
	return nil
}
