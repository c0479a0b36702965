package enginetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

// ---- Rendering -------------------------------------------------------------

type dbOption func(*databasev1.Database)

// newDatabase is a Database as the API server returns it, CRD defaults filled in.
func newDatabase(name string, typ databasev1.DatabaseType, version string, opts ...dbOption) *databasev1.Database {
	one := int32(1)
	db := &databasev1.Database{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", UID: "0b1e6f1c-3c1d-4c38-9d7a-6a3b0f0f0001", Generation: 1},
		Spec: databasev1.DatabaseSpec{
			Type:        typ,
			Version:     version,
			Replicas:    &one,
			Storage:     databasev1.StorageSpec{Size: resource.MustParse("10Gi")},
			Environment: databasev1.Development,
			Backup:      &databasev1.BackupSpec{Schedule: "0 2 * * *", Retention: "7d"},
			Monitoring:  &databasev1.MonitoringSpec{},
		},
	}
	for _, o := range opts {
		o(db)
	}
	return db
}

func withReplicas(n int32) dbOption { return func(db *databasev1.Database) { db.Spec.Replicas = &n } }
func withReplicationMode(m databasev1.ReplicationMode) dbOption {
	return func(db *databasev1.Database) { db.Spec.Replication = &databasev1.ReplicationSpec{Mode: m} }
}
func withEnvironment(e databasev1.Environment) dbOption {
	return func(db *databasev1.Database) { db.Spec.Environment = e }
}
func withLogging(on bool) dbOption {
	return func(db *databasev1.Database) { db.Spec.Monitoring.Enabled, db.Spec.Monitoring.Logging = on, on }
}
func withBackup(retention string) dbOption {
	return func(db *databasev1.Database) { db.Spec.Backup.Enabled, db.Spec.Backup.Retention = true, retention }
}
func withRestore(from, backup string) dbOption {
	return func(db *databasev1.Database) {
		db.Spec.Restore = &databasev1.RestoreSpec{FromDatabase: from, Backup: backup}
	}
}

// rendered is what render returns for one Database, as the API types.
type rendered struct {
	db      *databasev1.Database
	sts     *appsv1.StatefulSet
	cm      *corev1.ConfigMap
	cronJob *batchv1.CronJob
	// checkJob is the restore check's CronJob, when rendered.
	checkJob *batchv1.CronJob
}

func renderDB(t testing.TB, db *databasev1.Database) *rendered {
	t.Helper()
	c, err := render.Render(db, render.DefaultOptions())
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	r := &rendered{db: db, sts: typed[appsv1.StatefulSet](t, c.StatefulSet), cm: typed[corev1.ConfigMap](t, c.ConfigMap)}
	if c.BackupCronJob != nil {
		r.cronJob = typed[batchv1.CronJob](t, c.BackupCronJob)
	}
	if c.RestoreCheckCronJob != nil {
		r.checkJob = typed[batchv1.CronJob](t, c.RestoreCheckCronJob)
	}
	return r
}

// typed converts an apply configuration into the API type it configures.
func typed[T any](t testing.TB, ac any) *T {
	t.Helper()
	raw, err := json.Marshal(ac)
	if err != nil {
		t.Fatalf("marshal %T: %v", ac, err)
	}
	out := new(T)
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("unmarshal into %T: %v", out, err)
	}
	return out
}

func (r *rendered) config(t testing.TB, key string) string {
	t.Helper()
	v, ok := r.cm.Data[key]
	if !ok {
		t.Fatalf("the ConfigMap has no key %q (keys: %v)", key, sortedKeys(r.cm.Data))
	}
	return v
}

func findContainer(t testing.TB, containers []corev1.Container, name string) corev1.Container {
	t.Helper()
	for _, c := range containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q", name)
	return corev1.Container{}
}

func (r *rendered) database(t testing.TB) corev1.Container {
	return findContainer(t, r.sts.Spec.Template.Spec.Containers, "database")
}

func (r *rendered) initContainer(t testing.TB, name string) corev1.Container {
	return findContainer(t, r.sts.Spec.Template.Spec.InitContainers, name)
}

func (r *rendered) backupContainer(t testing.TB) corev1.Container {
	t.Helper()
	if r.cronJob == nil {
		t.Fatal("no backup CronJob rendered")
	}
	return findContainer(t, r.cronJob.Spec.JobTemplate.Spec.Template.Spec.Containers, "backup")
}

// restoreCheckContainer is the restore check CronJob's container.
func (r *rendered) restoreCheckContainer(t testing.TB) corev1.Container {
	t.Helper()
	if r.checkJob == nil {
		t.Fatal("no restore check CronJob rendered")
	}
	return findContainer(t, r.checkJob.Spec.JobTemplate.Spec.Template.Spec.Containers, render.RestoreCheckContainerName)
}

