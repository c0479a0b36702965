package enginetest

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// The MySQL binaries the prepare script runs, as recording stand-ins: no
// MySQL server is installable here, and MariaDB has none of the statements
// and options the script uses (GTID_SUBTRACT, CHANGE REPLICATION SOURCE
// with SOURCE_AUTO_POSITION, --skip-replica-start, super_read_only). They
// prove the script's decisions and what it sends where; that MySQL accepts
// the statements under super_read_only is not proven here (README, Limits).
//
// mysqld records its arguments, creates its socket file and runs until
// signalled; mysqladmin answers ping for the primary's host and for an
// existing socket, and shutdown stops mysqld; mysql records each call's
// arguments, MYSQL_PWD and standard input, and answers the GTID questions
// from PRIMARY_SET, LOCAL_SET and ERRANT.
const (
	fakeMysqld = `#!/bin/bash
printf '%s\n' "$@" >"$RECORD_DIR/mysqld.args"
for a in "$@"; do case "$a" in --socket=*) socket="${a#--socket=}" ;; esac; done
echo $$ >"$RECORD_DIR/mysqld.pid"
trap 'rm -f "$socket"; echo stopped >"$RECORD_DIR/mysqld.stopped"; exit 0' TERM
: >"$socket"
while :; do sleep 0.1; done
`
	fakeMysqladmin = `#!/bin/bash
printf '%s ' "$@" >>"$RECORD_DIR/mysqladmin.calls"; echo >>"$RECORD_DIR/mysqladmin.calls"
for a in "$@"; do case "$a" in --socket=*) socket="${a#--socket=}" ;; esac; done
case " $* " in
  *" shutdown "*) kill -TERM "$(cat "$RECORD_DIR/mysqld.pid")"; sleep 0.3 ;;
  *" ping "*) if [ -n "${socket:-}" ]; then [ -e "$socket" ]; fi ;;
esac
`
	fakeMysql = `#!/bin/bash
n=$(( $(ls "$RECORD_DIR" | grep -c '^mysql\.[0-9]*\.args$') + 1 ))
printf '%s\n' "$@" >"$RECORD_DIR/mysql.$n.args"
printf '%s' "${MYSQL_PWD:-}" >"$RECORD_DIR/mysql.$n.pwd"
query=""
for a in "$@"; do case "$a" in --execute=*) query="${a#--execute=}" ;; esac; done
if [ -z "$query" ]; then cat >"$RECORD_DIR/mysql.$n.stdin"; exit 0; fi
case "$query $*" in
  *GTID_SUBTRACT*) printf '%s\n' "$ERRANT" ;;
  *gtid_executed*--host=*) printf '%s\n' "$PRIMARY_SET" ;;
  *gtid_executed*) printf '%s\n' "$LOCAL_SET" ;;
esac
`
)

// mysqlCall is one recorded run of the mysql stand-in.
type mysqlCall struct {
	args       []string
	pwd, stdin string
	hasStdin   bool
}

func mysqlCalls(t testing.TB, record string) []mysqlCall {
	t.Helper()
	var calls []mysqlCall
	for n := 1; ; n++ {
		base := filepath.Join(record, "mysql."+strconv.Itoa(n))
		args, err := os.ReadFile(base + ".args")
		if err != nil {
			return calls
		}
		pwd, _ := os.ReadFile(base + ".pwd")
		stdin, err := os.ReadFile(base + ".stdin")
		calls = append(calls, mysqlCall{args: strings.Split(strings.TrimSuffix(string(args), "\n"), "\n"),
			pwd: string(pwd), stdin: string(stdin), hasStdin: err == nil})
	}
}

