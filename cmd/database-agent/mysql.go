package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/example/database-operator/agent"
	"github.com/example/database-operator/archive"
	"github.com/example/database-operator/instance"
)

// takeMySQLDump dumps the application database (MYSQL_DATABASE) of the
// primary at DB_HOST:DB_PORT as root (password in MYSQL_PWD) into a.
func takeMySQLDump(ctx context.Context, a *archive.Archive) (archive.BaseBackup, error) {
	port := 3306
	if p := os.Getenv("DB_PORT"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return archive.BaseBackup{}, fmt.Errorf("DB_PORT=%q: %w", p, err)
		}
		port = n
	}
	host, database := envOr("DB_HOST", "127.0.0.1"), os.Getenv("MYSQL_DATABASE")
	if database == "" {
		return archive.BaseBackup{}, errors.New("MYSQL_DATABASE is unset")
	}
	dumpBin := envOr("MYSQLDUMP", "mysqldump")
	version, err := exec.CommandContext(ctx, dumpBin, "--version").Output()
	if err != nil {
		return archive.BaseBackup{}, fmt.Errorf("%s --version: %w", dumpBin, err)
	}
	mariadb := strings.Contains(string(version), "MariaDB")
	server := agent.MySQL{Client: os.Getenv("MYSQL_CLIENT"), Host: host, Port: port, Password: os.Getenv("MYSQL_PWD")}
	args := append([]string{"--no-defaults", "--protocol=TCP", "--host=" + host, fmt.Sprintf("--port=%d", port), "--user=root"},
		archive.MySQLDumpArgs(database, mariadb)...)
	// The password reaches mysqldump through MYSQL_PWD, in its environment.
	cmd := exec.CommandContext(ctx, dumpBin, args...)
	return a.TakeMySQLDump(ctx, cmd, server.ServerIdentity, time.Now)
}

// restoreMySQL writes to stdout the SQL that restores the restore's source
// archive (RESTORE_S3_*) up to RESTORE_TARGET_TIME (RFC 3339, whole
// seconds) or its end, into the application database MYSQL_DATABASE: the
// base dump, then the binary logs replayed. The restore script pipes it
// into the server the entrypoint initialises. Everything is planned before
// the first byte is written, so a missing binary log fails the restore
// before it loads anything.
func restoreMySQL(args []string) (int, error) {
	fs := flag.NewFlagSet("restore-mysql", flag.ContinueOnError)
	scratch := fs.String("scratch", os.TempDir(), "directory for one binary log file at a time")
	mysqlbinlog := fs.String("mysqlbinlog", "mysqlbinlog", "the mysqlbinlog binary")
	terminationLog := fs.String("termination-log", "", "file a failed restore writes its reason to (the container's termination message file)")
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	err := writeMySQLRestore(context.Background(), *scratch, *mysqlbinlog)
	if err != nil && *terminationLog != "" {
		_ = os.WriteFile(*terminationLog, []byte(instance.RestoreFailedPrefix+err.Error()), 0o644)
	}
	if err != nil {
		return 1, err
	}
	return 0, nil
}

func writeMySQLRestore(ctx context.Context, scratch, mysqlbinlog string) error {
	target, err := targetFromEnv()
	if err != nil {
		return err
	}
	database := os.Getenv("MYSQL_DATABASE")
	if database == "" {
		return errors.New("MYSQL_DATABASE is unset")
	}
	a, source, err := sourceArchive(ctx)
	if err != nil {
		return err
	}
	if source.AppDatabase == "" {
		return fmt.Errorf("%s: the archive's owner names no application database", a.Location())
	}
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	_, err = writeMySQLRestoreTo(ctx, a, out, target, source.AppDatabase, database, scratch, mysqlbinlog)
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	return err
}

