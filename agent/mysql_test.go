package agent

import (
	"testing"

	. "github.com/onsi/gomega"

	"github.com/example/database-operator/instance"
)

const (
	sourceUUID = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	otherUUID  = "4f22ab58-82db-22f2-af44-d91bb0530673"
)

// replicaStatus is the shape of MySQL 8's SHOW REPLICA STATUS with
// --vertical (fields abridged): the GTID sets span lines after each comma.
const replicaStatus = `*************************** 1. row ***************************
             Replica_IO_State: Waiting for source to send event
                  Source_Host: orders.team-a.svc
                  Source_Port: 3306
           Replica_IO_Running: Yes
          Replica_SQL_Running: Yes
                Last_IO_Error: 
           Retrieved_Gtid_Set: ` + sourceUUID + `:1-12
            Executed_Gtid_Set: ` + sourceUUID + `:1-10,
` + otherUUID + `:1-3
                Auto_Position: 1`

func TestParseVertical(t *testing.T) {
	g := NewWithT(t)
	f := parseVertical(replicaStatus)
	g.Expect(f).To(HaveKeyWithValue("Replica_IO_Running", "Yes"))
	g.Expect(f).To(HaveKeyWithValue("Source_Host", "orders.team-a.svc"))
	g.Expect(f).To(HaveKeyWithValue("Last_IO_Error", ""))
	g.Expect(f).To(HaveKeyWithValue("Executed_Gtid_Set", sourceUUID+":1-10,"+otherUUID+":1-3"), "a value over two lines is joined")
	g.Expect(f).To(HaveKeyWithValue("Auto_Position", "1"))
	g.Expect(parseVertical("")).To(BeEmpty(), "no replication configured: no row")
}

func TestParseMySQLObserve(t *testing.T) {
	for _, c := range []struct {
		name     string
		executed string
		status   string
		want     instance.Report
		err      string
	}{
		{name: "no replication configured: the primary, at what it executed",
			executed: sourceUUID + ":1-10,\n" + otherUUID + ":1-3",
			want:     instance.Report{Role: instance.Primary, Position: sourceUUID + ":1-10," + otherUUID + ":1-3"}},
		{name: "a streaming replica counts what it received and has not applied yet",
			executed: sourceUUID + ":1-10,\n" + otherUUID + ":1-3", status: replicaStatus,
			want: instance.Report{Role: instance.Replica, Streaming: true,
				Position: sourceUUID + ":1-12," + otherUUID + ":1-3", ReplayPosition: sourceUUID + ":1-10," + otherUUID + ":1-3"}},
		{name: "a replica whose I/O thread reconnects is not streaming",
			executed: sourceUUID + ":1-10", status: "Replica_IO_Running: Connecting\nRetrieved_Gtid_Set: ",
			want: instance.Report{Role: instance.Replica, Position: sourceUUID + ":1-10", ReplayPosition: sourceUUID + ":1-10"}},
		{name: "an unreadable GTID set is an error, not a position",
			executed: "0-1-42", err: "gtid_executed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			r, err := parseMySQLObserve(c.executed, parseVertical(c.status))
			if c.err != "" {
				g.Expect(err).To(MatchError(ContainSubstring(c.err)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(r).To(Equal(c.want))
		})
	}
}

func TestSQLQuote(t *testing.T) {
	NewWithT(t).Expect(QuoteMySQLString(`a'b\c`)).To(Equal(`'a''b\\c'`))
}
