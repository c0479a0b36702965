// Package e2e is the end-to-end suite: the operator, as the built binary,
// against a local cluster with a real kube-apiserver, etcd, scheduler,
// StatefulSet and CronJob controllers and garbage collector (kwok plays the
// kubelets, so pods become Running and Ready without running anything).
//
// `make test-e2e` starts the cluster, builds the binaries and runs this
// package with:
//
//	E2E_KUBECONFIG  the cluster's kubeconfig
//	E2E_OPERATOR    the operator binary (bin/database-operator)
//	E2E_KUBECTL     a kubectl matching the server
//	E2E_HELM3       a Helm 3 binary (the chart's install tests)
//	E2E_HELM4       a Helm 4 binary
//
// Every operator process logs to a file in a temporary folder; a failing
// test prints the end of the logs, and the folder is kept when a test
// failed or E2E_KEEP_LOGS is set.
//
// Tests run one after the other, each in a namespace of its own. One
// operator process (the shared operator, watching every namespace) serves
// them; the restart and leader-election tests stop it, run processes of
// their own, and start it again when they end.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/uuid"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// Bounds of every wait. kwok makes a pod Ready about a second after it is
// scheduled and the operator reacts within milliseconds; these leave room
// for a loaded machine without letting a broken suite hang.
const (
	// appearTimeout is how long children may take to appear (the 30 s).
	appearTimeout = 30 * time.Second
	// readyTimeout is how long a Database may take to become Ready.
	readyTimeout = 90 * time.Second
	// goneTimeout is how long the garbage collector may take.
	goneTimeout = 60 * time.Second
	// poll is how often waits look again.
	poll = 200 * time.Millisecond
	// settle is how long a test watches for something that must not happen.
	settle = 3 * time.Second
)

var (
	// kubeconfigPath, operatorBinary and kubectlBinary come from the
	// environment (see the package comment).
	kubeconfigPath string
	operatorBinary string
	kubectlBinary  string
	// helm3Binary and helm4Binary too (E2E_HELM3, E2E_HELM4).
	helm3Binary, helm4Binary string
	// repoRoot is the repository's root folder (samples, CRD).
	repoRoot string
	// logDir holds the operators' logs; removed at the end when every test
	// passed, unless E2E_KEEP_LOGS is set.
	logDir string
	// k8s reads and writes the cluster.
	k8s client.Client
	// scheme knows client-go's kinds and Databases.
	scheme = runtime.NewScheme()
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if err := setup(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	var err error
	if logDir, err = os.MkdirTemp("", "database-operator-e2e-"); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	if err := startSharedOperator(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	code := m.Run()
	if err := stopSharedOperator(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	if code == 0 && os.Getenv("E2E_KEEP_LOGS") == "" {
		_ = os.RemoveAll(logDir)
	} else {
		fmt.Fprintf(os.Stderr, "e2e: the operators' logs are in %s\n", logDir)
	}
	return code
}

// setup reads the environment, builds the client and installs the CRD.
func setup() error {
	var missing []string
	for _, v := range []struct {
		name string
		dst  *string
	}{
		{"E2E_KUBECONFIG", &kubeconfigPath},
		{"E2E_OPERATOR", &operatorBinary},
		{"E2E_KUBECTL", &kubectlBinary},
		{"E2E_HELM3", &helm3Binary},
		{"E2E_HELM4", &helm4Binary},
	} {
		name, dst := v.name, v.dst
		*dst = os.Getenv(name)
		if *dst == "" {
			missing = append(missing, name)
			continue
		}
		abs, err := filepath.Abs(*dst)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("%s=%s: %w; run make test-e2e", name, *dst, err)
		}
		*dst = abs
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s not set: the end-to-end suite needs a cluster and the built binaries; run make test-e2e",
			strings.Join(missing, ", "))
	}

	var err error
	if repoRoot, err = filepath.Abs(".."); err != nil {
		return err
	}
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := databasev1.AddToScheme(scheme); err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfigPath)
	if err != nil {
		return fmt.Errorf("load %s: %w", kubeconfigPath, err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	// Bound every request, so a stuck API server fails a test instead of
	// hanging the suite.
	cfg.Timeout = 30 * time.Second
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return fmt.Errorf("client: %w", err)
	}

	// Install or update the CRD the way `make install-crd` does.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, errOut, err := kubectl(ctx, "", "apply", "--server-side", "--force-conflicts",
		"--field-manager=e2e", "-f", filepath.Join(repoRoot, "config", "crd")); err != nil {
		return fmt.Errorf("install the CRD: %v\n%s%s", err, out, errOut)
	}
	if out, errOut, err := kubectl(ctx, "", "wait", "--for=condition=Established",
		"crd/databases.database.example.com", "--timeout=60s"); err != nil {
		return fmt.Errorf("wait for the CRD: %v\n%s%s", err, out, errOut)
	}
	// The client's REST mapper learns about the new kind lazily; make sure
	// the API answers for Databases before any test starts.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := k8s.List(ctx, &databasev1.DatabaseList{}, client.Limit(1))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("list Databases: %w", err)
		}
		time.Sleep(poll)
	}
	return waitForGarbageCollector(ctx)
}

