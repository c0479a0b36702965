package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/example/database-operator/instance"
)

// MySQL talks to the local server with the mysql client, as root over TCP
// to 127.0.0.1 (the image's server listens there too), with the password
// in the client's environment (MYSQL_PWD) only, never on a command line.
//
// Every server starts read-only (super_read_only in the configuration
// file): a primary accepts writes only once its agent has seen it runs as
// the primary the operator asked for, so a former primary that restarts is
// fenced until it is told its role.
type MySQL struct {
	// Client is the mysql binary; "mysql" from PATH when empty.
	Client string
	// Password is root's password.
	Password string
	// Host is the server's address (127.0.0.1 when empty: the agent's
	// own server).
	Host string
	// Port is the server's port (3306 when zero).
	Port int
	// Sync turns semi-synchronous replication on at the primary: a commit
	// is acknowledged once a replica has received it.
	Sync bool
	// Binlogs, when set, ships the primary's binary logs to the archive
	// (spec.backup.s3).
	Binlogs *BinlogShipper
}

// The statements a promotion runs, in order. The I/O thread stops first,
// so that nothing more arrives; the SQL thread then applies everything
// the replica received (WAIT_FOR_EXECUTED_GTID_SET returns 0 once it has,
// 1 on the timeout) before replication is removed and writes are allowed.
const (
	mysqlStopReceiving = "STOP REPLICA IO_THREAD"
	mysqlWaitApplied   = "SELECT WAIT_FOR_EXECUTED_GTID_SET(%s, 60)"
	mysqlStopReplica   = "STOP REPLICA"
	mysqlResetReplica  = "RESET REPLICA ALL"
	mysqlWritable      = "SET GLOBAL super_read_only = OFF; SET GLOBAL read_only = OFF"
)

func (m MySQL) query(ctx context.Context, timeout time.Duration, sql string, vertical bool) (string, error) {
	bin := m.Client
	if bin == "" {
		bin = "mysql"
	}
	port := m.Port
	if port == 0 {
		port = 3306
	}
	host := m.Host
	if host == "" {
		host = "127.0.0.1"
	}
	args := []string{"--no-defaults", "--protocol=TCP", "--host=" + host, fmt.Sprintf("--port=%d", port),
		"--user=root", "--connect-timeout=2", "--batch", "--raw"}
	if vertical {
		// Field names are what vertical output is read by, and
		// --skip-column-names drops them there too.
		args = append(args, "--vertical")
	} else {
		args = append(args, "--skip-column-names")
	}
	return clientOutput(ctx, timeout, []string{"MYSQL_PWD=" + m.Password}, bin, append(args, "--execute="+sql)...)
}

// ServerIdentity is the server's identity in the archive: @@server_uuid,
// which a new data directory changes; MariaDB, which has none, is
// "server-" and its server id.
func (m MySQL) ServerIdentity(ctx context.Context) (string, error) {
	out, err := m.query(ctx, 5*time.Second, "SELECT @@server_uuid", false)
	if err != nil && strings.Contains(err.Error(), "Unknown system variable") {
		out, err = m.query(ctx, 5*time.Second, "SELECT CONCAT('server-', @@server_id)", false)
	}
	if err != nil {
		return "", fmt.Errorf("asking the server's identity: %w", err)
	}
	return strings.TrimSpace(out), nil
}

// Observe implements Engine: a server with replication configured is a
// replica; its position is what it has executed plus what it has received
// and not yet applied (a promotion applies that first).
func (m MySQL) Observe(ctx context.Context) (instance.Report, error) {
	executed, err := m.query(ctx, 5*time.Second, "SELECT @@global.gtid_executed", false)
	if err != nil {
		return instance.Report{}, err
	}
	status, err := m.ReplicaStatus(ctx)
	if err != nil {
		return instance.Report{}, err
	}
	return parseMySQLObserve(executed, status)
}

// ReplicaStatus is SHOW REPLICA STATUS as field names to values; empty
// when no replication is configured.
func (m MySQL) ReplicaStatus(ctx context.Context) (map[string]string, error) {
	out, err := m.query(ctx, 5*time.Second, "SHOW REPLICA STATUS", true)
	if err != nil {
		return nil, err
	}
	return parseVertical(out), nil
}

// parseVertical reads the mysql client's --vertical output of one row:
// "Field: value" lines after a "*** 1. row ***" line. Values that span
// lines (Executed_Gtid_Set has a newline after each comma) are joined.
func parseVertical(out string) map[string]string {
	fields := map[string]string{}
	last := ""
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "***") {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		key := strings.TrimSpace(k)
		if ok && key != "" && !strings.ContainsAny(key, " ,-") {
			fields[key] = strings.TrimSpace(v)
			last = key
			continue
		}
		if last != "" {
			fields[last] += strings.TrimSpace(line)
		}
	}
	return fields
}

func parseMySQLObserve(executed string, status map[string]string) (instance.Report, error) {
	done, err := instance.ParseGTIDSet(executed)
	if err != nil {
		return instance.Report{}, fmt.Errorf("gtid_executed: %w", err)
	}
	if len(status) == 0 {
		return instance.Report{Role: instance.Primary, Position: done.String()}, nil
	}
	received, err := instance.ParseGTIDSet(status["Retrieved_Gtid_Set"])
	if err != nil {
		return instance.Report{}, fmt.Errorf("Retrieved_Gtid_Set: %w", err)
	}
	return instance.Report{
		Role:           instance.Replica,
		Position:       done.Union(received).String(),
		ReplayPosition: done.String(),
		Streaming:      status["Replica_IO_Running"] == "Yes",
	}, nil
}

// Promote implements Engine.
func (m MySQL) Promote(ctx context.Context) error {
	if _, err := m.query(ctx, 10*time.Second, mysqlStopReceiving, false); err != nil {
		return err
	}
	status, err := m.ReplicaStatus(ctx)
	if err != nil {
		return err
	}
	if received := status["Retrieved_Gtid_Set"]; received != "" {
		out, err := m.query(ctx, 70*time.Second, fmt.Sprintf(mysqlWaitApplied, QuoteMySQLString(received)), false)
		if err != nil {
			return err
		}
		if out != "0" {
			return fmt.Errorf("the replica did not apply what it received within 60 s")
		}
	}
	for _, sql := range []string{mysqlStopReplica, mysqlResetReplica} {
		if _, err := m.query(ctx, 10*time.Second, sql, false); err != nil {
			return err
		}
	}
	return nil
}

// ConfigurePrimary implements Engine: semi-synchronous replication on or
// off, then writes allowed. The source never falls back to asynchronous
// replication on its own (the timeout is as long as MySQL allows): in
// sync mode a commit no replica has received is not acknowledged.
func (m MySQL) ConfigurePrimary(ctx context.Context) error {
	semiSync := "SET GLOBAL rpl_semi_sync_source_enabled = OFF"
	if m.Sync {
		semiSync = "SET GLOBAL rpl_semi_sync_source_wait_for_replica_count = 1; " +
			"SET GLOBAL rpl_semi_sync_source_timeout = 4294967295; SET GLOBAL rpl_semi_sync_source_enabled = ON"
	}
	for _, sql := range []string{semiSync, mysqlWritable} {
		if _, err := m.query(ctx, 10*time.Second, sql, false); err != nil {
			return err
		}
	}
	return nil
}

// QuoteMySQLString quotes a string for MySQL (a GTID set holds no quote,
// but the agent does not rely on it).
func QuoteMySQLString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}
