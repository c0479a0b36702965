package realpods

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

// bigRows is the size of the table the interruption tests copy and load: big
// enough that pg_basebackup and the restore's load take seconds here, so a
// kill can land in the middle of them.
const bigRows = 1500000

// TestPostgresInterruptedRestoreAndBootstrap restores a dump into a new
// 2-replica Database and kills pod 0's database container at three moments
// of the restore (before the load: during initdb; during the load; just
// after it), then kills pod 1's bootstrap at three moments of its copy of
// pod 0 (before pg_basebackup wrote anything; during the copy; after it,
// while the standby starts). Every interrupted attempt must be thrown away
// and redone: the Database ends with exactly the source's rows on both pods,
// the Restored condition is True, only pod 0 ever mounted the source's
// backup volume, and the two pods run on different nodes. A restore from a
// dump that does not exist reports RestoreFailed.
func TestPostgresInterruptedRestoreAndBootstrap(t *testing.T) {
	ns := newNamespace(t, "interrupt")
	const source, copyName = "src", "copy"
	src := developmentPostgres(ns, source, 1)
	src.Spec.Backup = &databasev1.BackupSpec{Enabled: true, Schedule: "0 2 * * *", Retention: "7d"}
	createDatabase(t, src)
	waitDatabaseReady(t, ns, source, createTimeout)
	sc := newClient(t, ns, source, false)
	g := NewWithT(t)
	_, err := sc.viaURI(fmt.Sprintf(`CREATE TABLE big (id int PRIMARY KEY, pad text NOT NULL);
INSERT INTO big SELECT i, md5(i::text) FROM generate_series(1, %d) i`, bigRows))
	g.Expect(err).NotTo(HaveOccurred())
	want, err := sc.viaURI("SELECT count(*), sum(id), md5(string_agg(pad, '' ORDER BY id)) FROM big")
	g.Expect(err).NotTo(HaveOccurred())
	backup := runBackup(t, ns, source)

	start := time.Now()
	restored := developmentPostgres(ns, copyName, 2)
	restored.Spec.Restore = &databasev1.RestoreSpec{FromDatabase: source, Backup: backup}
	createDatabase(t, restored)
	pod0 := copyName + "-0"

	t.Run("restore killed before, during and after the load", func(t *testing.T) {
		volume := dataVolumePath(t, ns, "data-"+pod0)
		marker := filepath.Join(volume, ".database-operator-initialising")
		moments := []struct {
			name string
			// ready says the attempt has reached the moment, from the
			// container's log so far.
			ready func(log string) bool
		}{
			{"before the load (initdb running)", func(log string) bool {
				_, err := os.Stat(marker)
				return err == nil && !strings.Contains(log, "database-operator: restoring")
			}},
			{"during the load", func(log string) bool {
				return strings.Contains(log, "database-operator: restoring") && !strings.Contains(log, "database-operator: restored")
			}},
			{"after the load", func(log string) bool { return strings.Contains(log, "database-operator: restored") }},
		}
		for i, m := range moments {
			if i == 1 {
				// Well into the load, not at its first statement.
				waitLog(t, ns, pod0, "database", "database-operator: restoring")
				time.Sleep(time.Second)
			}
			id := killAt(t, ns, pod0, "database", m.ready)
			measured(t, "restore: pod 0's database container killed %s", m.name)
			previous, _, _ := kubectl(context.Background(), "", "-n", ns, "logs", pod0, "-c", "database", "--previous")
			switch i {
			case 0:
				NewWithT(t).Expect(previous).NotTo(ContainSubstring("database-operator: restoring"), "killed before the load")
			case 1:
				NewWithT(t).Expect(previous).NotTo(ContainSubstring("database-operator: restored"), "killed during the load")
			}
			waitNewContainer(t, ns, pod0, "database", id)
			if i < 2 {
				// The next attempt throws the unfinished one away.
				waitLog(t, ns, pod0, "database", "did not finish; emptying it")
			} else {
				log := containerLog(ns, pod0, "database")
				t.Logf("after the load: the next start %s", map[bool]string{true: "emptied and restored again (killed before the marker was removed)",
					false: "found a complete data directory"}[strings.Contains(log, "did not finish")])
			}
		}
	})

	t.Run("bootstrap killed before, during and after the copy", func(t *testing.T) {
		pod1 := copyName + "-1"
		// Pod 1 exists only once the restore is done.
		NewWithT(t).Eventually(func() error {
			return k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: pod1}, &corev1.Pod{})
		}).WithTimeout(createTimeout).WithPolling(time.Second).Should(Succeed())
		p := getPod(t, ns, pod1)
		volume := dataVolumePath(t, ns, "data-"+pod1)
		partial := filepath.Join(volume, "pgdata.partial")

		// Before: the database container's agent, the moment it runs (the
		// copy is its prepare step).
		killPodProcess(t, string(p.UID), "database-agent")
		_, statErr := os.Stat(partial)
		measured(t, "bootstrap: pod 1's database container killed at its start (copy begun: %t)", statErr == nil)
		// During: the copy is tens of MB in.
		NewWithT(t).Eventually(func() int64 { return dirSize(partial) }).WithTimeout(recoverTimeout).WithPolling(50*time.Millisecond).
			Should(BeNumerically(">", 20<<20), "pg_basebackup copying into %s", partial)
		killPodProcess(t, string(p.UID), "database-agent")
		measured(t, "bootstrap: pod 1's database container killed during the copy (%d MiB copied)", dirSize(partial)>>20)
		// After: the copy is in place and the standby starts.
		killAt(t, ns, pod1, "database", func(log string) bool { return strings.Contains(log, "copied the primary") })
		measured(t, "bootstrap: pod 1's database container killed as the copied standby started")
	})

	t.Run("ends complete, once", func(t *testing.T) {
		g := NewWithT(t)
		db := waitDatabaseReady(t, ns, copyName, createTimeout)
		measured(t, "restore into 2 replicas with 6 interruptions: Ready %s after create", time.Since(start).Round(time.Second))
		c := meta.FindStatusCondition(db.Status.Conditions, databasev1.ConditionRestored)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "%+v", c)
		cc := newClient(t, ns, copyName, false)
		g.Expect(cc.viaURI("SELECT count(*), sum(id), md5(string_agg(pad, '' ORDER BY id)) FROM big")).To(Equal(want), "exactly the source's rows")
		g.Expect(cc.viaHost(podHost(ns, copyName, 1), "SELECT count(*), sum(id), md5(string_agg(pad, '' ORDER BY id)) FROM big")).To(Equal(want), "on the replica too")
		expectStreaming(t, ns, copyName, []string{copyName + "-1"}, time.Minute)

		nodes := map[string]bool{}
		for i := range 2 {
			p := getPod(t, ns, fmt.Sprintf("%s-%d", copyName, i))
			nodes[p.Spec.NodeName] = true
			for _, v := range p.Spec.Volumes {
				g.Expect(v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != render.BackupName(source)).To(BeTrue(),
					"%s mounts the source's backup volume after the restore", p.Name)
			}
		}
		g.Expect(nodes).To(HaveLen(2), "the pods spread over two nodes: only the restoring pod was tied to the backup volume's node")
	})

	t.Run("a missing dump is reported", func(t *testing.T) {
		const broken = "broken"
		db := developmentPostgres(ns, broken, 1)
		db.Spec.Restore = &databasev1.RestoreSpec{FromDatabase: source, Backup: source + "-20000101T000000Z.sql.gz"}
		createDatabase(t, db)
		NewWithT(t).Eventually(func(g Gomega) {
			var db databasev1.Database
			g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: broken}, &db)).To(Succeed())
			r := meta.FindStatusCondition(db.Status.Conditions, databasev1.ConditionRestored)
			g.Expect(r).NotTo(BeNil())
			g.Expect(r.Reason).To(Equal("RestoreFailed"), "%+v", r)
			d := meta.FindStatusCondition(db.Status.Conditions, databasev1.ConditionDegraded)
			g.Expect(d).NotTo(BeNil())
			g.Expect(d.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(d.Message).To(ContainSubstring("no dump "+source+"-20000101T000000Z.sql.gz in /restore"), "the restore script's reason")
			g.Expect(db.Status.Phase).To(Equal(databasev1.PhaseFailed))
		}).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
	})
}

