package enginetest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// bootstrapReplica runs the agent's rendered prepare script of pod in's
// StatefulSet, as the agent runs it before starting a replica, against a
// primary on loopback: the database container's environment, with PGDATA,
// PRIMARY_HOST and PRIMARY_PORT mapped to the test.
func bootstrapReplica(t testing.TB, in *pgInstance, primaryPort int) (string, error) {
	t.Helper()
	return runBootstrapReplica(t, in, map[string]string{"PRIMARY_HOST": "127.0.0.1", "PRIMARY_PORT": fmt.Sprint(primaryPort)})
}

// runBootstrapReplica runs the agent's rendered prepare script of pod in's
// StatefulSet with ROLE=replica, the database container's environment,
// PGDATA and PATH mapped to the test, and overrides.
func runBootstrapReplica(t testing.TB, in *pgInstance, overrides map[string]string) (string, error) {
	t.Helper()
	o := map[string]string{"ROLE": "replica"}
	for k, v := range overrides {
		o[k] = v
	}
	return runPrepare(t, in, o)
}

// runPrepare runs the agent's rendered prepare script of pod in's
// StatefulSet with the database container's environment, PGDATA and PATH
// mapped to the test, and overrides (ROLE among them).
func runPrepare(t testing.TB, in *pgInstance, overrides map[string]string) (string, error) {
	t.Helper()
	c := in.r.database(t)
	o := map[string]string{"PGDATA": in.pgdata, "PATH": in.p.path()}
	for k, v := range overrides {
		o[k] = v
	}
	return run(t, 2*time.Minute, in.p.user, containerEnv(t, c, in.secret, in.pod, o), "", "bash", "-c", prepareScript(t, c))
}

