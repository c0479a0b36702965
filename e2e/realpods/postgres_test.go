package realpods

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

// Bounds of the waits on real pods (initdb, copies, restarts on two shared cores).
const (
	// createTimeout: a new 3-replica Database until Ready (measured: about 40 s).
	createTimeout = 5 * time.Minute
	// replicateWithin: a committed row is on every replica within this (the 5 s).
	replicateWithin = 5 * time.Second
	// recoverTimeout bounds the self-healing waits, generously: the time is
	// measured and printed; the bound only stops a broken suite.
	recoverTimeout = 4 * time.Minute
)

// productionDatabase is the production Database: 3 replicas,
// backup, metrics, logging and TLS; resources sized for this machine
// (production requires limits when resources are given).
func productionDatabase(ns, name, version string) *databasev1.Database {
	return &databasev1.Database{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: databasev1.DatabaseSpec{
			Type:               databasev1.PostgreSQL,
			Version:            version,
			Replicas:           ptr.To[int32](3),
			Storage:            databasev1.StorageSpec{Size: resource.MustParse("1Gi")},
			Environment:        databasev1.Production,
			DeletionProtection: ptr.To(false), // the test deletes it
			Backup:             &databasev1.BackupSpec{Enabled: true, Schedule: "0 2 * * *", Retention: "7d"},
			Monitoring:         &databasev1.MonitoringSpec{Enabled: true, Metrics: true, Logging: true},
			TLS:                &databasev1.TLSSpec{Enabled: true},
			Resources: &corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")},
			},
		},
	}
}

// TestPostgresProduction runs the production Database on PostgreSQL 15 and
// 17, side by side: serving through its Services with verify-full TLS,
// streaming to both standbys, exporting metrics, backing up, restoring into
// a new Database. Its primary's failures are TestPostgresFailover's.
func TestPostgresProduction(t *testing.T) {
	for _, version := range []string{"15", "17"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			testPostgresProduction(t, version)
		})
	}
}

