package realpods

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

// restrictedLabel is the Pod Security admission label every namespace of
// the suite carries with the value "restricted".
const restrictedLabel = "pod-security.kubernetes.io/enforce"

// clientImage is the image of the client pods: the same postgres image the
// Databases run, for psql and bash.
const clientImage = "postgres:15"

// runCommand runs a program; stdin, when not empty, is its standard input.
// The combined output is returned.
func runCommand(ctx context.Context, stdin, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// kubectl runs kubectl against the cluster.
func kubectl(ctx context.Context, stdin string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.CommandContext(ctx, kubectlBinary, append([]string{"--kubeconfig", kubeconfigPath}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// mustKubectl runs kubectl and fails the test when it fails.
func mustKubectl(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, errOut, err := kubectl(ctx, "", args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// execIn runs a command in a container of a pod (with a timeout, so a hung
// connection fails one attempt, not the suite).
func execIn(ns, pod, container string, timeout time.Duration, command ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args := []string{"-n", ns, "exec", pod}
	if container != "" {
		args = append(args, "-c", container)
	}
	out, errOut, err := kubectl(ctx, "", append(append(args, "--"), command...)...)
	if err != nil {
		return out, fmt.Errorf("exec in %s/%s: %w: %s", ns, pod, err, strings.TrimSpace(errOut))
	}
	return out, nil
}

// newNamespace creates a namespace that enforces the restricted Pod
// Security Standard; it is deleted when the test ends. When the test
// failed, what is in it (objects, Events, every container's last log
// lines) is logged first, and with E2E_KEEP_FAILED set it is kept to look
// at: a failed test's pods would otherwise run on and slow every later
// test on this two-core machine into failing too.
func newNamespace(t *testing.T, prefix string) string {
	t.Helper()
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	name := prefix + "-" + hex.EncodeToString(suffix)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{restrictedLabel: "restricted"}}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	// Pods are refused until the namespace's default ServiceAccount exists.
	NewWithT(t).Eventually(func() error {
		return k8s.Get(ctx, client.ObjectKey{Namespace: name, Name: "default"}, &corev1.ServiceAccount{})
	}).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
	t.Cleanup(func() {
		if t.Failed() {
			logNamespace(t, name)
			if os.Getenv("E2E_KEEP_FAILED") != "" {
				t.Logf("namespace %s kept for inspection (E2E_KEEP_FAILED)", name)
				return
			}
		}
		_ = k8s.Delete(context.Background(), ns)
	})
	return name
}

// logNamespace logs a failed test's namespace: its objects, its Events and
// the last lines of every container's log (previous runs' too).
func logNamespace(t *testing.T, ns string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, what := range []string{"databases,pods,pvc,jobs -o wide", "events --sort-by=.lastTimestamp"} {
		out, errOut, _ := kubectl(ctx, "", append([]string{"-n", ns, "get"}, strings.Fields(what)...)...)
		t.Logf("kubectl -n %s get %s:\n%s%s", ns, what, out, errOut)
	}
	var pods corev1.PodList
	if err := k8s.List(ctx, &pods, client.InNamespace(ns)); err != nil {
		t.Logf("list the pods of %s: %v", ns, err)
		return
	}
	for _, p := range pods.Items {
		for _, c := range p.Spec.Containers {
			for _, previous := range []bool{false, true} {
				out, _, err := kubectl(ctx, "", "-n", ns, "logs", p.Name, "-c", c.Name, "--tail=40", fmt.Sprintf("--previous=%t", previous))
				if err == nil && strings.TrimSpace(out) != "" {
					t.Logf("logs of %s/%s (previous=%t):\n%s", p.Name, c.Name, previous, out)
				}
			}
		}
	}
}

// restrictedPod returns spec with the security settings the restricted
// standard requires, on the pod and on each container.
func restrictedPod(spec corev1.PodSpec) corev1.PodSpec {
	spec.SecurityContext = &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		RunAsUser:      ptr.To[int64](999),
		RunAsGroup:     ptr.To[int64](999),
		FSGroup:        ptr.To[int64](999),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	for i := range spec.Containers {
		spec.Containers[i].SecurityContext = &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		}
		spec.Containers[i].ImagePullPolicy = corev1.PullIfNotPresent
	}
	spec.TerminationGracePeriodSeconds = ptr.To[int64](1)
	return spec
}

// dbClient is a client pod of one Database: it mounts the Database's
// credentials Secret at /creds and, when TLS is on, its CA at /tls, as an
// application would, and runs psql from there.
type dbClient struct {
	ns, db, pod string
	tls         bool
}

// newClient starts the client pod of db and waits until it runs.
func newClient(t *testing.T, ns, db string, tls bool) *dbClient {
	t.Helper()
	c := &dbClient{ns: ns, db: db, pod: "client-" + db, tls: tls}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: c.pod},
		Spec: restrictedPod(corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "client", Image: clientImage, Command: []string{"sleep", "infinity"},
				VolumeMounts: []corev1.VolumeMount{{Name: "creds", MountPath: "/creds", ReadOnly: true}},
			}},
			Volumes: []corev1.Volume{{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName: render.CredentialsSecretName(db)}}}},
		}),
	}
	if tls {
		pod.Spec.Containers[0].VolumeMounts = append(pod.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "tls", MountPath: "/tls", ReadOnly: true})
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: render.TLSSecretName(db), Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}}})
	}
	if err := k8s.Create(context.Background(), pod); err != nil {
		t.Fatalf("create client pod: %v", err)
	}
	waitPodsReady(t, ns, 2*time.Minute, c.pod)
	return c
}

