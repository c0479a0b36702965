package enginetest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/archive"
	"github.com/example/database-operator/instance"
	"github.com/example/database-operator/objectstore"
	"github.com/example/database-operator/render"
)

// s3Env is the archive environment of a fresh prefix on the S3 server the
// Makefile started (S3_TEST_*), with the bucket created.
func s3Env(t testing.TB, database string) map[string]string {
	t.Helper()
	endpoint := os.Getenv("S3_TEST_ENDPOINT")
	if endpoint == "" {
		t.Fatal("S3_TEST_ENDPOINT is unset: run make test-engines (it starts SeaweedFS), or make s3-up and load its env")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	env := map[string]string{
		archive.EnvEndpoint: endpoint, archive.EnvBucket: "enginetest", archive.EnvPath: fmt.Sprintf("run-%x", b),
		archive.EnvAccessKeyID: os.Getenv("S3_TEST_ACCESS_KEY_ID"), archive.EnvSecretKey: os.Getenv("S3_TEST_SECRET_ACCESS_KEY"),
		archive.EnvDatabase: database, archive.EnvUID: "uid-" + database, archive.EnvNamespace: "enginetest",
	}
	store := testStore(t, env)
	if err := store.CreateBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	return env
}

func testStore(t testing.TB, env map[string]string) *objectstore.Store {
	t.Helper()
	s, err := objectstore.New(objectstore.Config{Endpoint: env[archive.EnvEndpoint], Bucket: env[archive.EnvBucket], Prefix: env[archive.EnvPath],
		AccessKeyID: env[archive.EnvAccessKeyID], SecretAccessKey: env[archive.EnvSecretKey]})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// restoreEnv is env's archive as a restore's source (RESTORE_S3_*).
func restoreEnv(env map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range env {
		if strings.HasPrefix(k, "ARCHIVE_") {
			out[archive.RestorePrefix+strings.TrimPrefix(k, "ARCHIVE_")] = v
		}
	}
	return out
}

var (
	agentOnce sync.Once
	agentPath string
	agentErr  error
)

// agentBinary is the database-agent binary (ENGINETEST_AGENT, which the
// Makefile builds, or built here), copied where owner can run it.
func agentBinary(t testing.TB, owner osUser) string {
	t.Helper()
	agentOnce.Do(func() {
		agentPath = os.Getenv("ENGINETEST_AGENT")
		if agentPath != "" {
			return
		}
		dir, err := os.MkdirTemp("", "enginetest-agent-")
		if err != nil {
			agentErr = err
			return
		}
		agentPath = filepath.Join(dir, "database-agent")
		out, err := exec.Command("go", "build", "-o", agentPath, "../cmd/database-agent").CombinedOutput()
		if err != nil {
			agentErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if agentErr != nil {
		t.Fatal(agentErr)
	}
	dir := mkdir(t, filepath.Join(workDir(t, owner), "agent"), owner, 0o755)
	data, err := os.ReadFile(agentPath)
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(dir, "database-agent")
	writeFile(t, dest, string(data), 0o755)
	return dest
}

// withS3Archive archives to env's store every archiveTimeout, with the
// S3 keys in the Secret s3-keys (which the test's secret map holds too).
func withS3Archive(env map[string]string, archiveTimeout string) dbOption {
	return func(db *databasev1.Database) {
		db.UID = types.UID("uid-" + db.Name)
		db.Spec.Backup = &databasev1.BackupSpec{Enabled: true, Schedule: "0 2 * * *", Retention: "7d", ArchiveTimeout: archiveTimeout,
			S3: &databasev1.ObjectStoreSpec{Endpoint: env[archive.EnvEndpoint], Bucket: env[archive.EnvBucket], Path: env[archive.EnvPath], CredentialsSecret: "s3-keys"}}
	}
}

// withS3Keys adds the S3 keys of env to a secret map, under the keys the
// rendered environment refers to.
func withS3Keys(s secret, env map[string]string) secret {
	s[render.S3AccessKeyIDKey], s[render.S3SecretAccessKeyKey] = env[archive.EnvAccessKeyID], env[archive.EnvSecretKey]
	return s
}

// archivingPrimary is pod 0 of db (withS3Archive), initialised and started
// with the rendered configuration and environment: its archive_command is
// the rendered one with the agent's path mapped to the local copy.
// track_commit_timestamp is added so that the test can tell which rows
// were committed by a moment.
func archivingPrimary(t testing.TB, p pg, db *databasev1.Database, s secret, agent string) *pgInstance {
	t.Helper()
	r := renderDB(t, db)
	in := newPGInstance(t, p, r, s, db.Name+"-0")
	conf, err := os.ReadFile(in.cfg.confFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "archive_command = '/opt/database-operator/database-agent wal-push %p'") {
		t.Fatalf("the rendered postgresql.conf does not archive with the agent:\n%s", conf)
	}
	writeFile(t, in.cfg.confFile, strings.ReplaceAll(string(conf), "/opt/database-operator/database-agent", agent), 0o644)
	in.cfg.containerArgs = append(in.cfg.containerArgs, "-c", "track_commit_timestamp=on")
	in.mustInit(t, nil)
	in.serverEnv = map[string]string{}
	for k, v := range in.env(t, nil) {
		if strings.HasPrefix(k, "ARCHIVE_") || k == "APP_USER" || k == "POSTGRES_DB" || k == "PATH" {
			in.serverEnv[k] = v
		}
	}
	in.start(t)
	return in
}

// pacedWriter inserts one row every interval and remembers the ids whose
// commit was acknowledged.
type pacedWriter struct {
	mu     sync.Mutex
	acked  []int
	cancel context.CancelFunc
	done   chan struct{}
}

func startPacedWriter(t testing.TB, port int, s secret, interval time.Duration) *pacedWriter {
	t.Helper()
	return startPacedWriterFrom(t, port, s, interval, 1)
}

// startPacedWriterFrom is startPacedWriter with ids from first on.
func startPacedWriterFrom(t testing.TB, port int, s secret, interval time.Duration, first int) *pacedWriter {
	t.Helper()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s sslmode=disable connect_timeout=2", port, s["database"]))
	if err != nil {
		t.Fatal(err)
	}
	cfg.User, cfg.Password = s["username"], s["password"]
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &pacedWriter{cancel: cancel, done: make(chan struct{})}
	t.Cleanup(func() { w.stop() })
	go func() {
		defer close(w.done)
		defer conn.Close(context.Background())
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for id := first; ; id++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if _, err := conn.Exec(ctx, "INSERT INTO rows (id) VALUES ($1)", id); err != nil {
				return
			}
			w.mu.Lock()
			w.acked = append(w.acked, id)
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *pacedWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

func (w *pacedWriter) waitMore(t testing.TB, n int) {
	t.Helper()
	waitForMore(t, w.count, n)
}

// waitForMore waits up to a minute for count to grow by n (a writer's
// acknowledged rows).
func waitForMore(t testing.TB, count func() int, n int) {
	t.Helper()
	want := count() + n
	deadline := time.Now().Add(time.Minute)
	for count() < want {
		if time.Now().After(deadline) {
			t.Fatalf("no %d more rows within a minute", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (w *pacedWriter) stop() []int {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int(nil), w.acked...)
}

// ids parses one id per line.
func ids(t testing.TB, out string) []int {
	t.Helper()
	var got []int
	for _, f := range strings.Fields(out) {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("not an id: %q", f)
		}
		got = append(got, n)
	}
	sort.Ints(got)
	return got
}

// runAgent runs the agent as the postgres user with env.
func runAgent(t testing.TB, p pg, agent string, env map[string]string, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	full := map[string]string{"PATH": p.path()}
	for k, v := range env {
		full[k] = v
	}
	return run(t, timeout, p.user, full, "", agent, args...)
}

// takeBaseBackup runs the rendered backup CronJob's container against in:
// its command with the local agent and termination-log file, its
// environment with the primary's Service mapped to in's port.
func takeBaseBackup(t testing.TB, in *pgInstance, agent string) {
	t.Helper()
	c := in.r.backupContainer(t)
	if len(c.Command) < 2 || c.Command[0] != "/opt/database-operator/database-agent" || c.Command[1] != "base-backup" {
		t.Fatalf("the backup container runs %q", c.Command)
	}
	termination := filepath.Join(in.dir, "backup-termination-log")
	writeFile(t, termination, "", 0o666)
	var args []string
	for _, a := range c.Command[1:] {
		if strings.HasPrefix(a, "--termination-log=") {
			a = "--termination-log=" + termination
		}
		args = append(args, a)
	}
	e := containerEnv(t, c, in.secret, in.pod, map[string]string{"PGHOST": "127.0.0.1", "PGPORT": fmt.Sprint(in.port), "PATH": in.p.path()})
	out, err := runAgent(t, in.p, agent, e, 3*time.Minute, args...)
	if err != nil {
		t.Fatalf("base-backup: %v\n%s", err, out)
	}
	result, _ := os.ReadFile(termination)
	report, err := instance.ParseBackupReport(string(result))
	if err != nil || report.ID == "" || report.FirstRecoverable.IsZero() || report.Error != "" {
		t.Fatalf("base-backup's termination message is no successful report (%v): %q", err, result)
	}
	t.Logf("base-backup: %s", strings.TrimSpace(out))
}

// switchAndWaitArchived closes the current WAL segment and waits until the
// archiver has pushed it: everything committed before is in the archive.
func switchAndWaitArchived(t testing.TB, in *pgInstance) {
	t.Helper()
	seg, err := in.asSuperuser(t, "SELECT pg_walfile_name(pg_switch_wal())")
	if err != nil {
		t.Fatalf("pg_switch_wal: %v %s", err, seg)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := in.asSuperuser(t, "SELECT coalesce(last_archived_wal, '') >= '"+seg+"', failed_count, coalesce(last_failed_wal, '') FROM pg_stat_archiver")
		if err == nil && strings.HasPrefix(out, "t|") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("segment %s not archived within 60s: %s %v\n%s", seg, out, err, in.srv.logText())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// restoredInstance is pod 0 of a new Database name that restores the
// archive in env (its Database "orders") to target ("" for latest): the
// rendered restore init container runs, with the local agent, the local
// data directory and a local termination-log file. It returns the pod, not
// started, with the init container's output and termination message.
func restoredInstance(t testing.TB, p pg, name string, s secret, env map[string]string, agent, target string) (*pgInstance, string, error) {
	t.Helper()
	db := newDatabase(name, databasev1.PostgreSQL, "15", func(db *databasev1.Database) {
		db.Spec.Restore = &databasev1.RestoreSpec{FromDatabase: "orders", PointInTime: &databasev1.PointInTimeSpec{TargetTime: target,
			S3: &databasev1.ObjectStoreSpec{Endpoint: env[archive.EnvEndpoint], Bucket: env[archive.EnvBucket], Path: env[archive.EnvPath], CredentialsSecret: "s3-keys"}}}
	})
	r := renderDB(t, db)
	in := newPGInstance(t, p, r, withS3Keys(s, env), name+"-0")
	c := r.initContainer(t, render.RestoreInitContainerName)
	if len(c.Command) != 3 || c.Command[0] != "/opt/database-operator/database-agent" || c.Command[1] != "restore" || c.Command[2] != "--termination-log=/dev/termination-log" {
		t.Fatalf("the restore init container runs %q", c.Command)
	}
	termination := filepath.Join(in.dir, "termination-log")
	writeFile(t, termination, "", 0o666)
	e := containerEnv(t, c, in.secret, in.pod, map[string]string{"PGDATA": in.pgdata, "PATH": p.path()})
	out, err := runAgent(t, p, agent, e, 5*time.Minute, "restore", "--termination-log="+termination, "--timeout=3m")
	msg, _ := os.ReadFile(termination)
	return in, out + string(msg), err
}

// TestPostgresPointInTimeRecovery writes a row every 100 ms, records a
// moment T, writes more, and restores the archive twice into new
// Databases: to T, which must hold exactly the rows whose commits were at
// or before T (the source's own commit timestamps say which), and to the
// end of the archive, which must hold every row committed before the last
// archived segment. The restored Databases answer to their own users and
// passwords, not the source's.
func TestPostgresPointInTimeRecovery(t *testing.T) {
	g := NewWithT(t)
	p := requirePostgres(t)
	agent := agentBinary(t, p.user)
	env := s3Env(t, "orders")
	src := withS3Keys(newSecret("orders", "orders"), env)
	primary := archivingPrimary(t, p, newDatabase("orders", databasev1.PostgreSQL, "15", withS3Archive(env, "60s")), src, agent)
	primary.mustApp(t, "CREATE TABLE rows (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")

	w := startPacedWriter(t, primary.port, src, 100*time.Millisecond)
	w.waitMore(t, 10)
	takeBaseBackup(t, primary, agent)
	w.waitMore(t, 20)
	T, err := primary.asSuperuser(t, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
	g.Expect(err).NotTo(HaveOccurred())
	w.waitMore(t, 20)
	all := w.stop()
	switchAndWaitArchived(t, primary)

	atT := ids(t, primary.mustApp(t, "SELECT id FROM rows WHERE pg_xact_commit_timestamp(xmin) <= '"+T+"'"))
	g.Expect(len(atT)).To(BeNumerically(">", 20))
	g.Expect(len(atT)).To(BeNumerically("<", len(all)), "rows were committed after T")
	t.Logf("T=%s: %d of %d rows committed by then", T, len(atT), len(all))

	t.Run("to a moment", func(t *testing.T) {
		g := NewWithT(t)
		s := newSecret("restored", "restored_app")
		s["root-password"] = "another superuser password"
		in, out, err := restoredInstance(t, p, "restored", s, env, agent, T)
		g.Expect(err).NotTo(HaveOccurred(), out)
		in.start(t)
		defer in.stop()
		g.Expect(ids(t, in.mustApp(t, "SELECT id FROM rows"))).To(Equal(atT))
		// The source's credentials open nothing in the copy.
		_, err = in.query(t, src["username"], src["password"], s["database"], "SELECT 1")
		g.Expect(err).To(HaveOccurred())
		_, err = in.query(t, "postgres", src["root-password"], "postgres", "SELECT 1")
		g.Expect(err).To(HaveOccurred())
		// Recovery is over and its settings are gone.
		g.Expect(in.mustApp(t, "SELECT pg_is_in_recovery()")).To(Equal("f"))
		conf, err := os.ReadFile(filepath.Join(in.pgdata, archive.AutoConf))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(string(conf)).NotTo(ContainSubstring("restore_command"))
	})

	t.Run("to the end of the archive", func(t *testing.T) {
		g := NewWithT(t)
		s := newSecret("latest", "latest")
		in, out, err := restoredInstance(t, p, "latest", s, env, agent, "")
		g.Expect(err).NotTo(HaveOccurred(), out)
		in.start(t)
		defer in.stop()
		g.Expect(ids(t, in.mustApp(t, "SELECT id FROM rows"))).To(Equal(all))
	})

	t.Run("restore check", func(t *testing.T) {
		g := NewWithT(t)
		db := newDatabase("orders", databasev1.PostgreSQL, "15", withS3Archive(env, "60s"), func(db *databasev1.Database) {
			db.Spec.Backup.RestoreCheck = &databasev1.RestoreCheckSpec{Schedule: "0 6 * * *", Query: "SELECT count(*) FROM rows"}
		})
		c := renderDB(t, db).restoreCheckContainer(t)
		g.Expect(c.Command).To(Equal([]string{"/opt/database-operator/database-agent", "restore-check", "--engine=postgresql", "--termination-log=/dev/termination-log"}))
		check := func(query string) (instance.RestoreCheckReport, string, error) {
			scratch := workDir(t, p.user)
			termination := filepath.Join(scratch, "termination-log")
			writeFile(t, termination, "", 0o666)
			e := containerEnv(t, c, src, "orders-restore-check-abcde", map[string]string{"PGDATA": filepath.Join(scratch, "pgdata"), "PATH": p.path()})
			if query != "" {
				e["CHECK_QUERY"] = query
			}
			out, err := runAgent(t, p, agent, e, 5*time.Minute, "restore-check", "--engine=postgresql", "--termination-log="+termination)
			msg, _ := os.ReadFile(termination)
			report, perr := instance.ParseRestoreCheckReport(string(msg))
			g.Expect(perr).NotTo(HaveOccurred(), out)
			_, statErr := os.Stat(filepath.Join(scratch, "pgdata"))
			g.Expect(os.IsNotExist(statErr)).To(BeTrue(), "the restored copy is removed")
			return report, out, err
		}
		report, out, err := check("")
		g.Expect(err).NotTo(HaveOccurred(), out)
		g.Expect(report.Error).To(BeEmpty())
		g.Expect(report.Answer).To(Equal(fmt.Sprint(len(all))), "the rendered query counts every archived row")
		g.Expect(report.Backup).NotTo(BeEmpty())
		t.Logf("restore check: base backup %s, %d bytes, in %s: %s", report.Backup, report.Size, report.EndTime.Sub(report.StartTime).Round(time.Millisecond), report.Answer)

		report, _, err = check("SELECT * FROM no_such_table")
		g.Expect(err).To(HaveOccurred())
		g.Expect(report.Error).To(And(ContainSubstring("check query failed"), ContainSubstring("no_such_table")))
	})

	t.Run("a missing segment is reported", func(t *testing.T) {
		g := NewWithT(t)
		a := archive.New(testStore(t, env), "orders")
		wal, err := a.ListWAL(context.Background())
		g.Expect(err).NotTo(HaveOccurred())
		backups, err := a.ListBackups(context.Background())
		g.Expect(err).NotTo(HaveOccurred())
		_, last, err := a.Chain(context.Background(), backups[len(backups)-1])
		g.Expect(err).NotTo(HaveOccurred())
		// Remove the segment before the last one of the chain, into a copy
		// of the archive, so the other subtests keep theirs.
		copyEnv := copyArchive(t, env, "orders")
		victim := ""
		for _, w := range wal {
			if _, _, ok := archive.ParseSegmentName(w.Name); ok && w.Name < last && w.Name >= backups[0].StartWAL {
				victim = w.Name
			}
		}
		g.Expect(victim).NotTo(BeEmpty())
		g.Expect(archive.New(testStore(t, copyEnv), "orders").DeleteWAL(context.Background(), victim)).To(Succeed())

		in, out, err := restoredInstance(t, p, "gap", newSecret("gap", "gap"), copyEnv, agent, "")
		g.Expect(err).To(HaveOccurred())
		g.Expect(out).To(ContainSubstring("WAL segment " + victim + " is missing"))
		g.Expect(out).To(ContainSubstring(render.RestoreFailedPrefix), "the reason reaches the termination message")
		_, statErr := os.Stat(in.pgdata)
		g.Expect(os.IsNotExist(statErr)).To(BeTrue(), "no data directory is left behind")
	})

	t.Run("a corrupted segment is reported", func(t *testing.T) {
		g := NewWithT(t)
		copyEnv := copyArchive(t, env, "orders")
		a := archive.New(testStore(t, copyEnv), "orders")
		backups, err := a.ListBackups(context.Background())
		g.Expect(err).NotTo(HaveOccurred())
		// The segment recovery reads first: its content is flipped, its
		// recorded checksum kept.
		corruptSegment(t, copyEnv, "orders/wal/"+backups[0].StartWAL+".gz")
		_, out, err := restoredInstance(t, p, "corrupt", newSecret("corrupt", "corrupt"), copyEnv, agent, "")
		g.Expect(err).To(HaveOccurred())
		g.Expect(out).To(ContainSubstring("does not match its recorded SHA-256"))
	})
}

// copyArchive copies database's archive in env to a fresh prefix and
// returns the environment that names it.
func copyArchive(t testing.TB, env map[string]string, database string) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	for k, v := range env {
		out[k] = v
	}
	out[archive.EnvPath] = env[archive.EnvPath] + "-copy-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	from := testStore(t, env)
	objects, err := from.List(ctx, database+"/")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objects {
		r, err := from.Open(ctx, o.Key)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		_, err = buf.ReadFrom(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		// Through the raw client, so the recorded SHA-256 is copied as is.
		putRaw(t, out, o.Key, buf.Bytes(), headMetadata(t, env, o.Key))
	}
	return out
}

func rawS3(env map[string]string) *s3.Client {
	return s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(env[archive.EnvEndpoint]), UsePathStyle: true,
		Credentials:                credentials.NewStaticCredentialsProvider(env[archive.EnvAccessKeyID], env[archive.EnvSecretKey], ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

func headMetadata(t testing.TB, env map[string]string, key string) map[string]string {
	t.Helper()
	out, err := rawS3(env).HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(env[archive.EnvBucket]), Key: aws.String(env[archive.EnvPath] + "/" + key)})
	if err != nil {
		t.Fatal(err)
	}
	return out.Metadata
}

func putRaw(t testing.TB, env map[string]string, key string, data []byte, md map[string]string) {
	t.Helper()
	_, err := rawS3(env).PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(env[archive.EnvBucket]),
		Key: aws.String(env[archive.EnvPath] + "/" + key), Body: bytes.NewReader(data), Metadata: md})
	if err != nil {
		t.Fatal(err)
	}
}

// corruptSegment flips a byte in the middle of the archived WAL segment
// key and compresses it again, keeping the object's metadata: a store that
// returns other bytes than it was given, in a way the compression does not
// notice. Only the recorded SHA-256 can tell.
func corruptSegment(t testing.TB, env map[string]string, key string) {
	t.Helper()
	r, err := testStore(t, env).Open(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0xff
	var packed bytes.Buffer
	zw := gzip.NewWriter(&packed)
	_, _ = zw.Write(raw)
	_ = zw.Close()
	putRaw(t, env, key, packed.Bytes(), headMetadata(t, env, key))
}