// developmentPostgres is a PostgreSQL 17 development Database with 2Gi
// data volumes and the given number of replicas.
func developmentPostgres(ns, name string, replicas int32) *databasev1.Database {
	return &databasev1.Database{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: databasev1.DatabaseSpec{
			Type: databasev1.PostgreSQL, Version: "17", Replicas: ptr.To(replicas),
			Storage:     databasev1.StorageSpec{Size: resource.MustParse("2Gi")},
			Environment: databasev1.Development,
		},
	}
}

// dataVolumePath is the host folder of a claim's local volume (the nodes
// share the host's filesystem), once the claim is bound.
func dataVolumePath(t *testing.T, ns, claim string) string {
	t.Helper()
	var path string
	NewWithT(t).Eventually(func(g Gomega) {
		var pvc corev1.PersistentVolumeClaim
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: claim}, &pvc)).To(Succeed())
		g.Expect(pvc.Spec.VolumeName).NotTo(BeEmpty(), "claim %s bound", claim)
		var pv corev1.PersistentVolume
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Name: pvc.Spec.VolumeName}, &pv)).To(Succeed())
		g.Expect(pv.Spec.Local).NotTo(BeNil())
		path = pv.Spec.Local.Path
	}).WithTimeout(createTimeout).WithPolling(200 * time.Millisecond).Should(Succeed())
	return path
}

