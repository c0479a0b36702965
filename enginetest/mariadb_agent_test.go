package enginetest

import (
	"context"
	"fmt"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/example/database-operator/agent"
)

// TestMySQLAgentReadsReplicaStatus_MariaDBStandIn runs the agent's
// SHOW REPLICA STATUS (agent.MySQL.ReplicaStatus: the client's flags and
// the reading of its vertical output, which Observe and Promote rely on)
// with a real mysql client against MariaDB servers over loopback TCP, as
// the agent asks its own server: a source has no replication, and a
// replica's fields arrive by name (MariaDB's Slave_* and Master_* names;
// MySQL's are Replica_* and Source_*, which only the names differ in).
func TestMySQLAgentReadsReplicaStatus_MariaDBStandIn(t *testing.T) {
	m := requireMariaDB(t)
	g := NewWithT(t)
	s := newSecret("orders", "app")
	source := startMariaDBOn(t, m, s["root-password"], freePort(t), "--server-id=1", "--log-bin=binlog", "--binlog-format=ROW")
	replica := startMariaDBOn(t, m, s["root-password"], freePort(t), "--server-id=2")
	source.mustRoot(t, "mysql", fmt.Sprintf("CREATE USER 'replicator'@'%%' IDENTIFIED BY %s; GRANT REPLICATION SLAVE ON *.* TO 'replicator'@'%%'",
		sqlString(s["replication-password"])))
	client := func(in *mariaInstance) agent.MySQL {
		return agent.MySQL{Client: "/usr/bin/mariadb", Password: in.rootPassword, Port: in.port}
	}
	ctx := context.Background()

	status, err := client(source).ReplicaStatus(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(status).To(BeEmpty(), "no replication configured")

	replica.mustRoot(t, "mysql", fmt.Sprintf(
		"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='replicator', MASTER_PASSWORD=%s, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; START SLAVE",
		source.port, sqlString(s["replication-password"])))
	replica.waitReplicaStatus(t, "both threads running", threads("Yes", "Yes"))
	status, err = client(replica).ReplicaStatus(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(status).To(HaveKeyWithValue("Slave_IO_Running", "Yes"))
	g.Expect(status).To(HaveKeyWithValue("Slave_SQL_Running", "Yes"))
	g.Expect(status).To(HaveKeyWithValue("Master_Host", "127.0.0.1"))
	g.Expect(status).To(HaveKeyWithValue("Master_Port", fmt.Sprint(source.port)))
	g.Expect(status).To(HaveKeyWithValue("Last_IO_Error", ""))

	_, err = agent.MySQL{Client: "/usr/bin/mariadb", Password: "wrong", Port: replica.port}.ReplicaStatus(ctx)
	g.Expect(err).To(MatchError(ContainSubstring("Access denied")), "a refused login is an error, not an empty status")
}