// TestMySQLPrepare runs the rendered MySQL prepare script (the agent runs it
// before every start of the server) as the agent would, with the stand-ins
// first on PATH, and proves each of its decisions: a primary and a data
// directory that is empty or half initialised start as they are; an
// existing replica's (or a former primary's) data directory is re-pointed at
// the read-write Service with GTID auto-positioning through a temporary
// server that has no network and starts read-only, with the replication
// password only on standard input, quoted; and one that holds transactions
// the primary lacks is emptied (lost+found kept) so the entrypoint copies
// the primary again, with nothing re-pointed.
func TestMySQLPrepare(t *testing.T) {
	const uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	s := newSecret("orders", "app")
	for _, tc := range []struct {
		name   string
		tls    bool
		role   string
		files  []string
		errant string
		// wantRepointed: the replication is pointed at the Service.
		wantRepointed, wantEmptied, wantTemporary bool
		wantOutput                                string
	}{
		{name: "the primary starts as it is", role: "primary", files: []string{"mysql/"},
			wantOutput: "starting as the primary"},
		{name: "an empty data directory is the entrypoint's to copy", role: "replica", files: []string{"lost+found/"},
			wantOutput: "the entrypoint copies the primary"},
		{name: "a half initialised data directory is the entrypoint's to copy again", role: "replica",
			files: []string{"mysql/", mysqlMarker}, wantOutput: "the entrypoint copies the primary"},
		{name: "a replica with nothing the primary lacks is re-pointed", role: "replica",
			files: []string{"lost+found/", "mysql/", "ibdata1"}, wantTemporary: true, wantRepointed: true,
			wantOutput: "starting as a replica of orders.shop.svc"},
		{name: "with TLS the questions and the replication verify the primary", tls: true, role: "replica",
			files: []string{"mysql/", "ibdata1"}, wantTemporary: true, wantRepointed: true},
		{name: "a former primary with transactions the primary lacks is copied again", role: "replica",
			files: []string{"lost+found/", "lost+found/#12", "mysql/", "ibdata1", "binlog.000001"}, errant: uuid + ":11-12",
			wantTemporary: true, wantEmptied: true, wantOutput: "holds transactions the primary lacks (" + uuid + ":11-12)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			opts := []dbOption{withReplicas(3)}
			if tc.tls {
				opts = append(opts, withTLS(""))
			}
			r := renderDB(t, newDatabase("orders", databasev1.MySQL, "8.4", opts...))
			c := r.database(t)
			prepare := prepareScript(t, c)
			dir := t.TempDir()
			volume := filepath.Join(dir, "volume")
			record := filepath.Join(dir, "record")
			bin := filepath.Join(dir, "bin")
			for _, d := range []string{volume, record, bin} {
				g.Expect(os.MkdirAll(d, 0o755)).To(Succeed())
			}
			for name, script := range map[string]string{"mysqld": fakeMysqld, "mysqladmin": fakeMysqladmin, "mysql": fakeMysql} {
				g.Expect(os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755)).To(Succeed())
			}
			for _, f := range tc.files {
				p := filepath.Join(volume, f)
				if strings.HasSuffix(f, "/") {
					g.Expect(os.MkdirAll(p, 0o755)).To(Succeed())
				} else {
					g.Expect(os.WriteFile(p, []byte("data"), 0o644)).To(Succeed())
				}
			}
			env := containerEnv(t, c, s, "orders-1", map[string]string{
				"ROLE": tc.role, "DATA_VOLUME": volume, "RECORD_DIR": record, "PATH": bin + ":/usr/bin:/bin",
				"PRIMARY_SET": uuid + ":1-10", "LOCAL_SET": uuid + ":1-10", "ERRANT": tc.errant,
			})
			g.Expect(env["PRIMARY_HOST"]).To(Equal("orders.shop.svc"))
			out, err := run(t, time.Minute, rootUser, env, "", "bash", "-c", prepare)
			g.Expect(err).NotTo(HaveOccurred(), "%s", out)
			g.Expect(out).To(ContainSubstring(tc.wantOutput))

			g.Expect(exists(filepath.Join(record, "mysqld.args"))).To(Equal(tc.wantTemporary), "a temporary server started: %s", out)
			if tc.wantTemporary {
				args := readRecord(t, record, "mysqld.args")
				g.Expect(args).To(ContainElements("--skip-networking", "--skip-replica-start", "--read-only=ON", "--super-read-only=ON", "--server-id=2"))
				g.Expect(readRecord(t, record, "mysqld.stopped")).To(Equal([]string{"stopped"}), "the temporary server is shut down")
			}
			calls := mysqlCalls(t, record)
			var repoint *mysqlCall
			for i, call := range calls {
				g.Expect(call.pwd).To(Equal(s["root-password"]), "every client call is root's, with the password from MYSQL_PWD")
				for _, a := range call.args {
					for _, key := range []string{"root-password", "replication-password"} {
						g.Expect(a).NotTo(ContainSubstring(strings.TrimSpace(s[key])), "no password on a command line")
					}
				}
				if call.hasStdin {
					repoint = &calls[i]
				}
				if slices.ContainsFunc(call.args, func(a string) bool { return strings.HasPrefix(a, "--host=") }) {
					g.Expect(call.args).To(ContainElements("--host=orders.shop.svc", "--port=3306"))
					if tc.tls {
						g.Expect(call.args).To(ContainElements("--ssl-mode=VERIFY_IDENTITY", "--ssl-ca=/etc/database-operator/tls/ca.crt"))
					}
				}
			}
			g.Expect(repoint != nil).To(Equal(tc.wantRepointed), "replication re-pointed")
			if repoint != nil {
				g.Expect(repoint.args).To(ContainElement(HavePrefix("--socket=")), "on the temporary server's socket")
				g.Expect(repoint.stdin).To(ContainSubstring("CHANGE REPLICATION SOURCE TO SOURCE_HOST='orders.shop.svc', SOURCE_PORT=3306"))
				g.Expect(repoint.stdin).To(ContainSubstring("SOURCE_PASSWORD="+sqlString(s["replication-password"])+","),
					"the hostile password is quoted as a MySQL string")
				g.Expect(repoint.stdin).To(ContainSubstring("SOURCE_AUTO_POSITION=1"))
				g.Expect(repoint.stdin).To(ContainSubstring("SET PERSIST super_read_only = ON;"))
				if tc.tls {
					g.Expect(repoint.stdin).To(ContainSubstring("SOURCE_SSL=1, SOURCE_SSL_CA='/etc/database-operator/tls/ca.crt', SOURCE_SSL_VERIFY_SERVER_CERT=1;"))
				} else {
					g.Expect(repoint.stdin).NotTo(ContainSubstring("SOURCE_SSL"))
				}
			}
			entries, err := os.ReadDir(volume)
			g.Expect(err).NotTo(HaveOccurred())
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if tc.wantEmptied {
				g.Expect(names).To(Equal([]string{"lost+found"}))
				g.Expect(exists(filepath.Join(volume, "lost+found", "#12"))).To(BeTrue(), "lost+found is kept whole")
			} else {
				g.Expect(names).To(HaveLen(len(topLevel(tc.files))), "the data directory is untouched")
			}
		})
	}
}

// topLevel is the distinct first path elements of files.
func topLevel(files []string) map[string]bool {
	m := map[string]bool{}
	for _, f := range files {
		m[strings.SplitN(f, "/", 2)[0]] = true
	}
	return m
}
