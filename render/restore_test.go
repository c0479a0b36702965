package render_test

import (
	"sort"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

// initScripts maps the file names the database container sees in
// /docker-entrypoint-initdb.d to ConfigMap keys.
func initScripts(g Gomega, sts *appsv1.StatefulSet) map[string]string {
	out := map[string]string{}
	for _, v := range sts.Spec.Template.Spec.Volumes {
		if v.Name != "initdb" {
			continue
		}
		g.Expect(v.ConfigMap).NotTo(BeNil())
		for _, item := range v.ConfigMap.Items {
			out[item.Path] = item.Key
		}
	}
	return out
}

func volumeNamed(volumes []corev1.Volume, name string) *corev1.Volume {
	for i := range volumes {
		if volumes[i].Name == name {
			return &volumes[i]
		}
	}
	return nil
}

// The restore shape: the source's backup volume read-only at /restore in the
// database container, the restore script among the init scripts (which the
// images run only while initialising an empty data directory), sorting after
// the engine's own, and the dump chosen by env.
func TestRestoreShape(t *testing.T) {
	for _, typ := range []databasev1.DatabaseType{databasev1.PostgreSQL, databasev1.MySQL} {
		for _, named := range []string{"", "orders-old-20250102T020000Z.sql.gz"} {
			t.Run(string(typ)+"/backup="+named, func(t *testing.T) {
				g := NewWithT(t)
				c := mustRender(t, newDatabase(typ, facts[typ].version, replicas(3), restore("orders-old", named)))
				sts := typed[appsv1.StatefulSet](t, c.StatefulSet)
				pod := sts.Spec.Template.Spec
				main := containerNamed(g, pod.Containers, "database")

				v := volumeNamed(pod.Volumes, "restore")
				g.Expect(v).NotTo(BeNil())
				g.Expect(v.PersistentVolumeClaim).NotTo(BeNil())
				g.Expect(v.PersistentVolumeClaim.ClaimName).To(Equal("orders-old-backup"))
				g.Expect(v.PersistentVolumeClaim.ReadOnly).To(BeTrue())
				g.Expect(main.VolumeMounts).To(ContainElement(corev1.VolumeMount{Name: "restore", MountPath: "/restore", ReadOnly: true}))
				for _, ic := range pod.InitContainers {
					g.Expect(ic.VolumeMounts).NotTo(ContainElement(HaveField("Name", "restore")), "only the database container reads the dump")
				}

				env := envByName(main)
				g.Expect(env["RESTORE_FROM"].Value).To(Equal("orders-old"))
				if named == "" {
					g.Expect(env).NotTo(HaveKey("RESTORE_BACKUP"), "no name: the latest dump")
				} else {
					g.Expect(env["RESTORE_BACKUP"].Value).To(Equal(named))
				}

				// Only into an empty data directory, once: the script is an
				// init script of the image's entrypoint, and nothing else runs it.
				scripts := initScripts(g, sts)
				var restoreFile string
				for file, key := range scripts {
					if key == "initdb-restore.sh" {
						restoreFile = file
					}
				}
				g.Expect(restoreFile).To(HaveSuffix("-restore.sh"))
				files := make([]string, 0, len(scripts))
				for file := range scripts {
					files = append(files, file)
				}
				sort.Strings(files)
				g.Expect(files[len(files)-2]).To(Equal(restoreFile), "the restore runs after the users are created")
				g.Expect(files[len(files)-1]).To(Equal("99-initialised.sh"), "the initialisation is complete only after the restore")
				g.Expect(main.Command).NotTo(ContainElement(ContainSubstring("restore")))
				g.Expect(main.Args).NotTo(ContainElement(ContainSubstring("restore")))

				// Pod 0 only: replicas copy pod 0.
				cm := typed[corev1.ConfigMap](t, c.ConfigMap)
				script := cm.Data["initdb-restore.sh"]
				g.Expect(script).To(ContainSubstring(`if [ "${POD_NAME##*-}" != "0" ]; then`))
				g.Expect(script).To(ContainSubstring(`"${RESTORE_DIR:-/restore}"`))
				g.Expect(script).NotTo(ContainSubstring("exit 0"), "the script is sourced: exit would end the entrypoint")
			})
		}
	}
}

// Without spec.restore nothing of it is rendered, so existing Databases'
// pods do not roll when the operator gains the feature.
func TestNoRestoreWithoutSpec(t *testing.T) {
	for _, typ := range []databasev1.DatabaseType{databasev1.PostgreSQL, databasev1.MySQL} {
		g := NewWithT(t)
		c := mustRender(t, newDatabase(typ, facts[typ].version, backup(true)))
		sts := typed[appsv1.StatefulSet](t, c.StatefulSet)
		g.Expect(volumeNamed(sts.Spec.Template.Spec.Volumes, "restore")).To(BeNil())
		g.Expect(envByName(sts.Spec.Template.Spec.Containers[0])).NotTo(HaveKey("RESTORE_FROM"))
		g.Expect(typed[corev1.ConfigMap](t, c.ConfigMap).Data).NotTo(HaveKey("initdb-restore.sh"))
		for file := range initScripts(g, sts) {
			g.Expect(strings.Contains(file, "restore")).To(BeFalse())
		}
	}
}

// Restoring does not change what the Database's own backups look like: the
// CronJob still writes to its own volume.
func TestRestoreKeepsOwnBackup(t *testing.T) {
	g := NewWithT(t)
	c := mustRender(t, newDatabase(databasev1.PostgreSQL, "16", backup(true), restore("orders-old", "")))
	g.Expect(c.BackupPVC).NotTo(BeNil())
	g.Expect(*c.BackupPVC.Name).To(Equal("orders-backup"))
	g.Expect(*c.BackupCronJob.Spec.JobTemplate.Spec.Template.Spec.Volumes[0].PersistentVolumeClaim.ClaimName).To(Equal("orders-backup"))
}

// While a restore is in progress only pod 0 runs, labelled as restoring and
// mounting the source's backup volume; once it is done (Observed.RestoreDone)
// the StatefulSet has every replica and no pod mounts that volume, which a
// ReadWriteOnce claim could not give to pods on several nodes.
func TestRestoreRunsPodZeroAlone(t *testing.T) {
	for _, typ := range []databasev1.DatabaseType{databasev1.PostgreSQL, databasev1.MySQL} {
		g := NewWithT(t)
		db := newDatabase(typ, map[databasev1.DatabaseType]string{databasev1.PostgreSQL: "17", databasev1.MySQL: "8.4"}[typ],
			replicas(3), restore("orders-old", ""))

		during := typed[appsv1.StatefulSet](t, mustRender(t, db).StatefulSet)
		g.Expect(*during.Spec.Replicas).To(Equal(int32(1)), "%s: pod 0 alone while restoring", typ)
		g.Expect(during.Spec.Template.Labels).To(HaveKeyWithValue(render.LabelRestoring, "true"))
		g.Expect(during.Spec.Template.Spec.Volumes).To(ContainElement(HaveField("Name", "restore")))

		c, err := render.RenderObserved(db, render.DefaultOptions(), render.Observed{RestoreDone: true})
		g.Expect(err).NotTo(HaveOccurred())
		after := typed[appsv1.StatefulSet](t, c.StatefulSet)
		g.Expect(*after.Spec.Replicas).To(Equal(int32(3)), "%s: every replica once restored", typ)
		g.Expect(after.Spec.Template.Labels).NotTo(HaveKey(render.LabelRestoring))
		g.Expect(after.Spec.Template.Spec.Volumes).NotTo(ContainElement(HaveField("Name", "restore")))
		for _, ct := range after.Spec.Template.Spec.Containers {
			g.Expect(ct.VolumeMounts).NotTo(ContainElement(HaveField("Name", "restore")))
		}
		cm := typed[corev1.ConfigMap](t, c.ConfigMap)
		g.Expect(cm.Data).NotTo(HaveKey("initdb-restore.sh"))
	}
}

// /dev/shm is memory-backed and as large as the memory limit: PostgreSQL's
// parallel queries keep their shared state there, and the runtime's default
// is 64 MiB.
func TestSharedMemoryFollowsMemoryLimit(t *testing.T) {
	g := NewWithT(t)
	sts := typed[appsv1.StatefulSet](t, mustRender(t, newDatabase(databasev1.PostgreSQL, "17", replicas(2), environment(databasev1.Production))).StatefulSet)
	main := containerNamed(g, sts.Spec.Template.Spec.Containers, "database")
	g.Expect(main.VolumeMounts).To(ContainElement(And(HaveField("Name", "shm"), HaveField("MountPath", "/dev/shm"))))
	var shm *corev1.Volume
	for i, v := range sts.Spec.Template.Spec.Volumes {
		if v.Name == "shm" {
			shm = &sts.Spec.Template.Spec.Volumes[i]
		}
	}
	g.Expect(shm).NotTo(BeNil())
	g.Expect(shm.EmptyDir.Medium).To(Equal(corev1.StorageMediumMemory))
	g.Expect(shm.EmptyDir.SizeLimit.String()).To(Equal("4Gi"), "the production profile's memory limit")
}
