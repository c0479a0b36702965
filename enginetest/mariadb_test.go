package enginetest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// MariaDB 10.11 stands in for MySQL here: no MySQL server is installable on
// this machine. Its server and its client tools (mysql, mysqldump,
// mysqladmin, which Debian's MariaDB packages provide under those names) run
// the rendered MySQL scripts.

// mariadb is the MariaDB installation the tests use.
type mariadb struct {
	user osUser
}

func requireMariaDB(t testing.TB) mariadb {
	t.Helper()
	for _, b := range []string{"/usr/sbin/mariadbd", "/usr/bin/mariadb-install-db", "/usr/bin/mariadb", "/usr/bin/mysql", "/usr/bin/mysqldump", "/usr/bin/mysqladmin"} {
		requireBinary(t, b)
	}
	return mariadb{user: lookupUser(t, "mysql")}
}

// mariaInstance is one MariaDB server with its own data directory, socket
// and loopback port. Its root user has rootPassword on the socket and on
// 127.0.0.1 (the server skips name resolution, as the rendered my.cnf does).
type mariaInstance struct {
	m            mariadb
	dir, datadir string
	socket       string
	port         int
	rootPassword string
	srv          *server
}

// sqlString quotes s as a MySQL string literal.
func sqlString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}

func startMariaDB(t testing.TB, m mariadb, rootPassword string) *mariaInstance {
	t.Helper()
	return startMariaDBOn(t, m, rootPassword, freePort(t))
}

// startMariaDBOn is startMariaDB on a given loopback port, with serverArgs
// added to mariadbd's command line (--server-id, --log-bin for replication).
func startMariaDBOn(t testing.TB, m mariadb, rootPassword string, port int, serverArgs ...string) *mariaInstance {
	t.Helper()
	dir := workDir(t, m.user)
	in := &mariaInstance{m: m, dir: dir, datadir: mkdir(t, filepath.Join(dir, "data"), m.user, 0o750),
		socket: filepath.Join(dir, "mysqld.sock"), port: port, rootPassword: rootPassword}
	out, err := run(t, 2*time.Minute, m.user, nil, "", "/usr/bin/mariadb-install-db", "--no-defaults",
		"--datadir="+in.datadir, "--auth-root-authentication-method=normal", "--skip-test-db")
	if err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	in.srv = startServer(t, "mariadbd", m.user, nil, filepath.Join(dir, "mariadbd.log"), "/usr/sbin/mariadbd",
		append([]string{"--no-defaults", "--datadir=" + in.datadir, "--socket=" + in.socket, fmt.Sprintf("--port=%d", in.port),
			"--bind-address=127.0.0.1", "--skip-name-resolve", "--pid-file=" + filepath.Join(dir, "mariadbd.pid")}, serverArgs...)...)
	in.srv.stopSignal = syscall.SIGTERM
	in.srv.waitReady(t, 60*time.Second, func() error {
		out, err := run(t, 5*time.Second, rootUser, nil, "", "/usr/bin/mysqladmin", "--no-defaults", "--socket="+in.socket, "-uroot", "ping")
		if err != nil {
			return fmt.Errorf("mysqladmin ping: %v %s", err, out)
		}
		return nil
	})
	pw := sqlString(rootPassword)
	out, err = run(t, 30*time.Second, rootUser, nil, fmt.Sprintf(
		"ALTER USER 'root'@'localhost' IDENTIFIED BY %[1]s;\nCREATE USER IF NOT EXISTS 'root'@'127.0.0.1';\nALTER USER 'root'@'127.0.0.1' IDENTIFIED BY %[1]s;\nGRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;\n", pw),
		"/usr/bin/mariadb", "--no-defaults", "--socket="+in.socket, "-uroot")
	if err != nil {
		t.Fatalf("set the root password: %v\n%s", err, out)
	}
	return in
}

// query runs SQL over TCP and returns the tab-separated rows.
func (in *mariaInstance) query(t testing.TB, user, password, database, sql string) (string, error) {
	t.Helper()
	out, err := run(t, 30*time.Second, rootUser, map[string]string{"MYSQL_PWD": password}, "", "/usr/bin/mariadb", "--no-defaults",
		"--protocol=tcp", "--host=127.0.0.1", fmt.Sprintf("--port=%d", in.port), "--user="+user,
		"--batch", "--skip-column-names", "--database="+database, "--execute="+sql)
	return strings.TrimSpace(out), err
}

