package realpods

import (
	"context"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/archive"
	"github.com/example/database-operator/objectstore"
	"github.com/example/database-operator/render"
)

// s3Target is the tests' S3 server as the pods reach it: make
// test-e2e-real starts a SeaweedFS on the host's address (the pods' traffic
// to it never leaves the machine) and exports its endpoint and keys.
type s3Target struct {
	endpoint, accessKey, secretKey, bucket, path string
}

func s3ForPods(t *testing.T, ns string) s3Target {
	t.Helper()
	s := s3Target{endpoint: os.Getenv("S3_TEST_ENDPOINT"), accessKey: os.Getenv("S3_TEST_ACCESS_KEY_ID"),
		secretKey: os.Getenv("S3_TEST_SECRET_ACCESS_KEY"), bucket: "realpods", path: ns}
	if s.endpoint == "" || s.accessKey == "" {
		t.Fatal("S3_TEST_ENDPOINT and S3_TEST_ACCESS_KEY_ID are unset: run the suite with make test-e2e-real (it starts SeaweedFS for the pods)")
	}
	if err := s.store(t, s.path).CreateBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "s3"}, Data: map[string][]byte{
		render.S3AccessKeyIDKey: []byte(s.accessKey), render.S3SecretAccessKeyKey: []byte(s.secretKey)}}
	NewWithT(t).Expect(k8s.Create(context.Background(), secret)).To(Succeed())
	return s
}

