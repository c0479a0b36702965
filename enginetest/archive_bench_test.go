package enginetest

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/example/database-operator/agent"
	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/archive"
	"github.com/example/database-operator/objectstore"
)

// The archive benchmarks (make bench-archive) measure what the issue asks
// for, on PostgreSQL 15 and the local SeaweedFS, with the rendered
// configuration and the agent:
//
//   - BenchmarkRecoveryPoint: the age of the newest restorable transaction
//     at the moment of loss, over RECOVERY_POINT_RUNS (default 10) losses,
//     with the default archive timeout;
//   - BenchmarkBaseBackupThroughput: the agent's base backup to S3 and its
//     restore from S3 against plain pg_basebackup to a local tar and a
//     plain tar extract of it, on the same data and machine.
//
// They report with b.ReportMetric and t.Log; each runs its work once
// (b.N is ignored): the measurements are of seconds, not nanoseconds.

// BenchmarkRecoveryPoint writes a row every 100 ms; at a random moment
// the server is killed (after a warm-up of one archive timeout: SIGQUIT: an immediate shutdown, nothing more
// archived), the archive restored to its end into a new instance, and the
// recovery point is the time from the loss back to the newest restored
// row's insert. The server then restarts (crash recovery) for the next run.
func BenchmarkRecoveryPoint(b *testing.B) {
	runs := 10
	if v := os.Getenv("RECOVERY_POINT_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("RECOVERY_POINT_RUNS=%q: want a positive number", v)
		}
		runs = n
	}
	p := requirePostgres(b)
	agent := agentBinary(b, p.user)
	env := s3Env(b, "orders")
	src := withS3Keys(newSecret("orders", "orders"), env)
	// The default archive timeout: what a Database gets without setting it.
	primary := archivingPrimary(b, p, newDatabase("orders", databasev1.PostgreSQL, "15", withS3Archive(env, "")), src, agent)
	primary.mustApp(b, "CREATE TABLE rows (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
	takeBaseBackup(b, primary, agent)

	var points []time.Duration
	next := 1
	for run := 1; run <= runs; run++ {
		// In a pod the agent watches the server every second and closes a
		// segment archive_timeout left open too long (agent.Postgres).
		stopObserver := observeLikeTheAgent(b, primary)
		w := startPacedWriterFrom(b, primary.port, src, 100*time.Millisecond, next)
		// Writes for one whole archive-timeout cycle (30 s) first, as on a
		// server that has been running; then the loss, at a moment uniform
		// over the next cycle.
		time.Sleep(35*time.Second + rand.N(30*time.Second))
		archiver, _ := primary.asSuperuser(b, "SELECT last_archived_wal, now() - last_archived_time, failed_count, pg_walfile_name(pg_current_wal_lsn()) FROM pg_stat_archiver")
		lossAt := time.Now()
		primary.srv.stopSignal = syscall.SIGQUIT
		primary.stop()
		stopObserver()
		acked := w.stop()
		if len(acked) > 0 {
			next = acked[len(acked)-1] + 1000
		}

		in, out, err := restoredInstance(b, p, fmt.Sprintf("rp%d", run), newSecret(fmt.Sprintf("rp%d", run), "rp"), env, agent, "")
		if err != nil {
			b.Fatalf("run %d: restore: %v\n%s", run, err, out)
		}
		in.start(b)
		newest := in.mustApp(b, "SELECT to_char(max(at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM rows")
		in.stop()
		at, err := time.Parse(time.RFC3339Nano, newest)
		if err != nil {
			b.Fatalf("run %d: newest row %q: %v", run, newest, err)
		}
		rp := lossAt.Sub(at)
		points = append(points, rp)
		b.Logf("run %d: lost %s after the newest restorable row (%d rows acknowledged this run; archiver at the loss: %s)", run, rp.Round(100*time.Millisecond), len(acked), archiver)

		primary.start(b)
	}
	p50, p95 := durationPercentiles(points)
	b.ReportMetric(p50.Seconds(), "rp-p50-s")
	b.ReportMetric(p95.Seconds(), "rp-p95-s")
	b.Logf("recovery point over %d losses, archive timeout 30s (the default): p50 %s, p95 %s, max %s (target p95 <= 60s)",
		len(points), p50.Round(100*time.Millisecond), p95.Round(100*time.Millisecond), points[len(points)-1].Round(100*time.Millisecond))
	if p95 > time.Minute {
		b.Errorf("recovery point p95 %s is above the 60 s target", p95)
	}
}