func (in *mariaInstance) mustRoot(t testing.TB, database, sql string) string {
	t.Helper()
	out, err := in.query(t, "root", in.rootPassword, database, sql)
	if err != nil {
		t.Fatalf("%s: %v\n%s", sql, err, out)
	}
	return out
}

// mysqlEntrypointInit emulates the official mysql image's initialisation
// after the server's system tables exist, in the steps the rendered files
// depend on: with the temporary server up and root's password set, it
// creates MYSQL_DATABASE and MYSQL_USER (all privileges on that database),
// then sources the *.sh files and loads the *.sql.gz files of the init
// directory in name order. docker_process_sql is the image's (the mysql
// client as root on the local socket, --comments, on MYSQL_DATABASE unless
// the caller names another database), with MariaDB's client; it passes
// root's password in MYSQL_PWD where the image writes an option file.
var mysqlEntrypointInit = strings.ReplaceAll(`set -Eeo pipefail
mysql_note() { echo "entrypoint: $*"; }
mysql_error() { echo "entrypoint: ERROR: $*" >&2; exit 1; }
docker_process_sql() {
  if [ -n "$MYSQL_DATABASE" ]; then
    set -- --database="$MYSQL_DATABASE" "$@"
  fi
  MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mysql --no-defaults --protocol=socket -uroot -hlocalhost --socket="$SOCKET" --comments "$@"
}
docker_temp_server_stop() {
  MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mysqladmin --no-defaults shutdown -uroot --socket="$SOCKET"
}
docker_sql_escape_string_literal() {
  local escaped=${1//\\/\\\\}
  echo "${escaped//\'/\\\'}"
}
docker_process_sql --database=mysql <<EOSQL
CREATE DATABASE IF NOT EXISTS \BT$MYSQL_DATABASE\BT;
CREATE USER '$MYSQL_USER'@'%' IDENTIFIED BY '$(docker_sql_escape_string_literal "$MYSQL_PASSWORD")';
GRANT ALL ON \BT${MYSQL_DATABASE//_/\\_}\BT.* TO '$MYSQL_USER'@'%';
EOSQL
for f in "$INITDB_DIR"/*; do
  case "$f" in
    *.sh) echo "entrypoint: sourcing $f"; . "$f" ;;
    *.sql.gz) echo "entrypoint: running $f"; gunzip -c "$f" | docker_process_sql ;;
    *) echo "entrypoint: ignoring $f" ;;
  esac
done
echo "entrypoint: init process done"
`, "BT", "`")

