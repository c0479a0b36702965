package enginetest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// bootstrapReplica runs the rendered bootstrap-replica init container of pod
// in's StatefulSet against a primary on loopback: its own script and
// environment, with PGDATA, PRIMARY_HOST and PRIMARY_PORT mapped to the test.
func bootstrapReplica(t testing.TB, in *pgInstance, primaryPort int) (string, error) {
	t.Helper()
	c := in.r.initContainer(t, "bootstrap-replica")
	env := containerEnv(t, c, in.secret, in.pod, map[string]string{
		"PGDATA": in.pgdata, "PRIMARY_HOST": "127.0.0.1", "PRIMARY_PORT": fmt.Sprint(primaryPort), "PATH": in.p.path(),
	})
	return run(t, 2*time.Minute, in.p.user, env, "", "bash", "-c", bashScript(t, c))
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
		g.Expect(out).To(ContainSubstring("replica bootstrapped"))
		g.Expect(filepath.Join(in.pgdata, "standby.signal")).To(BeAnExistingFile())
		g.Expect(filepath.Join(in.pgdata + ".partial")).NotTo(BeAnExistingFile())
		// The container's entrypoint sees an initialised data directory.
		out, err = in.init(t, nil)
		g.Expect(err).NotTo(HaveOccurred(), out)
		g.Expect(out).To(ContainSubstring("Skipping initialization"))
		in.start(t)
		standbys = append(standbys, in)
	}
	out, err = primary.asSuperuser(t, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND usename = 'replicator'")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(Equal("2"))

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

	// A standby restarted later (a pod restart) keeps streaming: -R wrote
	// everything it needs to reconnect into its data directory.
	standbys[0].stop()
	primary.mustApp(t, "INSERT INTO items VALUES (3, 'written while pod 1 was down')")
	standbys[0].start(t)
	g.Eventually(func() string {
		out, _ := standbys[0].asApp(t, "SELECT name FROM items WHERE id = 3")
		return out
	}).WithTimeout(5 * time.Second).WithPolling(50 * time.Millisecond).Should(Equal("written while pod 1 was down"))
}

// TestPostgresBootstrapReplicaIsNoOp: the rendered bootstrap leaves pod 0
// alone (it is the primary, initialised by the image's entrypoint) and any
// pod whose data directory is already initialised; neither waits for a
// primary (the primary port here is closed).
func TestPostgresBootstrapReplicaIsNoOp(t *testing.T) {
	p := requirePostgres(t)
	g := NewWithT(t)
	s := newSecret("orders", "app")
	r := renderDB(t, newDatabase("orders", databasev1.PostgreSQL, "15", withReplicas(3)))
	closed := freePort(t)

	pod0 := newPGInstance(t, p, r, s, "orders-0")
	out, err := bootstrapReplica(t, pod0, closed)
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(ContainSubstring("pod 0 is the primary"))
	g.Expect(pod0.pgdata).NotTo(BeADirectory(), "nothing was created for pod 0")

	// An initialised data directory of pod 1 (initdb'd here; its contents
	// do not matter to the bootstrap, only that PG_VERSION is there).
	pod1 := newPGInstance(t, p, r, s, "orders-1")
	pod1.mustInit(t, nil)
	before, err := os.ReadFile(filepath.Join(pod1.pgdata, "PG_VERSION"))
	g.Expect(err).NotTo(HaveOccurred())
	marker := filepath.Join(pod1.pgdata, "kept")
	writeFile(t, marker, "untouched", 0o600)
	started := time.Now()
	out, err = bootstrapReplica(t, pod1, closed)
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(ContainSubstring("already initialised"))
	g.Expect(time.Since(started)).To(BeNumerically("<", 5*time.Second), "it did not wait for the primary")
	g.Expect(marker).To(BeAnExistingFile())
	g.Expect(filepath.Join(pod1.pgdata, "standby.signal")).NotTo(BeAnExistingFile())
	after, err := os.ReadFile(filepath.Join(pod1.pgdata, "PG_VERSION"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(after).To(Equal(before))
}
