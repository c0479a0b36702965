// Package testenv starts a real kube-apiserver and etcd (controller-runtime's
// envtest) with this repository's CRDs installed, for tests that must see what
// a real control plane does: OpenAPI and CEL validation, defaulting,
// subresources, server-side apply and managed fields. The fake client does
// none of that faithfully.
//
// The binaries come from the folder named by KUBEBUILDER_ASSETS; `make test`
// builds them from the Go module proxy and sets the variable. Without it the
// tests fail (they never skip), so a missing control plane cannot pass as green.
//
// One apiserver per test costs about 4 seconds. A package with many tests
// shares one from TestMain:
//
//	var env *testenv.Env
//
//	func TestMain(m *testing.M) {
//		var stop func()
//		var err error
//		env, stop, err = testenv.StartShared()
//		if err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//		code := m.Run()
//		stop()
//		os.Exit(code)
//	}
//
// and each test then works in its own namespace from env.Namespace(t).
package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// AssetsEnv is the environment variable naming the folder that holds the
// kube-apiserver and etcd binaries.
const AssetsEnv = "KUBEBUILDER_ASSETS"

// modulePath identifies this repository's go.mod when walking up to the root
// (nested tool modules under tools/ have their own go.mod).
const modulePath = "github.com/example/database-operator"

// Options configures an Env. The zero value installs config/crd of this
// repository and uses Scheme().
type Options struct {
	// CRDDirectories are folders of CRD manifests to install, relative to the
	// repository root unless absolute. Defaults to config/crd. A missing
	// folder is an error.
	CRDDirectories []string

	// Scheme is the scheme of Env.Client. Defaults to Scheme().
	Scheme *k8sruntime.Scheme
}

// Env is a running control plane with the CRDs installed.
type Env struct {
	// Config connects to the apiserver as an administrator.
	Config *rest.Config
	// Client is a direct (uncached) client for Config with Scheme.
	Client client.Client
	// Scheme knows the built-in types, apiextensions/v1 and this
	// repository's API types.
	Scheme *k8sruntime.Scheme
	// RepoRoot is the repository root the CRDs were read from.
	RepoRoot string
	// CRDs are the CustomResourceDefinitions installed at start.
	CRDs []*apiextensionsv1.CustomResourceDefinition

	environment *envtest.Environment
}

// Scheme returns a new scheme with client-go's built-in types,
// apiextensions/v1 (to read CRDs back) and database.example.com/v1.
func Scheme() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(apiextensionsv1.AddToScheme(s))
	utilruntime.Must(databasev1.AddToScheme(s))
	return s
}

// Start starts a control plane with the default Options for one test and
// stops it when the test and its subtests finish. It fails the test when
// KUBEBUILDER_ASSETS is unset or the control plane does not start.
func Start(t testing.TB) *Env {
	t.Helper()
	return Options{}.Start(t)
}

// Start starts a control plane configured by o for one test and stops it when
// the test and its subtests finish. It fails the test when KUBEBUILDER_ASSETS
// is unset or the control plane does not start.
func (o Options) Start(t testing.TB) *Env {
	t.Helper()
	env, stop, err := o.StartShared()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return env
}

// StartShared starts a control plane with the default Options, for use from
// TestMain where no testing.TB exists. Call stop when the tests are done. An
// error is returned when KUBEBUILDER_ASSETS is unset or the control plane
// does not start; TestMain should then exit non-zero.
func StartShared() (env *Env, stop func(), err error) {
	return Options{}.StartShared()
}

