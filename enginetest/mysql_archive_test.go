package enginetest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/example/database-operator/agent"
	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/archive"
	"github.com/example/database-operator/instance"
)

// mysqlWrite is one row a mysqlWriter inserted: when the INSERT was sent
// and when the server acknowledged it.
type mysqlWrite struct {
	id          int
	began, done time.Time
}

// mysqlWriter inserts a row every interval through one client session and
// records each acknowledgement: the client answers a SELECT after each
// INSERT, and the answer arrives once the INSERT has committed.
type mysqlWriter struct {
	mu     sync.Mutex
	writes []mysqlWrite
	stopCh chan struct{}
	done   chan struct{}
}

func startMySQLWriter(t testing.TB, in *mariaInstance, database string, interval time.Duration) *mysqlWriter {
	t.Helper()
	cmd := command(context.Background(), rootUser, map[string]string{"MYSQL_PWD": in.rootPassword}, "/usr/bin/mariadb", "--no-defaults",
		"--protocol=tcp", "--host=127.0.0.1", fmt.Sprintf("--port=%d", in.port), "--user=root",
		"--batch", "--skip-column-names", "--unbuffered", "--database="+database)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &mysqlWriter{stopCh: make(chan struct{}), done: make(chan struct{})}
	answers := bufio.NewScanner(stdout)
	go func() {
		defer close(w.done)
		defer func() { stdin.Close(); _ = cmd.Wait() }()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for id := 1; ; id++ {
			select {
			case <-w.stopCh:
				return
			case <-tick.C:
			}
			began := time.Now()
			if _, err := fmt.Fprintf(stdin, "INSERT INTO items (id) VALUES (%d); SELECT %d;\n", id, id); err != nil {
				return
			}
			if !answers.Scan() || answers.Text() != strconv.Itoa(id) {
				return
			}
			w.mu.Lock()
			w.writes = append(w.writes, mysqlWrite{id: id, began: began, done: time.Now()})
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() { w.stop() })
	return w
}

func (w *mysqlWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.writes)
}

func (w *mysqlWriter) waitMore(t testing.TB, n int) {
	t.Helper()
	waitForMore(t, w.count, n)
}

func (w *mysqlWriter) stop() []mysqlWrite {
	select {
	case <-w.stopCh:
	default:
		close(w.stopCh)
	}
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]mysqlWrite(nil), w.writes...)
}

// shipLikeTheAgent runs the agent's binary log shipper against in every
// 300 ms, as the agent does at a primary, until the test ends.
func shipLikeTheAgent(t testing.TB, in *mariaInstance, s *agent.BinlogShipper) (stop func()) {
	t.Helper()
	return shipEvery(t, in, s, 300*time.Millisecond)
}