// BenchmarkBaseBackupThroughput loads BENCH_ARCHIVE_MB (default 400) MiB
// of table data, then times plain pg_basebackup into a local tar and the
// agent's base backup into S3 (the rendered backup container, retention
// included), then a plain tar extract of the local tar and the agent's
// restore preparation from S3 (download, checksum, extract; the WAL replay
// and promotion that follow are the same for both and not timed).
func BenchmarkBaseBackupThroughput(b *testing.B) {
	mb := 400
	if v := os.Getenv("BENCH_ARCHIVE_MB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("BENCH_ARCHIVE_MB=%q: want a positive number", v)
		}
		mb = n
	}
	p := requirePostgres(b)
	agent := agentBinary(b, p.user)
	env := s3Env(b, "orders")
	src := withS3Keys(newSecret("orders", "orders"), env)
	primary := archivingPrimary(b, p, newDatabase("orders", databasev1.PostgreSQL, "15", withS3Archive(env, "")), src, agent)
	// About 1 KiB per row of incompressible-looking text.
	rows := mb * 1024
	primary.mustApp(b, "CREATE TABLE big (id int, pad text)")
	for from := 1; from <= rows; from += 32 << 10 {
		primary.mustApp(b, fmt.Sprintf("INSERT INTO big SELECT g, string_agg(md5(g::text || '-' || i::text), '') FROM generate_series(%d, %d) g, generate_series(1, 30) i GROUP BY g",
			from, min(from+32<<10-1, rows)))
	}
	switchAndWaitArchived(b, primary)

	c := primary.r.backupContainer(b)
	pgEnv := containerEnv(b, c, primary.secret, primary.pod, map[string]string{"PGHOST": "127.0.0.1", "PGPORT": fmt.Sprint(primary.port), "PATH": p.path()})
	plainDir := workDir(b, p.user)
	start := time.Now()
	if out, err := run(b, 10*time.Minute, p.user, pgEnv, "", filepath.Join(p.bin, "pg_basebackup"),
		"--pgdata="+plainDir, "--format=tar", "--wal-method=none", "--checkpoint=fast", "--no-password"); err != nil {
		b.Fatalf("pg_basebackup: %v\n%s", err, out)
	}
	plainBackup := time.Since(start)
	info, err := os.Stat(filepath.Join(plainDir, "base.tar"))
	if err != nil {
		b.Fatal(err)
	}
	size := info.Size()

	start = time.Now()
	takeBaseBackup(b, primary, agent)
	oursBackup := time.Since(start)

	extractDir := filepath.Join(workDir(b, p.user), "pgdata")
	start = time.Now()
	if out, err := run(b, 10*time.Minute, p.user, nil, "", "/bin/sh", "-c", `mkdir -m 0700 "$1" && tar -xf "$2" -C "$1"`, "sh", extractDir, filepath.Join(plainDir, "base.tar")); err != nil {
		b.Fatalf("tar: %v\n%s", err, out)
	}
	plainRestore := time.Since(start)

	a := archive.New(testStore(b, env), "orders")
	restoreDir := filepath.Join(workDir(b, p.user), "pgdata")
	start = time.Now()
	if _, err := a.PrepareRestore(context.Background(), restoreDir, "false", archive.Target{}); err != nil {
		b.Fatalf("prepare restore: %v", err)
	}
	oursRestore := time.Since(start)

	// The store's own speed on this machine: the plain tar uploaded and
	// read back with the same client and nothing else (no pg_basebackup,
	// no extraction), the bound for both of ours.
	store := testStore(b, env)
	f, err := os.Open(filepath.Join(plainDir, "base.tar"))
	if err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	rawInfo, err := store.PutStream(context.Background(), "raw/base.tar", f, 0)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	rawUpload := time.Since(start)
	start = time.Now()
	r := store.OpenParallel(context.Background(), "raw/base.tar", rawInfo.Size, 0, 0)
	if _, err := io.Copy(io.Discard, objectstore.VerifyingReader(r, rawInfo)); err != nil {
		b.Fatal(err)
	}
	r.Close()
	rawDownload := time.Since(start)

	// The restore check of the same archive: the rendered container's
	// command, with a local scratch directory.
	checkDB := newDatabase("orders", databasev1.PostgreSQL, "15", withS3Archive(env, ""), func(db *databasev1.Database) {
		db.Spec.Backup.RestoreCheck = &databasev1.RestoreCheckSpec{Schedule: "0 6 * * *"}
	})
	cc := renderDB(b, checkDB).restoreCheckContainer(b)
	scratch := workDir(b, p.user)
	ce := containerEnv(b, cc, src, "orders-restore-check-bench", map[string]string{"PGDATA": filepath.Join(scratch, "pgdata"), "PATH": p.path()})
	termination := filepath.Join(scratch, "termination-log")
	writeFile(b, termination, "", 0o666)
	start = time.Now()
	if out, err := runAgent(b, p, agent, ce, 10*time.Minute, "restore-check", "--termination-log="+termination); err != nil {
		b.Fatalf("restore check: %v\n%s", err, out)
	}
	check := time.Since(start)
	b.ReportMetric(check.Seconds(), "restore-check-s")
	b.Logf("restore check of the %d MiB base backup and its WAL (download, recovery, query, removal): %s", size>>20, check.Round(10*time.Millisecond))

	rate := func(d time.Duration) float64 { return float64(size) / (1 << 20) / d.Seconds() }
	b.ReportMetric(rate(oursBackup)/rate(rawUpload), "backup-vs-store-ratio")
	b.ReportMetric(rate(oursRestore)/rate(rawDownload), "restore-vs-store-ratio")
	b.Logf("the store alone (SeaweedFS on this machine): upload %s (%.0f MiB/s), download %s (%.0f MiB/s); the agent's backup at %.2f and restore at %.2f of it",
		rawUpload.Round(10*time.Millisecond), rate(rawUpload), rawDownload.Round(10*time.Millisecond), rate(rawDownload),
		rate(oursBackup)/rate(rawUpload), rate(oursRestore)/rate(rawDownload))
	b.ReportMetric(rate(oursBackup)/rate(plainBackup), "backup-ratio")
	b.ReportMetric(rate(oursRestore)/rate(plainRestore), "restore-ratio")
	b.Logf("base backup of %d MiB: pg_basebackup to a local tar %s (%.0f MiB/s), agent to S3 %s (%.0f MiB/s): ratio %.2f (target >= 0.8)",
		size>>20, plainBackup.Round(10*time.Millisecond), rate(plainBackup), oursBackup.Round(10*time.Millisecond), rate(oursBackup), rate(oursBackup)/rate(plainBackup))
	b.Logf("restore of %d MiB: tar extract %s (%.0f MiB/s), agent from S3 %s (%.0f MiB/s): ratio %.2f (target >= 0.8)",
		size>>20, plainRestore.Round(10*time.Millisecond), rate(plainRestore), oursRestore.Round(10*time.Millisecond), rate(oursRestore), rate(oursRestore)/rate(plainRestore))
}