// bashScript is the script of a container that runs `bash -c <script>`.
func bashScript(t testing.TB, c corev1.Container) string {
	t.Helper()
	cmd := append(append([]string{}, c.Command...), c.Args...)
	if _, server, ok := agentCommand(cmd); ok {
		// Under the agent the server's command follows "--".
		cmd = server
	}
	if len(cmd) != 3 || cmd[0] != "bash" || cmd[1] != "-c" {
		t.Fatalf("container %s does not run bash -c <script>: %q", c.Name, cmd)
	}
	return cmd[2]
}

// agentCommand splits a container command that runs the agent into the
// agent's flags and the server's command.
func agentCommand(cmd []string) (flags map[string]string, server []string, ok bool) {
	if len(cmd) < 2 || cmd[0] != "/opt/database-operator/database-agent" || cmd[1] != "run" {
		return nil, nil, false
	}
	flags = map[string]string{}
	for i, a := range cmd[2:] {
		if a == "--" {
			return flags, cmd[2+i+1:], true
		}
		k, v, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		flags[k] = v
	}
	return nil, nil, false
}

// prepareScript is the agent's prepare script in the database container c.
func prepareScript(t testing.TB, c corev1.Container) string {
	t.Helper()
	flags, _, ok := agentCommand(append(append([]string{}, c.Command...), c.Args...))
	if !ok || flags["prepare"] == "" {
		t.Fatalf("container %s does not run the agent with a prepare script: %q", c.Name, c.Command)
	}
	return flags["prepare"]
}

// writeInitScripts lays the database container's /docker-entrypoint-initdb.d
// out in dir, as the kubelet would from the StatefulSet's volume and the
// ConfigMap: the file names come from the volume's items.
func (r *rendered) writeInitScripts(t testing.TB, dir string) []string {
	t.Helper()
	var mounted string
	for _, m := range r.database(t).VolumeMounts {
		if m.MountPath == "/docker-entrypoint-initdb.d" {
			mounted = m.Name
		}
	}
	if mounted == "" {
		t.Fatal("the database container mounts nothing at /docker-entrypoint-initdb.d")
	}
	var files []string
	for _, v := range r.sts.Spec.Template.Spec.Volumes {
		if v.Name != mounted {
			continue
		}
		if v.ConfigMap == nil || v.ConfigMap.Name != r.cm.Name {
			t.Fatalf("volume %s is not the rendered ConfigMap", v.Name)
		}
		for _, item := range v.ConfigMap.Items {
			writeFile(t, filepath.Join(dir, item.Path), r.config(t, item.Key), 0o444)
			files = append(files, item.Path)
		}
	}
	sort.Strings(files)
	return files
}

// secret is the credentials Secret's data as the reconciler would create it.
// The passwords carry quotes, spaces, backslashes, a line break, SQL
// comment and statement syntax, and command substitutions on purpose: the
// scripts must pass them through without interpolating them into SQL or
// shell text. A substitution that runs touches injectedCanary, which
// TestMain checks after every test.
type secret map[string]string

// injectedCanary is the file the passwords' command substitutions would
// create if any script evaluated them.
const injectedCanary = "/tmp/dbop-inj"

func newSecret(database, username string) secret {
	return secret{
		render.SecretKeyRootPassword: `r00t pw'with"quotes\ $(touch /tmp/dbop-inj) ` + "`touch /tmp/dbop-inj`",
		render.SecretKeyUsername:     username,
		render.SecretKeyPassword:     `app pw'"` + username + `';--$(touch /tmp/dbop-inj)`,
		render.SecretKeyDatabase:     database,
		// A trailing line break, as kubectl create secret --from-file
		// leaves it: it must survive the configuration files too. Within
		// MySQL's 32 characters for a replication password.
		render.SecretKeyReplicationPassword: "repl 'pw\"\\x$(touch /tmp/dbop-inj)`\n",
	}
}

// containerEnv resolves a rendered container's environment as the kubelet
// would for pod podName with the given Secret, then applies overrides (the
// paths, hosts and ports that point into the cluster). Any source the test
// cannot resolve fails the test, so nothing rendered is silently ignored.
func containerEnv(t testing.TB, c corev1.Container, s secret, podName string, overrides map[string]string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			v, ok := s[e.ValueFrom.SecretKeyRef.Key]
			if !ok && e.ValueFrom.SecretKeyRef.Optional != nil && *e.ValueFrom.SecretKeyRef.Optional {
				continue
			}
			if !ok {
				t.Fatalf("env %s refers to Secret key %q, which the credentials Secret does not hold", e.Name, e.ValueFrom.SecretKeyRef.Key)
			}
			env[e.Name] = v
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env[e.Name] = podName
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			env[e.Name] = "enginetest"
		default:
			t.Fatalf("env %s: unsupported source %+v", e.Name, e.ValueFrom)
		}
	}
	if _, _, underAgent := agentCommand(c.Command); underAgent {
		// The agent adds ROLE for the server and the prepare script: the
		// operator's first choice makes pod 0 the primary.
		env["ROLE"] = "replica"
		if strings.HasSuffix(podName, "-0") {
			env["ROLE"] = "primary"
		}
	}
	for k, v := range overrides {
		env[k] = v
	}
	return env
}