// shipEvery runs the shipper's rounds against in every interval.
func shipEvery(t testing.TB, in *mariaInstance, s *agent.BinlogShipper, interval time.Duration) (stop func()) {
	t.Helper()
	server := agent.MySQL{Client: "/usr/bin/mariadb", Password: in.rootPassword, Port: in.port}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := s.Round(ctx, server); err != nil && ctx.Err() == nil {
				t.Logf("shipping: %v", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(interval):
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// renderedRestore initialises a fresh server the way the mysql image does
// for pod 0 of Database "shop" restoring the archive of "orders" (in env's
// store) to target (RFC 3339, or "" for its end), with the rendered init
// scripts and the database container's environment, the agent's
// restore-mysql included. It returns the server, the restored Database's
// Secret, and the initialisation's output.
func renderedRestore(t *testing.T, m mariadb, env map[string]string, target, entrypoint string) (*mariaInstance, secret, string, error) {
	t.Helper()
	g := NewWithT(t)
	in := startMariaDB(t, m, "restored root password")
	restored := renderDB(t, newDatabase("shop", databasev1.MySQL, "8.4", withReplicas(2), withS3Archive(env, "30s"),
		func(db *databasev1.Database) {
			db.Spec.Restore = &databasev1.RestoreSpec{FromDatabase: "orders", PointInTime: &databasev1.PointInTimeSpec{TargetTime: target}}
		}))
	ts := withS3Keys(newSecret("shop", "shop_owner"), env)
	ts["root-password"] = in.rootPassword
	initdb := mkdir(t, filepath.Join(in.dir, "initdb"), m.user, 0o755)
	g.Expect(restored.writeInitScripts(t, initdb)).To(Equal([]string{"50-replication.sh", "60-restore.sh", "99-initialised.sh"}))
	scratch := mkdir(t, filepath.Join(in.dir, "scratch"), m.user, 0o755)
	initEnv := containerEnv(t, restored.database(t), ts, "shop-0", map[string]string{
		"SOCKET": in.socket, "DATADIR": in.datadir, "DATA_VOLUME": in.datadir, "INITDB_DIR": initdb,
		"RESTORE_AGENT": agentBinary(t, m.user), "RESTORE_SCRATCH": scratch,
	})
	if target != "" {
		g.Expect(initEnv).To(HaveKeyWithValue("RESTORE_TARGET_TIME", target))
	}
	out, err := run(t, 2*time.Minute, m.user, initEnv, "", "bash", "-c", entrypoint)
	if err == nil {
		g.Expect(scratch).NotTo(BeADirectory(), "the scratch space is removed")
	}
	return in, ts, out, err
}

// allArchived says whether every binary log file of in from the base
// dump's file (from) on is archived but the current one, which holds no
// transaction. Files before the dump's may be gone: retention after the
// dump deletes what no kept dump needs.
func allArchived(t testing.TB, ctx context.Context, in *mariaInstance, a *archive.Archive, from string) error {
	out, err := run(t, 10*time.Second, rootUser, map[string]string{"MYSQL_PWD": in.rootPassword}, "", "/usr/bin/mariadb", "--no-defaults",
		"--protocol=tcp", "--host=127.0.0.1", fmt.Sprintf("--port=%d", in.port), "--user=root", "--batch", "--skip-column-names", "--execute=SHOW BINARY LOGS")
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		names = append(names, strings.Fields(line)[0])
	}
	current := filepath.Join(in.datadir, names[len(names)-1])
	f, err := os.Open(current)
	if err != nil {
		return err
	}
	defer f.Close()
	st, _ := f.Stat()
	span, err := archive.ReadBinlogSpan(f, st.Size())
	if err != nil {
		return err
	}
	if span.Transactions {
		return fmt.Errorf("the current file %s holds transactions", names[len(names)-1])
	}
	files, err := a.ListBinlogs(ctx)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, f := range files {
		have[f.Name] = true
	}
	for _, n := range names[:len(names)-1] {
		if n >= from && !have[n] {
			return fmt.Errorf("%s is not archived yet", n)
		}
	}
	return nil
}

// agentEnv is the environment of the agent's MySQL commands in these tests.
func agentEnv(env map[string]string, extra map[string]string) []string {
	out := []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TZ=UTC"}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	for k, v := range extra {
		out = append(out, k+"="+v)
	}
	return out
}

// restoreInto runs the agent's restore-mysql against env's archive and
// loads what it writes into database on in, the way the restore script
// pipes it into the entrypoint's server. It returns the agent's messages.
func restoreInto(t testing.TB, agentBin string, env map[string]string, in *mariaInstance, database, target string) (string, error) {
	t.Helper()
	extra := map[string]string{"MYSQL_DATABASE": database}
	if target != "" {
		extra["RESTORE_TARGET_TIME"] = target
	}
	termination := filepath.Join(t.TempDir(), "termination-log")
	restore := exec.Command(agentBin, "restore-mysql", "--scratch="+t.TempDir(), "--mysqlbinlog=/usr/bin/mariadb-binlog", "--termination-log="+termination)
	restore.Env = agentEnv(restoreEnv(env), extra)
	load := exec.Command("/usr/bin/mariadb", "--no-defaults", "--protocol=tcp", "--host=127.0.0.1", fmt.Sprintf("--port=%d", in.port),
		"--user=root", "--database="+database)
	load.Env = []string{"MYSQL_PWD=" + in.rootPassword}
	pipe, err := restore.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var loaded strings.Builder
	counted := &countingReader{r: pipe}
	load.Stdin = counted
	var agentOut, loadOut strings.Builder
	restore.Stderr, load.Stdout, load.Stderr = &agentOut, &loadOut, &loadOut
	if err := restore.Start(); err != nil {
		t.Fatal(err)
	}
	loadErr := load.Run()
	restoreErr := restore.Wait()
	msg, _ := os.ReadFile(termination)
	fmt.Fprintf(&loaded, "%s%s[%d bytes of SQL] %s", agentOut.String(), msg, counted.n, loadOut.String())
	return loaded.String(), errors.Join(restoreErr, loadErr)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestMySQLBinlogArchiveAndPointInTimeRestore_MariaDBStandIn runs MySQL's
// continuous archiving end to end on MariaDB standing in for MySQL: the
// agent's shipper (agent.BinlogShipper, as the agent runs it at a primary)
// ships the closed binary logs and closes the current one once it holds
// transactions and is older than the archive timeout; the agent's
// base-backup --engine=mysql takes a base dump recording its binary log
// position; restore-mysql writes the dump and the binary logs replayed to a
// moment, which the test loads into fresh servers, into an application
// database of another name. Rows are written every 100 ms; the restore to T
// (a whole second: the binary log stamps events to the second) must hold
// every row acknowledged before T and none whose INSERT was sent at or
// after T; the restore to the end every row acknowledged before the last
// archived file. A missing binary log fails the restore before it loads
// anything, naming the file.
//
// Unproven here, because no MySQL server is available (MariaDB differs in
// these): mysqldump's MySQL spellings of the header (--source-data,
// --set-gtid-purged=COMMENTED; parsed by unit tests on MySQL's format),
// @@server_uuid, and replaying a second server's files after a failover,
// which relies on MySQL's mysqlbinlog --exclude-gtids and GTID auto-skip
// (MariaDB has neither; the plan is covered by archive's unit tests).
func TestMySQLBinlogArchiveAndPointInTimeRestore_MariaDBStandIn(t *testing.T) {
	m := requireMariaDB(t)
	requireBinary(t, "/usr/bin/mariadb-binlog")
	requireBinary(t, "/usr/bin/mariadb-dump")
	g := NewWithT(t)
	agentBin := agentBinary(t, rootUser)
	env := s3Env(t, "orders")
	ctx := context.Background()
	a, _, err := archive.FromEnv("", func(k string) string { return env[k] })
	g.Expect(err).NotTo(HaveOccurred())

	secrets := withS3Keys(newSecret("orders", "app"), env)
	db := newDatabase("orders", databasev1.MySQL, "8.4", withS3Archive(env, "30s"))
	r := renderDB(t, db)
	g.Expect(r.config(t, "my.cnf")).To(ContainSubstring("max_binlog_size = 64M"))
	flags, _, ok := agentCommand(r.database(t).Command)
	g.Expect(ok).To(BeTrue())
	g.Expect(flags).To(HaveKeyWithValue("archive-timeout", "30s"), "the agent ships binary logs")

	// The test's own cap on the binary log's file size makes several files
	// out of a few seconds of writes.
	src := startMariaDBOn(t, m, secrets["root-password"], freePort(t),
		"--server-id=1", "--log-bin=binlog", "--binlog-format=ROW", "--max-binlog-size=4096")
	src.mustRoot(t, "mysql", "CREATE DATABASE orders")
	src.mustRoot(t, "orders", "CREATE TABLE items (id int PRIMARY KEY)")

	shipper := &agent.BinlogShipper{Archive: a, Timeout: 2 * time.Second,
		Owner: archive.Owner{UID: env[archive.EnvUID], Namespace: "enginetest", Name: "orders", Engine: "mysql", AppUser: "app", AppDatabase: "orders"}}
	stopShipping := shipLikeTheAgent(t, src, shipper)

	w := startMySQLWriter(t, src, "orders", 100*time.Millisecond)
	w.waitMore(t, 10)

	// The base dump: the rendered backup CronJob's command and environment.
	c := r.backupContainer(t)
	g.Expect(c.Command[:3]).To(Equal([]string{"/opt/database-operator/database-agent", "base-backup", "--engine=mysql"}))
	termination := filepath.Join(t.TempDir(), "termination-log")
	var args []string
	for _, arg := range c.Command[1:] {
		if strings.HasPrefix(arg, "--termination-log=") {
			arg = "--termination-log=" + termination
		}
		args = append(args, arg)
	}
	dumpEnv := containerEnv(t, c, secrets, "", map[string]string{"DB_HOST": "127.0.0.1", "DB_PORT": strconv.Itoa(src.port),
		"MYSQLDUMP": "/usr/bin/mariadb-dump", "MYSQL_CLIENT": "/usr/bin/mariadb"})
	dump := exec.Command(agentBin, args...)
	dump.Env = agentEnv(dumpEnv, nil)
	out, err := dump.CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), string(out))
	msg, err := os.ReadFile(termination)
	g.Expect(err).NotTo(HaveOccurred())
	report, err := instance.ParseBackupReport(string(msg))
	g.Expect(err).NotTo(HaveOccurred(), string(msg))
	g.Expect(report.Error).To(BeEmpty())
	g.Expect(report.FirstRecoverable).NotTo(BeZero())
	backups, err := a.ListBackups(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(backups).To(HaveLen(1))
	b := backups[0]
	g.Expect(b.ID).To(Equal(report.ID))
	g.Expect(b.Engine).To(Equal(archive.MySQLEngine))
	g.Expect(b.BinlogServer).To(Equal("server-1"))
	g.Expect(b.BinlogFile).To(MatchRegexp(`^binlog\.\d{6}$`))
	g.Expect(b.BinlogPosition).To(BeNumerically(">", 4))
	g.Expect(b.GTIDExecuted).To(MatchRegexp(`^0-1-\d+$`), "MariaDB's GTID position")
	owner, err := a.Owner(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(owner.AppDatabase).To(Equal("orders"))
	t.Logf("base dump %s at %s:%d (%s), %s", b.ID, b.BinlogFile, b.BinlogPosition, b.GTIDExecuted, strings.TrimSpace(string(out)))

	w.waitMore(t, 20)
	// T: a whole second, at least one second away, so rows fall on both
	// sides of it.
	T := time.Now().Add(1500 * time.Millisecond).Truncate(time.Second)
	for time.Now().Before(T.Add(1500 * time.Millisecond)) {
		time.Sleep(50 * time.Millisecond)
	}
	w.waitMore(t, 10)
	all := w.stop()
	// Everything acknowledged is archived once the shipper has closed the
	// file the last rows went to (2 s after it held transactions) and
	// shipped every file but the current, which holds none.
	g.Eventually(func() error { return allArchived(t, ctx, src, a, b.BinlogFile) }, 30*time.Second, 200*time.Millisecond).Should(Succeed())
	stopShipping()
	files, err := a.ListBinlogs(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(len(files)).To(BeNumerically(">", 3), "the small max_binlog_size and the timeout made several files")
	sr := shipper.Report()
	g.Expect(sr.LastArchivedWAL).To(Equal(files[len(files)-1].Name))
	g.Expect(sr.Failing()).To(BeFalse())
	t.Logf("%d rows written, %d binary log files archived (%s to %s)", len(all), len(files), files[0].Name, files[len(files)-1].Name)

	var ackedBeforeT, beganAtOrAfterT []int
	for _, wr := range all {
		if wr.done.Before(T) {
			ackedBeforeT = append(ackedBeforeT, wr.id)
		}
		if !wr.began.Before(T) {
			beganAtOrAfterT = append(beganAtOrAfterT, wr.id)
		}
	}
	g.Expect(ackedBeforeT).NotTo(BeEmpty())
	g.Expect(beganAtOrAfterT).NotTo(BeEmpty())

	restoreAgent := agentBinary(t, m.user)
	newTarget := func(t *testing.T) *mariaInstance {
		in := startMariaDB(t, m, "restored root password")
		in.mustRoot(t, "mysql", "CREATE DATABASE shop")
		return in
	}

	t.Run("to a moment, by the rendered restore script", func(t *testing.T) {
		g := NewWithT(t)
		in, ts, out, err := renderedRestore(t, m, env, T.Format(time.RFC3339), mysqlEntrypointInit)
		g.Expect(err).NotTo(HaveOccurred(), "%s", out)
		g.Expect(out).To(ContainSubstring("restored the archive of orders"))
		got, err := in.query(t, "shop_owner", ts["password"], "shop", "SELECT id FROM items")
		g.Expect(err).NotTo(HaveOccurred(), "the application user of the restored Database reads the rows: %s", got)
		restoredIDs := ids(t, got)
		g.Expect(restoredIDs).To(ContainElements(ackedBeforeT), "every row acknowledged before T is restored")
		for _, id := range beganAtOrAfterT {
			g.Expect(restoredIDs).NotTo(ContainElement(id), "no row whose INSERT was sent at or after T")
		}
		t.Logf("T=%s: %d rows restored (%d acknowledged before T, %d sent at or after T)\n%s", T.Format(time.RFC3339), len(restoredIDs), len(ackedBeforeT), len(beganAtOrAfterT), out)
	})

	t.Run("to the end", func(t *testing.T) {
		g := NewWithT(t)
		in := newTarget(t)
		out, err := restoreInto(t, agentBin, env, in, "shop", "")
		g.Expect(err).NotTo(HaveOccurred(), out)
		want := make([]int, 0, len(all))
		for _, wr := range all {
			want = append(want, wr.id)
		}
		g.Expect(ids(t, in.mustRoot(t, "shop", "SELECT id FROM items"))).To(Equal(want), "every acknowledged row; the restore said: "+out)
	})

	t.Run("restore check", func(t *testing.T) {
		g := NewWithT(t)
		checked := newDatabase("orders", databasev1.MySQL, "8.4", withS3Archive(env, "30s"), func(db *databasev1.Database) {
			db.Spec.Backup.RestoreCheck = &databasev1.RestoreCheckSpec{Schedule: "0 6 * * *", Query: "SELECT count(*) FROM items"}
		})
		c := renderDB(t, checked).restoreCheckContainer(t)
		g.Expect(c.Command).To(Equal([]string{"/opt/database-operator/database-agent", "restore-check", "--engine=mysql", "--termination-log=/dev/termination-log"}))
		check := func(query string) (instance.RestoreCheckReport, string, error) {
			scratch := workDir(t, m.user)
			termination := filepath.Join(scratch, "termination-log")
			writeFile(t, termination, "", 0o666)
			e := containerEnv(t, c, secrets, "orders-restore-check-abcde", map[string]string{"MYSQL_DATADIR": filepath.Join(scratch, "mysql", "data"),
				"MYSQLD": "/usr/sbin/mariadbd", "MYSQL_CLIENT": "/usr/bin/mariadb", "MYSQLBINLOG": "/usr/bin/mariadb-binlog"})
			g.Expect(e).To(HaveKeyWithValue("CHECK_QUERY", "SELECT count(*) FROM items"))
			if query != "" {
				e["CHECK_QUERY"] = query
			}
			out, err := run(t, 5*time.Minute, m.user, e, "", restoreAgent, "restore-check", "--engine=mysql", "--termination-log="+termination)
			msg, _ := os.ReadFile(termination)
			report, perr := instance.ParseRestoreCheckReport(string(msg))
			g.Expect(perr).NotTo(HaveOccurred(), out)
			g.Expect(filepath.Join(scratch, "mysql")).NotTo(BeADirectory(), "the throwaway server and its copy are removed")
			return report, out, err
		}
		report, out, err := check("")
		g.Expect(err).NotTo(HaveOccurred(), out)
		g.Expect(report.Error).To(BeEmpty())
		g.Expect(report.Answer).To(Equal(fmt.Sprint(len(all))), "the rendered query counts every archived row")
		g.Expect(report.Backup).To(Equal(b.ID))
		t.Logf("restore check: base dump %s, %d bytes, in %s: %s", report.Backup, report.Size, report.EndTime.Sub(report.StartTime).Round(time.Millisecond), report.Answer)

		report, _, err = check("SELECT * FROM no_such_table")
		g.Expect(err).To(HaveOccurred())
		g.Expect(report.Error).To(And(ContainSubstring("check query"), ContainSubstring("no_such_table")))
	})

	t.Run("a target past the archive", func(t *testing.T) {
		g := NewWithT(t)
		in := newTarget(t)
		out, err := restoreInto(t, agentBin, env, in, "shop", time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
		g.Expect(err).To(HaveOccurred())
		g.Expect(out).To(ContainSubstring("before the target"))
		g.Expect(out).To(ContainSubstring("[0 bytes of SQL]"), "nothing loaded")
	})

	t.Run("a missing binary log", func(t *testing.T) {
		g := NewWithT(t)
		// The second file after the dump's: the restore needs it.
		var victim archive.BinlogFile
		for _, f := range files {
			if f.Server == b.BinlogServer && f.Name > b.BinlogFile {
				victim = f
				break
			}
		}
		g.Expect(victim.Name).NotTo(BeEmpty())
		g.Expect(a.DeleteBinlog(ctx, victim)).To(Succeed())
		in := newTarget(t)
		out, err := restoreInto(t, agentBin, env, in, "shop", "")
		g.Expect(err).To(HaveOccurred())
		g.Expect(out).To(ContainSubstring("binary log " + victim.Name + " of server server-1 is missing"))
		g.Expect(out).To(ContainSubstring(instance.RestoreFailedPrefix), "the termination message says why")
		g.Expect(out).To(ContainSubstring("[0 bytes of SQL]"), "nothing loaded")
		_, err = in.query(t, "root", in.rootPassword, "shop", "SELECT 1 FROM items")
		g.Expect(err).To(HaveOccurred(), "no table was created")

		// The rendered script stops the initialisation with the agent's
		// reason, which the operator reads from the termination message.
		// Also under a shell without pipefail: the script must not take an
		// empty load for a restore.
		withoutPipefail := strings.Replace(mysqlEntrypointInit, "set -Eeo pipefail", "set -Ee", 1)
		for _, entrypoint := range []string{mysqlEntrypointInit, withoutPipefail} {
			_, _, out, err = renderedRestore(t, m, env, "", entrypoint)
			g.Expect(err).To(HaveOccurred())
			g.Expect(out).To(ContainSubstring(instance.RestoreFailedPrefix + "s3://"))
			g.Expect(out).To(ContainSubstring("binary log " + victim.Name + " of server server-1 is missing"))
			g.Expect(out).To(ContainSubstring("the next start restores again"))
			g.Expect(out).NotTo(ContainSubstring("data directory initialised"))
		}
	})
}