// observeLikeTheAgent runs the agent's PostgreSQL observation of in every
// second, with the rendered agent flags, until stop is called.
func observeLikeTheAgent(t testing.TB, in *pgInstance) (stop func()) {
	t.Helper()
	flags, _, ok := agentCommand(in.r.database(t).Command)
	if !ok {
		t.Fatal("the database container does not run the agent")
	}
	timeout, err := time.ParseDuration(flags["archive-timeout"])
	if err != nil {
		t.Fatalf("the rendered --archive-timeout %q: %v", flags["archive-timeout"], err)
	}
	engine := agent.Postgres{PSQL: filepath.Join(in.p.bin, "psql"), Password: in.secret["root-password"],
		Env: []string{"PGHOST=127.0.0.1", "PGPORT=" + strconv.Itoa(in.port)}, ArchiveTimeout: timeout, Segments: &agent.SegmentClock{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			_, _ = engine.Observe(ctx)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	return func() { cancel(); <-done }
}

// durationPercentiles sorts ds and returns its 50th and 95th percentiles
// (nearest rank).
func durationPercentiles(ds []time.Duration) (p50, p95 time.Duration) {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	rank := func(q float64) time.Duration {
		i := int(float64(len(ds))*q+0.999999) - 1
		if i < 0 {
			i = 0
		}
		return ds[i]
	}
	return rank(0.5), rank(0.95)
}
