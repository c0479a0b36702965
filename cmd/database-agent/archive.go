package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/example/database-operator/archive"
	"github.com/example/database-operator/instance"
	"github.com/example/database-operator/objectstore"
)

// Exit codes of wal-fetch, as PostgreSQL reads a restore_command's: 1 is
// "not in the archive" (the end of recovery's input); above 125 aborts the
// recovery, so a corrupt segment or an unreachable store is reported, not
// taken for the end of the archive.
const (
	exitNotArchived  = 1
	exitAbortRecover = 128
)

// walPush archives one WAL file: the archive_command
// "database-agent wal-push %p".
func walPush(args []string) (int, error) {
	if len(args) != 1 {
		return 2, errors.New("usage: database-agent wal-push PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	a, _, err := archive.FromEnv("", os.Getenv)
	if err != nil {
		return 1, err
	}
	if err := a.Claim(ctx, ownerFromEnv(postgresEngine)); err != nil {
		return 1, err
	}
	if err := a.PushWAL(ctx, args[0]); err != nil {
		return 1, err
	}
	return 0, nil
}

// walFetch restores one WAL file from the restore's source archive: the
// restore_command "database-agent wal-fetch %f %p".
func walFetch(args []string) (int, error) {
	if len(args) != 2 {
		return 2, errors.New("usage: database-agent wal-fetch NAME DEST")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	a, _, err := archive.FromEnv(archive.RestorePrefix, os.Getenv)
	if err != nil {
		return exitAbortRecover, err
	}
	err = a.FetchWAL(ctx, args[0], args[1])
	switch {
	case err == nil:
		return 0, nil
	case errors.Is(err, archive.ErrNotArchived):
		// Not an error: PostgreSQL asks for files past the archive's end.
		return exitNotArchived, nil
	default:
		return exitAbortRecover, err
	}
}

const (
	postgresEngine = "postgresql"
	mysqlEngine    = "mysql"
)

// ownerFromEnv is the Database that archives, from the container's
// environment (the official images' variables name the application user
// and database).
func ownerFromEnv(engine string) archive.Owner {
	o := archive.Owner{
		UID: os.Getenv(archive.EnvUID), Namespace: os.Getenv(archive.EnvNamespace), Name: os.Getenv(archive.EnvDatabase),
		Engine: engine, AppUser: os.Getenv("APP_USER"), AppDatabase: os.Getenv("POSTGRES_DB"),
	}
	if engine == mysqlEngine {
		o.AppUser, o.AppDatabase = os.Getenv("MYSQL_USER"), os.Getenv("MYSQL_DATABASE")
	}
	return o
}

// baseBackup takes a base backup with pg_basebackup (connection from PG*
// variables), or a MySQL base dump with mysqldump (connection from DB_HOST,
// DB_PORT and MYSQL_PWD, as root), into the Database's archive, then
// applies retention. Success or failure, it writes an instance.BackupReport
// to the termination log for the operator's status.
func baseBackup(args []string) (int, error) {
	fs := flag.NewFlagSet("base-backup", flag.ContinueOnError)
	retention := fs.String("retention", "7d", "how long base backups are kept, in days (7d)")
	walWait := fs.Duration("wal-wait", 5*time.Minute, "how long to wait for the WAL the backup needs to be archived")
	terminationLog := fs.String("termination-log", "", "file the result is written to (the container's termination message file)")
	engine := fs.String("engine", postgresEngine, "postgresql or mysql")
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	keep, err := parseDays(*retention)
	if err != nil {
		return 2, err
	}
	if *engine != postgresEngine && *engine != mysqlEngine {
		return 2, fmt.Errorf("--engine=%q: want postgresql or mysql", *engine)
	}
	report, err := takeAndRetain(context.Background(), *engine, keep, *retention, *walWait)
	if err != nil {
		report.Error = err.Error()
	}
	if *terminationLog != "" {
		if werr := os.WriteFile(*terminationLog, []byte(report.String()), 0o644); werr != nil && err == nil {
			return 1, werr
		}
	}
	if err != nil {
		return 1, err
	}
	return 0, nil
}

// takeAndRetain is base-backup's work: the report says what was done, also
// when it fails part-way (a backup taken before retention failed).
func takeAndRetain(ctx context.Context, engine string, keep time.Duration, retention string, walWait time.Duration) (instance.BackupReport, error) {
	var report instance.BackupReport
	a, _, err := archive.FromEnv("", os.Getenv)
	if err != nil {
		return report, err
	}
	if err := a.Claim(ctx, ownerFromEnv(engine)); err != nil {
		return report, err
	}
	var b archive.BaseBackup
	if engine == mysqlEngine {
		b, err = takeMySQLDump(ctx, a)
	} else {
		cmd := exec.CommandContext(ctx, "pg_basebackup", archive.BaseBackupArgs()...)
		b, err = a.TakeBaseBackup(ctx, cmd, time.Now, walWait)
	}
	if err != nil {
		return report, err
	}
	fmt.Fprintf(os.Stderr, "base backup %s: %d bytes, WAL %s to %s, binary log %s %s:%d, in %s\n", b.ID, b.Size, b.StartLSN, b.EndLSN,
		b.BinlogServer, b.BinlogFile, b.BinlogPosition, b.EndTime.Sub(b.StartTime).Round(time.Millisecond))
	report.ID, report.StartTime, report.EndTime, report.Size = b.ID, b.StartTime, b.EndTime, b.Size
	err = retain(ctx, a, engine, keep, &report)
	fmt.Fprintf(os.Stderr, "retention (%s): deleted %d base backups and %d WAL or binary log files\n", retention, report.DeletedBackups, report.DeletedWAL)
	return report, err
}

// retain deletes the base backups older than keep (never the newest) and
// the WAL or binary logs only they need.
func retain(ctx context.Context, a *archive.Archive, engine string, keep time.Duration, report *instance.BackupReport) error {
	backups, err := a.ListBackups(ctx)
	if err != nil {
		return fmt.Errorf("retention: %w", err)
	}
	var wal []archive.WALFile
	var binlogs []archive.BinlogFile
	if engine == mysqlEngine {
		binlogs, err = a.ListBinlogs(ctx)
	} else {
		wal, err = a.ListWAL(ctx)
	}
	if err != nil {
		return fmt.Errorf("retention: %w", err)
	}
	plan := archive.PlanRetention(backups, wal, time.Now(), keep)
	if plan.Kept != nil {
		report.FirstRecoverable = plan.Kept.EndTime
	}
	byID := map[string]archive.BaseBackup{}
	for _, b := range backups {
		byID[b.ID] = b
	}
	for _, id := range plan.Backups {
		if err := a.DeleteBackup(ctx, byID[id]); err != nil {
			return fmt.Errorf("retention: %w", err)
		}
		report.DeletedBackups++
	}
	for _, name := range plan.WAL {
		if err := a.DeleteWAL(ctx, name); err != nil {
			return fmt.Errorf("retention: %w", err)
		}
		report.DeletedWAL++
	}
	for _, f := range archive.PlanBinlogRetention(plan.Kept, binlogs) {
		if err := a.DeleteBinlog(ctx, f); err != nil {
			return fmt.Errorf("retention: %w", err)
		}
		report.DeletedWAL++
	}
	return nil
}

// restore fills an empty PGDATA from the restore's source archive, up to
// RESTORE_TARGET_TIME (RFC 3339) or the archive's end, and finishes the
// recovery, so that the server the entrypoint then starts is the restored,
// promoted copy under the new Database's users. A data directory that
// exists is left alone: the restore happened.
func restore(args []string) (int, error) {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	timeout := fs.Duration("timeout", 6*time.Hour, "how long recovery may take")
	terminationLog := fs.String("termination-log", "", "file a failed restore writes its reason to (the container's termination message file)")
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	status, err := restoreData(*timeout)
	if err != nil && *terminationLog != "" {
		// The operator reports the reason in the Restored condition.
		_ = os.WriteFile(*terminationLog, []byte(instance.RestoreFailedPrefix+err.Error()), 0o644)
	}
	return status, err
}

func restoreData(timeout time.Duration) (int, error) {
	if pod := os.Getenv("POD_NAME"); pod != "" && !strings.HasSuffix(pod, "-0") {
		// Only pod 0 restores; the replicas copy it.
		fmt.Fprintf(os.Stderr, "restore: %s is a replica: it copies pod 0\n", pod)
		return 0, nil
	}
	pgdata := os.Getenv("PGDATA")
	if pgdata == "" {
		return 2, errors.New("PGDATA is unset")
	}
	if _, err := os.Stat(filepath.Join(pgdata, "PG_VERSION")); err == nil {
		fmt.Fprintln(os.Stderr, "restore: the data directory exists; nothing to do")
		return 0, nil
	}
	target, err := targetFromEnv()
	if err != nil {
		return 2, err
	}
	ctx := context.Background()
	a, _, err := archive.FromEnv(archive.RestorePrefix, os.Getenv)
	if err != nil {
		return 1, err
	}
	source, err := a.Owner(ctx)
	if err != nil && !errors.Is(err, objectstore.ErrNotFound) {
		return 1, err
	}
	self, err := os.Executable()
	if err != nil {
		return 1, err
	}
	// Restored beside PGDATA and moved into place when done: a restore
	// cut short leaves no data directory that looks complete.
	work := pgdata + ".restoring"
	if err := os.RemoveAll(work); err != nil {
		return 1, err
	}
	b, err := a.PrepareRestore(ctx, work, self+" wal-fetch %f %p", target)
	if err != nil {
		return 1, err
	}
	fmt.Fprintf(os.Stderr, "restore: base backup %s (ended %s) from %s, recovering to %s\n", b.ID, b.EndTime.Format(time.RFC3339), a.Location(), target)
	roles := archive.Roles{
		SuperuserPassword: os.Getenv("POSTGRES_PASSWORD"),
		AppUser:           os.Getenv("APP_USER"), AppPassword: os.Getenv("APP_PASSWORD"), AppDatabase: os.Getenv("POSTGRES_DB"),
		SourceAppUser: source.AppUser, SourceAppDatabase: source.AppDatabase,
		ReplicationUser: envOr("REPLICATION_USER", "replicator"), ReplicationPassword: os.Getenv("REPLICATION_PASSWORD"),
	}
	if err := archive.FinishRestore(ctx, work, roles, timeout); err != nil {
		return 1, err
	}
	if err := os.Rename(work, pgdata); err != nil {
		return 1, err
	}
	fmt.Fprintln(os.Stderr, "restore: done")
	return 0, nil
}

// DefaultCheckQuery is the restore check's query without
// spec.backup.restoreCheck.query: how many tables the application has.
const DefaultCheckQuery = "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"

// restoreCheck restores the newest base backup of the Database's own
// archive (RESTORE_S3_*) and all its WAL into PGDATA, a scratch directory
// that must be empty, runs CHECK_QUERY in the application database, and
// writes an instance.RestoreCheckReport to the termination log; with
// --engine=mysql, the newest base dump and its binary logs into a
// throwaway server (checkMySQLRestore). The pod's
// scratch volume, and so the copy, goes with the pod.
func restoreCheck(args []string) (int, error) {
	fs := flag.NewFlagSet("restore-check", flag.ContinueOnError)
	timeout := fs.Duration("timeout", 6*time.Hour, "how long recovery may take")
	terminationLog := fs.String("termination-log", "", "file the report is written to (the container's termination message file)")
	engine := fs.String("engine", postgresEngine, "postgresql or mysql")
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	check := checkRestore
	switch *engine {
	case postgresEngine:
	case mysqlEngine:
		check = checkMySQLRestore
	default:
		return 2, fmt.Errorf("--engine=%q: want postgresql or mysql", *engine)
	}
	report := instance.RestoreCheckReport{StartTime: time.Now().UTC()}
	err := check(context.Background(), &report, *timeout)
	report.EndTime = time.Now().UTC()
	if err != nil {
		report.Error = err.Error()
	} else {
		fmt.Fprintf(os.Stderr, "restore-check: base backup %s restored and checked in %s: %s\n", report.Backup, report.EndTime.Sub(report.StartTime).Round(time.Millisecond), report.Answer)
	}
	if *terminationLog != "" {
		if werr := os.WriteFile(*terminationLog, []byte(report.String()), 0o644); werr != nil && err == nil {
			return 1, werr
		}
	}
	if err != nil {
		return 1, err
	}
	return 0, nil
}

func checkRestore(ctx context.Context, report *instance.RestoreCheckReport, timeout time.Duration) error {
	pgdata := os.Getenv("PGDATA")
	if pgdata == "" {
		return errors.New("PGDATA is unset")
	}
	query := envOr("CHECK_QUERY", DefaultCheckQuery)
	a, owner, err := sourceArchive(ctx)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	// The copy is a throwaway: nothing of it stays on the node.
	defer os.RemoveAll(pgdata)
	b, err := a.PrepareRestore(ctx, pgdata, self+" wal-fetch %f %p", archive.Target{})
	report.Backup, report.Size = b.ID, b.Size
	if err != nil {
		return err
	}
	answer, err := archive.VerifyRestore(ctx, pgdata, owner.AppDatabase, query, timeout)
	report.Answer = answer
	return err
}

// sourceArchive is the archive a restore or restore check reads
// (RESTORE_S3_*) and who archives there: the application names.
func sourceArchive(ctx context.Context) (*archive.Archive, archive.Owner, error) {
	a, _, err := archive.FromEnv(archive.RestorePrefix, os.Getenv)
	if err != nil {
		return nil, archive.Owner{}, err
	}
	owner, err := a.Owner(ctx)
	if err != nil {
		return nil, owner, fmt.Errorf("reading who archives to %s: %w", a.Location(), err)
	}
	return a, owner, nil
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// parseDays parses a retention such as "7d".
func parseDays(s string) (time.Duration, error) {
	n, err := strconv.Atoi(strings.TrimSuffix(s, "d"))
	if err != nil || !strings.HasSuffix(s, "d") || n < 1 {
		return 0, fmt.Errorf("retention %q: want a number of days such as 7d", s)
	}
	return time.Duration(n) * 24 * time.Hour, nil
}
