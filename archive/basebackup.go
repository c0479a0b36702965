package archive

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/example/database-operator/objectstore"
)

// BaseBackup is the record of a complete base backup, written after its
// content and the WAL it needs are in the archive.
type BaseBackup struct {
	// ID names the backup: the UTC time it started, 20060102T150405Z.
	ID string `json:"id"`
	// Timeline is the timeline the backup was taken on.
	Timeline uint32 `json:"timeline"`
	// StartLSN is where recovery from the backup starts replaying WAL.
	StartLSN string `json:"startLSN"`
	// EndLSN is where the restored server becomes consistent.
	EndLSN string `json:"endLSN"`
	// StartWAL is the first WAL segment recovery needs.
	StartWAL string `json:"startWAL"`
	// StartTime and EndTime bound the backup; a restore can reach any
	// moment after EndTime that the archived WAL covers.
	StartTime time.Time `json:"startTime"`
	EndTime   time.Time `json:"endTime"`
	// Size and SHA256 describe base.tar (dump.sql.gz for MySQL).
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Engine is "mysql" for a MySQL base dump; empty for PostgreSQL.
	Engine string `json:"engine,omitempty"`
	// BinlogServer, BinlogFile and BinlogPosition are, for MySQL, where
	// the binary log continues the dump: the server the dump was taken on
	// (@@server_uuid) and the position the dump recorded.
	BinlogServer   string `json:"binlogServer,omitempty"`
	BinlogFile     string `json:"binlogFile,omitempty"`
	BinlogPosition int64  `json:"binlogPosition,omitempty"`
	// GTIDExecuted is, for MySQL, the GTID set the dump holds.
	GTIDExecuted string `json:"gtidExecuted,omitempty"`
}

// MySQLEngine is BaseBackup.Engine for a MySQL base dump.
const MySQLEngine = "mysql"

// content is the name of the backup's content object.
func (b BaseBackup) content() string {
	if b.Engine == MySQLEngine {
		return mysqlDumpObject
	}
	return "base.tar"
}

// BackupIDLayout is the layout of a BaseBackup's ID.
const BackupIDLayout = "20060102T150405Z"

func backupKey(id, file string) string { return "base/" + id + "/" + file }

// BaseBackupArgs is the pg_basebackup command line (without the connection
// options, which come from PG* variables) that writes one tar stream of the
// data directory to stdout. WAL is not included (-X none): the archive has
// it, and TakeBaseBackup waits until it does.
func BaseBackupArgs() []string {
	return []string{"--pgdata=-", "--format=tar", "--wal-method=none", "--checkpoint=fast", "--verbose", "--no-password"}
}

// walRange is the WAL a base backup needs, from its backup_manifest.
type walRange struct {
	timeline   uint32
	start, end LSN
	err        error
}

// scanBackupTar reads a pg_basebackup tar stream to its end and returns the
// WAL range of its backup_manifest ("WAL-Ranges"; one range, since the
// backup ran on one timeline).
func scanBackupTar(r io.Reader) walRange {
	defer io.Copy(io.Discard, r)
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err != nil {
			return walRange{err: fmt.Errorf("the backup stream has no backup_manifest: %v", err)}
		}
		if path.Clean(h.Name) != "backup_manifest" {
			continue
		}
		var m struct {
			Ranges []struct {
				Timeline uint32 `json:"Timeline"`
				Start    string `json:"Start-LSN"`
				End      string `json:"End-LSN"`
			} `json:"WAL-Ranges"`
		}
		if err := json.NewDecoder(tr).Decode(&m); err != nil {
			return walRange{err: fmt.Errorf("backup_manifest: %w", err)}
		}
		if len(m.Ranges) != 1 {
			return walRange{err: fmt.Errorf("backup_manifest: %d WAL ranges, want 1 (did the primary change during the backup?)", len(m.Ranges))}
		}
		start, err := ParseLSN(m.Ranges[0].Start)
		if err != nil {
			return walRange{err: err}
		}
		end, err := ParseLSN(m.Ranges[0].End)
		if err != nil {
			return walRange{err: err}
		}
		return walRange{timeline: m.Ranges[0].Timeline, start: start, end: end}
	}
}