// StartShared starts a control plane configured by o, for use from TestMain.
// Call stop when the tests are done; it is safe to call more than once.
func (o Options) StartShared() (env *Env, stop func(), err error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, nil, err
	}
	assets, err := assetsDir(root)
	if err != nil {
		return nil, nil, err
	}

	scheme := o.Scheme
	if scheme == nil {
		scheme = Scheme()
	}
	dirs := o.CRDDirectories
	if len(dirs) == 0 {
		dirs = []string{filepath.Join("config", "crd")}
	}
	crdPaths := make([]string, len(dirs))
	for i, d := range dirs {
		if !filepath.IsAbs(d) {
			d = filepath.Join(root, d)
		}
		crdPaths[i] = d
	}

	useExisting := false
	te := &envtest.Environment{
		CRDDirectoryPaths:     crdPaths,
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
		Scheme:                scheme,
		// Always a fresh local control plane, whatever USE_EXISTING_CLUSTER says:
		// these tests create and delete objects freely.
		UseExistingCluster: &useExisting,
	}
	cfg, err := te.Start()
	if err != nil {
		// Stop whatever part of the control plane did start.
		_ = te.Stop()
		return nil, nil, fmt.Errorf("testenv: starting kube-apiserver and etcd from %s=%s: %w", AssetsEnv, assets, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = te.Stop()
		return nil, nil, fmt.Errorf("testenv: creating a client: %w", err)
	}

	env = &Env{
		Config:      cfg,
		Client:      c,
		Scheme:      scheme,
		RepoRoot:    root,
		CRDs:        te.CRDs,
		environment: te,
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			if err := te.Stop(); err != nil {
				fmt.Fprintf(os.Stderr, "testenv: stopping the control plane: %v\n", err)
			}
		})
	}
	return env, stop, nil
}

// Namespace creates a namespace with a unique name for t and returns its
// name. It is deleted when t finishes (envtest runs no namespace controller,
// so it stays Terminating, which is harmless: names are never reused).
func (e *Env) Namespace(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: namespacePrefix(t.Name()),
		Labels:       map[string]string{"database-operator.test/name": labelValue(t.Name())},
	}}
	if err := e.Client.Create(ctx, ns); err != nil {
		t.Fatalf("testenv: creating a namespace for %s: %v", t.Name(), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.Client.Delete(ctx, ns); err != nil && !apierrors.IsNotFound(err) {
			t.Logf("testenv: deleting namespace %s: %v", ns.Name, err)
		}
	})
	return ns.Name
}

// RepoRoot returns the root of this repository: the nearest folder, from the
// working directory up, whose go.mod declares github.com/example/database-operator.
// `go test` runs tests in their package's folder, so this works from any
// package. When the working directory is outside the repository it falls back
// to the location of this source file.
func RepoRoot() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	for _, start := range starts {
		for dir := start; ; {
			if isRepoRoot(dir) {
				return dir, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("testenv: no go.mod declaring module %s above %s", modulePath, strings.Join(starts, " or "))
}

// isRepoRoot reports whether dir holds a go.mod declaring modulePath.
func isRepoRoot(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`) == modulePath
		}
	}
	return false
}

// assetsDir returns the absolute folder named by KUBEBUILDER_ASSETS (a
// relative one is taken from the repository root, where make runs) after
// checking it holds kube-apiserver and etcd.
func assetsDir(root string) (string, error) {
	dir := os.Getenv(AssetsEnv)
	if dir == "" {
		return "", errors.New("testenv: " + AssetsEnv + " is not set, so there is no kube-apiserver and etcd to test against. " +
			"Run `make test` (it builds them into bin/ and sets " + AssetsEnv + "), or run `make envtest-assets` and set " +
			AssetsEnv + "=<repo>/bin/envtest-<kube version>-etcd-<etcd version>")
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, dir)
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		p := filepath.Join(dir, bin)
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("testenv: %s=%s has no usable %s (%v); run `make test` or `make envtest-assets` to build it", AssetsEnv, dir, bin, err)
		}
		if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return "", fmt.Errorf("testenv: %s is not an executable file; run `make envtest-assets` to rebuild it", p)
		}
	}
	return dir, nil
}

// namespacePrefix turns a test name into a DNS-1123 label prefix for
// GenerateName (the apiserver appends 5 random characters).
func namespacePrefix(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	p := strings.Trim(b.String(), "-")
	for strings.Contains(p, "--") {
		p = strings.ReplaceAll(p, "--", "-")
	}
	// 63 characters at most, minus 5 random ones and the separating '-'.
	if len(p) > 40 {
		p = strings.TrimRight(p[:40], "-")
	}
	switch {
	case p == "":
		p = "test"
	case p[0] < 'a' || p[0] > 'z':
		p = "t-" + p
	}
	return p + "-"
}

// labelValue turns a test name into a valid label value (for finding a
// test's namespace while debugging).
func labelValue(testName string) string {
	var b strings.Builder
	for _, r := range testName {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	v := b.String()
	if len(v) > 63 {
		v = v[:63]
	}
	return strings.Trim(v, "-_.")
}