// containerLog is the current log of a pod's container; "" until it has one.
func containerLog(ns, pod, container string) string {
	out, _, err := kubectl(context.Background(), "", "-n", ns, "logs", pod, "-c", container)
	if err != nil {
		return ""
	}
	return out
}

func waitLog(t *testing.T, ns, pod, container, text string) {
	t.Helper()
	NewWithT(t).Eventually(func() string { return containerLog(ns, pod, container) }).
		WithTimeout(recoverTimeout).WithPolling(200*time.Millisecond).Should(ContainSubstring(text), "log of %s/%s", pod, container)
}

// killAt waits until the container's current attempt reaches a moment (ready,
// judged from its log), kills its first process from the host, and returns
// the killed container's ID.
func killAt(t *testing.T, ns, pod, container string, ready func(log string) bool) string {
	t.Helper()
	var id string
	NewWithT(t).Eventually(func(g Gomega) {
		id = containerStatus(getPod(t, ns, pod), container).ContainerID
		g.Expect(id).NotTo(BeEmpty())
		g.Expect(ready(containerLog(ns, pod, container))).To(BeTrue())
	}).WithTimeout(recoverTimeout).WithPolling(100 * time.Millisecond).Should(Succeed())
	pid := hostProcessOf(id)
	NewWithT(t).Expect(pid).NotTo(BeZero(), "container %s runs", id)
	NewWithT(t).Expect(killProcess(pid)).To(Succeed())
	return id
}

// waitNewContainer waits until the container runs again under another ID.
func waitNewContainer(t *testing.T, ns, pod, container, old string) {
	t.Helper()
	var id string
	NewWithT(t).Eventually(func(g Gomega) {
		s := containerStatus(getPod(t, ns, pod), container)
		id = s.ContainerID
		g.Expect(id).NotTo(BeEmpty())
		g.Expect(id).NotTo(Equal(old))
		g.Expect(s.State.Running).NotTo(BeNil())
	}).WithTimeout(recoverTimeout).WithPolling(200 * time.Millisecond).Should(Succeed())
}

// hostProc is a host process of a pod.
type hostProc struct {
	pid, ppid int
	comm      string
}

// podProcesses lists the host processes in a pod's cgroup.
func podProcesses(uid string) []hostProc {
	keys := []string{uid, strings.ReplaceAll(uid, "-", "_")}
	var out []hostProc
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cg, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		if err != nil || (!strings.Contains(string(cg), keys[0]) && !strings.Contains(string(cg), keys[1])) {
			continue
		}
		status, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		p := hostProc{pid: pid}
		if m := ppidField.FindSubmatch(status); m != nil {
			p.ppid, _ = strconv.Atoi(string(m[1]))
		}
		comm, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		p.comm = strings.TrimSpace(string(comm))
		out = append(out, p)
	}
	return out
}

// killPodProcess polls the pod's host processes every few milliseconds for
// a container's first process (its parent is outside the pod) named comm,
// and SIGKILLs it; it tries again when the process is gone before the
// signal (the runtime's short-lived helpers have such names too). It
// returns the killed PID.
func killPodProcess(t *testing.T, uid, comm string) int {
	t.Helper()
	var pid int
	NewWithT(t).Eventually(func() error {
		procs := podProcesses(uid)
		in := map[int]bool{}
		for _, p := range procs {
			in[p.pid] = true
		}
		for _, p := range procs {
			if !in[p.ppid] && p.comm == comm {
				pid = p.pid
				return killProcess(p.pid)
			}
		}
		return fmt.Errorf("no %s process in pod %s yet", comm, uid)
	}).WithTimeout(recoverTimeout).WithPolling(10 * time.Millisecond).Should(Succeed())
	return pid
}

// dirSize is the bytes of the regular files under dir; 0 when it is missing.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
		return nil
	})
	return n
}
