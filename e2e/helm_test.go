package e2e

// The Helm chart on the local cluster (README, "Install with Helm"):
// install with Helm 3 and with Helm 4 server-side, the operator running
// with exactly the chart's RBAC, upgrade, uninstall, and the deletion
// protection policy.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

// crdName is the Database CRD.
const crdName = "databases.database.example.com"

// helmCLI is one Helm major version and how the tests call it.
type helmCLI struct {
	name   string
	binary *string
	// noWait makes install and upgrade return once the objects are written:
	// the operator's pod never runs anything on this cluster.
	noWait string
	// installFlags and upgradeFlags are added to helm install and upgrade.
	installFlags, upgradeFlags []string
	// operation is how Helm writes objects, as their managedFields record it.
	operation metav1.ManagedFieldsOperationType
	// home holds Helm's config, cache and data (not the user's).
	home string
}

var (
	helm3 = helmCLI{
		name: "helm3", binary: &helm3Binary, noWait: "--wait=false",
		operation: metav1.ManagedFieldsOperationUpdate,
	}
	// Helm 4 spells "do not wait" hookOnly (--wait=false still works,
	// with a deprecation warning).
	helm4 = helmCLI{
		name: "helm4", binary: &helm4Binary, noWait: "--wait=hookOnly",
		installFlags: []string{"--server-side"}, upgradeFlags: []string{"--server-side=true"},
		operation: metav1.ManagedFieldsOperationApply,
	}
)

// forTest gives h a Helm home of t's own.
func (h helmCLI) forTest(t *testing.T) helmCLI {
	t.Helper()
	if *h.binary == "" {
		t.Fatalf("E2E_%s is not set: run make test-e2e", strings.ToUpper(h.name))
	}
	h.home = t.TempDir()
	return h
}

// run runs Helm against the test cluster.
func (h helmCLI) run(args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, *h.binary, append(args, "--kubeconfig", kubeconfigPath)...)
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(h.home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(h.home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(h.home, "data"),
	)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// must runs Helm and fails t when it fails.
func (h helmCLI) must(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := h.run(args...)
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", h.name, strings.Join(args, " "), err, out, errOut)
	}
	head, _, _ := strings.Cut(out, "NOTES:")
	t.Logf("%s %s:\n%s%s", h.name, strings.Join(args, " "), strings.TrimSpace(head), errOut)
	return out
}

// chartDir is the chart under test.
func chartDir() string {
	return filepath.Join(repoRoot, "charts", "database-operator")
}

// objRef names one object the chart creates.
type objRef struct {
	gvk             schema.GroupVersionKind
	namespace, name string
}

func (r objRef) String() string {
	if r.namespace == "" {
		return r.gvk.Kind + " " + r.name
	}
	return r.gvk.Kind + " " + r.namespace + "/" + r.name
}

// meta reads r's metadata; the error is the API's.
func (r objRef) meta() (*metav1.PartialObjectMetadata, error) {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(r.gvk)
	return m, get(r.namespace, r.name, m)
}

var crdRef = objRef{gvk: schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}, name: crdName}

// releaseObjects are the objects a release of the chart with the default
// values creates, the CRD apart. The release names used here contain the
// chart's name, so the full name is the release's name.
func releaseObjects(release, ns string) []objRef {
	gvk := func(group, kind string) schema.GroupVersionKind {
		return schema.GroupVersionKind{Group: group, Version: "v1", Kind: kind}
	}
	return []objRef{
		{gvk("apps", "Deployment"), ns, release},
		{gvk("", "ServiceAccount"), ns, release},
		{gvk("", "Service"), ns, release + "-metrics"},
		{gvk("rbac.authorization.k8s.io", "ClusterRole"), "", release},
		{gvk("rbac.authorization.k8s.io", "ClusterRoleBinding"), "", release},
		{gvk("rbac.authorization.k8s.io", "Role"), ns, release + "-leader-election"},
		{gvk("rbac.authorization.k8s.io", "RoleBinding"), ns, release + "-leader-election"},
		{gvk("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"), "", release + "-deletion-protection"},
		{gvk("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"), "", release + "-deletion-protection"},
	}
}