// sslParams are the libpq TLS settings of the client: verify the server's
// certificate against the Database's CA and that it names the host.
func (c *dbClient) sslParams() string {
	if c.tls {
		return "sslmode=verify-full sslrootcert=/tls/ca.crt"
	}
	return "sslmode=prefer"
}

// viaURI runs SQL through the credentials Secret's uri (host <db>, the
// read-write Service) with the TLS settings added to it.
func (c *dbClient) viaURI(sql string) (string, error) { return c.viaURIWithin(sql, 30*time.Second) }

// viaURIWithin is viaURI for statements that may take longer than 30 s on
// a loaded machine (bulk loads that a synchronous replica must also write).
func (c *dbClient) viaURIWithin(sql string, timeout time.Duration) (string, error) {
	query := "sslmode=prefer"
	if c.tls {
		query = "sslmode=verify-full&sslrootcert=/tls/ca.crt"
	}
	// The uri without its password, which goes through the environment
	// rather than psql's command line (the host's process list shows that).
	script := `u="$(cat /creds/uri)"; rest="${u#*://}"; u="${u%%://*}://${rest%%:*}@${rest#*@}"
PGPASSWORD="$(cat /creds/password)" psql "$u?` + query + `&connect_timeout=3" -v ON_ERROR_STOP=1 -qtAc "$1"`
	out, err := execIn(c.ns, c.pod, "client", timeout, "bash", "-c", script, "psql", sql)
	return strings.TrimSpace(out), err
}

// viaHost runs SQL as the application user against a given host: the
// read-only Service, or one pod by its DNS name.
func (c *dbClient) viaHost(host, sql string) (string, error) {
	script := `PGPASSWORD="$(cat /creds/password)" psql "host=$2 port=5432 dbname=$(cat /creds/database) user=$(cat /creds/username) connect_timeout=3 ` +
		c.sslParams() + `" -v ON_ERROR_STOP=1 -qtAc "$1"`
	out, err := execIn(c.ns, c.pod, "client", 30*time.Second, "bash", "-c", script, "psql", sql, host)
	return strings.TrimSpace(out), err
}

// httpGet fetches a URL path from ip:port with bash's /dev/tcp (the postgres
// image has no curl) and returns the body.
func (c *dbClient) httpGet(ip string, port int, path string) (string, error) {
	script := `exec 3<>"/dev/tcp/$1/$2" && printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$3" "$1" >&3 && cat <&3`
	return execIn(c.ns, c.pod, "client", 20*time.Second, "bash", "-c", script, "get", ip, fmt.Sprint(port), path)
}

// superuserSQL runs SQL as the superuser inside a database pod, over its
// local socket.
func superuserSQL(ns, pod, sql string) (string, error) {
	return superuserSQLIn(ns, pod, "postgres", sql)
}

// superuserSQLIn is superuserSQL in another database; "$POSTGRES_DB" is the
// application's.
func superuserSQLIn(ns, pod, database, sql string) (string, error) {
	out, err := execIn(ns, pod, "database", 30*time.Second, "bash", "-c",
		`PGPASSWORD="$POSTGRES_PASSWORD" psql -h /var/run/postgresql -U postgres -d "`+database+`" -v ON_ERROR_STOP=1 -qtAc "$1"`, "psql", sql)
	return strings.TrimSpace(out), err
}

// podHost is the DNS name of pod ordinal of db (the certificate names it).
func podHost(ns, db string, ordinal int) string {
	return fmt.Sprintf("%s-%d.%s.%s.svc", db, ordinal, render.HeadlessServiceName(db), ns)
}

// waitPodsReady waits until the named pods are Running and Ready.
func waitPodsReady(t *testing.T, ns string, timeout time.Duration, pods ...string) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		for _, name := range pods {
			var pod corev1.Pod
			g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &pod)).To(Succeed())
			g.Expect(pod.Status.Phase).To(Equal(corev1.PodRunning), "pod %s", name)
			g.Expect(podReady(&pod)).To(BeTrue(), "pod %s is not Ready", name)
		}
	}).WithTimeout(timeout).WithPolling(time.Second).Should(Succeed())
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitDatabaseReady waits until the operator reports db Ready for its
// current generation, and returns it.
func waitDatabaseReady(t *testing.T, ns, name string, timeout time.Duration) *databasev1.Database {
	t.Helper()
	db := &databasev1.Database{}
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, db)).To(Succeed())
		g.Expect(db.Status.ObservedGeneration).To(Equal(db.Generation))
		g.Expect(meta.IsStatusConditionTrue(db.Status.Conditions, databasev1.ConditionReady)).To(BeTrue(),
			"Database %s/%s is not Ready: phase %s, conditions %+v", ns, name, db.Status.Phase, db.Status.Conditions)
	}).WithTimeout(timeout).WithPolling(time.Second).Should(Succeed())
	return db
}

// createDatabase creates db; the namespace's cleanup deletes it.
func createDatabase(t *testing.T, db *databasev1.Database) {
	t.Helper()
	if err := k8s.Create(context.Background(), db); err != nil {
		t.Fatalf("create Database %s/%s: %v", db.Namespace, db.Name, err)
	}
}

// getPod reads a pod; nil when it does not exist.
func getPod(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	var pod corev1.Pod
	err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &pod)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("get pod %s/%s: %v", ns, name, err)
	}
	return &pod
}

// measured prints a measurement in a form the closing notes and the README
// quote (grep "measured:").
func measured(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf("measured: "+format, args...)
}
