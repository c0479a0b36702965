package enginetest

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// runBackup runs the rendered backup CronJob's container script with the
// environment the CronJob sets (credentials from the Secret), against a
// server on loopback, writing to backupDir instead of the /backup volume.
// extraPath is prepended to PATH (a fake clock); it may be empty.
func runBackup(t testing.TB, r *rendered, s secret, u osUser, path string, port int, backupDir string) (string, error) {
	t.Helper()
	c := r.backupContainer(t)
	env := containerEnv(t, c, s, "", map[string]string{
		"DB_HOST": "127.0.0.1", "DB_PORT": fmt.Sprint(port), "BACKUP_DIR": backupDir, "PATH": path,
	})
	return run(t, 2*time.Minute, u, env, "", "bash", "-c", bashScript(t, c))
}

// dumps lists the dumps of prefix in dir.
func dumps(t testing.TB, dir, prefix string) []string {
	t.Helper()
	re := regexp.MustCompile(fmt.Sprintf(dumpNamePattern, regexp.QuoteMeta(prefix)))
	var out []string
	for _, n := range listDir(t, dir) {
		if re.MatchString(n) {
			out = append(out, n)
		}
	}
	return out
}

// TestPostgresBackup runs the rendered backup script against a primary: it
// writes one gzip-compressed dump named <db>-<UTC timestamp>.sql.gz, leaves
// no partial file, and the dump loads into an empty database with the row.
func TestPostgresBackup(t *testing.T) {
	p := requirePostgres(t)
	g := NewWithT(t)
	s := newSecret("orders", "app")
	primary := newPrimary(t, p, newDatabase("orders", databasev1.PostgreSQL, "15", withBackup("7d")), s)
	primary.mustApp(t, "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
	primary.mustApp(t, "INSERT INTO items VALUES (1, 'backed up')")

	backupDir := mkdir(t, filepath.Join(primary.dir, "backup"), p.user, 0o755)
	before := time.Now().UTC().Add(-time.Second)
	out, err := runBackup(t, primary.r, s, p.user, p.path(), primary.port, backupDir)
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(listDir(t, backupDir)).To(HaveLen(1), "one dump and no partial file")
	name := listDir(t, backupDir)[0]
	g.Expect(name).To(MatchRegexp(dumpNamePattern, "orders"))
	stamp, err := time.Parse("20060102T150405Z", strings.TrimSuffix(strings.TrimPrefix(name, "orders-"), ".sql.gz"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(stamp).To(BeTemporally(">=", before.Truncate(time.Second)))
	g.Expect(stamp).To(BeTemporally("<=", time.Now().UTC()))
	dump := filepath.Join(backupDir, name)
	expectGzip(g, dump)

	// The dump is portable: no owners, no privileges.
	sql := bash(t, rootUser, nil, "gunzip -c "+dump)
	g.Expect(sql).To(ContainSubstring("CREATE TABLE public.items"))
	g.Expect(sql).NotTo(ContainSubstring("OWNER TO"))
	g.Expect(sql).NotTo(MatchRegexp(`(?m)^GRANT `))

	// It restores: load it into a new, empty database.
	out, err = primary.asSuperuser(t, "CREATE DATABASE scratch")
	g.Expect(err).NotTo(HaveOccurred(), out)
	bash(t, rootUser, map[string]string{"PGPASSWORD": s["root-password"]}, fmt.Sprintf(
		"set -o pipefail; gunzip -c %s | %s/psql -X -q -v ON_ERROR_STOP=1 --host=127.0.0.1 --port=%d --username=postgres --dbname=scratch",
		dump, p.bin, primary.port))
	out, err = primary.query(t, "postgres", s["root-password"], "scratch", "SELECT name FROM items WHERE id = 1")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(Equal("backed up"))

	// A failed dump (the server is down) leaves neither a dump nor a
	// partial file, and the job fails.
	primary.stop()
	out, err = runBackup(t, primary.r, s, p.user, p.path(), primary.port, backupDir)
	g.Expect(err).To(HaveOccurred(), out)
	g.Expect(listDir(t, backupDir)).To(Equal([]string{name}))
}

// TestPostgresBackupRetention: after a backup, dumps of this Database older
// than RETENTION_DAYS days are deleted and nothing else: younger dumps, other
// Databases' dumps and other files stay. The newest dump is never deleted,
// even when it is older than the retention (a node clock ahead by 30 days
// makes every dump, the new one included, look older than 7 days).
func TestPostgresBackupRetention(t *testing.T) {
	p := requirePostgres(t)
	g := NewWithT(t)
	s := newSecret("orders", "app")
	primary := newPrimary(t, p, newDatabase("orders", databasev1.PostgreSQL, "15", withBackup("7d")), s)
	c := primary.r.backupContainer(t)
	g.Expect(containerEnv(t, c, s, "", nil)["RETENTION_DAYS"]).To(Equal("7"))

	backupDir := mkdir(t, filepath.Join(primary.dir, "backup"), p.user, 0o755)
	now := time.Now()
	old := func(name string, age time.Duration) {
		path := filepath.Join(backupDir, name)
		writeFile(t, path, "old dump", 0o644)
		g.Expect(os.Chtimes(path, now.Add(-age), now.Add(-age))).To(Succeed())
	}
	day := 24 * time.Hour
	old("orders-20200101T020000Z.sql.gz", 30*day)
	old("orders-20200102T020000Z.sql.gz", 7*day+time.Hour)
	old("orders-20200103T020000Z.sql.gz", 6*day)
	old("orders-20200104T020000Z.sql.gz", time.Hour)
	old("other-20200101T020000Z.sql.gz", 30*day)
	old("orders-eu-20200101T020000Z.sql.gz", 30*day) // another Database whose name starts like this one's
	old("notes.txt", 30*day)

	out, err := runBackup(t, primary.r, s, p.user, p.path(), primary.port, backupDir)
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(ContainSubstring("retention: deleted"))
	all := listDir(t, backupDir)
	g.Expect(all).NotTo(ContainElements("orders-20200101T020000Z.sql.gz", "orders-20200102T020000Z.sql.gz"))
	g.Expect(all).To(ContainElements("orders-20200103T020000Z.sql.gz", "orders-20200104T020000Z.sql.gz",
		"other-20200101T020000Z.sql.gz", "orders-eu-20200101T020000Z.sql.gz", "notes.txt"))
	g.Expect(dumps(t, backupDir, "orders")).To(HaveLen(3), "two kept and the new one")

	// The clock runs 30 days ahead: every dump is "older" than 7 days.
	fakeBin := mkdir(t, filepath.Join(primary.dir, "fakeclock"), p.user, 0o755)
	writeFile(t, filepath.Join(fakeBin, "date"), fmt.Sprintf("#!/bin/bash\nexec /usr/bin/date -d \"@$(( $(/usr/bin/date +%%s) + %d ))\" \"$@\"\n", 30*86400), 0o755)
	out, err = runBackup(t, primary.r, s, p.user, fakeBin+":"+p.path(), primary.port, backupDir)
	g.Expect(err).NotTo(HaveOccurred(), out)
	left := dumps(t, backupDir, "orders")
	g.Expect(left).To(HaveLen(1), "only the newest dump is left: %v\n%s", left, out)
	stamp, err := time.Parse("20060102T150405Z", strings.TrimSuffix(strings.TrimPrefix(left[0], "orders-"), ".sql.gz"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(stamp).To(BeTemporally(">", now.Add(29*day)), "it is the dump just written (named by the fake clock)")
	g.Expect(listDir(t, backupDir)).To(ContainElements("other-20200101T020000Z.sql.gz", "orders-eu-20200101T020000Z.sql.gz", "notes.txt"))
}