func testPostgresProduction(t *testing.T, version string) {
	ns := newNamespace(t, "pg"+version)
	const name = "orders"
	start := time.Now()
	createDatabase(t, productionDatabase(ns, name, version))
	waitDatabaseReady(t, ns, name, createTimeout)
	measured(t, "PostgreSQL %s production (3 replicas, TLS, metrics, backup): Ready %s after create", version, time.Since(start).Round(time.Second))
	pods := []string{name + "-0", name + "-1", name + "-2"}
	waitPodsReady(t, ns, time.Minute, pods...)
	nodes := map[string]bool{}
	for _, p := range pods {
		nodes[getPod(t, ns, p).Spec.NodeName] = true
	}
	t.Logf("pods spread over %d nodes", len(nodes))

	c := newClient(t, ns, name, true)

	t.Run("logs no password", func(t *testing.T) {
		// Production logs DDL; the users the initialisation creates carry
		// their passwords in CREATE ROLE.
		var secret corev1.Secret
		NewWithT(t).Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: render.CredentialsSecretName(name)}, &secret)).To(Succeed())
		for _, p := range pods {
			logs := mustKubectl(t, "-n", ns, "logs", p, "-c", render.DatabaseContainerName)
			NewWithT(t).Expect(logs).To(ContainSubstring("database system is ready to accept"), "pod %s's log is read", p)
			for key, value := range secret.Data {
				if strings.Contains(strings.ToLower(key), "password") {
					NewWithT(t).Expect(strings.Contains(logs, string(value))).To(BeFalse(), "pod %s's log holds the %s", p, key)
				}
			}
		}
	})

	t.Run("serves", func(t *testing.T) {
		g := NewWithT(t)
		out, err := c.viaURI("SELECT current_setting('server_version_num')::int / 10000, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(out).To(Equal(version+"|t"), "the server's major version, and the connection is TLS (verify-full)")
		_, err = c.viaURI("CREATE TABLE items (id int PRIMARY KEY, note text NOT NULL)")
		g.Expect(err).NotTo(HaveOccurred())
		insertRows(t, c, 1, 100)
		g.Expect(c.viaURI("SELECT count(*) FROM items")).To(Equal("100"))
	})

	t.Run("replicates", func(t *testing.T) {
		_, err := c.viaURI("INSERT INTO items VALUES (1000, 'fresh')")
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
		written := time.Now()
		hosts := []string{render.ReadServiceName(name) + "." + ns + ".svc", podHost(ns, name, 1), podHost(ns, name, 2)}
		for _, host := range hosts {
			NewWithT(t).Eventually(func() (string, error) {
				return c.viaHost(host, "SELECT note FROM items WHERE id = 1000")
			}).WithTimeout(replicateWithin).WithPolling(200*time.Millisecond).Should(Equal("fresh"), "row readable through %s", host)
		}
		measured(t, "PostgreSQL %s: a committed row readable through %s-ro and on both replicas after %s", version, name, time.Since(written).Round(10*time.Millisecond))
		for _, p := range pods[1:] {
			NewWithT(t).Expect(superuserSQL(ns, p, "SELECT pg_is_in_recovery()")).To(Equal("t"), "%s is a standby", p)
		}
		expectStreaming(t, ns, name, pods[1:], time.Minute)
	})

	t.Run("parallel hash join in shared memory", func(t *testing.T) {
		// A parallel hash join keeps its hash table in dynamic shared
		// memory, /dev/shm: with work_mem 64MB (x hash_mem_multiplier 2, x 3
		// processes) it outgrows the runtime's 64 MiB /dev/shm.
		g := NewWithT(t)
		// 2 x 1.5M rows, which the synchronous replica writes too: measured
		// over 30 s with two versions' tests sharing the two cores.
		_, err := c.viaURIWithin(`CREATE TABLE shm_a AS SELECT i AS id, md5(i::text) AS pad FROM generate_series(1, 1500000) i;
CREATE TABLE shm_b AS SELECT * FROM shm_a; ANALYZE shm_a; ANALYZE shm_b`, 3*time.Minute)
		g.Expect(err).NotTo(HaveOccurred())
		const settings = `SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
SET enable_mergejoin = off; SET enable_nestloop = off; SET work_mem = '64MB'; `
		plan, err := c.viaURI(settings + "EXPLAIN (COSTS OFF) SELECT count(*) FROM shm_a JOIN shm_b USING (id)")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(plan).To(ContainSubstring("Parallel Hash Join"), "the query the test is about")
		start := time.Now()
		out, err := c.viaURIWithin(settings+"SELECT count(*) FROM shm_a JOIN shm_b USING (id)", 3*time.Minute)
		g.Expect(err).NotTo(HaveOccurred(), "%s", out)
		g.Expect(out).To(Equal("1500000"))
		measured(t, "PostgreSQL %s: parallel hash join of 2 x 1.5M rows with work_mem 64MB in %s", version, time.Since(start).Round(100*time.Millisecond))
		_, err = c.viaURI("DROP TABLE shm_a, shm_b")
		g.Expect(err).NotTo(HaveOccurred())
	})

	t.Run("metrics", func(t *testing.T) {
		for _, p := range pods {
			pod := getPod(t, ns, p)
			NewWithT(t).Eventually(func() (string, error) {
				return c.httpGet(pod.Status.PodIP, 9187, "/metrics")
			}).WithTimeout(time.Minute).WithPolling(2*time.Second).Should(MatchRegexp(`(?m)^pg_up 1$`), "the exporter of %s", p)
		}
	})

	backup := ""
	t.Run("backup", func(t *testing.T) {
		backup = runBackup(t, ns, name)
	})

	t.Run("restore", func(t *testing.T) {
		if backup == "" {
			t.Fatal("no backup to restore (the backup subtest failed)")
		}
		restored := name + "-restored"
		db := &databasev1.Database{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: restored},
			Spec: databasev1.DatabaseSpec{
				Type: databasev1.PostgreSQL, Version: version, Replicas: ptr.To[int32](1),
				Storage:     databasev1.StorageSpec{Size: resource.MustParse("1Gi")},
				Environment: databasev1.Development,
				Restore:     &databasev1.RestoreSpec{FromDatabase: name, Backup: backup},
			},
		}
		start := time.Now()
		createDatabase(t, db)
		waitDatabaseReady(t, ns, restored, createTimeout)
		measured(t, "PostgreSQL %s: restored Database Ready %s after create", version, time.Since(start).Round(time.Second))
		rc := newClient(t, ns, restored, false)
		g := NewWithT(t)
		g.Expect(rc.viaURI("SELECT count(*), sum(id) FROM items")).To(Equal("101|6050"), "the same rows as the source at backup time")
		g.Expect(rc.viaURI("SELECT tableowner FROM pg_tables WHERE tablename = 'items'")).To(Equal(rc.username(t)), "owned by the new application user")
	})
}

// insertRows writes rows from..to through the uri, one transaction each,
// and fails unless every one is acknowledged.
func insertRows(t *testing.T, c *dbClient, from, to int) {
	t.Helper()
	_, err := c.viaURI(fmt.Sprintf("INSERT INTO items SELECT i, 'row ' || i FROM generate_series(%d, %d) i", from, to))
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
}

