package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
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
	a, _, err := archive.FromEnv(archive.RestorePrefix, os.Getenv)
	if err != nil {
		return err
	}
	source, err := a.Owner(ctx)
	if err != nil {
		return fmt.Errorf("reading who archives to %s: %w", a.Location(), err)
	}
	if source.AppDatabase == "" {
		return fmt.Errorf("%s: the archive's owner names no application database", a.Location())
	}
	b, steps, err := a.PlanMySQLRestore(ctx, target)
	if err != nil {
		return err
	}
	// MariaDB's names itself in its help only ("Dumps a MariaDB binary
	// log"); its --version says "Ver 3.5", like MySQL's before 8.0.
	help, err := exec.CommandContext(ctx, mysqlbinlog, "--help").Output()
	if err != nil {
		return fmt.Errorf("%s --help: %w", mysqlbinlog, err)
	}
	fmt.Fprintf(os.Stderr, "restore: base dump %s (ended %s) from %s and %d binary log files, to %s\n",
		b.ID, b.EndTime.Format(time.RFC3339), a.Location(), len(steps), target)
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	err = a.WriteMySQLRestore(ctx, out, b, steps, target, archive.MySQLRestore{
		Mysqlbinlog: mysqlbinlog, Scratch: scratch,
		SourceDatabase: source.AppDatabase, Database: database, Log: os.Stderr,
		MariaDB: strings.Contains(string(help), "MariaDB binary log"),
	})
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	return err
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
