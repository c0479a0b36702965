package enginetest

import (
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// nextSecond waits until the wall clock's second changes, so two backups get
// different timestamps in their names.
func nextSecond() {
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)) + 20*time.Millisecond)
}

// TestPostgresRestore dumps a Database with the rendered backup script, then
// initialises new Databases with spec.restore the way the official image's
// entrypoint does, with the rendered init scripts (users, then restore) and
// the source's backup directory where the pod mounts the source's backup
// volume (/restore, mapped with RESTORE_DIR). The restored Databases have
// other database and user names and passwords than the source.
func TestPostgresRestore(t *testing.T) {
	p := requirePostgres(t)
	g := NewWithT(t)
	source := newPrimary(t, p, newDatabase("orders", databasev1.PostgreSQL, "15", withBackup("7d")), newSecret("orders", "app"))
	source.mustApp(t, "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)")
	source.mustApp(t, "CREATE VIEW item_names AS SELECT name FROM items")
	source.mustApp(t, "INSERT INTO items (name) VALUES ('in both dumps')")
	backupDir := mkdir(t, filepath.Join(source.dir, "backup"), p.user, 0o755)
	out, err := runBackup(t, source.r, source.secret, p.user, p.path(), source.port, backupDir)
	g.Expect(err).NotTo(HaveOccurred(), out)
	nextSecond()
	source.mustApp(t, "INSERT INTO items (name) VALUES ('only in the latest dump')")
	out, err = runBackup(t, source.r, source.secret, p.user, p.path(), source.port, backupDir)
	g.Expect(err).NotTo(HaveOccurred(), out)
	names := dumps(t, backupDir, "orders")
	g.Expect(names).To(HaveLen(2))
	source.stop() // the source may be gone; its backup volume is what counts

	restored := func(t *testing.T, name, backup string) *pgInstance {
		r := renderDB(t, newDatabase(name, databasev1.PostgreSQL, "15", withReplicas(2), withRestore("orders", backup)))
		return newPGInstance(t, p, r, newSecret("copy_db", "owner2"), name+"-0")
	}
	fromBackups := map[string]string{"RESTORE_DIR": backupDir}

	t.Run("latest dump by default", func(t *testing.T) {
		g := NewWithT(t)
		in := restored(t, "orders-copy", "")
		in.mustInit(t, fromBackups)
		g.Expect(in.initLog).To(ContainSubstring("sourcing " + in.initdb + "/10-users.sh"))
		g.Expect(in.initLog).To(ContainSubstring("restoring " + filepath.Join(backupDir, names[1])))
		in.start(t)
		g.Expect(in.mustApp(t, "SELECT string_agg(name, ',' ORDER BY name) FROM item_names")).To(Equal("in both dumps,only in the latest dump"))
		// The new application user owns what was restored and can use it.
		g.Expect(in.mustApp(t, "SELECT tableowner FROM pg_tables WHERE tablename = 'items'")).To(Equal("owner2"))
		g.Expect(in.mustApp(t, "SELECT viewowner FROM pg_views WHERE viewname = 'item_names'")).To(Equal("owner2"))
		g.Expect(in.mustApp(t, "INSERT INTO items (name) VALUES ('after the restore') RETURNING id")).To(Equal("3"))

		// Once: a restart finds an initialised data directory, so nothing is
		// loaded again.
		in.stop()
		out, err := in.init(t, fromBackups)
		g.Expect(err).NotTo(HaveOccurred(), out)
		g.Expect(out).To(ContainSubstring("Skipping initialization"))
		g.Expect(out).NotTo(ContainSubstring("restoring"))
		in.start(t)
		g.Expect(in.mustApp(t, "SELECT count(*) FROM items")).To(Equal("3"))
	})

	t.Run("named dump", func(t *testing.T) {
		g := NewWithT(t)
		in := restored(t, "orders-named", names[0])
		in.mustInit(t, fromBackups)
		g.Expect(in.initLog).To(ContainSubstring("restoring " + filepath.Join(backupDir, names[0])))
		in.start(t)
		g.Expect(in.mustApp(t, "SELECT string_agg(name, ',' ORDER BY id) FROM items")).To(Equal("in both dumps"))
	})

	t.Run("pod 0 only", func(t *testing.T) {
		g := NewWithT(t)
		in := restored(t, "orders-replica", "")
		in.pod = "orders-replica-1"
		in.mustInit(t, fromBackups)
		g.Expect(in.initLog).To(ContainSubstring("is a replica"))
		g.Expect(in.initLog).NotTo(ContainSubstring("restoring"))
		in.start(t)
		g.Expect(in.mustApp(t, "SELECT to_regclass('items') IS NULL")).To(Equal("t"))
	})

	t.Run("a failed restore leaves an empty data directory and the next start retries", func(t *testing.T) {
		g := NewWithT(t)
		in := restored(t, "orders-retry", "")
		empty := mkdir(t, filepath.Join(in.dir, "empty-backup-volume"), p.user, 0o755)
		out, err := in.init(t, map[string]string{"RESTORE_DIR": empty})
		g.Expect(err).To(HaveOccurred(), out)
		g.Expect(isExitError(err)).To(BeTrue())
		g.Expect(out).To(ContainSubstring("restore failed: no dump named orders-<timestamp>.sql.gz in " + empty))
		g.Expect(in.marker()).To(BeAnExistingFile(), "the initialisation is marked unfinished")

		// The next start empties the data directory and initialises again.
		in.mustInit(t, fromBackups)
		g.Expect(in.initLog).To(ContainSubstring("did not finish; emptying it"))
		g.Expect(in.marker()).NotTo(BeAnExistingFile(), "complete now")
		in.start(t)
		g.Expect(in.mustApp(t, "SELECT count(*) FROM items")).To(Equal("2"))
	})

	t.Run("a dump that does not load fails the same way", func(t *testing.T) {
		g := NewWithT(t)
		broken := mkdir(t, filepath.Join(source.dir, "broken-backup-volume"), p.user, 0o755)
		bash(t, rootUser, nil, "echo 'CREATE TABLE items (id int); SELECT no_such_function();' | gzip -c >"+broken+"/orders-20250101T000000Z.sql.gz")
		in := restored(t, "orders-broken", "")
		out, err := in.init(t, map[string]string{"RESTORE_DIR": broken})
		g.Expect(err).To(HaveOccurred(), out)
		g.Expect(out).To(ContainSubstring("restore failed: could not load"))
		g.Expect(in.marker()).To(BeAnExistingFile())
		// Half loaded: the table exists. The next start must not serve it.
		in.mustInit(t, fromBackups)
		g.Expect(in.initLog).To(ContainSubstring("did not finish; emptying it"))
		in.start(t)
		g.Expect(in.mustApp(t, "SELECT count(*) FROM items")).To(Equal("2"), "the good dump, loaded from scratch")
	})
}
