package enginetest

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// rowDefiner is text that row data carries: the restore must not rewrite it.
const rowDefiner = "DEFINER=`app`@`%`"

// TestMySQLRestoreRedefinesDefiners_MariaDBStandIn backs up, with the
// rendered backup script, a database whose view, trigger, stored procedure
// and event were created by its application user app@%, and restores the
// dump with the rendered init scripts into a fresh server whose application
// user is owner2. It proves the restore makes owner2 the definer of every
// one of them, so they work there (without the rewrite, using them fails
// with ERROR 1449: the definer app@% does not exist), while rows whose text
// reads like a definer clause load unchanged.
func TestMySQLRestoreRedefinesDefiners_MariaDBStandIn(t *testing.T) {
	m := requireMariaDB(t)
	g := NewWithT(t)
	s := newSecret("orders", "app")
	source := startMariaDB(t, m, s["root-password"])
	source.mustRoot(t, "mysql", "CREATE DATABASE orders")
	source.mustRoot(t, "mysql", fmt.Sprintf("CREATE USER 'app'@'%%' IDENTIFIED BY %s; GRANT ALL ON orders.* TO 'app'@'%%'", sqlString(s["password"])))
	asApp := func(sql string) {
		t.Helper()
		out, err := source.query(t, "app", s["password"], "orders", sql)
		g.Expect(err).NotTo(HaveOccurred(), "as app: %s: %s", sql, out)
	}
	asApp("CREATE TABLE items (id int AUTO_INCREMENT PRIMARY KEY, name varchar(100) NOT NULL)")
	asApp("CREATE TABLE audit (id int AUTO_INCREMENT PRIMARY KEY, item_id int NOT NULL, note text NOT NULL)")
	asApp("INSERT INTO items (name) VALUES ('first'), (" + sqlString("a row that says "+rowDefiner) + ")")
	asApp("INSERT INTO audit (item_id, note) VALUES (1, " + sqlString(rowDefiner+" in a row\nacross lines") + ")")
	asApp("CREATE VIEW item_names AS SELECT name FROM items")
	asApp("CREATE TRIGGER items_audit AFTER INSERT ON items FOR EACH ROW INSERT INTO audit (item_id, note) VALUES (NEW.id, 'inserted')")
	asApp("CREATE PROCEDURE item_count() SELECT count(*) FROM items")
	// The event scheduler is off: the event is created, never run.
	asApp("CREATE EVENT purge_audit ON SCHEDULE EVERY 1 DAY DO DELETE FROM audit WHERE note = 'expired'")
	definers := func(in *mariaInstance, db string) string {
		return in.mustRoot(t, "mysql", fmt.Sprintf(`
SELECT 'view', DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '%[1]s'
UNION ALL SELECT 'trigger', DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '%[1]s'
UNION ALL SELECT 'routine', DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '%[1]s'
UNION ALL SELECT 'event', DEFINER FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '%[1]s'`, db))
	}
	g.Expect(definers(source, "orders")).To(Equal("view\tapp@%\ntrigger\tapp@%\nroutine\tapp@%\nevent\tapp@%"))

	// MariaDB's mysqldump writes an extended insert as a line per row
	// (MDEV-25152), MySQL's as one line: the restore's rewrite skips whole
	// row statements, so both keep their rows; this is the harder format.
	r := renderDB(t, newDatabase("orders", databasev1.MySQL, "8.4", withBackup("7d")))
	c := r.backupContainer(t)
	backupDir := mkdir(t, filepath.Join(source.dir, "backup"), m.user, 0o755)
	env := containerEnv(t, c, s, "", map[string]string{"DB_HOST": "127.0.0.1", "DB_PORT": fmt.Sprint(source.port),
		"BACKUP_DIR": backupDir})
	out, err := run(t, 2*time.Minute, m.user, env, "", "bash", "-c", bashScript(t, c))
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	names := listDir(t, backupDir)
	g.Expect(names).To(HaveLen(1))
	dump := bash(t, rootUser, nil, "gunzip -c "+filepath.Join(backupDir, names[0]))
	g.Expect(strings.Count(dump, rowDefiner)).To(BeNumerically(">=", 6), "the dump names app as the definer of each object, and the rows carry the text")
	for _, line := range strings.Split(dump, "\n") {
		if strings.Contains(line, "a row that says") {
			g.Expect(line).NotTo(HavePrefix("INSERT INTO "), "a row on a line of its own, inside an extended insert")
		}
	}

	target := startMariaDB(t, m, "another root password")
	restored := renderDB(t, newDatabase("orders-copy", databasev1.MySQL, "8.4", withRestore("orders", "")))
	ts := newSecret("orders_copy", "owner2")
	ts["root-password"] = target.rootPassword
	initdb := mkdir(t, filepath.Join(target.dir, "initdb"), m.user, 0o755)
	g.Expect(restored.writeInitScripts(t, initdb)).To(ContainElement("60-restore.sh"))
	initEnv := containerEnv(t, restored.database(t), ts, "orders-copy-0", map[string]string{
		"SOCKET": target.socket, "DATADIR": target.datadir, "DATA_VOLUME": target.datadir, "INITDB_DIR": initdb, "RESTORE_DIR": backupDir,
	})
	out, err = run(t, 2*time.Minute, m.user, initEnv, "", "bash", "-c", mysqlEntrypointInit)
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	g.Expect(out).To(ContainSubstring("restored "))

	// Each use is checked on its own, so a failure shows them all.
	soft := NewGomega(func(message string, _ ...int) { t.Helper(); t.Error(message) })
	asOwner := func(sql string) string {
		t.Helper()
		out, err := target.query(t, "owner2", ts["password"], "orders_copy", sql)
		if err != nil {
			t.Errorf("as owner2: %s: %v\n%s", sql, err, out)
		}
		return out
	}
	soft.Expect(asOwner("SELECT name FROM item_names ORDER BY name")).To(Equal("a row that says " + rowDefiner + "\nfirst"))
	soft.Expect(asOwner("CALL item_count()")).To(Equal("2"))
	asOwner("INSERT INTO items (name) VALUES ('third')")
	soft.Expect(asOwner("SELECT note FROM audit WHERE item_id = 3")).To(Equal("inserted"), "the trigger fired")
	g.Expect(definers(target, "orders_copy")).To(Equal("view\towner2@%\ntrigger\towner2@%\nroutine\towner2@%\nevent\towner2@%"))
	// Rows load as they were dumped, definer-like text included.
	g.Expect(asOwner("SELECT name FROM items WHERE id = 2")).To(Equal("a row that says " + rowDefiner))
	g.Expect(asOwner("SELECT hex(note) FROM audit WHERE item_id = 1")).To(Equal(
		source.mustRoot(t, "orders", "SELECT hex(note) FROM audit WHERE item_id = 1")))
}
