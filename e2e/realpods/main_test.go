// Package realpods is the real-pod suite: the operator, installed with its
// Helm chart and running in the cluster, serving PostgreSQL Databases whose
// pods really run (containerd and runc on three nodes of this machine, see
// e2e/realcluster). Every check talks to the database for real, from a
// client pod, as an application would.
//
// `make test-e2e-real` starts the cluster and runs this package with:
//
//	E2E_KUBECONFIG  the cluster's kubeconfig
//	E2E_KUBECTL     a kubectl matching the server
//	E2E_HELM4       Helm 4 (the operator is installed with --server-side)
//	E2E_OPERATOR_IMAGE_KEY  the operator image archive's build key
//
// and the environment of e2e/realcluster/cluster.sh, which the node-loss
// test calls to stop and start a node.
//
// MySQL is not here: no MySQL server image can be built on this machine (no
// registry serves one and no Debian suite packages it). MySQL stays on the
// kwok suite (e2e/) and the engine tests (enginetest/, on MariaDB).
package realpods

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/example/database-operator/internal/testenv"
)

var (
	kubeconfigPath, kubectlBinary, helmBinary, repoRoot string
	// k8s reads and writes the cluster as its administrator.
	k8s client.Client
)

// operatorNamespace is where the chart runs the operator.
const operatorNamespace = "database-operator"

func TestMain(m *testing.M) {
	if err := setup(); err != nil {
		fmt.Fprintf(os.Stderr, "realpods: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	if code != 0 {
		dumpOperatorLogs()
	}
	os.Exit(code)
}

func setup() error {
	for _, v := range []struct {
		name string
		dst  *string
	}{
		{"E2E_KUBECONFIG", &kubeconfigPath}, {"E2E_KUBECTL", &kubectlBinary},
		{"E2E_HELM4", &helmBinary},
	} {
		if *v.dst = os.Getenv(v.name); *v.dst == "" {
			return fmt.Errorf("%s is not set (run the suite with make test-e2e-real)", v.name)
		}
	}
	var err error
	if repoRoot, err = testenv.RepoRoot(); err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfigPath)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	if k8s, err = client.New(cfg, client.Options{Scheme: testenv.Scheme()}); err != nil {
		return err
	}
	return installOperator()
}

// installOperator installs (or upgrades) the chart with Helm 4 and
// server-side apply: the operator's own image, two replicas with leader
// election, in a namespace that enforces the restricted Pod Security
// Standard. Helm waits until both replicas are Ready.
func installOperator() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, errOut, err := kubectl(ctx, "", "create", "namespace", operatorNamespace); err != nil && !strings.Contains(errOut, "AlreadyExists") {
		return fmt.Errorf("create namespace %s: %v: %s", operatorNamespace, err, errOut)
	}
	if _, errOut, err := kubectl(ctx, "", "label", "--overwrite", "namespace", operatorNamespace, restrictedLabel+"=restricted"); err != nil {
		return fmt.Errorf("label namespace %s: %v: %s", operatorNamespace, err, errOut)
	}
	start := time.Now()
	out, err := runCommand(ctx, "", helmBinary, "--kubeconfig", kubeconfigPath, "upgrade", "--install",
		"database-operator", filepath.Join(repoRoot, "charts", "database-operator"),
		"-n", operatorNamespace, "--server-side=true", "--wait", "--timeout", "4m",
		"--set", "replicaCount=2", "--set", "logFormat=json",
		// The image's tag never changes; its build key does, so a rebuilt
		// operator image rolls the pods of a reused cluster.
		"--set-string", "podAnnotations.database\\.example\\.com/image-key="+os.Getenv("E2E_OPERATOR_IMAGE_KEY"))
	if err != nil {
		return fmt.Errorf("helm install: %v\n%s", err, out)
	}
	fmt.Fprintf(os.Stderr, "realpods: operator installed with the chart (Helm 4, server-side) in %s\n", time.Since(start).Round(time.Second))
	return nil
}

// dumpOperatorLogs prints the end of each operator replica's log.
func dumpOperatorLogs() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, _, _ := kubectl(ctx, "", "-n", operatorNamespace, "logs", "-l", "app.kubernetes.io/name=database-operator",
		"--all-containers", "--prefix", "--tail", "60")
	fmt.Fprintf(os.Stderr, "realpods: the operator's logs (last lines of each replica):\n%s\n", out)
}