// adoptCRD lets the release own the CRD TestMain installed, the way Helm
// documents adopting an existing object: its managed-by label and its
// release-name and release-namespace annotations.
func adoptCRD(t *testing.T, release, ns string) {
	t.Helper()
	mustKubectl(t, "", "label", "crd", crdName, "app.kubernetes.io/managed-by=Helm", "--overwrite")
	mustKubectl(t, "", "annotate", "crd", crdName, "meta.helm.sh/release-name="+release,
		"meta.helm.sh/release-namespace="+ns, "--overwrite")
}

// cleanupRelease makes sure, when t ends, that the release is uninstalled
// (above all its ValidatingAdmissionPolicy, which would block deleting
// production Databases in later tests' namespaces) and that the CRD is the
// one TestMain installed.
func cleanupRelease(t *testing.T, h helmCLI, release, ns string) {
	t.Helper()
	t.Cleanup(func() {
		if out, errOut, err := h.run("uninstall", release, "-n", ns, "--ignore-not-found"); err != nil {
			t.Errorf("%s uninstall %s: %v\n%s%s", h.name, release, err, out, errOut)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		policy := release + "-deletion-protection"
		if out, errOut, err := kubectl(ctx, "", "delete", "--ignore-not-found",
			"validatingadmissionpolicybinding/"+policy, "validatingadmissionpolicy/"+policy); err != nil {
			t.Errorf("delete the deletion protection policy %s: %v\n%s%s", policy, err, out, errOut)
		}
		if out, errOut, err := kubectl(ctx, "", "apply", "--server-side", "--force-conflicts",
			"--field-manager=e2e", "-f", filepath.Join(repoRoot, "config", "crd")); err != nil {
			t.Errorf("re-apply the CRD: %v\n%s%s", err, out, errOut)
		}
	})
}

// impersonatingKubeconfig writes a copy of the suite's kubeconfig whose
// user acts as user (the API server checks user's permissions only).
func impersonatingKubeconfig(t *testing.T, user string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(kubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := clientcmd.ResolveLocalPaths(cfg); err != nil {
		t.Fatal(err)
	}
	kctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok {
		t.Fatalf("%s: no current context", kubeconfigPath)
	}
	auth, ok := cfg.AuthInfos[kctx.AuthInfo]
	if !ok {
		t.Fatalf("%s: no user %q", kubeconfigPath, kctx.AuthInfo)
	}
	auth = auth.DeepCopy()
	auth.Impersonate = user
	cfg.AuthInfos[kctx.AuthInfo] = auth
	path := filepath.Join(t.TempDir(), "kubeconfig-as-"+nonName.ReplaceAllString(user, "-"))
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// kubectlWith runs kubectl with another kubeconfig.
func kubectlWith(kubeconfig string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, kubectlBinary, append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
	return string(out), err
}

// namespaceTerminating is the refusal of writes into a namespace being
// deleted (an earlier test's): the API server says "forbidden", but it is
// no lack of permission.
var namespaceTerminating = regexp.MustCompile(`forbidden: unable to create new content in namespace \S+ because it is being terminated`)

// rbacDenial is how the API server words a request RBAC refused.
var rbacDenial = regexp.MustCompile(`cannot (\w+) resource \\?"([^"\\]+)\\?" in API group \\?"([^"\\]*)\\?"`)

// forbiddenLines are the lines of log that tell of a request the API
// server refused as forbidden, apart from writes into terminating
// namespaces.
func forbiddenLines(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(strings.ToLower(namespaceTerminating.ReplaceAllString(l, "")), "forbidden") {
			out = append(out, l)
		}
	}
	return out
}

// missingPermissions names the verbs and resources of RBAC refusals in
// lines, e.g. `list secrets (group "")`.
func missingPermissions(lines []string) []string {
	var out []string
	for _, l := range lines {
		for _, m := range rbacDenial.FindAllStringSubmatch(l, -1) {
			p := fmt.Sprintf("%s %s (group %q)", m[1], m[2], m[3])
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// TestHelmInstallHelm3 installs, upgrades and uninstalls the chart with
// Helm 3.
func TestHelmInstallHelm3(t *testing.T) {
	testHelmInstall(t, helm3.forTest(t))
}

// TestHelmInstallHelm4 does the same with Helm 4 and server-side apply.
func TestHelmInstallHelm4(t *testing.T) {
	testHelmInstall(t, helm4.forTest(t))
}

// testHelmInstall: helm install (adopting the CRD TestMain applied); the
// operator, impersonating the chart's ServiceAccount, brings a Database to
// Ready with nothing but the chart's RBAC; helm upgrade with other values;
// helm uninstall leaves the CRD and the Databases.
func testHelmInstall(t *testing.T, h helmCLI) {
	pauseSharedOperator(t)
	g := NewWithT(t)
	relNS := newNamespace(t)
	dbNS := newNamespace(t)
	release := "database-operator-" + h.name
	objects := releaseObjects(release, relNS)
	deployment := objects[0]
	serviceAccount := release

	adoptCRD(t, release, relNS)
	cleanupRelease(t, h, release, relNS)

	t.Logf("%s install %s into %s", h.name, release, relNS)
	out := h.must(t, append([]string{"install", release, chartDir(), "-n", relNS, h.noWait}, h.installFlags...)...)
	g.Expect(out).To(ContainSubstring("STATUS: deployed"))
	g.Expect(out).To(ContainSubstring("Create a first Database"), "the install notes")
	for _, r := range objects {
		m, err := r.meta()
		g.Expect(err).NotTo(HaveOccurred(), "%s after helm install", r)
		g.Expect(m.Labels).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "Helm"), "%s", r)
		g.Expect(m.Annotations).To(HaveKeyWithValue("meta.helm.sh/release-name", release), "%s", r)
	}
	crd, err := crdRef.meta()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(crd.Annotations).To(HaveKeyWithValue("helm.sh/resource-policy", "keep"))
	g.Expect(crd.Labels).To(HaveKeyWithValue("app.kubernetes.io/instance", release), "the release owns the CRD")

	deploy := &appsv1.Deployment{}
	g.Expect(get(relNS, deployment.name, deploy)).To(Succeed())
	g.Expect(deploy.Spec.Replicas).To(HaveValue(BeEquivalentTo(1)))
	g.Expect(deploy.Spec.Template.Spec.ServiceAccountName).To(Equal(serviceAccount))
	manager := container(deploy.Spec.Template.Spec, "manager")
	g.Expect(manager).NotTo(BeNil())
	g.Expect(manager.Args).NotTo(ContainElement("--leader-elect"), "one replica needs no leader election")
	g.Expect(manager.Args).To(ContainElement("--log-level=info"))
	var helmWrites []string
	for _, mf := range deploy.ManagedFields {
		if mf.Manager == "helm" {
			helmWrites = append(helmWrites, string(mf.Operation))
		}
	}
	g.Expect(helmWrites).To(ContainElement(string(h.operation)), "how %s wrote the Deployment (managedFields)", h.name)

	t.Logf("run the operator as system:serviceaccount:%s:%s", relNS, serviceAccount)
	user := "system:serviceaccount:" + relNS + ":" + serviceAccount
	asSA := impersonatingKubeconfig(t, user)
	whoami, err := kubectlWith(asSA, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
	g.Expect(err).NotTo(HaveOccurred(), whoami)
	g.Expect(whoami).To(Equal(user))
	canDelete, _ := kubectlWith(asSA, "auth", "can-i", "delete", "databases.database.example.com", "-n", dbNS)
	g.Expect(strings.TrimSpace(canDelete)).To(Equal("no"), "the chart's ServiceAccount must not delete Databases")

	op := ownOperatorWith(t, h.name+"-as-sa", asSA, []string{"POD_NAMESPACE=" + relNS}, "--leader-elect")
	g.Expect(waitForLog(t.Context(), op, 0, logLeaseAcquired, leaseDuration+15*time.Second)).To(Succeed())
	g.Expect(waitForLog(t.Context(), op, 0, logWorkersStarted, 30*time.Second)).To(Succeed())
	lease := &coordinationv1.Lease{}
	g.Expect(get(relNS, leaseName, lease)).To(Succeed(), "the leader election Lease in the release's namespace")
	g.Expect(ptr.Deref(lease.Spec.HolderIdentity, "")).NotTo(BeEmpty())

	db := newDatabase(dbNS, "orders", databasev1.PostgreSQL, 3, withBackup(farSchedule()))
	g.Expect(k8s.Create(ctx(), db)).To(Succeed())
	// Fail as soon as the API server refuses the operator a request.
	expectPermitted := func(Gomega) {
		if forbidden := forbiddenLines(op.logText()); len(forbidden) > 0 {
			StopTrying(fmt.Sprintf("the operator was refused requests with the chart's RBAC (missing: %v); "+
				"add them to the RBAC markers in reconcile/ (make generate copies them into the chart):\n%s",
				missingPermissions(forbidden), tail(strings.Join(forbidden, "\n"), 10))).Now()
		}
	}
	g.Eventually(func(g Gomega) {
		expectPermitted(g)
		expectReady(g, getDatabase(g, dbNS, db.Name), 3)
		podsReady(g, dbNS, db.Name, 3)
		expectExactChildren(g, dbNS, 1)
	}).WithTimeout(readyTimeout).WithPolling(poll).Should(Succeed(), "Database %s/%s never became Ready", dbNS, db.Name)
	// Events are sent in the background: give refusals time to be logged.
	g.Consistently(expectPermitted).WithTimeout(settle).WithPolling(poll).Should(Succeed())
	g.Expect(op.terminate(35*time.Second)).To(Succeed(), "the operator must exit 0 on SIGTERM")

	t.Logf("%s upgrade %s with other values", h.name, release)
	annotation := "e2e.database.example.com/upgraded-by-" + h.name
	values := filepath.Join(t.TempDir(), "values.yaml")
	g.Expect(os.WriteFile(values, fmt.Appendf(nil,
		"logLevel: debug\nreplicaCount: 2\ncrds:\n  annotations:\n    %s: \"true\"\n", annotation), 0o644)).To(Succeed())
	out = h.must(t, append([]string{"upgrade", release, chartDir(), "-n", relNS, "-f", values, h.noWait}, h.upgradeFlags...)...)
	g.Expect(out).To(ContainSubstring("STATUS: deployed"))
	g.Expect(out).To(ContainSubstring("REVISION: 2"))
	g.Expect(get(relNS, deployment.name, deploy)).To(Succeed())
	g.Expect(deploy.Spec.Replicas).To(HaveValue(BeEquivalentTo(2)))
	manager = container(deploy.Spec.Template.Spec, "manager")
	g.Expect(manager).NotTo(BeNil())
	g.Expect(manager.Args).To(ContainElements("--leader-elect", "--log-level=debug"))
	g.Expect(manager.Args).NotTo(ContainElement("--log-level=info"))
	crd, err = crdRef.meta()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(crd.Annotations).To(HaveKeyWithValue(annotation, "true"), "crds.annotations")
	g.Expect(crd.Annotations).To(HaveKeyWithValue("helm.sh/resource-policy", "keep"))

	t.Logf("%s uninstall %s", h.name, release)
	out = h.must(t, "uninstall", release, "-n", relNS)
	g.Expect(out).To(ContainSubstring(crdName), "helm uninstall says it kept the CRD")
	statusOut, statusErr, err := h.run("status", release, "-n", relNS)
	g.Expect(err).To(HaveOccurred(), "helm status after helm uninstall: %s", statusOut)
	g.Expect(statusErr).To(ContainSubstring("not found"))
	g.Eventually(func(g Gomega) {
		for _, r := range objects {
			_, err := r.meta()
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%s still exists after helm uninstall (err %v)", r, err)
		}
	}).WithTimeout(goneTimeout).WithPolling(poll).Should(Succeed())
	g.Consistently(func(g Gomega) {
		crd, err := crdRef.meta()
		g.Expect(err).NotTo(HaveOccurred(), "the CRD must outlive helm uninstall")
		g.Expect(crd.DeletionTimestamp).To(BeNil(), "the CRD is being deleted")
		after := getDatabase(g, dbNS, db.Name)
		g.Expect(after.UID).To(Equal(db.UID), "the Database must outlive helm uninstall")
		g.Expect(after.DeletionTimestamp).To(BeNil(), "the Database is being deleted")
		g.Expect(get(dbNS, render.StatefulSetName(db.Name), &appsv1.StatefulSet{})).To(Succeed())
	}).WithTimeout(settle).WithPolling(poll).Should(Succeed())
}

// suggestedCommand is the kubectl command a refusal tells to run.
var suggestedCommand = regexp.MustCompile(`e\.g\. (kubectl [^\n]*)`)

// TestDeletionProtection: with the chart's ValidatingAdmissionPolicy, a
// production Database cannot be deleted until it is unprotected, with a
// message that tells how; other Databases can.
func TestDeletionProtection(t *testing.T) {
	h := helm3.forTest(t)
	g := NewWithT(t)
	relNS := newNamespace(t)
	ns := newNamespace(t)
	release := "database-operator-protection"
	cleanupRelease(t, h, release, relNS)
	// Leave no protected Database behind, even when the policy outlives
	// the test: the namespace could not be deleted.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var dbs databasev1.DatabaseList
		if err := k8s.List(ctx, &dbs, client.InNamespace(ns)); err != nil {
			t.Errorf("list Databases: %v", err)
			return
		}
		for _, db := range dbs.Items {
			if out, errOut, err := kubectl(ctx, "", "-n", ns, "patch", "database", db.Name, "--type=merge",
				"-p", `{"spec":{"deletionProtection":false}}`); err != nil {
				t.Errorf("unprotect %s: %v\n%s%s", db.Name, err, out, errOut)
			}
		}
	})

	// The CRD stays TestMain's; the policy is what is tested.
	h.must(t, "install", release, chartDir(), "-n", relNS, h.noWait,
		"--set", "crds.install=false", "--set", "deletionProtection.enabled=true")

	production := func(name string, opts ...func(*databasev1.Database)) *databasev1.Database {
		db := newDatabase(ns, name, databasev1.PostgreSQL, 2, opts...)
		db.Spec.Environment = databasev1.Production
		return db
	}
	protected := production("orders")
	development := newDatabase(ns, "scratch", databasev1.MySQL, 1)
	unprotected := production("legacy", func(db *databasev1.Database) { db.Spec.DeletionProtection = ptr.To(false) })
	explicit := newDatabase(ns, "keep-me", databasev1.MySQL, 1, func(db *databasev1.Database) { db.Spec.DeletionProtection = ptr.To(true) })
	for _, db := range []*databasev1.Database{protected, development, unprotected, explicit} {
		g.Expect(k8s.Create(ctx(), db)).To(Succeed())
	}

	deleteDB := func(name string, extra ...string) (string, error) {
		c, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, errOut, err := kubectl(c, "", append([]string{"-n", ns, "delete", "db", name}, extra...)...)
		return out + errOut, err
	}

	// A new policy takes a moment to be enforced; a dry run goes through
	// admission without deleting anything.
	g.Eventually(func(g Gomega) {
		out, err := deleteDB(protected.Name, "--dry-run=server")
		g.Expect(err).To(HaveOccurred(), "the policy does not refuse yet: %s", out)
	}).WithTimeout(appearTimeout).WithPolling(poll).Should(Succeed())

	t.Log("a production Database is protected by default")
	out, err := deleteDB(protected.Name)
	g.Expect(err).To(HaveOccurred(), "kubectl delete db %s: %s", protected.Name, out)
	t.Logf("kubectl delete db %s:\n%s", protected.Name, out)
	g.Expect(out).To(ContainSubstring("Forbidden"))
	g.Expect(out).To(ContainSubstring(release + "-deletion-protection"))
	g.Expect(out).To(ContainSubstring(fmt.Sprintf("Database %s/%s is protected from deletion", ns, protected.Name)))
	g.Expect(out).To(ContainSubstring("production Databases are protected by default"))
	g.Expect(out).To(ContainSubstring("deletionProtection"), "the message must say how to unprotect it")
	g.Expect(out).To(ContainSubstring("kubectl"), "the message must say how to unprotect it")
	g.Expect(get(ns, protected.Name, &databasev1.Database{})).To(Succeed())
	refusal := out

	t.Log("spec.deletionProtection: true protects any Database")
	out, err = deleteDB(explicit.Name)
	g.Expect(err).To(HaveOccurred(), "kubectl delete db %s: %s", explicit.Name, out)
	g.Expect(out).To(ContainSubstring("spec.deletionProtection is true"))

	t.Log("a development Database, and a production one with spec.deletionProtection: false, can be deleted")
	for _, name := range []string{development.Name, unprotected.Name} {
		out, err := deleteDB(name)
		g.Expect(err).NotTo(HaveOccurred(), "kubectl delete db %s: %s", name, out)
	}
	expectGone(t, ns, &databasev1.Database{ObjectMeta: metav1.ObjectMeta{Name: development.Name}},
		&databasev1.Database{ObjectMeta: metav1.ObjectMeta{Name: unprotected.Name}})

	t.Log("unprotect the production Database the way the message says, then delete it")
	m := suggestedCommand.FindStringSubmatch(refusal)
	g.Expect(m).To(HaveLen(2), "the message suggests no kubectl command: %s", refusal)
	patch := exec.Command("bash", "-c", `"$0" --kubeconfig "$1" `+strings.TrimPrefix(m[1], "kubectl "), kubectlBinary, kubeconfigPath)
	patchOut, err := patch.CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "the suggested %q: %s", m[1], patchOut)
	g.Expect(getDatabase(g, ns, protected.Name).Spec.DeletionProtection).To(HaveValue(BeFalse()))
	out, err = deleteDB(protected.Name)
	g.Expect(err).NotTo(HaveOccurred(), "kubectl delete db %s once unprotected: %s", protected.Name, out)
	expectGone(t, ns, &databasev1.Database{ObjectMeta: metav1.ObjectMeta{Name: protected.Name}})
}

// TestHelmNamespacedInstall: with rbac.namespaced the chart grants the
// operator its rules by a Role in each watched namespace and creates no
// ClusterRole; the operator, as the chart's ServiceAccount and watching
// that namespace, brings a Database to Ready, and holds no right on
// Secrets anywhere else.
func TestHelmNamespacedInstall(t *testing.T) {
	pauseSharedOperator(t)
	h := helm4.forTest(t)
	g := NewWithT(t)
	relNS := newNamespace(t)
	dbNS := newNamespace(t)
	otherNS := newNamespace(t)
	release := "database-operator-namespaced"
	cleanupRelease(t, h, release, relNS)

	out := h.must(t, append([]string{"install", release, chartDir(), "-n", relNS, h.noWait,
		"--set", "rbac.namespaced=true", "--set", "watchNamespaces={" + dbNS + "}", "--set", "crds.install=false"},
		h.installFlags...)...)
	g.Expect(out).To(ContainSubstring("STATUS: deployed"))
	gvk := func(kind string) schema.GroupVersionKind {
		return schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: kind}
	}
	_, err := objRef{gvk("ClusterRole"), "", release}.meta()
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no ClusterRole with rbac.namespaced: %v", err)
	_, err = objRef{gvk("Role"), dbNS, release}.meta()
	g.Expect(err).NotTo(HaveOccurred(), "the Role in the watched namespace")
	_, err = objRef{gvk("RoleBinding"), dbNS, release}.meta()
	g.Expect(err).NotTo(HaveOccurred(), "the RoleBinding in the watched namespace")

	asSA := impersonatingKubeconfig(t, "system:serviceaccount:"+relNS+":"+release)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"list", "secrets", "-n", dbNS}, "yes"},
		{[]string{"create", "statefulsets.apps", "-n", dbNS}, "yes"},
		{[]string{"list", "secrets", "-n", otherNS}, "no"},
		{[]string{"get", "secrets", "-n", otherNS}, "no"},
		{[]string{"list", "secrets", "--all-namespaces"}, "no"},
		{[]string{"list", "databases.database.example.com", "--all-namespaces"}, "no"},
	} {
		got, _ := kubectlWith(asSA, append([]string{"auth", "can-i"}, c.args...)...)
		g.Expect(strings.TrimSpace(got)).To(Equal(c.want), "kubectl auth can-i %v", c.args)
	}

	op := ownOperatorWith(t, "namespaced", asSA, []string{"POD_NAMESPACE=" + relNS}, "--leader-elect", "--namespaces="+dbNS)
	g.Expect(waitForLog(t.Context(), op, 0, logWorkersStarted, leaseDuration+30*time.Second)).To(Succeed())
	db := newDatabase(dbNS, "orders", databasev1.PostgreSQL, 1)
	g.Expect(k8s.Create(ctx(), db)).To(Succeed())
	expectPermitted := func(Gomega) {
		if forbidden := forbiddenLines(op.logText()); len(forbidden) > 0 {
			StopTrying(fmt.Sprintf("the operator was refused requests with the namespaced RBAC (missing: %v):\n%s",
				missingPermissions(forbidden), tail(strings.Join(forbidden, "\n"), 10))).Now()
		}
	}
	g.Eventually(func(g Gomega) {
		expectPermitted(g)
		expectReady(g, getDatabase(g, dbNS, db.Name), 1)
	}).WithTimeout(readyTimeout).WithPolling(poll).Should(Succeed(), "Database %s/%s never became Ready", dbNS, db.Name)
	g.Consistently(expectPermitted).WithTimeout(settle).WithPolling(poll).Should(Succeed())
	g.Expect(op.terminate(35 * time.Second)).To(Succeed())
}