// TakeBaseBackup runs cmd (pg_basebackup with BaseBackupArgs), streams its
// output to the archive, waits up to walWait for the WAL segment holding the
// backup's end to be archived, and only then writes the backup's record: a
// backup without it would not restore. now is the clock.
func (a *Archive) TakeBaseBackup(ctx context.Context, cmd *exec.Cmd, now func() time.Time, walWait time.Duration) (BaseBackup, error) {
	start := now().UTC()
	b := BaseBackup{ID: start.Format(BackupIDLayout), StartTime: start}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return b, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return b, err
	}
	if err := cmd.Start(); err != nil {
		return b, fmt.Errorf("starting pg_basebackup: %w", err)
	}
	var log strings.Builder
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
		}
	}()
	// The tar stream passes through a reader of its own on the way to the
	// store: the backup's WAL range is in the backup_manifest member.
	pr, pw := io.Pipe()
	ranges := make(chan walRange, 1)
	go func() { ranges <- scanBackupTar(pr) }()
	info, upErr := a.store.PutStream(ctx, backupKey(b.ID, "base.tar"), io.TeeReader(stdout, pw), 0)
	if upErr != nil {
		// Unblock pg_basebackup if the upload stopped reading.
		_, _ = io.Copy(pw, stdout)
	}
	pw.Close()
	wr := <-ranges
	<-logDone
	waitErr := cmd.Wait()
	if waitErr != nil || upErr != nil {
		_ = a.store.Delete(context.WithoutCancel(ctx), backupKey(b.ID, "base.tar"))
		return b, fmt.Errorf("base backup %s failed: %w; pg_basebackup said: %s", b.ID, errors.Join(waitErr, upErr), LastLines(log.String(), 5))
	}
	b.Size, b.SHA256 = info.Size, info.SHA256
	if wr.err != nil {
		return b, fmt.Errorf("base backup %s: %w", b.ID, wr.err)
	}
	startLSN, endLSN := wr.start, wr.end
	b.Timeline, b.StartLSN, b.EndLSN = wr.timeline, startLSN.String(), endLSN.String()
	b.StartWAL = SegmentName(b.Timeline, startLSN.Segment())

	endSeg := endLSN.Segment()
	if uint64(endLSN)%SegmentSize == 0 && endSeg > 0 {
		endSeg--
	}
	endWAL := SegmentName(b.Timeline, endSeg)
	if err := a.waitArchived(ctx, endWAL, walWait); err != nil {
		return b, fmt.Errorf("base backup %s: %w", b.ID, err)
	}
	b.EndTime = now().UTC()
	return b, a.putBackupRecord(ctx, b)
}

// putBackupRecord writes b's backup.json, the last step of a backup: only
// a backup with a record is listed.
func (a *Archive) putBackupRecord(ctx context.Context, b BaseBackup) error {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	return a.store.Put(ctx, backupKey(b.ID, "backup.json"), data)
}

// gzipPipe compresses what r yields, in a goroutine, for a streamed
// upload; closing the returned reader stops it.
func gzipPipe(r io.Reader) *io.PipeReader {
	pr, pw := io.Pipe()
	go func() {
		zw, _ := gzip.NewWriterLevel(pw, gzip.BestSpeed)
		_, err := io.Copy(zw, r)
		if err == nil {
			err = zw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

func (a *Archive) waitArchived(ctx context.Context, name string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := a.store.Exists(ctx, walKey(name))
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("WAL segment %s, which the backup needs, was not archived within %s: is continuous archiving failing?", name, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// ListBackups returns the complete base backups (those with a record),
// oldest first.
func (a *Archive) ListBackups(ctx context.Context) ([]BaseBackup, error) {
	objects, err := a.store.List(ctx, "base/")
	if err != nil {
		return nil, err
	}
	var out []BaseBackup
	for _, o := range objects {
		if !strings.HasSuffix(o.Key, "/backup.json") {
			continue
		}
		data, err := a.store.Get(ctx, o.Key)
		if err != nil {
			return nil, err
		}
		var b BaseBackup
		if err := json.Unmarshal(data, &b); err != nil {
			return nil, fmt.Errorf("%s/%s: %w", a.Location(), o.Key, err)
		}
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].EndTime.Before(out[j].EndTime) })
	return out, nil
}

// OpenBackup streams a backup's base.tar; reading past its end fails with
// objectstore.ErrCorrupt unless the content is what was recorded.
func (a *Archive) OpenBackup(ctx context.Context, b BaseBackup) (io.ReadCloser, error) {
	r := a.store.OpenParallel(ctx, backupKey(b.ID, b.content()), b.Size, 0, 0)
	return struct {
		io.Reader
		io.Closer
	}{objectstore.VerifyingReader(r, objectstore.Info{Size: b.Size, SHA256: b.SHA256}), r}, nil
}

// DeleteBackup removes a backup, its record first so that it is never
// listed half deleted.
func (a *Archive) DeleteBackup(ctx context.Context, b BaseBackup) error {
	if err := a.store.Delete(ctx, backupKey(b.ID, "backup.json")); err != nil {
		return err
	}
	return a.store.Delete(ctx, backupKey(b.ID, b.content()))
}

// DeleteWAL removes an archived WAL file.
func (a *Archive) DeleteWAL(ctx context.Context, name string) error {
	return a.store.Delete(ctx, walKey(name))
}

// LastLines is the last n lines of s joined by " | ": a command's
// output, short enough for a message.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