// TestMySQLBackupRestoreRoundTrip_MariaDBStandIn runs the rendered MySQL
// backup script (the CronJob's, with its environment and the Secret's
// credentials) against MariaDB standing in for MySQL, then initialises a
// second, fresh MariaDB server with the rendered MySQL init scripts the way
// the official mysql image's entrypoint does, spec.restore included, and
// reads the row back from a Database with another database name and user.
func TestMySQLBackupRestoreRoundTrip_MariaDBStandIn(t *testing.T) {
	m := requireMariaDB(t)
	g := NewWithT(t)
	s := newSecret("orders", "app")
	source := startMariaDB(t, m, s["root-password"])
	source.mustRoot(t, "mysql", "CREATE DATABASE orders")
	source.mustRoot(t, "orders", "CREATE TABLE items (id int AUTO_INCREMENT PRIMARY KEY, name varchar(100) NOT NULL)")
	source.mustRoot(t, "orders", `INSERT INTO items (name) VALUES ('it''s a "row" \\ with quotes')`)
	source.mustRoot(t, "orders", "CREATE VIEW item_names AS SELECT name FROM items")

	r := renderDB(t, newDatabase("orders", databasev1.MySQL, "8.4", withBackup("7d")))
	c := r.backupContainer(t)
	backupDir := mkdir(t, filepath.Join(source.dir, "backup"), m.user, 0o755)
	env := containerEnv(t, c, s, "", map[string]string{"DB_HOST": "127.0.0.1", "DB_PORT": fmt.Sprint(source.port), "BACKUP_DIR": backupDir})
	out, err := run(t, 2*time.Minute, m.user, env, "", "bash", "-c", bashScript(t, c))
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	names := listDir(t, backupDir)
	g.Expect(names).To(HaveLen(1))
	g.Expect(names[0]).To(MatchRegexp(dumpNamePattern, "orders"))
	dump := filepath.Join(backupDir, names[0])
	expectGzip(g, dump)
	sql := bash(t, rootUser, nil, "gunzip -c "+dump)
	g.Expect(sql).To(ContainSubstring("CREATE TABLE `items`"))
	g.Expect(sql).NotTo(ContainSubstring("CREATE DATABASE"), "the dump loads into whichever database the client names")
	g.Expect(sql).NotTo(MatchRegexp("(?m)^USE "))
	g.Expect(sql).NotTo(ContainSubstring("GTID_PURGED"))

	// A fresh server, initialised as the mysql image does for pod 0 of a
	// Database restored from "orders", with credentials of its own.
	target := startMariaDB(t, m, "another root password")
	restored := renderDB(t, newDatabase("orders-copy", databasev1.MySQL, "8.4", withReplicas(2), withRestore("orders", "")))
	ts := newSecret("orders_copy", "owner2")
	ts["root-password"] = target.rootPassword
	initdb := mkdir(t, filepath.Join(target.dir, "initdb"), m.user, 0o755)
	g.Expect(restored.writeInitScripts(t, initdb)).To(Equal([]string{"50-replication.sh", "60-restore.sh", "99-initialised.sh"}))
	initEnv := containerEnv(t, restored.database(t), ts, "orders-copy-0", map[string]string{
		"SOCKET": target.socket, "DATADIR": target.datadir, "DATA_VOLUME": target.datadir, "INITDB_DIR": initdb, "RESTORE_DIR": backupDir,
	})
	out, err = run(t, 2*time.Minute, m.user, initEnv, "", "bash", "-c", mysqlEntrypointInit)
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	g.Expect(out).To(ContainSubstring("restoring " + dump))

	got, err := target.query(t, "owner2", ts["password"], "orders_copy", "SELECT name FROM item_names")
	g.Expect(err).NotTo(HaveOccurred(), "%s", got)
	g.Expect(got).To(Equal(source.mustRoot(t, "orders", "SELECT name FROM items")))
	g.Expect(got).To(ContainSubstring(`it's a "row"`))
	g.Expect(target.mustRoot(t, "mysql", "SELECT count(*) FROM user WHERE user = 'replicator'")).To(Equal("1"),
		"the rendered initdb-replication.sh ran before the restore")
}

// The backup script passes --set-gtid-purged=OFF to a mysqldump that has the
// option (MySQL's), detected from its --help, and not to one that lacks it
// (MariaDB's, in the round trip above). A wrapper stands in for MySQL's
// mysqldump: it advertises the option, records its arguments and runs
// MariaDB's without it.
func TestMySQLBackupPassesGTIDOptionWhenKnown_MariaDBStandIn(t *testing.T) {
	m := requireMariaDB(t)
	g := NewWithT(t)
	s := newSecret("orders", "app")
	source := startMariaDB(t, m, s["root-password"])
	source.mustRoot(t, "mysql", "CREATE DATABASE orders")
	source.mustRoot(t, "orders", "CREATE TABLE items (id int PRIMARY KEY)")

	fakeBin := mkdir(t, filepath.Join(source.dir, "mysql-client"), m.user, 0o755)
	argsFile := filepath.Join(source.dir, "mysqldump.args")
	writeFile(t, filepath.Join(fakeBin, "mysqldump"), `#!/bin/bash
if [ "$1" = --help ]; then
  echo "  --set-gtid-purged[=name]"
  exit 0
fi
printf '%s\n' "$@" >`+argsFile+`
args=()
for a in "$@"; do
  [ "$a" = --set-gtid-purged=OFF ] || args+=("$a")
done
exec /usr/bin/mysqldump "${args[@]}"
`, 0o755)
	r := renderDB(t, newDatabase("orders", databasev1.MySQL, "8.0", withBackup("7d")))
	c := r.backupContainer(t)
	backupDir := mkdir(t, filepath.Join(source.dir, "backup"), m.user, 0o755)
	env := containerEnv(t, c, s, "", map[string]string{"DB_HOST": "127.0.0.1", "DB_PORT": fmt.Sprint(source.port),
		"BACKUP_DIR": backupDir, "PATH": fakeBin + ":/usr/bin:/bin"})
	out, err := run(t, 2*time.Minute, m.user, env, "", "bash", "-c", bashScript(t, c))
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	args, err := os.ReadFile(argsFile)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(strings.Split(strings.TrimSpace(string(args)), "\n")).To(ContainElements("--set-gtid-purged=OFF", "--single-transaction", "orders"))
	g.Expect(listDir(t, backupDir)).To(HaveLen(1))
}