// writeMySQLRestoreTo plans the restore of a to target and writes it to w:
// the base dump and the binary logs replayed into database (renamed from
// sourceDB), with mysqlbinlog, one file at a time in scratch. It returns
// the base dump restored; nothing is written when the plan fails.
func writeMySQLRestoreTo(ctx context.Context, a *archive.Archive, w io.Writer, target archive.Target, sourceDB, database, scratch, mysqlbinlog string) (archive.BaseBackup, error) {
	b, steps, err := a.PlanMySQLRestore(ctx, target)
	if err != nil {
		return b, err
	}
	// MariaDB's names itself in its help only ("Dumps a MariaDB binary
	// log"); its --version says "Ver 3.5", like MySQL's before 8.0.
	help, err := exec.CommandContext(ctx, mysqlbinlog, "--help").Output()
	if err != nil {
		return b, fmt.Errorf("%s --help: %w", mysqlbinlog, err)
	}
	fmt.Fprintf(os.Stderr, "restore: base dump %s (ended %s) from %s and %d binary log files, to %s\n",
		b.ID, b.EndTime.Format(time.RFC3339), a.Location(), len(steps), target)
	return b, a.WriteMySQLRestore(ctx, w, b, steps, target, archive.MySQLRestore{
		Mysqlbinlog: mysqlbinlog, Scratch: scratch,
		SourceDatabase: sourceDB, Database: database, Log: os.Stderr,
		MariaDB: strings.Contains(string(help), "MariaDB binary log"),
	})
}

// targetFromEnv is RESTORE_TARGET_TIME, or latest when unset.
func targetFromEnv() (archive.Target, error) {
	var target archive.Target
	if t := os.Getenv("RESTORE_TARGET_TIME"); t != "" {
		parsed, err := time.Parse(time.RFC3339Nano, t)
		if err != nil {
			return target, fmt.Errorf("RESTORE_TARGET_TIME=%q: %w", t, err)
		}
		target.Time = parsed
	}
	return target, nil
}

// binlogShipper is the MySQL agent's shipper with --archive-timeout, when
// the container has an archive (ARCHIVE_S3_*); nil otherwise.
func binlogShipper(timeout time.Duration) (*agent.BinlogShipper, error) {
	if timeout <= 0 || os.Getenv(archive.EnvBucket) == "" {
		return nil, nil
	}
	a, _, err := archive.FromEnv("", os.Getenv)
	if err != nil {
		return nil, err
	}
	return &agent.BinlogShipper{Archive: a, Owner: ownerFromEnv(mysqlEngine), Timeout: timeout}, nil
}

// DefaultMySQLCheckQuery is the MySQL restore check's query without
// spec.backup.restoreCheck.query: how many tables the application has.
const DefaultMySQLCheckQuery = "SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE()"

// checkMySQLRestore is restore-check for MySQL: it initialises a throwaway
// server in MYSQL_DATADIR (which must not exist yet, on the pod's scratch
// volume), starts it on a private socket without networking or binary log,
// restores the newest base dump of the archive and every binary log after
// it there (restore-mysql's path, a missing file included), runs
// CHECK_QUERY in the application database, stops the server and removes
// the copy.
func checkMySQLRestore(ctx context.Context, report *instance.RestoreCheckReport, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	datadir := os.Getenv("MYSQL_DATADIR")
	if datadir == "" {
		return errors.New("MYSQL_DATADIR is unset")
	}
	query := envOr("CHECK_QUERY", DefaultMySQLCheckQuery)
	a, owner, err := sourceArchive(ctx)
	if err != nil {
		return err
	}
	server, err := startScratchMySQL(ctx, datadir)
	if err != nil {
		return err
	}
	// The copy is a throwaway: nothing of it stays on the node.
	defer os.RemoveAll(filepath.Dir(server.socket))
	defer server.stop()

	// The dump's views and routines name the application user as definer;
	// a locked account of that name lets the check query use them.
	setup := fmt.Sprintf("CREATE DATABASE %[1]s; CREATE USER %[2]s@'%%' ACCOUNT LOCK; GRANT ALL ON %[1]s.* TO %[2]s@'%%'",
		quoteMySQLIdent(owner.AppDatabase), agent.QuoteMySQLString(owner.AppUser))
	if _, err := server.sql(ctx, "mysql", setup, nil); err != nil {
		return err
	}
	scratch := filepath.Join(filepath.Dir(server.socket), "binlogs")
	if err := os.MkdirAll(scratch, 0o700); err != nil {
		return err
	}
	pr, pw := io.Pipe()
	loaded := make(chan error, 1)
	go func() {
		_, err := server.sql(ctx, owner.AppDatabase, "", pr)
		pr.CloseWithError(err)
		loaded <- err
	}()
	b, err := writeMySQLRestoreTo(ctx, a, pw, archive.Target{}, owner.AppDatabase, owner.AppDatabase, scratch, envOr("MYSQLBINLOG", "mysqlbinlog"))
	report.Backup, report.Size = b.ID, b.Size
	pw.CloseWithError(err)
	if loadErr := <-loaded; err == nil && loadErr != nil {
		err = fmt.Errorf("loading the restore: %w", loadErr)
	}
	if err != nil {
		return err
	}
	answer, err := server.sql(ctx, owner.AppDatabase, query, nil)
	report.Answer = strings.TrimSpace(answer)
	if err != nil {
		return fmt.Errorf("the check query: %w", err)
	}
	return nil
}

