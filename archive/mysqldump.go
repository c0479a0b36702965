package archive

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A MySQL base dump is a logical dump of the application database that
// records where in the binary log it stands, so that a restore loads it and
// replays the archived binary logs from there. It is stored as
// base/<id>/dump.sql.gz with the same backup.json record as a PostgreSQL
// base backup (Engine "mysql").
const mysqlDumpObject = "dump.sql.gz"

// MySQLDumpArgs are mysqldump's options (without the connection's) for a
// base dump of database: one consistent snapshot (--single-transaction)
// whose binary log position and GTID set the dump writes as comments
// (sourceData: --source-data=2 for MySQL, --master-data=2 for MariaDB;
// gtid: --set-gtid-purged=COMMENTED for MySQL, --gtid for MariaDB), after
// closing the current binary log file (--flush-logs), so the position is at
// the start of a new file and the dump needs no file older than it. Like
// the volume's dumps it names no database, so it loads into the restored
// Database's.
func MySQLDumpArgs(database string, mariadb bool) []string {
	args := []string{"--single-transaction", "--flush-logs", "--routines", "--triggers", "--events"}
	if mariadb {
		args = append(args, "--master-data=2", "--gtid")
	} else {
		args = append(args, "--source-data=2", "--set-gtid-purged=COMMENTED")
	}
	return append(args, database)
}

// The dump's header comments (MySQL's and MariaDB's spellings).
var (
	dumpPosition = regexp.MustCompile(`CHANGE (?:REPLICATION SOURCE|MASTER) TO (?:SOURCE|MASTER)_LOG_FILE='([^']+)', (?:SOURCE|MASTER)_LOG_POS=(\d+)`)
	// GTID_PURGED: --set-gtid-purged=COMMENTED writes
	// /* SET @@GLOBAL.GTID_PURGED='+<set>';*/, ON writes
	// SET @@GLOBAL.GTID_PURGED=/*!80000 '+'*/ '<set>'; MariaDB's --gtid
	// writes -- SET GLOBAL gtid_slave_pos='<position>'.
	dumpGTIDs = regexp.MustCompile(`(?s)(?:GTID_PURGED=(?:/\*!80000 '\+'\*/ )?|gtid_slave_pos=)'\+?([^']*)'`)
)

// dumpHeaderSize is how much of a dump's beginning holds its header
// comments.
const dumpHeaderSize = 64 << 10

// parseDumpHeader reads the binary log position and GTID set from the
// beginning of a dump.
func parseDumpHeader(head []byte) (file string, pos int64, gtids string, err error) {
	m := dumpPosition.FindSubmatch(head)
	if m == nil {
		return "", 0, "", errors.New("the dump records no binary log position (is the binary log on?)")
	}
	pos, err = strconv.ParseInt(string(m[2]), 10, 64)
	if err != nil {
		return "", 0, "", err
	}
	if g := dumpGTIDs.FindSubmatch(head); g != nil {
		gtids = strings.Join(strings.Fields(string(g[1])), "")
	}
	return string(m[1]), pos, gtids, nil
}