func (s s3Target) store(t *testing.T, prefix string) *objectstore.Store {
	t.Helper()
	st, err := objectstore.New(objectstore.Config{Endpoint: s.endpoint, Bucket: s.bucket, Prefix: prefix, AccessKeyID: s.accessKey, SecretAccessKey: s.secretKey})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (s s3Target) spec(path string) *databasev1.ObjectStoreSpec {
	return &databasev1.ObjectStoreSpec{Endpoint: s.endpoint, Bucket: s.bucket, Path: path, CredentialsSecret: "s3"}
}

// archivingPostgres is a PostgreSQL 17 Database with two pods that archives
// to s, with the default archive timeout.
func archivingPostgres(ns, name string, s s3Target) *databasev1.Database {
	db := developmentPostgres(ns, name, 2)
	db.Spec.Backup = &databasev1.BackupSpec{Enabled: true, Schedule: "0 2 * * *", Retention: "7d", S3: s.spec(s.path)}
	return db
}

// restoredPostgres restores the archive of from in s (under path) to
// target ("" for its end) into a single-pod Database that does not archive.
func restoredPostgres(ns, name, from, target string, s s3Target, path string) *databasev1.Database {
	db := developmentPostgres(ns, name, 1)
	db.Spec.Restore = &databasev1.RestoreSpec{FromDatabase: from, PointInTime: &databasev1.PointInTimeSpec{TargetTime: target, S3: s.spec(path)}}
	return db
}

// TestPostgresArchiveAndPointInTimeRecovery: a two-pod PostgreSQL archives
// to S3 while a client writes a row every 100 ms. A base backup runs from
// its CronJob; the primary's node is lost and the replica promoted (a new
// timeline), which goes on archiving. Then:
//   - a restore to a moment T holds every row acknowledged before T and
//     none whose write began after T;
//   - the Database and its volumes are deleted while the writes go on, and
//     a restore to the end of its archive loses only rows acknowledged
//     within the archive timeout of the loss (the measured recovery point);
//   - a copy of the archive missing a segment makes the restore fail with
//     the segment's name in Restored and Degraded, not silently stop short.
func TestPostgresArchiveAndPointInTimeRecovery(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "archive")
	s := s3ForPods(t, ns)
	const src = "orders"
	createDatabase(t, archivingPostgres(ns, src, s))
	waitDatabaseReady(t, ns, src, createTimeout)
	settle(t, ns, src)
	c := newClient(t, ns, src, false)
	_, err := c.viaURI("CREATE TABLE ticks (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())")
	g.Expect(err).NotTo(HaveOccurred())
	w := startWriter(t, ns, src)

	backup := runBaseBackup(t, ns, src)
	g.Expect(backup.FirstRecoverableTime).NotTo(BeNil())
	waitArchiving(t, ns, src, func(a *databasev1.ArchiveStatus) bool { return a.LastArchivedWAL != "" })

	time.Sleep(10 * time.Second)
	T := time.Now().UTC()
	time.Sleep(10 * time.Second)

	// A failover: the primary's node is lost; the promoted replica, on
	// timeline 2, archives too.
	before := currentPrimary(t, ns, src)
	node := nodeOrdinal(t, ns, before)
	g.Expect(nodeOrdinal(t, ns, src+"-1")).NotTo(Equal(nodeOrdinal(t, ns, src+"-0")), "the two pods run on two nodes")
	lost := time.Now()
	stopNode(t, ns, before)
	gap := w.gapAfter(t, lost, 2*time.Minute)
	clusterScript(t, "node-start", node)
	after := settle(t, ns, src)
	measured(t, "archive: the node of primary %s lost, %s promoted, first write after %s", before, after, gap.Round(100*time.Millisecond))
	g.Expect(after).NotTo(Equal(before))
	a := waitArchiving(t, ns, src, func(a *databasev1.ArchiveStatus) bool { return strings.HasPrefix(a.LastArchivedWAL, "00000002") })
	measured(t, "archive: the new primary archived %s at %s", a.LastArchivedWAL, a.LastArchivedTime.Format(time.RFC3339))
	// Two complete segments on timeline 2, so that one of them is
	// needed by a restore to the end (the missing-segment case).
	NewWithT(t).Eventually(func() []string { return segmentsOn(t, s, src, "00000002") }).
		WithTimeout(3 * time.Minute).WithPolling(2 * time.Second).Should(WithTransform(func(s []string) int { return len(s) }, BeNumerically(">=", 2)))
	time.Sleep(5 * time.Second)

	// The loss: the Database and its volumes go while the writes go on.
	lossAt := time.Now()
	g.Expect(k8s.Delete(context.Background(), &databasev1.Database{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: src}})).To(Succeed())
	g.Expect(k8s.DeleteAllOf(context.Background(), &corev1.PersistentVolumeClaim{}, client.InNamespace(ns),
		client.MatchingLabels{render.LabelInstance: src})).To(Succeed())
	NewWithT(t).Eventually(func() int {
		var pods corev1.PodList
		_ = k8s.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels{render.LabelInstance: src})
		return len(pods.Items)
	}).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(BeZero())
	attempts := w.all()

	t.Run("to a moment", func(t *testing.T) {
		g := NewWithT(t)
		createDatabase(t, restoredPostgres(ns, "at-t", src, T.Format(time.RFC3339Nano), s, s.path))
		db := waitRestored(t, ns, "at-t")
		rows := restoredIDs(t, ns, "at-t")
		var missing, extra []int
		for _, a := range attempts {
			switch {
			case a.ok && a.end.Before(T) && !rows[a.id]:
				missing = append(missing, a.id)
			case a.start.After(T) && rows[a.id]:
				extra = append(extra, a.id)
			}
		}
		g.Expect(missing).To(BeEmpty(), "rows acknowledged before T=%s", T.Format(time.RFC3339Nano))
		g.Expect(extra).To(BeEmpty(), "rows written after T=%s", T.Format(time.RFC3339Nano))
		g.Expect(len(rows)).To(BeNumerically(">", 50))
		measured(t, "archive: restore to T holds %d rows; %s", len(rows), meta.FindStatusCondition(db.Status.Conditions, databasev1.ConditionRestored).Message)
	})

	t.Run("to the end after the loss", func(t *testing.T) {
		g := NewWithT(t)
		createDatabase(t, restoredPostgres(ns, "latest", src, "", s, s.path))
		waitRestored(t, ns, "latest")
		rows := restoredIDs(t, ns, "latest")
		// The recovery point: from the last acknowledged write the
		// restore holds to the loss.
		var newest time.Time
		lost := 0
		for _, a := range attempts {
			if !a.ok || !a.end.Before(lossAt) {
				continue
			}
			if rows[a.id] {
				if a.end.After(newest) {
					newest = a.end
				}
			} else {
				lost++
				g.Expect(lossAt.Sub(a.end)).To(BeNumerically("<=", 30*time.Second+10*time.Second),
					"row %d, acknowledged %s before the loss, is not in the restore", a.id, lossAt.Sub(a.end).Round(time.Millisecond))
			}
		}
		measured(t, "archive: restore to the end after the loss holds %d rows; %d acknowledged rows lost; recovery point %s (archive timeout 30s)",
			len(rows), lost, lossAt.Sub(newest).Round(100*time.Millisecond))
	})

	t.Run("a missing segment is reported", func(t *testing.T) {
		g := NewWithT(t)
		copyPath := s.path + "-gap"
		victim := copyArchiveWithout(t, s, src, copyPath)
		createDatabase(t, restoredPostgres(ns, "gap", src, "", s, copyPath))
		NewWithT(t).Eventually(func(g Gomega) {
			var d databasev1.Database
			g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "gap"}, &d)).To(Succeed())
			c := meta.FindStatusCondition(d.Status.Conditions, databasev1.ConditionRestored)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal("RestoreFailed"), "%+v", c)
			g.Expect(c.Message).To(ContainSubstring("WAL segment " + victim + " is missing"))
			g.Expect(meta.IsStatusConditionTrue(d.Status.Conditions, databasev1.ConditionDegraded)).To(BeTrue())
		}).WithTimeout(3 * time.Minute).WithPolling(2 * time.Second).Should(Succeed())
		g.Expect(k8s.Delete(context.Background(), &databasev1.Database{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gap"}})).To(Succeed())
	})
}