// expectStreaming waits until pg_stat_replication on the primary shows each
// standby streaming.
func expectStreaming(t *testing.T, ns, db string, standbys []string, timeout time.Duration) {
	t.Helper()
	NewWithT(t).Eventually(func() (string, error) {
		return superuserSQL(ns, db+"-0", "SELECT string_agg(application_name || '=' || state, ',' ORDER BY application_name) FROM pg_stat_replication")
	}).WithTimeout(timeout).WithPolling(time.Second).Should(Equal(standbyStates(standbys)), "pg_stat_replication on the primary")
}

func standbyStates(standbys []string) string {
	parts := make([]string, len(standbys))
	for i, s := range standbys {
		parts[i] = s + "=streaming"
	}
	return strings.Join(parts, ",")
}

// runBackup makes a Job from the backup CronJob, waits for it, checks the
// dump on the backup volume and that the Database's status follows, and
// returns the dump's file name.
func runBackup(t *testing.T, ns, db string) string {
	g := NewWithT(t)
	job := db + "-backup-now"
	start := time.Now()
	mustKubectl(t, "-n", ns, "create", "job", job, "--from=cronjob/"+render.BackupName(db))
	NewWithT(t).Eventually(func(g Gomega) {
		var j batchv1.Job
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: job}, &j)).To(Succeed())
		for _, c := range j.Status.Conditions {
			g.Expect(c.Type).NotTo(Equal(batchv1.JobFailed), "backup Job failed: %s", c.Message)
		}
		g.Expect(j.Status.Succeeded).To(BeNumerically(">=", 1))
	}).WithTimeout(3 * time.Minute).WithPolling(time.Second).Should(Succeed())
	measured(t, "backup Job completed %s after create", time.Since(start).Round(time.Second))
	logs := mustKubectl(t, "-n", ns, "logs", "job/"+job)
	i := strings.Index(logs, "/backup/")
	g.Expect(i).To(BeNumerically(">=", 0), "the Job names its dump:\n%s", logs)
	file := strings.Fields(logs[i+len("/backup/"):])[0]
	g.Expect(file).To(MatchRegexp(`^` + db + `-\d{8}T\d{6}Z\.sql\.gz$`))

	NewWithT(t).Eventually(func(g Gomega) {
		var d databasev1.Database
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: db}, &d)).To(Succeed())
		g.Expect(d.Status.LastBackup).NotTo(BeNil(), "status.lastBackup")
		g.Expect(meta.IsStatusConditionTrue(d.Status.Conditions, databasev1.ConditionBackupReady)).To(BeTrue(), "BackupReady: %+v", d.Status.Conditions)
	}).WithTimeout(time.Minute).WithPolling(time.Second).Should(Succeed())
	return file
}

// containerStatus is the status of the named container of pod.
func containerStatus(pod *corev1.Pod, name string) corev1.ContainerStatus {
	for _, s := range pod.Status.ContainerStatuses {
		if s.Name == name {
			return s
		}
	}
	return corev1.ContainerStatus{}
}

// username is the application user of the client's Database.
func (c *dbClient) username(t *testing.T) string {
	var s corev1.Secret
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: c.ns, Name: render.CredentialsSecretName(c.db)}, &s); err != nil {
		t.Fatalf("read credentials: %v", err)
	}
	return string(s.Data[render.SecretKeyUsername])
}

// TestPostgres18Development: the newest major, a single-replica
// development Database, starts and serves.
func TestPostgres18Development(t *testing.T) {
	ns := newNamespace(t, "pg18")
	const name = "app"
	start := time.Now()
	createDatabase(t, &databasev1.Database{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: databasev1.DatabaseSpec{
			Type: databasev1.PostgreSQL, Version: "18", Replicas: ptr.To[int32](1),
			Storage: databasev1.StorageSpec{Size: resource.MustParse("1Gi")}, Environment: databasev1.Development,
		},
	})
	waitDatabaseReady(t, ns, name, createTimeout)
	measured(t, "PostgreSQL 18 development: Ready %s after create", time.Since(start).Round(time.Second))
	c := newClient(t, ns, name, false)
	g := NewWithT(t)
	g.Expect(c.viaURI("SELECT current_setting('server_version_num')::int / 10000")).To(Equal("18"))
	_, err := c.viaURI("CREATE TABLE t (x int); INSERT INTO t VALUES (18)")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.viaURI("SELECT x FROM t")).To(Equal("18"))
}
