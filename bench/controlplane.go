package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/internal/testenv"
)

// controlPlane is envtest's kube-apiserver and etcd, with the CRD, the
// operator's ClusterRole, an audit log of the operator's and the limit
// loop's requests, and a user for each.
type controlPlane struct {
	env    *envtest.Environment
	scheme *runtime.Scheme
	// admin is unthrottled and not audited: the bench's own client.
	admin    *rest.Config
	adminCli client.Client
	// operator and limit connect as operatorUser and limitUser, bound to
	// the operator's ClusterRole (config/rbac/role.yaml).
	operator, limit *rest.Config
	// operatorKubeconfig is the operator's kubeconfig file.
	operatorKubeconfig string
	audit              *auditLog
	// warmUp is how long the first Database write took.
	warmUp time.Duration
}

// assetsDir is $KUBEBUILDER_ASSETS (relative paths from the repository
// root), else the one bin/envtest-* folder `make envtest-assets` made.
func assetsDir(root string) (string, error) {
	dir := os.Getenv(testenv.AssetsEnv)
	if dir == "" {
		matches, _ := filepath.Glob(filepath.Join(root, "bin", "envtest-*"))
		if len(matches) != 1 {
			return "", errors.New(testenv.AssetsEnv + " is not set and there is not exactly one bin/envtest-* folder; run `make envtest-assets` and set " +
				testenv.AssetsEnv + "=<repo>/bin/envtest-<kube version>-etcd-<etcd version>")
		}
		dir = matches[0]
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, dir)
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			return "", fmt.Errorf("%s=%s has no %s: %w", testenv.AssetsEnv, dir, bin, err)
		}
	}
	return dir, nil
}

// startControlPlane starts envtest with the audit log in dir.
func startControlPlane(ctx context.Context, dir string) (*controlPlane, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	assets, err := assetsDir(root)
	if err != nil {
		return nil, err
	}
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o644); err != nil {
		return nil, err
	}
	auditPath := filepath.Join(dir, "audit.log")
	scheme := testenv.Scheme()
	te := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
		Scheme:                scheme,
		UseExistingCluster:    ptr.To(false),
	}
	te.ControlPlane.GetAPIServer().Configure().
		Set("audit-policy-file", policy).
		Set("audit-log-path", auditPath).
		Set("audit-log-format", "json").
		// No rotation during a run (lumberjack's default is 100 MB).
		Set("audit-log-maxsize", "100000").
		// envtest's default /24 holds 254 ClusterIPs; a Database has one
		// or two ClusterIP Services.
		Set("service-cluster-ip-range", "10.96.0.0/12")
	admin, err := te.Start()
	if err != nil {
		_ = te.Stop()
		return nil, fmt.Errorf("start envtest from %s: %w", assets, err)
	}
	cp := &controlPlane{env: te, scheme: scheme, audit: newAuditLog(auditPath)}
	fail := func(err error) (*controlPlane, error) {
		cp.stop()
		return nil, err
	}
	cp.admin = rest.CopyConfig(admin)
	cp.admin.QPS = -1
	if cp.adminCli, err = client.New(cp.admin, client.Options{Scheme: scheme}); err != nil {
		return fail(err)
	}

	// Warm up the bench's client: the REST mapping of Databases (the
	// first one waits for the new CRD to appear in discovery).
	for start := time.Now(); ; {
		err := cp.adminCli.List(ctx, &databasev1.DatabaseList{}, client.Limit(1))
		if err == nil {
			break
		}
		if time.Since(start) > time.Minute {
			return fail(fmt.Errorf("list Databases: %w", err))
		}
		time.Sleep(100 * time.Millisecond)
	}

	// And the API server: its first write of a Database builds the CRD's
	// validators and field managers (about 2 s), a cost neither the limit
	// nor the operator should pay in their timed window.
	warm := newDatabase("default", "bench-warm-up", 0)
	t := time.Now()
	if err := cp.adminCli.Create(ctx, warm); err != nil {
		return fail(fmt.Errorf("warm-up: %w", err))
	}
	if err := cp.adminCli.Status().Apply(ctx, firstStatus(warm, metav1.Now()), client.FieldOwner("bench"), client.ForceOwnership); err != nil {
		return fail(fmt.Errorf("warm-up: %w", err))
	}
	if err := cp.adminCli.Delete(ctx, warm); err != nil {
		return fail(fmt.Errorf("warm-up: %w", err))
	}
	cp.warmUp = time.Since(t)

	role, err := os.ReadFile(filepath.Join(root, "config", "rbac", "role.yaml"))
	if err != nil {
		return fail(err)
	}
	var cr rbacv1.ClusterRole
	if err := yaml.Unmarshal(role, &cr); err != nil {
		return fail(fmt.Errorf("config/rbac/role.yaml: %w", err))
	}
	if err := cp.adminCli.Create(ctx, &cr); err != nil {
		return fail(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "database-operator-bench"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cr.Name},
		Subjects: []rbacv1.Subject{
			{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: operatorUser},
			{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: limitUser},
		},
	}
	if err := cp.adminCli.Create(ctx, binding); err != nil && !apierrors.IsAlreadyExists(err) {
		return fail(err)
	}

	op, err := te.AddUser(envtest.User{Name: operatorUser}, nil)
	if err != nil {
		return fail(err)
	}
	cp.operator = op.Config()
	kc, err := op.KubeConfig()
	if err != nil {
		return fail(err)
	}
	cp.operatorKubeconfig = filepath.Join(dir, "operator.kubeconfig")
	if err := os.WriteFile(cp.operatorKubeconfig, kc, 0o600); err != nil {
		return fail(err)
	}
	lim, err := te.AddUser(envtest.User{Name: limitUser}, nil)
	if err != nil {
		return fail(err)
	}
	cp.limit = lim.Config()
	return cp, nil
}

func (cp *controlPlane) stop() {
	if err := cp.env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "bench: stopping envtest:", err)
	}
}

func isAlreadyExists(err error) bool { return apierrors.IsAlreadyExists(err) }
