package enginetest

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// readinessScript is the rendered database container's readiness probe,
// which must be `bash -c <script>`.
func readinessScript(t testing.TB, c corev1.Container) string {
	t.Helper()
	p := c.ReadinessProbe
	if p == nil || p.Exec == nil {
		t.Fatalf("container %s has no exec readiness probe", c.Name)
	}
	cmd := p.Exec.Command
	if len(cmd) != 3 || cmd[0] != "bash" || cmd[1] != "-c" {
		t.Fatalf("the readiness probe does not run bash -c <script>: %q", cmd)
	}
	return cmd[2]
}

// replicaStatus is SHOW REPLICA STATUS of a MariaDB server as field names
// to values (empty when no replication is configured).
func (in *mariaInstance) replicaStatus(t testing.TB) map[string]string {
	t.Helper()
	out, err := run(t, 30*time.Second, rootUser, map[string]string{"MYSQL_PWD": in.rootPassword}, "", "/usr/bin/mariadb", "--no-defaults",
		"--socket="+in.socket, "--user=root", "--batch", "--execute=SHOW REPLICA STATUS\\G")
	if err != nil {
		t.Fatalf("SHOW REPLICA STATUS: %v\n%s", err, out)
	}
	status := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(k, "*") {
			status[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return status
}

// waitReplicaStatus waits until the replica's status satisfies ok.
func (in *mariaInstance) waitReplicaStatus(t testing.TB, what string, ok func(map[string]string) bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var status map[string]string
	for time.Now().Before(deadline) {
		if status = in.replicaStatus(t); ok(status) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the replica's status never showed %s: IO %q, SQL %q, last IO error %q, last SQL error %q",
		what, status["Slave_IO_Running"], status["Slave_SQL_Running"], status["Last_IO_Error"], status["Last_SQL_Error"])
}

func threads(io, sql string) func(map[string]string) bool {
	return func(s map[string]string) bool { return s["Slave_IO_Running"] == io && s["Slave_SQL_Running"] == sql }
}

// TestMySQLReplicaReadinessNeedsReplication_MariaDBStandIn runs the rendered
// readiness probe of a database pod (orders-1) against a MariaDB server, as
// the kubelet runs it in the database container: with the container's
// environment (the root password in MYSQL_ROOT_PASSWORD), MariaDB's mysql
// client first on PATH, and the replica's socket where the client looks by
// default (an option file in HOME stands in for the image's compiled-in
// socket path; the probe names no socket). It proves that a server without
// replication is Ready only while it accepts writes (the primary, not a
// fenced former primary), and that a replica is Ready exactly while it
// replicates: not with either thread stopped, not after a replication
// error; still Ready while the I/O thread reconnects to a source that went
// away; and nothing is Ready once the server stopped. It also shows that MariaDB answers SHOW REPLICA STATUS with the
// Slave_* columns the probe accepts.
func TestMySQLReplicaReadinessNeedsReplication_MariaDBStandIn(t *testing.T) {
	m := requireMariaDB(t)
	s := newSecret("orders", "app")
	source := startMariaDBOn(t, m, s["root-password"], freePort(t), "--server-id=1", "--log-bin=binlog", "--binlog-format=ROW")
	replica := startMariaDBOn(t, m, s["root-password"], freePort(t), "--server-id=2")

	r := renderDB(t, newDatabase("orders", databasev1.MySQL, "8.4", withReplicas(2)))
	c := r.database(t)
	probe := readinessScript(t, c)
	home := mkdir(t, filepath.Join(replica.dir, "home"), m.user, 0o755)
	writeFile(t, filepath.Join(home, ".my.cnf"), "[client]\nsocket="+replica.socket+"\n", 0o644)
	env := containerEnv(t, c, s, "orders-1", map[string]string{"HOME": home, "PATH": "/usr/bin:/bin"})

	source.mustRoot(t, "mysql", "CREATE DATABASE orders")
	source.mustRoot(t, "orders", "CREATE TABLE items (id int PRIMARY KEY)")
	source.mustRoot(t, "mysql", fmt.Sprintf("CREATE USER 'replicator'@'%%' IDENTIFIED BY %s; GRANT REPLICATION SLAVE ON *.* TO 'replicator'@'%%'",
		sqlString(s["replication-password"])))

	steps := []struct {
		name   string
		do     func(t *testing.T)
		ready  bool
		output string
	}{
		{name: "no replication configured and writable: the primary", ready: true},
		{name: "no replication configured and read-only: fenced, waiting for its role", ready: false,
			output: "not serving: no replication configured and read-only", do: func(t *testing.T) {
				replica.mustRoot(t, "mysql", "SET GLOBAL read_only = ON")
			}},
		{name: "replicating from the source", ready: true, do: func(t *testing.T) {
			replica.mustRoot(t, "mysql", fmt.Sprintf(
				"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='replicator', MASTER_PASSWORD=%s, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; START SLAVE",
				source.port, sqlString(s["replication-password"])))
			replica.waitReplicaStatus(t, "both threads running", threads("Yes", "Yes"))
			source.mustRoot(t, "orders", "INSERT INTO items VALUES (1)")
			NewWithT(t).Eventually(func() string {
				out, _ := replica.query(t, "root", replica.rootPassword, "mysql", "SELECT count(*) FROM orders.items")
				return out
			}, 30*time.Second, 100*time.Millisecond).Should(Equal("1"), "the row replicated")
		}},
		{name: "I/O thread stopped", ready: false, output: "not replicating: the I/O thread is stopped", do: func(t *testing.T) {
			replica.mustRoot(t, "mysql", "STOP SLAVE IO_THREAD")
			replica.waitReplicaStatus(t, "the I/O thread stopped", threads("No", "Yes"))
		}},
		{name: "I/O thread started again", ready: true, do: func(t *testing.T) {
			replica.mustRoot(t, "mysql", "START SLAVE IO_THREAD")
			replica.waitReplicaStatus(t, "both threads running", threads("Yes", "Yes"))
		}},
		{name: "SQL thread stopped", ready: false, output: "not replicating: the SQL thread is not running", do: func(t *testing.T) {
			replica.mustRoot(t, "mysql", "STOP SLAVE SQL_THREAD")
			replica.waitReplicaStatus(t, "the SQL thread stopped", threads("Yes", "No"))
		}},
		{name: "SQL thread started again", ready: true, do: func(t *testing.T) {
			replica.mustRoot(t, "mysql", "START SLAVE SQL_THREAD")
			replica.waitReplicaStatus(t, "both threads running", threads("Yes", "Yes"))
		}},
		{name: "replication stopped by an error", ready: false, output: "not replicating: the SQL thread is not running", do: func(t *testing.T) {
			// The replica holds a row the source then inserts: applying
			// the source's row fails (ERROR 1062, a duplicate key) and
			// stops the SQL thread. (MariaDB replicas ignore conflicting
			// DDL by default, slave_ddl_exec_mode=IDEMPOTENT.)
			replica.mustRoot(t, "orders", "INSERT INTO items VALUES (2)")
			source.mustRoot(t, "orders", "INSERT INTO items VALUES (2)")
			replica.waitReplicaStatus(t, "a replication error", func(s map[string]string) bool {
				return s["Slave_SQL_Running"] == "No" && s["Last_SQL_Errno"] == "1062"
			})
		}},
		{name: "the error resolved", ready: true, do: func(t *testing.T) {
			replica.mustRoot(t, "orders", "DELETE FROM items WHERE id = 2")
			replica.mustRoot(t, "mysql", "START SLAVE SQL_THREAD")
			replica.waitReplicaStatus(t, "both threads running", threads("Yes", "Yes"))
		}},
		{name: "the source went away and the I/O thread reconnects", ready: true, do: func(t *testing.T) {
			source.srv.stop()
			replica.waitReplicaStatus(t, "the I/O thread reconnecting", threads("Connecting", "Yes"))
		}},
		{name: "the server stopped", ready: false, output: "ERROR 2002", do: func(t *testing.T) {
			replica.srv.stop()
		}},
	}
	for _, step := range steps {
		// Each step starts from the state the one before left.
		if !t.Run(step.name, func(t *testing.T) {
			g := NewWithT(t)
			if step.do != nil {
				step.do(t)
			}
			out, err := run(t, 30*time.Second, m.user, env, "", "bash", "-c", probe)
			if step.ready {
				g.Expect(err == nil).To(BeTrue(), "the probe must pass; it failed (%v): %s", err, out)
				return
			}
			g.Expect(err).To(HaveOccurred(), "the probe must fail: %s", out)
			g.Expect(isExitError(err)).To(BeTrue(), "%v", err)
			g.Expect(out).To(ContainSubstring(step.output))
		}) {
			break
		}
	}
}