// primaryConninfo returns the primary_conninfo lines of the data
// directory's postgresql.auto.conf.
func primaryConninfo(t testing.TB, pgdata string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(pgdata, "postgresql.auto.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "primary_conninfo") {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestPostgresStreamingReplication starts a primary with the rendered
// configuration and init scripts, bootstraps pods 1 and 2 with the rendered
// bootstrap-replica script (pg_basebackup -R), starts them as hot standbys
// with the rendered configuration, and checks that a row written on the
// primary is readable on both within 5 s and that the standbys refuse writes.
func TestPostgresStreamingReplication(t *testing.T) {
	p := requirePostgres(t)
	g := NewWithT(t)
	s := newSecret("orders", "app")
	db := newDatabase("orders", databasev1.PostgreSQL, "15", withReplicas(3))
	primary := newPrimary(t, p, db, s)

	// The rendered init script created the application user as owner of
	// the application database, and the replication user.
	g.Expect(primary.mustApp(t, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()")).To(Equal("app"))
	out, err := primary.asSuperuser(t, "SELECT rolreplication FROM pg_roles WHERE rolname = 'replicator'")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(Equal("t"))

	var standbys []*pgInstance
	for _, ordinal := range []int{1, 2} {
		in := newPGInstance(t, p, primary.r, s, fmt.Sprintf("orders-%d", ordinal))
		out, err := bootstrapReplica(t, in, primary.port)
		g.Expect(err).NotTo(HaveOccurred(), out)
		g.Expect(out).To(ContainSubstring("copied the primary"))
		g.Expect(filepath.Join(in.pgdata, "standby.signal")).To(BeAnExistingFile())
		g.Expect(filepath.Join(in.pgdata + ".partial")).NotTo(BeAnExistingFile())
		// The container's entrypoint sees an initialised data directory.
		out, err = in.init(t, nil)
		g.Expect(err).NotTo(HaveOccurred(), out)
		g.Expect(out).To(ContainSubstring("Skipping initialization"))
		in.start(t)
		standbys = append(standbys, in)
	}
	out, err = primary.asSuperuser(t, "SELECT string_agg(application_name, ',' ORDER BY application_name) FROM pg_stat_replication WHERE state = 'streaming' AND usename = 'replicator'")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(Equal("orders-1,orders-2"), "both stream, each under its pod's name (the rewritten primary_conninfo, password with quotes and a backslash included)")

	primary.mustApp(t, "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
	primary.mustApp(t, "INSERT INTO items VALUES (1, 'written on the primary')")
	written := time.Now()
	for _, sb := range standbys {
		g.Eventually(func() string {
			out, _ := sb.asApp(t, "SELECT name FROM items WHERE id = 1")
			return out
		}).WithTimeout(5*time.Second).WithPolling(50*time.Millisecond).Should(Equal("written on the primary"), sb.pod)
		t.Logf("%s has the row %s after the write", sb.pod, time.Since(written).Round(time.Millisecond))

		out, err := sb.asApp(t, "SELECT pg_is_in_recovery()")
		g.Expect(err).NotTo(HaveOccurred(), out)
		g.Expect(out).To(Equal("t"))
		out, err = sb.asApp(t, "INSERT INTO items VALUES (2, 'written on a standby')")
		g.Expect(err).To(HaveOccurred())
		g.Expect(out).To(ContainSubstring("cannot execute INSERT in a read-only transaction"))
		out, err = sb.asSuperuser(t, "CREATE TABLE nope (id int)")
		g.Expect(err).To(HaveOccurred())
		g.Expect(out).To(ContainSubstring("read-only transaction"))
	}

	// A standby restarted later (the agent prepares every start, so
	// primary_conninfo is written again) keeps streaming.
	standbys[0].stop()
	primary.mustApp(t, "INSERT INTO items VALUES (3, 'written while pod 1 was down')")
	out, err = bootstrapReplica(t, standbys[0], primary.port)
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).NotTo(ContainSubstring("copied the primary"))
	g.Expect(out).NotTo(ContainSubstring("rewinding"))
	g.Expect(out).To(ContainSubstring("starting as a replica"))
	g.Expect(primaryConninfo(t, standbys[0].pgdata)).To(HaveLen(1))
	standbys[0].start(t)
	g.Eventually(func() string {
		out, _ := standbys[0].asApp(t, "SELECT name FROM items WHERE id = 3")
		return out
	}).WithTimeout(5 * time.Second).WithPolling(50 * time.Millisecond).Should(Equal("written while pod 1 was down"))
}

// TestPostgresBootstrapReplicaIsNoOp: the agent's rendered prepare script
// leaves the primary alone (initialised by the image's entrypoint) and does
// not copy into a replica whose data directory is already initialised (it
// holds standby.signal); neither waits for a primary (the primary port here
// is closed). In the initialised replica it only rewrites primary_conninfo
// from the environment, keeping the rest of postgresql.auto.conf.
func TestPostgresBootstrapReplicaIsNoOp(t *testing.T) {
	p := requirePostgres(t)
	g := NewWithT(t)
	s := newSecret("orders", "app")
	r := renderDB(t, newDatabase("orders", databasev1.PostgreSQL, "15", withReplicas(3)))
	closed := freePort(t)

	pod0 := newPGInstance(t, p, r, s, "orders-0")
	out, err := runPrepare(t, pod0, map[string]string{"ROLE": "primary", "PRIMARY_HOST": "127.0.0.1", "PRIMARY_PORT": fmt.Sprint(closed)})
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(ContainSubstring("starting as the primary"))
	g.Expect(pod0.pgdata).NotTo(BeADirectory(), "nothing was created for the primary")

	// An initialised data directory of pod 1 (initdb'd here; its contents
	// do not matter to the bootstrap, only that PG_VERSION is there).
	pod1 := newPGInstance(t, p, r, s, "orders-1")
	pod1.mustInit(t, nil)
	before, err := os.ReadFile(filepath.Join(pod1.pgdata, "PG_VERSION"))
	g.Expect(err).NotTo(HaveOccurred())
	marker := filepath.Join(pod1.pgdata, "kept")
	writeFile(t, marker, "untouched", 0o600)
	// A replica's: without standby.signal it would be a former primary's,
	// rewound against the primary.
	writeFile(t, filepath.Join(pod1.pgdata, "standby.signal"), "", 0o600)
	// A postgresql.auto.conf with a stale primary_conninfo (as pg_basebackup
	// -R wrote it under an earlier spec) and a setting of its own.
	autoConf := filepath.Join(pod1.pgdata, "postgresql.auto.conf")
	writeFile(t, autoConf, "# Do not edit this file manually!\nwork_mem = '8MB'\n"+
		"primary_conninfo = 'host=stale.example sslmode=verify-full sslrootcert=/gone/ca.crt'\n", 0o600)
	chown(t, autoConf, p.user)
	var files []string
	for range 2 {
		started := time.Now()
		out, err = bootstrapReplica(t, pod1, closed)
		g.Expect(err).NotTo(HaveOccurred(), out)
		g.Expect(out).To(ContainSubstring("starting as a replica"))
		g.Expect(out).NotTo(ContainSubstring("copied the primary"))
		g.Expect(out).NotTo(ContainSubstring("rewinding"))
		g.Expect(time.Since(started)).To(BeNumerically("<", 5*time.Second), "it did not wait for the primary")
		b, err := os.ReadFile(autoConf)
		g.Expect(err).NotTo(HaveOccurred())
		files = append(files, string(b))
	}
	g.Expect(marker).To(BeAnExistingFile())
	g.Expect(filepath.Join(pod1.pgdata, "standby.signal")).To(BeAnExistingFile())
	after, err := os.ReadFile(filepath.Join(pod1.pgdata, "PG_VERSION"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(after).To(Equal(before))

	// primary_conninfo is written from the environment on every start, the
	// rest of the file is kept, and a second run changes nothing. Each value
	// is quoted for conninfo ('...', \' and \\), then the whole for the file
	// ('...', quotes doubled, \\, and the password's line break as \n).
	g.Expect(files[1]).To(Equal(files[0]), "idempotent")
	g.Expect(files[0]).To(HavePrefix("# Do not edit this file manually!\nwork_mem = '8MB'\n"))
	lines := primaryConninfo(t, pod1.pgdata)
	g.Expect(lines).To(HaveLen(1))
	t.Logf("%s", lines[0])
	g.Expect(lines[0]).To(Equal(`primary_conninfo = 'host=''127.0.0.1'' port=''`+fmt.Sprint(closed)+`'' sslmode=''prefer''`+
		` connect_timeout=5 tcp_user_timeout=5000 keepalives=1 keepalives_idle=5 keepalives_interval=2 keepalives_count=3`+
		` user=''replicator'' password=''repl \\''pw"\\\\x$(touch /tmp/dbop-inj)`+"`"+`\n'' application_name=''orders-1'''`), "without TLS: sslmode=prefer, no sslrootcert")
	info, err := os.Stat(autoConf)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(info.Mode().Perm()).To(Equal(os.FileMode(0o600)))
}

// TestPostgresReplicaTriesTheResolvedAddressFirst: with a primary host that
// resolves (here localhost; in a pod the read-write Service's name), the
// prepare script writes primary_conninfo with the address it resolved first
// and the name second (host=name,name hostaddr=address,), so a standby
// reconnecting to a new primary while the cluster's DNS times out (a DNS
// server on a lost node) does not wait for DNS; the copy and the standby
// both connect that way and stream.
func TestPostgresReplicaTriesTheResolvedAddressFirst(t *testing.T) {
	p := requirePostgres(t)
	g := NewWithT(t)
	s := newSecret("orders", "app")
	primary := newPrimary(t, p, newDatabase("orders", databasev1.PostgreSQL, "15", withReplicas(2)), s)
	in := newPGInstance(t, p, primary.r, s, "orders-1")
	out, err := runBootstrapReplica(t, in, map[string]string{"PRIMARY_HOST": "localhost", "PRIMARY_PORT": fmt.Sprint(primary.port)})
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(ContainSubstring("copied the primary"))
	g.Expect(primaryConninfo(t, in.pgdata)).To(ConsistOf(HavePrefix(
		`primary_conninfo = 'host=''localhost,localhost'' hostaddr=''127.0.0.1,'' port=''` + fmt.Sprint(primary.port) + `''`)))
	in.start(t)
	g.Eventually(func() string {
		out, _ := primary.asSuperuser(t, "SELECT state FROM pg_stat_replication WHERE application_name = 'orders-1'")
		return out
	}).WithTimeout(10 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal("streaming"))
}