// waitForGarbageCollector waits until the cluster's garbage collector knows
// Databases. It learns new kinds only at its discovery resync (every 30 s in
// kube-controller-manager), and until then it fails, and retries with a
// growing backoff, to collect the children of a deleted Database: on a
// fresh cluster that has taken over 40 s. The probe is a ConfigMap owned by
// a Database that does not exist; a new one every few seconds, so that no
// probe carries a long backoff, until one is collected.
func waitForGarbageCollector(ctx context.Context) error {
	start := time.Now()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-gc-probe-"}}
	if err := k8s.Create(ctx, ns); err != nil {
		return fmt.Errorf("garbage collector probe: %w", err)
	}
	defer func() { _ = k8s.Delete(context.Background(), ns) }()
	for {
		probe := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
			GenerateName: "probe-",
			Namespace:    ns.Name,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: databasev1.GroupVersion.String(),
				Kind:       "Database",
				Name:       "gone",
				UID:        uuid.NewUUID(),
			}},
		}}
		if err := k8s.Create(ctx, probe); err != nil {
			return fmt.Errorf("garbage collector probe: %w", err)
		}
		for until := time.Now().Add(5 * time.Second); time.Now().Before(until); time.Sleep(poll) {
			err := k8s.Get(ctx, client.ObjectKeyFromObject(probe), &corev1.ConfigMap{})
			if apierrors.IsNotFound(err) {
				if waited := time.Since(start); waited > 5*time.Second {
					fmt.Fprintf(os.Stderr, "e2e: the garbage collector learnt Databases after %s\n", waited.Round(time.Second))
				}
				return nil
			}
		}
		if time.Since(start) > 2*time.Minute {
			return fmt.Errorf("the garbage collector did not collect a ConfigMap owned by a missing Database within %s", time.Since(start).Round(time.Second))
		}
	}
}

// kubectl runs the kubectl binary against the test cluster; stdin, when not
// empty, is its standard input.
func kubectl(ctx context.Context, stdin string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.CommandContext(ctx, kubectlBinary, append([]string{"--kubeconfig", kubeconfigPath}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// mustKubectl runs kubectl and fails the test when it fails.
func mustKubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, errOut, err := kubectl(ctx, stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

var nonName = regexp.MustCompile(`[^a-z0-9]+`)

// newNamespace creates a namespace for t, named after it, and deletes it
// (without waiting) when t ends. When t fails, it first prints what the
// namespace holds.
func newNamespace(t *testing.T) string {
	t.Helper()
	base := strings.Trim(nonName.ReplaceAllString(strings.ToLower(strings.TrimPrefix(t.Name(), "Test")), "-"), "-")
	if len(base) > 40 {
		base = strings.Trim(base[:40], "-")
	}
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	name := "e2e-" + base + "-" + hex.EncodeToString(suffix)

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"e2e.database.example.com/test": base}}}
	if err := k8s.Create(t.Context(), ns); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := k8s.Delete(ctx, ns, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
			t.Logf("delete namespace %s: %v", name, err)
		}
	})
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, errOut, _ := kubectl(ctx, "", "-n", name, "get",
			"databases,statefulsets,services,configmaps,secrets,persistentvolumeclaims,cronjobs,poddisruptionbudgets,pods",
			"-o", "wide")
		t.Logf("namespace %s holds:\n%s%s", name, out, errOut)
		out, errOut, _ = kubectl(ctx, "", "-n", name, "get", "databases", "-o", "yaml")
		t.Logf("Databases in %s:\n%s%s", name, out, errOut)
	})
	t.Logf("namespace %s", name)
	return name
}