// runBaseBackup runs the backup CronJob now and returns status.archive
// once it reports the backup.
func runBaseBackup(t *testing.T, ns, db string) *databasev1.ArchiveStatus {
	t.Helper()
	job := db + "-backup-now"
	start := time.Now()
	mustKubectl(t, "-n", ns, "create", "job", job, "--from=cronjob/"+render.BackupName(db))
	NewWithT(t).Eventually(func(g Gomega) {
		var j batchv1.Job
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: job}, &j)).To(Succeed())
		for _, c := range j.Status.Conditions {
			g.Expect(c.Type).NotTo(Equal(batchv1.JobFailed), "base backup Job failed: %s\n%s", c.Message, containerLog(ns, "job/"+job, render.BackupContainerName))
		}
		g.Expect(j.Status.Succeeded).To(BeNumerically(">=", 1))
	}).WithTimeout(5 * time.Minute).WithPolling(time.Second).Should(Succeed())
	measured(t, "base backup Job completed %s after create", time.Since(start).Round(time.Second))
	var a *databasev1.ArchiveStatus
	NewWithT(t).Eventually(func(g Gomega) {
		var d databasev1.Database
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: db}, &d)).To(Succeed())
		g.Expect(d.Status.Archive).NotTo(BeNil())
		g.Expect(d.Status.Archive.LastBaseBackup).NotTo(BeEmpty())
		g.Expect(meta.IsStatusConditionTrue(d.Status.Conditions, databasev1.ConditionBackupReady)).To(BeTrue(), "BackupReady: %+v", d.Status.Conditions)
		a = d.Status.Archive
	}).WithTimeout(time.Minute).WithPolling(time.Second).Should(Succeed())
	return a
}

// waitArchiving waits until ContinuousArchiving is True and status.archive
// satisfies ok.
func waitArchiving(t *testing.T, ns, db string, ok func(*databasev1.ArchiveStatus) bool) *databasev1.ArchiveStatus {
	t.Helper()
	var a *databasev1.ArchiveStatus
	NewWithT(t).Eventually(func(g Gomega) {
		var d databasev1.Database
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: db}, &d)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(d.Status.Conditions, databasev1.ConditionContinuousArchiving)).To(BeTrue(), "ContinuousArchiving: %+v", d.Status.Conditions)
		g.Expect(d.Status.Archive).NotTo(BeNil())
		g.Expect(ok(d.Status.Archive)).To(BeTrue(), "status.archive %+v", d.Status.Archive)
		a = d.Status.Archive
	}).WithTimeout(3 * time.Minute).WithPolling(2 * time.Second).Should(Succeed())
	return a
}

// waitRestored waits until a restored Database is Ready with Restored True.
func waitRestored(t *testing.T, ns, name string) *databasev1.Database {
	t.Helper()
	start := time.Now()
	db := waitDatabaseReady(t, ns, name, 5*time.Minute)
	NewWithT(t).Expect(meta.IsStatusConditionTrue(db.Status.Conditions, databasev1.ConditionRestored)).To(BeTrue(), "%+v", db.Status.Conditions)
	measured(t, "archive: Database %s restored and Ready %s after create", name, time.Since(start).Round(time.Second))
	return db
}

// restoredIDs reads the ids in ticks from a restored Database's pod 0.
func restoredIDs(t *testing.T, ns, db string) map[int]bool {
	t.Helper()
	out, err := superuserSQLIn(ns, db+"-0", "$POSTGRES_DB", "SELECT string_agg(id::text, ',' ORDER BY id) FROM ticks")
	NewWithT(t).Expect(err).NotTo(HaveOccurred(), out)
	rows := map[int]bool{}
	for _, f := range strings.Split(out, ",") {
		if f == "" {
			continue
		}
		id, err := strconv.Atoi(f)
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
		rows[id] = true
	}
	return rows
}

// segmentsOn lists the WAL segments of timeline tli (8 hex digits) in
// db's archive, in order.
func segmentsOn(t *testing.T, s s3Target, db, tli string) []string {
	t.Helper()
	wal, err := archive.New(s.store(t, s.path), db).ListWAL(context.Background())
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	var out []string
	for _, w := range wal {
		if _, _, ok := archive.ParseSegmentName(w.Name); ok && strings.HasPrefix(w.Name, tli) {
			out = append(out, w.Name)
		}
	}
	sort.Strings(out)
	return out
}

// copyArchiveWithout copies db's archive from s.path to path, leaving out
// the first WAL segment of timeline 2 (a restore to the end replays it on
// its way to the later ones), and returns its name.
func copyArchiveWithout(t *testing.T, s s3Target, db, path string) string {
	t.Helper()
	ctx := context.Background()
	from, to := s.store(t, s.path), s.store(t, path)
	segments := segmentsOn(t, s, db, "00000002")
	NewWithT(t).Expect(len(segments)).To(BeNumerically(">=", 2), "segments on timeline 2")
	victim := segments[0]
	objects, err := from.List(ctx, db+"/")
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	for _, o := range objects {
		if strings.Contains(o.Key, victim) {
			continue
		}
		data, err := from.Get(ctx, o.Key)
		NewWithT(t).Expect(err).NotTo(HaveOccurred(), o.Key)
		NewWithT(t).Expect(to.Put(ctx, o.Key, data)).To(Succeed(), o.Key)
	}
	t.Logf("copied the archive of %s to %s without %s", db, path, victim)
	return victim
}