// ---- Processes and files -----------------------------------------------------

// osUser is an operating system account the engines run as.
type osUser struct {
	name     string
	uid, gid uint32
	home     string
}

func lookupUser(t testing.TB, name string) osUser {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("user %s: %v (install the engine packages: make test-engines)", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return osUser{name: name, uid: uint32(uid), gid: uint32(gid), home: u.HomeDir}
}

// workDir is a fresh directory that owner can use (t.TempDir's parent is
// private to root), removed when the test ends.
func workDir(t testing.TB, owner osUser) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the engine tests run as root: the servers run as the postgres and mysql users")
	}
	dir, err := os.MkdirTemp("", "enginetest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	chown(t, dir, owner)
	return dir
}

// mkdir makes a directory owned by owner with the given mode.
func mkdir(t testing.TB, path string, owner osUser, mode os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(path, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	chown(t, path, owner)
	return path
}

func chown(t testing.TB, path string, owner osUser) {
	t.Helper()
	if err := os.Chown(path, int(owner.uid), int(owner.gid)); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// freePort returns a loopback TCP port that nothing listens on.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// command builds a command that runs as u with exactly env (plus PATH and
// HOME when env has none), in its own process group.
func command(ctx context.Context, u osUser, env map[string]string, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	full := map[string]string{"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": u.home, "LC_ALL": "C.UTF-8"}
	for k, v := range env {
		full[k] = v
	}
	for _, k := range sortedKeys(full) {
		cmd.Env = append(cmd.Env, k+"="+full[k])
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if os.Geteuid() == 0 && u.uid != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: u.uid, Gid: u.gid}
	}
	cmd.WaitDelay = 5 * time.Second
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd
}

// run runs a command to completion (at most timeout) and returns its
// combined output.
func run(t testing.TB, timeout time.Duration, u osUser, env map[string]string, stdin string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := command(ctx, u, env, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s timed out after %s: %w", name, timeout, err)
	}
	return out.String(), err
}

// bash runs a script with bash -c as u and fails the test when it fails.
func bash(t testing.TB, u osUser, env map[string]string, script string) string {
	t.Helper()
	out, err := run(t, 2*time.Minute, u, env, "", "bash", "-c", script)
	if err != nil {
		t.Fatalf("script failed: %v\n--- output ---\n%s", err, out)
	}
	return out
}

// server is a database server process started by a test.
type server struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
	// stopSignal asks for a clean, fast shutdown: SIGINT for PostgreSQL
	// (fast shutdown), SIGTERM for MariaDB.
	stopSignal syscall.Signal
}

// startServer starts a server process as u, logging to logFile, and stops it
// when the test ends: its stopSignal, then after 20 s SIGKILL to its process
// group.
func startServer(t testing.TB, name string, u osUser, env map[string]string, logFile string, bin string, args ...string) *server {
	t.Helper()
	f, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := command(context.Background(), u, env, bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	s := &server{name: name, cmd: cmd, log: logFile, done: make(chan struct{}), stopSignal: syscall.SIGINT}
	go func() {
		s.err = cmd.Wait()
		f.Close()
		close(s.done)
	}()
	t.Cleanup(s.stop)
	return s
}

func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(s.stopSignal)
	select {
	case <-s.done:
		return
	case <-time.After(20 * time.Second):
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
}

func (s *server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *server) logText() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// waitReady polls ready until it succeeds, the server exits or timeout passes.
func (s *server) waitReady(t testing.TB, timeout time.Duration, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if s.exited() {
			t.Fatalf("%s exited (%v) before it was ready\n--- log ---\n%s", s.name, s.err, s.logText())
		}
		if last = ready(); last == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s not ready after %s: %v\n--- log ---\n%s", s.name, timeout, last, s.logText())
}

// requireBinary fails (never skips) when an engine binary is missing.
func requireBinary(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is missing: %v. The engine tests need postgresql-15, mariadb-server, mariadb-client and shellcheck; `make test-engines` installs them", path, err)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// dumpName is the name the backup script gives a dump: the Database's name
// and a UTC timestamp.
const dumpNamePattern = `^%s-[0-9]{8}T[0-9]{6}Z\.sql\.gz$`

// listDir returns the names in dir, sorted.
func listDir(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// expectGzip checks a file starts with gzip's magic number.
func expectGzip(g Gomega, path string) {
	b, err := os.ReadFile(path)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(len(b)).To(BeNumerically(">", 2))
	g.Expect(b[:2]).To(Equal([]byte{0x1f, 0x8b}), "%s is not gzip-compressed", path)
}

// isExitError reports whether err is a process that ran and failed.
func isExitError(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}