// headCapture keeps the first dumpHeaderSize bytes written to it.
type headCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (h *headCapture) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if room := dumpHeaderSize - h.buf.Len(); room > 0 {
		h.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// TakeMySQLDump runs cmd (mysqldump with MySQLDumpArgs), streams its output
// compressed into the archive and writes the backup's record, naming the
// server (@@server_uuid) whose binary log continues it. server is asked
// before and after the dump: a failover in between makes the position
// meaningless, and the dump fails. now is the clock.
func (a *Archive) TakeMySQLDump(ctx context.Context, cmd *exec.Cmd, server func(context.Context) (string, error), now func() time.Time) (BaseBackup, error) {
	start := now().UTC()
	b := BaseBackup{ID: start.Format(BackupIDLayout), StartTime: start, Engine: MySQLEngine}
	before, err := server(ctx)
	if err != nil {
		return b, fmt.Errorf("base dump %s: asking the primary who it is: %w", b.ID, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return b, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return b, fmt.Errorf("starting mysqldump: %w", err)
	}
	head := &headCapture{}
	pr := gzipPipe(io.TeeReader(stdout, head))
	key := backupKey(b.ID, mysqlDumpObject)
	info, upErr := a.store.PutStream(ctx, key, pr, 0)
	if upErr != nil {
		pr.CloseWithError(upErr)
		_, _ = io.Copy(io.Discard, stdout)
	}
	waitErr := cmd.Wait()
	if waitErr != nil || upErr != nil {
		_ = a.store.Delete(context.WithoutCancel(ctx), key)
		return b, fmt.Errorf("base dump %s failed: %w; mysqldump said: %s", b.ID, errors.Join(waitErr, upErr), LastLines(stderr.String(), 5))
	}
	b.Size, b.SHA256 = info.Size, info.SHA256
	fail := func(err error) (BaseBackup, error) {
		_ = a.store.Delete(context.WithoutCancel(ctx), key)
		return b, fmt.Errorf("base dump %s: %w", b.ID, err)
	}
	b.BinlogFile, b.BinlogPosition, b.GTIDExecuted, err = parseDumpHeader(head.buf.Bytes())
	if err != nil {
		return fail(err)
	}
	after, err := server(ctx)
	if err != nil {
		return fail(fmt.Errorf("asking the primary who it is: %w", err))
	}
	if after != before {
		return fail(fmt.Errorf("the primary changed during the dump (%s, then %s): its binary log position names neither for sure", before, after))
	}
	b.BinlogServer = before
	b.EndTime = now().UTC()
	return b, a.putBackupRecord(ctx, b)
}

// MySQLRestore is how WriteMySQLRestore replays binary logs.
type MySQLRestore struct {
	// Mysqlbinlog is the mysqlbinlog binary (MariaDB's mariadb-binlog has
	// the same options used here).
	Mysqlbinlog string
	// Scratch is a directory for one fetched binary log file at a time.
	Scratch string
	// SourceDatabase is the source's application database, the only one
	// whose changes are replayed; Database the restored Database's, which
	// they are rewritten into when the names differ.
	SourceDatabase, Database string
	// MariaDB says Mysqlbinlog is MariaDB's, which filters by a database's
	// name before rewriting it, where MySQL's filters after.
	MariaDB bool
	// Log receives a line per step, for people.
	Log io.Writer
}

// PlanMySQLRestore picks the base dump and the binary logs that restore
// the archive to target, before anything is written: a missing binary log
// is an error up front, not half a restore.
func (a *Archive) PlanMySQLRestore(ctx context.Context, target Target) (BaseBackup, []ReplayStep, error) {
	all, err := a.ListBackups(ctx)
	if err != nil {
		return BaseBackup{}, nil, err
	}
	var dumps []BaseBackup
	for _, b := range all {
		if b.Engine == MySQLEngine {
			dumps = append(dumps, b)
		}
	}
	b, err := ChooseBackup(dumps, target)
	if err != nil {
		return b, nil, fmt.Errorf("%s: %w", a.Location(), err)
	}
	files, err := a.ListBinlogs(ctx)
	if err != nil {
		return b, nil, err
	}
	steps, err := PlanBinlogReplay(b, files, target)
	if err != nil {
		return b, nil, fmt.Errorf("%s: %w", a.Location(), err)
	}
	return b, steps, nil
}

// WriteMySQLRestore writes to w the SQL that restores b and steps (from
// PlanMySQLRestore) into an empty application database: the dump, then
// each binary log's events from its start position up to the target (to
// the second: mysqlbinlog --stop-datetime leaves out events stamped at or
// after it). Another server's files leave out the GTIDs the dump holds
// (mysqlbinlog --exclude-gtids, MySQL's), and the restoring server skips
// the ones it has executed by then (GTID auto-skip).
func (a *Archive) WriteMySQLRestore(ctx context.Context, w io.Writer, b BaseBackup, steps []ReplayStep, target Target, r MySQLRestore) error {
	if r.MariaDB {
		for _, s := range steps {
			if s.File.Server != b.BinlogServer {
				return fmt.Errorf("the restore needs binary log %s of server %s, not the dump's: replaying another server's files needs MySQL's mysqlbinlog (--exclude-gtids), which MariaDB's lacks",
					s.File.Name, s.File.Server)
			}
		}
	}
	dump, err := a.OpenBackup(ctx, b)
	if err != nil {
		return err
	}
	zr, err := gzip.NewReader(dump)
	if err == nil {
		_, err = io.Copy(w, zr)
	}
	dump.Close()
	if err != nil {
		return fmt.Errorf("base dump %s: %w", b.ID, err)
	}
	fmt.Fprintf(r.Log, "restore: loaded base dump %s (%d bytes compressed)\n", b.ID, b.Size)
	for _, s := range steps {
		path := r.Scratch + "/" + s.File.Name
		if err := a.FetchBinlog(ctx, s.File, path); err != nil {
			return err
		}
		args := ReplayArgs(b, s, target, r)
		cmd := exec.CommandContext(ctx, r.Mysqlbinlog, append(args, path)...)
		cmd.Env = []string{"TZ=UTC"}
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = w, &stderr
		err := cmd.Run()
		_ = os.Remove(path)
		if err != nil {
			return fmt.Errorf("replaying binary log %s of server %s: %w: %s", s.File.Name, s.File.Server, err, LastLines(stderr.String(), 5))
		}
		fmt.Fprintf(r.Log, "restore: replayed binary log %s of server %s\n", s.File.Name, s.File.Server)
	}
	return nil
}

// ReplayArgs are mysqlbinlog's options for one step of a restore from b.
func ReplayArgs(b BaseBackup, s ReplayStep, target Target, r MySQLRestore) []string {
	args := []string{"--database=" + r.SourceDatabase}
	if r.Database != r.SourceDatabase {
		// MySQL's mysqlbinlog rewrites, then filters by the new name;
		// MariaDB's filters by the old one (measured on 10.11).
		filter := r.Database
		if r.MariaDB {
			filter = r.SourceDatabase
		}
		args = []string{"--rewrite-db=" + r.SourceDatabase + "->" + r.Database, "--database=" + filter}
	}
	if s.Start > 0 {
		args = append(args, fmt.Sprintf("--start-position=%d", s.Start))
	}
	if !target.Latest() {
		args = append(args, "--stop-datetime="+target.Time.UTC().Format(time.DateTime))
	}
	if s.File.Server != b.BinlogServer && b.GTIDExecuted != "" && !r.MariaDB {
		args = append(args, "--exclude-gtids="+b.GTIDExecuted)
	}
	return args
}