// scratchMySQL is a throwaway server the restore check started.
type scratchMySQL struct {
	cmd    *exec.Cmd
	socket string
	client string
	exited chan error
}

// startScratchMySQL initialises datadir and starts a server on it that
// listens on a socket beside it only. MySQL's is initialised with
// mysqld --initialize-insecure and runs with GTIDs on (the replayed binary
// logs set GTID_NEXT); MariaDB's (the engine tests' stand-in) with
// mariadb-install-db.
func startScratchMySQL(ctx context.Context, datadir string) (*scratchMySQL, error) {
	mysqld := envOr("MYSQLD", "mysqld")
	version, err := exec.CommandContext(ctx, mysqld, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --version: %w", mysqld, err)
	}
	mariadb := strings.Contains(string(version), "MariaDB")
	if _, err := os.Stat(datadir); err == nil {
		return nil, fmt.Errorf("%s exists: the restore check needs an empty scratch volume", datadir)
	}
	work := filepath.Dir(datadir)
	if err := os.MkdirAll(work, 0o700); err != nil {
		return nil, err
	}
	var init *exec.Cmd
	if mariadb {
		init = exec.CommandContext(ctx, envOr("MYSQL_INSTALL_DB", "mariadb-install-db"), "--no-defaults", "--datadir="+datadir,
			"--auth-root-authentication-method=normal", "--skip-test-db")
	} else {
		init = exec.CommandContext(ctx, mysqld, "--no-defaults", "--initialize-insecure", "--datadir="+datadir)
	}
	if out, err := init.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initialising the scratch server: %w: %s", err, archive.LastLines(string(out), 1))
	}
	s := &scratchMySQL{socket: filepath.Join(work, "mysqld.sock"), client: envOr("MYSQL_CLIENT", "mysql"), exited: make(chan error, 1)}
	args := []string{"--no-defaults", "--datadir=" + datadir, "--socket=" + s.socket, "--skip-networking",
		"--skip-log-bin", "--pid-file=" + filepath.Join(work, "mysqld.pid")}
	if !mariadb {
		args = append(args, "--gtid-mode=ON", "--enforce-gtid-consistency=ON")
	}
	s.cmd = exec.Command(mysqld, args...)
	var log strings.Builder
	s.cmd.Stdout, s.cmd.Stderr = &log, &log
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the scratch server: %w", err)
	}
	go func() { s.exited <- s.cmd.Wait() }()
	for {
		if _, err := s.sql(ctx, "mysql", "SELECT 1", nil); err == nil {
			return s, nil
		}
		select {
		case err := <-s.exited:
			return nil, fmt.Errorf("the scratch server exited: %v: %s", err, archive.LastLines(log.String(), 1))
		case <-ctx.Done():
			s.stop()
			return nil, fmt.Errorf("the scratch server did not answer: %w", ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// sql runs query (or, when empty, what stdin holds) as root on the socket
// in database and returns the rows.
func (s *scratchMySQL) sql(ctx context.Context, database, query string, stdin io.Reader) (string, error) {
	args := []string{"--no-defaults", "--protocol=socket", "--socket=" + s.socket, "--user=root", "--database=" + database,
		"--batch", "--skip-column-names"}
	if query != "" {
		args = append(args, "--execute="+query)
	}
	cmd := exec.CommandContext(ctx, s.client, args...)
	cmd.Stdin = stdin
	var out, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%w: %s", err, archive.LastLines(stderr.String(), 1))
	}
	return out.String(), nil
}

// stop shuts the scratch server down (SIGTERM, then SIGKILL after a
// minute).
func (s *scratchMySQL) stop() {
	if s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(time.Minute):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.exited <- nil // a second stop returns at once
}

// quoteMySQLIdent quotes a name for MySQL.
func quoteMySQLIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
